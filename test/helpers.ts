import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import path from 'node:path';

/** Repository root, from dist/test/helpers.js or test/helpers.ts alike. */
export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', path.basename(path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')) === 'dist' ? '..' : '.');

/** Absolute path of a committed fixture file under test/fixtures/. */
export function fixturePath(name: string): string {
  return path.join(repoRoot, 'test', 'fixtures', name);
}

/** Whether Debian's PyTorch is there to check our files against (`npm test` installs python3-torch). */
export const pythonHasTorch = spawnSync('/usr/bin/python3', ['-c', 'import torch'], { stdio: 'ignore' }).status === 0;

import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import os from 'node:os';

/** Repository root, from dist/test/helpers.js or test/helpers.ts alike. */
export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', path.basename(path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')) === 'dist' ? '..' : '.');

/** Absolute path of a committed fixture file under test/fixtures/. */
export function fixturePath(name: string): string {
  return path.join(repoRoot, 'test', 'fixtures', name);
}

/** Whether Debian's PyTorch is there to check our files against (`npm test` installs python3-torch). */
export const pythonHasTorch = spawnSync('/usr/bin/python3', ['-c', 'import torch'], { stdio: 'ignore' }).status === 0;

/**
 * The python with tensorboard (scripts/setup.sh --with-python-torch puts it in a venv under
 * ~/.cache/arcface-ts; ARCFACE_TENSORBOARD_PYTHON overrides), or why there is none.
 */
export const tensorboardPython = process.env.ARCFACE_TENSORBOARD_PYTHON ?? path.join(os.homedir(), '.cache', 'arcface-ts', 'tensorboard-venv', 'bin', 'python');
export const tensorboardMissing: string | undefined = (() => {
  const r = spawnSync(tensorboardPython, ['-c', 'import tensorboard.backend.event_processing.event_accumulator'], { encoding: 'utf8' });
  return r.status === 0 ? undefined : `tensorboard cannot be imported by ${tensorboardPython} (scripts/setup.sh --with-python-torch installs it): ${r.error?.message ?? r.stderr.trim().split('\n').pop()}`;
})();

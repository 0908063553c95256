import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
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

/** What the tests' tiny training runs share: mbf, one epoch of batches of 8, a log line per step, one decoding thread. */
export const TINY_RUN = { network: 'mbf', numEpoch: 1, batchSize: 8, lr: 0.05, frequent: 1, verbose: 1000, numWorkers: 1 };

/**
 * A training config file `<dir>/<name>.ts` (a plain default export) of TINY_RUN with `config` over
 * it, its output `<dir>/<name>`.
 */
export function writeRunConfig(dir: string, name: string, config: Record<string, unknown>): { file: string; output: string } {
  const output = path.join(dir, name);
  const file = path.join(dir, `${name}.ts`);
  fs.writeFileSync(file, `export default ${JSON.stringify({ ...TINY_RUN, output, ...config }, null, 2)};\n`);
  return { file, output };
}

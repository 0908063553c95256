/**
 * Live PyTorch references (test/reference/torch_reference.py), computed on the machine the tests
 * run on: PyTorch's float32 results differ between the CPU kinds that run them (AMD EPYC, Intel
 * Sapphire Rapids), so a recorded number is only the truth where it was recorded. One thread on
 * the Python side, as the tests run theirs. Each case runs once per test file.
 */
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { pythonHasTorch, repoRoot } from './helpers.js';

/** `skip` option for tests that need the live reference (`npm test` installs python3-torch). */
export const torchReferenceSkip: false | string = pythonHasTorch ? false : 'needs /usr/bin/python3 with torch (python3-torch; npm test installs it)';

const cache = new Map<string, unknown>();

/** The JSON a case of torch_reference.py prints; throws with its stderr when it fails. */
export function torchReference<T>(name: 'nn_chain' | 'backbones' | 'vit'): T {
  if (!cache.has(name)) {
    const script = path.join(repoRoot, 'test', 'reference', 'torch_reference.py');
    const run = spawnSync('/usr/bin/python3', [script, name], {
      encoding: 'utf8',
      maxBuffer: 256 << 20,
      env: { ...process.env, OMP_NUM_THREADS: '1', PYTHONWARNINGS: 'ignore' },
    });
    if (run.status !== 0) throw new Error(`torch_reference.py ${name} failed (exit ${run.status}):\n${run.stderr}`);
    cache.set(name, JSON.parse(run.stdout));
  }
  return cache.get(name) as T;
}

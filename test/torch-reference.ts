/**
 * Live PyTorch references (test/reference/torch_reference.py), computed on the machine the tests
 * run on: PyTorch's float32 results differ between the CPU kinds that run them (AMD EPYC, Intel
 * Sapphire Rapids), so a recorded number is only the truth where it was recorded. One thread on
 * the Python side, as the tests run theirs. Each case runs once per test file.
 *
 * They also differ between PyTorch versions (other oneDNN/MKL kernels: conv weight gradients move by
 * up to ~2e-5 between 1.13 and 2.13), so the reference must run the libtorch version the addon was
 * built on: Debian's /usr/bin/python3 (torch 1.13) for the default build; for an addon built on a pip
 * libtorch (ARCFACE_TORCH_DIR), ARCFACE_REFERENCE_PYTHON names that PyTorch's python.
 */
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { runtimeInfo } from '../src/torch/index.js';
import { pythonHasTorch, repoRoot } from './helpers.js';

/** The python3 that computes the references. */
export const referencePython = process.env.ARCFACE_REFERENCE_PYTHON || '/usr/bin/python3';

const referenceHasTorch =
  referencePython === '/usr/bin/python3' ? pythonHasTorch : spawnSync(referencePython, ['-c', 'import torch'], { stdio: 'ignore' }).status === 0;

/** `skip` option for tests that need the live reference (`npm test` installs python3-torch). */
export const torchReferenceSkip: false | string = referenceHasTorch
  ? false
  : `needs ${referencePython} with torch (python3-torch; npm test installs it; ARCFACE_REFERENCE_PYTHON names another python)`;

const cache = new Map<string, unknown>();

/** major.minor of a version string: "2.13.0+cpu" → "2.13", "1.13.0a0+git…" → "1.13". */
const majorMinor = (v: string) => v.split('.').slice(0, 2).join('.');

function checkVersion(reference: string): void {
  const addon = runtimeInfo().torchVersion;
  if (majorMinor(reference) !== majorMinor(addon)) {
    throw new Error(
      `the live reference ran PyTorch ${reference} (${referencePython}) but the addon is built on libtorch ${addon}: ` +
        `their float32 results differ by version; set ARCFACE_REFERENCE_PYTHON to a python3 whose torch is ${majorMinor(addon)}`,
    );
  }
}

/** The JSON a case of torch_reference.py prints; throws with its stderr when it fails. */
export function torchReference<T>(name: 'nn_chain' | 'backbones' | 'vit'): T {
  if (!cache.has(name)) {
    const script = path.join(repoRoot, 'test', 'reference', 'torch_reference.py');
    const run = spawnSync(referencePython, [script, name], {
      encoding: 'utf8',
      maxBuffer: 256 << 20,
      env: { ...process.env, OMP_NUM_THREADS: '1', PYTHONWARNINGS: 'ignore' },
    });
    if (run.status !== 0) throw new Error(`torch_reference.py ${name} failed (exit ${run.status}):\n${run.stderr}`);
    const { torch_version: version, result } = JSON.parse(run.stdout) as { torch_version: string; result: unknown };
    checkVersion(version);
    cache.set(name, result);
  }
  return cache.get(name) as T;
}

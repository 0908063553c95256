/** The `arcface` command: --version, --help of every command, doctor, bad usage, the launcher's start failures, demo. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { spawn, spawnSync } from 'node:child_process';
import { repoRoot } from './helpers.js';

const arcface = (...args: string[]) =>
  spawnSync(process.execPath, [path.join(repoRoot, 'bin', 'arcface.js'), ...args], { encoding: 'utf8', cwd: repoRoot });

test('arcface --version prints the package version', () => {
  const run = arcface('--version');
  assert.equal(run.status, 0, run.stderr);
  const pkg = JSON.parse(fs.readFileSync(path.join(repoRoot, 'package.json'), 'utf8'));
  assert.equal(run.stdout.trim(), pkg.version);
});

test('every command answers --help and -h with its usage and options, exit 0', () => {
  const listing = arcface('--help');
  assert.equal(listing.status, 0);
  const commands = [...listing.stdout.split('Commands:')[1].split('Options:')[0].matchAll(/^ {2}(\S+)/gm)].map((m) => m[1]);
  assert.ok(commands.length === 15 && commands.includes('dashboard') && commands.includes('checkpoint') && commands.includes('launch') && commands.includes('bench'), listing.stdout);
  const forms = [
    ...commands.flatMap((c) => [[c, '--help'], [c, '-h']]),
    ['eval', 'verification', '--help'], ['checkpoint', 'merge', '--help'], ['bench', 'pfc', '--help'], ['bench', 'train', '-h'], ['export', 'onnx', '--help'],
    ['train', 'configs/ms1mv3_r50.ts', '--nproc-per-node', '2', '--help'], ['launch', '--nproc-per-node', '2', '--help'],
  ];
  for (const args of forms) {
    const run = arcface(...args);
    assert.equal(run.status, 0, `arcface ${args.join(' ')}: exit ${run.status}\n${run.stderr}`);
    assert.match(run.stdout, new RegExp(`usage: arcface ${args[0]}\\b`), `arcface ${args.join(' ')}`);
    assert.match(run.stdout, /\nOptions:\n[^]*-h, --help/, `arcface ${args.join(' ')}`);
  }
});

test('arcface launch: a worker command that cannot start is an error naming it, not a hang, exit 13 or a signal to its caller', async () => {
  // In a process group of its own, under a shell that must outlive it: signalling a failed child (pid 0)
  // would signal the whole group, the shell included, as it once stopped CI with exit 143.
  const shell = spawn('/bin/sh', ['-c', '"$@"; echo "launcher exited $?"', 'sh', process.execPath, path.join(repoRoot, 'bin', 'arcface.js'),
    'launch', '--nproc-per-node', '4', '--', 'no-such-command-arcface'], { cwd: repoRoot, detached: true });
  let stdout = '', stderr = '';
  shell.stdout.on('data', (d) => (stdout += d));
  shell.stderr.on('data', (d) => (stderr += d));
  const [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((resolve) => shell.on('close', (c, s) => resolve([c, s])));
  assert.deepEqual({ code, signal }, { code: 0, signal: null }, stderr);
  assert.match(stdout, /launcher exited 1\n/, stderr);
  assert.match(stderr, /worker rank \d could not start 'no-such-command-arcface'/);
  // after `--` the words are the worker's: --help goes to it, here to `node --help`
  const forwarded = arcface('launch', '--', 'node', '--help');
  assert.equal(forwarded.status, 0, forwarded.stderr);
  assert.match(forwarded.stdout, /\[rank 0\] Usage: node/);
});

test('arcface doctor reports libtorch 1.13+, OpenBLAS (Debian) or libtorch’s own MKL (pip), threads and Gloo', () => {
  const run = arcface('doctor', '--json');
  assert.equal(run.status, 0, run.stdout + run.stderr);
  const facts = JSON.parse(run.stdout);
  assert.match(facts.libtorch, /^\d+\.\d+/);
  assert.match(facts.blas, facts.libtorch.startsWith('1.') ? /openblas/i : /openblas|libtorch_cpu/i);
  assert.ok(facts['intra-op threads'] >= 1);
  assert.equal(facts.gloo, true);
  assert.equal(typeof facts['cuda available'], 'boolean');
  assert.deepEqual(facts.problems, []);
});

test('arcface doctor --json: CUDA and NCCL as the addon was linked and as its PyTorch reports them (not built: a CPU build)', () => {
  const run = arcface('doctor', '--json');
  assert.equal(run.status, 0, run.stdout + run.stderr);
  const { cuda, nccl, ...rest } = JSON.parse(run.stdout);
  // whether the addon is the CUDA build: it links libtorch_cuda (torch-config.sh's CUDA libs)
  const addon = process.env.ARCFACE_ADDON ?? path.join(repoRoot, 'native', 'build', 'Release', 'arcface_native.node');
  const linksCuda = /NEEDED.*libtorch_cuda\.so/.test(spawnSync('readelf', ['-d', addon], { encoding: 'utf8' }).stdout);
  assert.equal(rest['cuda build'], linksCuda);
  if (!linksCuda) {
    assert.deepEqual([cuda, nccl], [{ built: false }, { available: false, version: null }]);
    return;
  }
  // the CUDA PyTorch the addon was built on (ARCFACE_REFERENCE_PYTHON, as for the live references)
  const python = process.env.ARCFACE_REFERENCE_PYTHON ?? '/usr/bin/python3';
  const script = `import json, torch
n = torch.cuda.device_count()
print(json.dumps({'cuda': torch.version.cuda, 'nccl': '.'.join(map(str, torch.cuda.nccl.version())), 'devices': [
  {'index': i, 'name': torch.cuda.get_device_name(i), 'computeCapability': '%d.%d' % torch.cuda.get_device_capability(i),
   'totalMemory': torch.cuda.get_device_properties(i).total_memory} for i in range(n)]}))`;
  const py = spawnSync(python, ['-c', script], { encoding: 'utf8' });
  assert.equal(py.status, 0, `${python} (ARCFACE_REFERENCE_PYTHON, a CUDA PyTorch): ${py.stderr}`);
  const reference = JSON.parse(py.stdout);
  assert.equal(cuda.built, true);
  assert.equal(cuda.runtimeVersion, reference.cuda);
  assert.equal(nccl.version, reference.nccl);
  assert.deepEqual(cuda.devices.map(({ freeMemory, ...d }: { freeMemory: number }) => d), reference.devices);
  for (const d of cuda.devices) assert.ok(d.freeMemory > 0 && d.freeMemory <= d.totalMemory, `device ${d.index}: ${d.freeMemory} free`);
  assert.equal(nccl.available, reference.devices.length > 0);
  if (reference.devices.length === 0) assert.match(cuda.error, /\S/, 'why no device is visible');
});

test('arcface with an unknown command or bad option exits non-zero with a message', () => {
  const unknown = arcface('frobnicate');
  assert.equal(unknown.status, 2);
  assert.match(unknown.stderr, /unknown command 'frobnicate'/);
  const bad = arcface('demo', '--steps', 'many');
  assert.equal(bad.status, 1);
  assert.match(bad.stderr, /--steps needs a positive integer, got many/);
});

test('arcface demo trains and its loss falls', () => {
  const run = arcface('demo', '--steps', '100', '--batch', '16');
  assert.equal(run.status, 0, run.stdout + run.stderr);
  const losses = [...run.stdout.matchAll(/step +\d+ +loss (\d+\.\d+)/g)].map((m) => Number(m[1]));
  assert.ok(losses.length >= 4, run.stdout);
  assert.ok(losses.at(-1)! < losses[0] / 2, `loss did not fall: ${losses.join(' ')}`);
});

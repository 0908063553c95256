/**
 * The trainer end to end, as users run it (`arcface train` in a child process): config errors,
 * an exact resume after kill -9 and after SIGTERM, NaN handling with and without the GradScaler,
 * two processes, and `arcface bench train`. Data: a tiny generated-identities pack (16 identities
 * × 4 images = 8 steps of 8), so each run takes seconds.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as torch from '../src/torch/index.js';
import { generateIdentities } from '../src/data/index.js';
import { repoRoot } from './helpers.js';

const arcface = path.join(repoRoot, 'bin', 'arcface.js');
let dir: string;
let data: string;

before(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'arcface-train-'));
  data = path.join(dir, 'data');
  generateIdentities({ out: data, seed: 5, identities: 16, imagesPerIdentity: 4, heldOutIdentities: 20, pairs: 40, quality: 90 });
});
after(() => fs.rmSync(dir, { recursive: true, force: true }));

/** A config file (plain default export) over the tiny pack; `settings` override. */
function configFile(name: string, settings: Record<string, unknown> = {}): string {
  const config = {
    network: 'mbf', embeddingSize: 64, rec: data, numClasses: 16, numImage: 64, numEpoch: 1, batchSize: 8,
    sampleRate: 0.5, lr: 0.05, frequent: 1, verbose: 1000, valTargets: ['heldout'], saveAllStates: true,
    checkpointSteps: 4, gradientAcc: 2, numWorkers: 1, output: path.join(dir, name), ...settings,
  };
  const file = path.join(dir, `${name}.ts`);
  fs.writeFileSync(file, `export default ${JSON.stringify(config, null, 2)};\n`);
  return file;
}

const run = (args: string[]) => spawnSync(process.execPath, [arcface, ...args], { encoding: 'utf8', cwd: repoRoot });
const start = (args: string[]): ChildProcess => spawn(process.execPath, [arcface, ...args], { cwd: repoRoot, stdio: ['ignore', 'pipe', 'pipe'] });
const exited = (child: ChildProcess) => new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));

async function waitFor(condition: () => boolean, what: string, timeoutMs = 120_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** Every tensor of a saved state dict as bytes, by name. */
function weights(file: string): Map<string, Buffer> {
  const state = torch.loadStateDict(file);
  try {
    return new Map([...state].map(([k, t]) => [k, Buffer.from(t.contiguous().toBuffer())]));
  } finally {
    torch.dispose([...state.values()]);
  }
}

function assertSameWeights(a: string, b: string): void {
  const wa = weights(a), wb = weights(b);
  assert.deepEqual([...wa.keys()], [...wb.keys()]);
  for (const [k, v] of wa) assert.ok(v.equals(wb.get(k)!), `${k} differs`);
}

const checkpointStep = (output: string) => {
  const state = torch.load(path.join(output, 'checkpoint_gpu_0.pt')) as Map<string, unknown>;
  const step = Number(state.get('global_step'));
  const tensors: torch.Tensor[] = [];
  const collect = (v: unknown): void => {
    if (v instanceof torch.Tensor) tensors.push(v);
    else if (v instanceof Map) v.forEach(collect);
    else if (Array.isArray(v)) v.forEach(collect);
  };
  collect(state);
  torch.dispose(tensors);
  return step;
};

/** The complete lines of metrics.jsonl (a run may be writing the next one). */
const metrics = (output: string) => {
  const file = path.join(output, 'metrics.jsonl');
  const text = fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : '';
  return text.split('\n').slice(0, -1).map((l) => JSON.parse(l) as Record<string, number | string>);
};

let reference: string;

test('a run logs like arcface_torch, verifies, writes model.pt and every rank\'s state', () => {
  const r = run(['train', configFile('full')]);
  assert.equal(r.status, 0, r.stderr);
  const output = path.join(dir, 'full');
  reference = path.join(output, 'model.pt');
  assert.ok(fs.existsSync(reference) && fs.existsSync(path.join(output, 'checkpoint_gpu_0.pt')));
  const log = fs.readFileSync(path.join(output, 'training.log'), 'utf8');
  assert.match(log, /Training: \d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}-Speed [\d.]+ samples\/sec {3}Loss [\d.]+ {3}LearningRate [\d.]+ {3}Epoch: 0 {3}Global Step: 8 {3}Required: \d+ hours/);
  assert.match(log, /\[heldout\]\[8\]Accuracy-Flip: [\d.]+\+-[\d.]+/);
  const m = metrics(output);
  const train = m.filter((x) => x.type === 'train');
  assert.deepEqual(train.map((x) => x.step), [1, 2, 3, 4, 5, 6, 7, 8]);
  // PolynomialLRWarmup without warm-up over 8 steps: lr 0.05·(1 − t/8) after step t
  assert.ok(Math.abs((train[5].lr as number) - 0.05 * (1 - 6 / 8)) < 1e-9, `lr ${train[5].lr}`);
  assert.ok(train.every((x) => Number.isFinite(x.loss) && (x.samplesPerSec as number) > 0));
  const v = m.find((x) => x.type === 'verification')!;
  assert.equal(v.name, 'heldout');
  assert.ok((v.accuracyFlip as number) > 0.3 && (v.accuracyFlip as number) <= 1);
  assert.equal(checkpointStep(output), 8);
});

test('resume after kill -9 reaches the same weights, bit for bit', async () => {
  const file = configFile('killed');
  const output = path.join(dir, 'killed');
  const child = start(['train', file]);
  // the step-4 checkpoint is written; the run goes on to step 5+ and is killed mid-epoch
  await waitFor(() => fs.existsSync(path.join(output, 'checkpoint_gpu_0.pt')), 'the step-4 checkpoint');
  child.kill('SIGKILL');
  await exited(child);
  assert.ok(!fs.existsSync(path.join(output, 'model.pt')), 'killed before the end of the epoch');
  assert.equal(checkpointStep(output), 4);
  const r = run(['train', file, '--set', 'resume=true']);
  assert.equal(r.status, 0, r.stderr);
  assert.match(fs.readFileSync(path.join(output, 'training.log'), 'utf8'), /resumed from step 4 \(epoch 0, batch 4\)/);
  assertSameWeights(path.join(output, 'model.pt'), reference);
});

test('SIGTERM saves the state and exits 0; the resumed run matches too', async () => {
  const file = configFile('stopped', { checkpointSteps: 0 });
  const output = path.join(dir, 'stopped');
  const child = start(['train', file]);
  await waitFor(() => metrics(output).some((x) => x.step === 3), 'step 3');
  child.kill('SIGTERM');
  assert.equal(await exited(child), 0);
  assert.match(fs.readFileSync(path.join(output, 'training.log'), 'utf8'), /stopped by SIGTERM at step \d+: state saved/);
  const stoppedAt = checkpointStep(output);
  assert.ok(stoppedAt >= 3 && stoppedAt < 8, `stopped at ${stoppedAt}`);
  const r = run(['train', file, '--set', 'resume=true']);
  assert.equal(r.status, 0, r.stderr);
  assertSameWeights(path.join(output, 'model.pt'), reference);
});

test('a non-finite loss stops the run naming the step and keeps the last checkpoint; with fp16 the scaler skips instead', () => {
  // lr 1e38: the first update overflows the weights, the next loss is NaN
  const short = { batchSize: 16, valTargets: [], gradientAcc: 1 };  // 4 steps
  const r = run(['train', configFile('nan', { ...short, lr: 1e38, checkpointSteps: 1 })]);
  assert.equal(r.status, 1);
  assert.match(r.stderr, /step (\d+): the loss is NaN; stopped without saving/);
  const failedAt = Number(/step (\d+): the loss/.exec(r.stderr)![1]);
  assert.equal(checkpointStep(path.join(dir, 'nan')), failedAt - 1);

  const fp16 = run(['train', configFile('nan16', { ...short, lr: 1e38, fp16: true })]);
  assert.equal(fp16.status, 0, fp16.stderr);
  const scales = metrics(path.join(dir, 'nan16')).filter((x) => x.type === 'train').map((x) => x.gradScale as number);
  assert.equal(scales[0], 65536);
  assert.ok(scales[scales.length - 1] < 65536 / 2, `the scale backs off on every skipped step: ${scales.join(' ')}`);
});

test('config errors: one message naming the key, exit code 2', () => {
  const unknown = run(['train', configFile('bad'), '--set', 'batchSzie=8']);
  assert.equal(unknown.status, 2);
  assert.match(unknown.stderr, /unknown key 'batchSzie' \(did you mean 'batchSize'\?\)/);
  const wrongType = run(['train', configFile('bad'), '--set', 'lr="fast"']);
  assert.equal(wrongType.status, 2);
  assert.match(wrongType.stderr, /'lr' must be a positive number, got "fast"/);
  const file = path.join(dir, 'norec.ts');
  fs.writeFileSync(file, 'export default { network: "mbf", numClasses: 10, numImage: 100, numEpoch: 1 };\n');
  const missing = run(['train', file]);
  assert.equal(missing.status, 2);
  assert.match(missing.stderr, /'rec' is required/);
  assert.equal(missing.stderr.trim().split('\n').length, 1, missing.stderr);
  const noData = run(['train', configFile('nodata', { rec: path.join(dir, 'absent') })]);
  assert.equal(noData.status, 2);
  assert.match(noData.stderr, /rec: '.*absent' does not exist/);
});

test('two processes (--nproc-per-node 2): rank 0 logs, each rank saves its shard state', () => {
  const output = path.join(dir, 'two');
  // 4 steps of 2 × 8 images
  const r = run(['train', configFile('two', { valTargets: [], checkpointSteps: 0 }), '--nproc-per-node', '2', '--master-port', String(21000 + (process.pid % 5000))]);
  assert.equal(r.status, 0, r.stderr + r.stdout);
  assert.ok(fs.existsSync(path.join(output, 'model.pt')));
  for (const rank of [0, 1]) assert.ok(fs.existsSync(path.join(output, `checkpoint_gpu_${rank}.pt`)));
  const train = metrics(output).filter((x) => x.type === 'train');
  assert.deepEqual(train.map((x) => x.step), [1, 2, 3, 4], 'one log line per step: rank 0 only');
});

test('arcface bench train prints one JSON line with throughput and peak memory', () => {
  const r = run(['bench', 'train', '--network', 'mbf', '--batch-size', '4', '--num-classes', '100', '--sample-rate', '0.5', '--steps', '2', '--warmup', '1', '--json']);
  assert.equal(r.status, 0, r.stderr);
  const result = JSON.parse(r.stdout.trim().split('\n').pop()!);
  assert.equal(result.network, 'mbf');
  assert.equal(result.steps, 2);
  assert.ok(result.samples_per_s > 0 && result.step_ms > 0 && result.peak_rss_mb > 50);
});

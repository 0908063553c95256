/**
 * Checkpoint sets with real processes (`arcface train --nproc-per-node N` on 127.0.0.1): the
 * manifest, the last two sets kept, a resume that passes over an interrupted and a damaged set
 * naming them, and the logs continuing from the checkpoint. Data: a tiny generated pack (16
 * identities × 4 images); each run is 4 steps of a global batch of 16, with SyncBN (BatchNorm
 * over the global batch), so that a run resumed on another number of processes continues it.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as torch from '../src/torch/index.js';
import { DistributedSampler, generateIdentities } from '../src/data/index.js';
import { setDir, setsDir, type Manifest } from '../src/train/index.js';
import { tensorsIn } from '../src/train/checkpoint.js';
import { headRows } from '../src/train/reshard.js';
import { pythonHasTorch, repoRoot, writeRunConfig } from './helpers.js';

const arcface = path.join(repoRoot, 'bin', 'arcface.js');
let dir: string;
let data: string;
let port = 24000 + (process.pid % 4000);

before(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'arcface-ckpt-'));
  data = path.join(dir, 'data');
  generateIdentities({ out: data, seed: 5, identities: 16, imagesPerIdentity: 4, heldOutIdentities: 20, pairs: 20, quality: 90 });
});
after(() => fs.rmSync(dir, { recursive: true, force: true }));

/** A config file over the tiny pack: 4 steps of 16 images over all processes, a set after every step. */
const configFile = (name: string, settings: Record<string, unknown> = {}): string =>
  writeRunConfig(dir, name, {
    embeddingSize: 32, rec: data, numClasses: 16, numImage: 64, sampleRate: 1, valTargets: [], saveAllStates: true,
    syncBn: true, checkpointSteps: 1, gradientAcc: 1, ...settings,
  }).file;

/** `arcface train` on `procs` processes (one thread each), synchronously. */
function train(file: string, procs: number, ...args: string[]) {
  return spawnSync(process.execPath, [arcface, 'train', file, '--nproc-per-node', String(procs), '--master-port', String(port++), ...args], {
    encoding: 'utf8',
    cwd: repoRoot,
    env: { ...process.env, ARCFACE_NUM_THREADS: '1', OMP_NUM_THREADS: '1', OPENBLAS_NUM_THREADS: '1' },
  });
}

const sha256 = (file: string) => crypto.createHash('sha256').update(fs.readFileSync(file)).digest('hex');
const sameBytes = (a: string, b: string) => fs.readFileSync(a).equals(fs.readFileSync(b));

let reference: string;
let step3: string;  // a copy of the run's step-3 set, for the elastic test

test('every rank\'s file is in the step\'s set, its manifest names them with sizes and sha256, the last two sets stay', () => {
  const r = train(configFile('full'), 2);
  assert.equal(r.status, 0, r.stderr + r.stdout);
  const output = path.join(dir, 'full');
  reference = path.join(dir, 'reference.pt');
  fs.copyFileSync(path.join(output, 'model.pt'), reference);
  step3 = path.join(dir, 'step3');
  fs.cpSync(setDir(output, 3), step3, { recursive: true });
  assert.deepEqual(fs.readdirSync(setsDir(output)).sort(), ['step_3', 'step_4']);
  const manifest = JSON.parse(fs.readFileSync(path.join(setDir(output, 4), 'manifest.json'), 'utf8')) as Manifest;
  assert.equal(manifest.step, 4);
  assert.equal(manifest.epoch, 1, 'after the epoch\'s last batch the loader is at the next epoch');
  assert.equal(manifest.worldSize, 2);
  assert.equal(manifest.globalBatch, 16);
  assert.deepEqual(manifest.files.map((f) => f.name), ['checkpoint_gpu_0.pt', 'checkpoint_gpu_1.pt']);
  for (const f of manifest.files) {
    const file = path.join(setDir(output, 4), f.name);
    assert.equal(f.bytes, fs.statSync(file).size);
    assert.equal(f.sha256, sha256(file));
  }
  // the logs' lengths at the checkpoint: after step 4's line
  assert.equal(manifest.logs['metrics.jsonl'], fs.statSync(path.join(output, 'metrics.jsonl')).size);
});

test('resume passes over an interrupted and a damaged set, naming them, and reaches the same model bit for bit', () => {
  const file = configFile('full');
  const output = path.join(dir, 'full');
  // as a run killed after step 3's set: step 4's set damaged (rank 1's file), and a step 5 whose
  // manifest was never written; the logs went on past step 3
  fs.rmSync(path.join(output, 'model.pt'));
  const shard = path.join(setDir(output, 4), 'checkpoint_gpu_1.pt');
  const bytes = fs.readFileSync(shard);
  bytes[bytes.length >> 1] ^= 1;
  fs.writeFileSync(shard, bytes);
  fs.mkdirSync(setDir(output, 5));
  fs.copyFileSync(path.join(setDir(output, 4), 'checkpoint_gpu_0.pt'), path.join(setDir(output, 5), 'checkpoint_gpu_0.pt'));

  const r = train(file, 2, '--set', 'resume=true');
  assert.equal(r.status, 0, r.stderr + r.stdout);
  const log = fs.readFileSync(path.join(output, 'training.log'), 'utf8');
  assert.match(log, /resume: skipped checkpoints\/step_5: no manifest \(its writing was interrupted\)/);
  assert.match(log, /resume: skipped checkpoints\/step_4: checkpoint_gpu_1\.pt has another sha256 than the manifest's/);
  assert.match(log, /resumed from step 3 \(epoch 0, batch 3\) of .*step_3/);
  assert.ok(sameBytes(path.join(output, 'model.pt'), reference), 'model.pt differs from the uninterrupted run\'s');
  // step 4 is logged once: the first run's line was cut with the logs on resume
  const steps = fs.readFileSync(path.join(output, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l).step);
  assert.deepEqual(steps, [1, 2, 3, 4]);
  assert.deepEqual([...log.matchAll(/Global Step: (\d+)/g)].map((m) => Number(m[1])), [1, 2, 3, 4]);
  // the stale step 5 and the older sets are gone once the new step 4 set is complete
  assert.deepEqual(fs.readdirSync(setsDir(output)).sort(), ['step_3', 'step_4']);
});

test('no complete set: one error naming every set and why', () => {
  const file = configFile('none', { checkpointSteps: 0, saveAllStates: false });
  const output = path.join(dir, 'none');
  fs.mkdirSync(setDir(output, 2), { recursive: true });
  const r = train(file, 2, '--set', 'resume=true');
  assert.notEqual(r.status, 0);
  assert.match(r.stderr, /resume: no complete checkpoint set in .*checkpoints: checkpoints\/step_2: no manifest/);
});

/** A tensor's bytes. */
const bytesOf = (t: torch.Tensor) => Buffer.from(t.contiguous().toBuffer());

/** The Partial FC state of one file of a set, by key. */
function headOf(file: string): Map<string, Buffer> {
  const state = torch.load(file) as Map<string, unknown>;
  try {
    return new Map([...(state.get('state_dict_softmax_fc') as Map<string, torch.Tensor>)].map(([k, t]) => [k, bytesOf(t)]));
  } finally {
    torch.dispose(tensorsIn(state));
  }
}

/** A fresh output folder holding `set` as its step-3 set, with the run's logs. */
function outputWith(name: string, set: string): string {
  const out = path.join(dir, name);
  fs.cpSync(set, setDir(out, 3), { recursive: true });
  for (const log of ['training.log', 'metrics.jsonl']) fs.copyFileSync(path.join(dir, 'full', log), path.join(out, log));
  return out;
}

const loggedSteps = (output: string) => fs.readFileSync(path.join(output, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { step: number; loss: number });

test('elastic: merge writes one process\'s set and the whole centre matrix; resumed on 2, 1 and 4 processes it is re-sharded by class id', () => {
  const manifest = JSON.parse(fs.readFileSync(path.join(step3, 'manifest.json'), 'utf8')) as Manifest;
  // the whole centre matrix and its momentum, by class id: rank 0's rows 0–7, then rank 1's 8–15
  const shards = [0, 1].map((r) => headOf(path.join(step3, `checkpoint_gpu_${r}.pt`)));
  const whole = new Map([...shards[0].keys()].map((k) => [k, Buffer.concat(shards.map((s) => s.get(k)!))]));
  assert.deepEqual([...whole.keys()].sort(), ['optimizer.momentum_buffer', 'weight']);
  const rowBytes = 32 * 4;
  // what rank r of 4 resumes with: rows 4r … 4r+3 of each, bit for bit
  for (let r = 0; r < 4; r++) {
    const rows = headRows(step3, manifest, 4 * r, 4);
    for (const [k, t] of rows) assert.ok(bytesOf(t).equals(whole.get(k)!.subarray(4 * r * rowBytes, 4 * (r + 1) * rowBytes)), `rank ${r} of 4: ${k}`);
    torch.dispose([...rows.values()]);
  }
  // each global batch is one run of the epoch's permutation, however it is dealt out to ranks
  const globalBatches = (worldSize: number) =>
    Array.from({ length: 4 }, (_, step) =>
      Array.from({ length: worldSize }, (_, rank) => [...new DistributedSampler(64, { worldSize, rank, seed: 2048 }).indices().subarray(step * (16 / worldSize), (step + 1) * (16 / worldSize))]).flat().sort((a, b) => a - b),
    );
  assert.deepEqual(globalBatches(1), globalBatches(2));
  assert.deepEqual(globalBatches(4), globalBatches(2));

  // merge: one process's set of step 3, and softmax_fc.pt with every centre
  const merged = path.join(dir, 'merged');
  const m = spawnSync(process.execPath, [arcface, 'checkpoint', 'merge', outputWith('to-merge', step3), '--out', merged, '--json'], { encoding: 'utf8', cwd: repoRoot });
  assert.equal(m.status, 0, m.stderr);
  assert.equal(JSON.parse(m.stdout.trim()).step, 3);
  const mergedSet = setDir(merged, 3);
  const mergedHead = headOf(path.join(mergedSet, 'checkpoint_gpu_0.pt'));
  for (const [k, v] of whole) assert.ok(mergedHead.get(k)!.equals(v), `merged ${k}`);
  const centres = torch.loadStateDict(path.join(merged, 'softmax_fc.pt'));
  assert.deepEqual(centres.get('weight')!.shape, [16, 32]);
  assert.ok(bytesOf(centres.get('weight')!).equals(whole.get('weight')!));
  torch.dispose([...centres.values()]);
  if (pythonHasTorch) {
    const py = spawnSync('/usr/bin/python3', ['-c', `import torch; w = torch.load(${JSON.stringify(path.join(merged, 'softmax_fc.pt'))})['weight']; print(list(w.shape), w.dtype)`], { encoding: 'utf8' });
    assert.equal(py.status, 0, py.stderr);
    assert.equal(py.stdout.trim(), '[16, 32] torch.float32');
  }

  // split: the merged set resumed on 2 processes (re-sharded 1 → 2) is the uninterrupted run: every
  // rank has the batch it had, so BatchNorm's batch statistics are the same too → model.pt bit for bit
  const split = outputWith('split', mergedSet);
  const s = train(configFile('split'), 2, '--set', 'resume=true');
  assert.equal(s.status, 0, s.stderr + s.stdout);
  assert.match(fs.readFileSync(path.join(split, 'training.log'), 'utf8'), /resumed from step 3 \(epoch 0, batch 3, re-sharded from 1 processes\)/);
  assert.ok(sameBytes(path.join(split, 'model.pt'), reference), 'the split run\'s model.pt differs from the uninterrupted run\'s');

  // on 1 process (batch 16) and on 4 (batch 4): the same samples in step 4, and with SyncBN the same
  // BatchNorm statistics, so the run goes on as the uninterrupted one: step 4's loss (the resumed
  // weights' forward) up to float32 sums in another order; step 4's update of the weights up to
  // that and the float16 compression of the gradients on the wire (none in a world of one, other
  // sums on 4): each tensor's distance to the uninterrupted model.pt, against the update itself.
  // Measured 5.4e-3 (1 process) and 5.3e-3 (4), worst a BatchNorm bias, whose gradient is a sum
  // over the batch with heavy cancellation; with the compression off 2.3e-3 and 7.7e-3, so it is
  // float32 rounding, not the wire: bound 3e-2. A wrong statistic or scale is off by ≥ 0.5.
  const uninterrupted = loggedSteps(path.join(dir, 'full'));
  const referenceState = torch.loadStateDict(reference);
  const step3State = torch.load(path.join(step3, 'checkpoint_gpu_0.pt')) as Map<string, unknown>;
  const step3Backbone = step3State.get('state_dict_backbone') as Map<string, torch.Tensor>;
  /** the largest over float tensors of ‖w − uninterrupted‖ / ‖uninterrupted − step 3's‖ */
  const updateError = (state: Map<string, torch.Tensor>) => {
    let worst = 0;
    let worstKey = '';
    for (const [key, want] of referenceState) {
      const got = state.get(key)!;
      assert.deepEqual(got.shape, want.shape, key);
      // left out: tensors that are float32 noise around 0 (norm < 1e-6: the running means of centred
      // activations, biases of BatchNorms followed by another BatchNorm, which removes their gradient)
      if (want.dtype !== 'float32' || torch.tidy(() => want.norm().item()) < 1e-6) continue;
      const update = torch.tidy(() => want.sub(step3Backbone.get(key)!).norm().item());
      const error = torch.tidy(() => got.sub(want).norm().item()) / update;
      if (error > worst) [worst, worstKey] = [error, key];
    }
    return { worst, worstKey };
  };
  for (const procs of [1, 4]) {
    const name = `elastic-${procs}`;
    const out = outputWith(name, step3);
    const r = train(configFile(name, { batchSize: 16 / procs }), procs, '--set', 'resume=true');
    assert.equal(r.status, 0, r.stderr + r.stdout);
    assert.match(fs.readFileSync(path.join(out, 'training.log'), 'utf8'), /resumed from step 3 \(epoch 0, batch 3, re-sharded from 2 processes\)/);
    const logged = loggedSteps(out);
    assert.deepEqual(logged.map((l) => l.step), [1, 2, 3, 4]);
    const lossError = Math.abs(logged[3].loss - uninterrupted[3].loss) / uninterrupted[3].loss;
    const state = torch.loadStateDict(path.join(out, 'model.pt'));
    const { worst: weightError, worstKey } = updateError(state);
    torch.dispose([...state.values()]);
    console.log(`# resumed on ${procs}: step 4's loss ${logged[3].loss} (uninterrupted on 2: ${uninterrupted[3].loss}, relative ${lossError.toExponential(2)}); step 4's update off by ${weightError.toExponential(2)} of itself (${worstKey})`);
    assert.ok(lossError < 1e-5, `step 4 on ${procs}: loss ${logged[3].loss}, on 2: ${uninterrupted[3].loss}`);
    assert.ok(weightError < 3e-2, `model.pt on ${procs}: step 4's update off by ${weightError} of itself`);
    assert.ok(fs.existsSync(path.join(setDir(out, 4), 'manifest.json')));
  }
  torch.dispose([...referenceState.values(), ...tensorsIn(step3State)]);
  // another global batch is refused, naming the batch size it needs
  const bad = train(configFile('elastic-4', { batchSize: 8 }), 1, '--set', 'resume=true');
  assert.notEqual(bad.status, 0);
  assert.match(bad.stderr, /written with a global batch of 16 \(batchSize × 4 processes\); to continue its sample stream on 1 processes batchSize must be 16/);
});

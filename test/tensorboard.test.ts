/**
 * TensorBoard event files (src/train/tensorboard.ts): CRC32C against RFC 3720's vectors, one record
 * by hand, and TensorBoard's own EventAccumulator reading a short training run's file (and a
 * killed-and-resumed one's) with the tags, steps and values of metrics.jsonl.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { generateIdentities } from '../src/data/index.js';
import { setDir } from '../src/train/index.js';
import { crc32c, maskedCrc32c, scalarsEvent, tfRecord } from '../src/train/tensorboard.js';
import { repoRoot, writeRunConfig } from './helpers.js';

/**
 * The python with tensorboard (scripts/setup.sh --with-python-torch puts it in a venv under
 * ~/.cache/arcface-ts; ARCFACE_TENSORBOARD_PYTHON overrides), or why there is none.
 */
const tensorboardPython = process.env.ARCFACE_TENSORBOARD_PYTHON ?? path.join(os.homedir(), '.cache', 'arcface-ts', 'tensorboard-venv', 'bin', 'python');
const tensorboardMissing: string | false = (() => {
  const r = spawnSync(tensorboardPython, ['-c', 'import tensorboard.backend.event_processing.event_accumulator'], { encoding: 'utf8' });
  return r.status === 0 ? false : `skipped: tensorboard cannot be imported by ${tensorboardPython} (scripts/setup.sh --with-python-torch installs it): ${r.error?.message ?? r.stderr.trim().split('\n').pop()}`;
})();
if (tensorboardMissing) console.log(`# ${tensorboardMissing}`);

test('CRC32C: RFC 3720 vectors and "123456789"', () => {
  const ascii = (s: string) => new TextEncoder().encode(s);
  assert.equal(crc32c(ascii('123456789')), 0xe3069283);
  assert.equal(crc32c(new Uint8Array(32)), 0x8a9136aa);
  assert.equal(crc32c(new Uint8Array(32).fill(0xff)), 0x62a8ab43);
  assert.equal(crc32c(Uint8Array.from({ length: 32 }, (_, i) => i)), 0x46dd794e);
  assert.equal(crc32c(Uint8Array.from({ length: 32 }, (_, i) => 31 - i)), 0x113fdb5c);
  assert.equal(crc32c(new Uint8Array(0)), 0);
});

test('a scalar Event in its TFRecord, byte by byte', () => {
  const event = scalarsEvent(1.5, 3, { loss: 2 });
  // wall_time (1, double 1.5), step (2, varint 3), summary (5) { value (1) { tag (1) "loss", simple_value (2, float 2) } }
  const expected = Uint8Array.from([
    0x09, 0, 0, 0, 0, 0, 0, 0xf8, 0x3f, 0x10, 0x03, 0x2a, 0x0d, 0x0a, 0x0b, 0x0a, 0x04, 0x6c, 0x6f, 0x73, 0x73, 0x15, 0, 0, 0, 0x40,
  ]);
  assert.deepEqual(event, expected);
  const record = tfRecord(event);
  const view = new DataView(record.buffer);
  assert.equal(view.getBigUint64(0, true), BigInt(expected.length));
  // TFRecord's mask: ((crc >>> 15) | (crc << 17)) + 0xa282ead8, checked here on the raw CRC
  const raw = crc32c(record.subarray(0, 8));
  assert.equal(view.getUint32(8, true), (((raw >>> 15) | (raw << 17)) + 0xa282ead8) >>> 0);
  assert.deepEqual(record.subarray(12, 12 + expected.length), expected);
  assert.equal(view.getUint32(12 + expected.length, true), maskedCrc32c(expected));
  assert.equal(record.length, 8 + 4 + expected.length + 4);
});

const arcface = path.join(repoRoot, 'bin', 'arcface.js');
let dir: string;
let data: string;

before(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'arcface-tensorboard-'));
  data = path.join(dir, 'data');
  generateIdentities({ out: data, seed: 5, identities: 16, imagesPerIdentity: 2, heldOutIdentities: 20, pairs: 40, quality: 90 });
});
after(() => fs.rmSync(dir, { recursive: true, force: true }));

/**
 * 4 steps of 8 over the tiny pack (16 identities × 2 images), logged every step, verified at steps 2 and 4, checkpointed at 2;
 * fp16, so that the GradScaler's scale is logged too (on a CPU: bfloat16 or float32 with the scaler).
 */
const configFile = (name: string, settings: Record<string, unknown> = {}): string =>
  writeRunConfig(dir, name, {
    embeddingSize: 32, rec: data, numClasses: 16, numImage: 32, sampleRate: 0.5, verbose: 2, valTargets: ['heldout'],
    saveAllStates: true, checkpointSteps: 2, fp16: true, ...settings,
  }).file;

type Scalars = Record<string, [number, number][]>;

/** What TensorBoard reads from <output>/tensorboard. */
function tensorboardScalars(output: string): Scalars {
  const r = spawnSync(tensorboardPython, [path.join(repoRoot, 'test', 'reference', 'tensorboard_scalars.py'), path.join(output, 'tensorboard')], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout) as Scalars;
}

/** The same scalars from metrics.jsonl, as float32 (simple_value's type). */
function metricsScalars(output: string): Scalars {
  const out: Scalars = {};
  const add = (tag: string, step: number, value: number) => (out[tag] ??= []).push([step, Math.fround(value)]);
  for (const line of fs.readFileSync(path.join(output, 'metrics.jsonl'), 'utf8').trim().split('\n')) {
    const m = JSON.parse(line);
    if (m.type === 'train') {
      add('time_for_end', m.step, m.hoursLeft);
      add('learning_rate', m.step, m.lr);
      add('loss', m.step, m.loss);
      add('samples_per_sec', m.step, m.samplesPerSec);
      if (m.gradScale !== undefined) add('grad_scale', m.step, m.gradScale);
    } else if (m.type === 'verification') add(m.name, m.step, m.accuracyFlip);
  }
  return out;
}

function assertTensorboardMatchesMetrics(output: string): void {
  const read = tensorboardScalars(output);
  const expected = metricsScalars(output);
  assert.deepEqual(Object.keys(read).sort(), ['grad_scale', 'heldout', 'learning_rate', 'loss', 'samples_per_sec', 'time_for_end']);
  assert.deepEqual(read, expected);
  assert.deepEqual(read.loss.map(([step]) => step), [1, 2, 3, 4], 'each step once');
  assert.deepEqual(read.heldout.map(([step]) => step), [2, 4]);
  assert.deepEqual(fs.readdirSync(path.join(output, 'tensorboard')).length, 1, 'one event file');
}

const exited = (child: ChildProcess) => new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));

test('TensorBoard reads the steps and values of metrics.jsonl', { skip: tensorboardMissing }, () => {
  const output = path.join(dir, 'whole');
  const r = spawnSync(process.execPath, [arcface, 'train', configFile('whole')], { encoding: 'utf8', cwd: repoRoot });
  assert.equal(r.status, 0, r.stderr);
  const [name] = fs.readdirSync(path.join(output, 'tensorboard'));
  assert.match(name, new RegExp(`^events\\.out\\.tfevents\\.\\d{10}\\.${os.hostname().replace(/\./g, '\\.')}$`));
  assertTensorboardMatchesMetrics(output);
});

test('killed after a checkpoint and resumed: TensorBoard reads each step once', { skip: tensorboardMissing }, async () => {
  const file = configFile('killed');
  const output = path.join(dir, 'killed');
  const child = spawn(process.execPath, [arcface, 'train', file], { cwd: repoRoot, stdio: 'ignore' });
  const manifest = path.join(setDir(output, 2), 'manifest.json');
  const deadline = Date.now() + 120_000;
  while (!fs.existsSync(manifest) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
  // let it log a step or more past the checkpoint: those are cut from the event file on resume
  const logged = () => fs.readFileSync(path.join(output, 'metrics.jsonl'), 'utf8').includes('"step":3');
  while (!logged() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
  child.kill('SIGKILL');
  await exited(child);
  assert.ok(!fs.existsSync(path.join(output, 'model.pt')), 'killed before the end of the epoch');
  assert.ok(tensorboardScalars(output).loss.some(([step]) => step === 3), 'the event file had step 3 before the resume');
  const r = spawnSync(process.execPath, [arcface, 'train', file, '--set', 'resume=true'], { encoding: 'utf8', cwd: repoRoot });
  assert.equal(r.status, 0, r.stderr);
  assertTensorboardMatchesMetrics(output);
});

test('tensorboard: false writes no event file', () => {
  const output = path.join(dir, 'off');
  const r = spawnSync(process.execPath, [arcface, 'train', configFile('off', { tensorboard: false, numImage: 8, valTargets: [], saveAllStates: false })], { encoding: 'utf8', cwd: repoRoot });
  assert.equal(r.status, 0, r.stderr);
  assert.ok(!fs.existsSync(path.join(output, 'tensorboard')));
});

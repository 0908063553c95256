/**
 * A bad record in a training run (`arcface train` in a child process): without skipCorrupt the run
 * stops naming the file and record; with it the run finishes and training.log names each skip;
 * past maxSkipped it stops naming the count.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { MXFaceDataset, generateIdentities } from '../src/data/index.js';
import { repoRoot, writeRunConfig } from './helpers.js';

const arcface = path.join(repoRoot, 'bin', 'arcface.js');
let dir: string;
let data: string;

before(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'arcface-train-corrupt-'));
  data = path.join(dir, 'data');
  generateIdentities({ out: data, seed: 5, identities: 8, imagesPerIdentity: 4, heldOutIdentities: 20, pairs: 20, quality: 90 });
  // records 5 and 20: their JPEG headers overwritten
  const ds = new MXFaceDataset(data);
  const rec = Buffer.from(fs.readFileSync(path.join(data, 'train.rec')));
  for (const key of [5, 20]) rec.fill(0x11, ds.record.offset(key) + 8 + 24, ds.record.offset(key) + 8 + 24 + 64);
  ds.close();
  fs.writeFileSync(path.join(data, 'train.rec'), rec);
});
after(() => fs.rmSync(dir, { recursive: true, force: true }));

function train(name: string, settings: Record<string, unknown>) {
  const { file, output } = writeRunConfig(dir, name, { embeddingSize: 32, rec: data, numClasses: 8, numImage: 32, valTargets: [], ...settings });
  const result = spawnSync(process.execPath, [arcface, 'train', file], { encoding: 'utf8', cwd: repoRoot });
  const log = fs.existsSync(path.join(output, 'training.log')) ? fs.readFileSync(path.join(output, 'training.log'), 'utf8') : '';
  return { ...result, log, output };
}

test('without skipCorrupt a corrupt record ends the run naming the file and record', () => {
  const r = train('strict', {});
  assert.notEqual(r.status, 0);
  assert.match(r.stderr, /train\.rec: record \d+: not a JPEG or PNG image/);
  assert.ok(!fs.existsSync(path.join(r.output, 'model.pt')));
});

test('with skipCorrupt the run finishes and training.log names each skipped record', () => {
  const r = train('skip', { skipCorrupt: true });
  assert.equal(r.status, 0, r.stderr);
  const skips = [...r.log.matchAll(/train\.rec: record (\d+): not a JPEG or PNG image .* — skipped \((\d+) so far\)/g)];
  // the shuffle decides which comes first
  assert.deepEqual(skips.map((m) => m[1]).sort(), ['20', '5']);
  assert.deepEqual(skips.map((m) => m[2]), ['1', '2']);
  assert.ok(fs.existsSync(path.join(r.output, 'model.pt')));
});

test('with skipCorrupt and maxSkipped 1 the second bad record ends the run', () => {
  const r = train('cap', { skipCorrupt: true, maxSkipped: 1 });
  assert.notEqual(r.status, 0);
  assert.match(r.stderr, /train\.rec: record \d+: not a JPEG or PNG image .* — 2 corrupt records met, over the cap of 1 \(maxSkipped\); stopped/);
  assert.match(r.log, /skipped \(1 so far\)/);
});

/**
 * The default job's model learns: `npm start`'s command (package.json: set-up, then `arcface start`
 * — configs/generated_mbf.ts: MobileFaceNet, ArcFace + Partial FC, bf16), run on a smaller generated
 * pack — 200 identities × 16 images, 100 steps of 32 — must lift the 10-fold flip accuracy on 300
 * held-out pairs of unseen identities well above the same network untrained (measured: ~60 % →
 * ~75 %; docs/training.md), print the before → after line and write model.pt.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { generateIdentities } from '../src/data/index.js';
import { repoRoot } from './helpers.js';

/** The arguments `npm start` gives node after the set-up script (`node bin/arcface.js start`). */
function npmStartArguments(): string[] {
  const script: string = JSON.parse(fs.readFileSync(path.join(repoRoot, 'package.json'), 'utf8')).scripts.start;
  const match = /^bash scripts\/setup\.sh && node (bin\/arcface\.js start)$/.exec(script);
  assert.ok(match, `npm start runs "${script}", not the set-up and then arcface start`);
  return match[1].split(' ');
}

test('npm start (arcface start): held-out verification accuracy rises well above the untrained baseline', () => {
  const [bin, ...command] = npmStartArguments();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'arcface-start-'));
  try {
    const data = path.join(dir, 'data');
    generateIdentities({ out: data, seed: 1, identities: 200, imagesPerIdentity: 16, heldOutIdentities: 100, pairs: 300, quality: 90 });
    const r = spawnSync(process.execPath, [
      path.join(repoRoot, bin), ...command,
      '--set', `rec=${data}`, '--set', 'numClasses=200', '--set', 'numImage=3200', '--set', 'batchSize=32', '--set', `output=${path.join(dir, 'out')}`,
    ], { encoding: 'utf8', cwd: repoRoot });
    assert.equal(r.status, 0, r.stderr + r.stdout);
    const evaluations = fs.readFileSync(path.join(dir, 'out', 'metrics.jsonl'), 'utf8').trim().split('\n')
      .map((l) => JSON.parse(l)).filter((m) => m.type === 'verification');
    assert.deepEqual(evaluations.map((e) => e.step), [0, 100]);
    const [untrained, trained] = evaluations.map((e) => e.accuracyFlip as number);
    console.log(`held-out accuracy: untrained ${untrained}, trained ${trained}`);
    assert.ok(trained >= untrained + 0.08, `trained ${trained} vs untrained ${untrained}`);
    assert.match(r.stdout, /heldout\.bin verification \(10-fold, flip\): untrained [\d.]+% → trained [\d.]+%/);
    assert.ok(fs.existsSync(path.join(dir, 'out', 'model.pt')));
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

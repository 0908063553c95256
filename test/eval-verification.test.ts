/** Verification accuracy against insightface arcface_torch's eval/verification.py (fixture made by its own code). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import * as torch from '../src/torch/index.js';
import * as nn from '../src/nn/index.js';
import { evaluatePairs, kFoldSplits, pairDistances, verifyBackbone, calculateRoc } from '../src/eval/index.js';
import { fixturePath } from './helpers.js';

const ref = JSON.parse(fs.readFileSync(fixturePath('verification_reference.json'), 'utf8'));
const close = (a: number, b: number, tol = 1e-9) => Math.abs(a - b) <= tol;

test('folds are sklearn KFold(shuffle=False): contiguous, the first n % k one larger', () => {
  const splits = kFoldSplits(23, 10);
  assert.deepEqual(splits.map((s) => s.test.length), [3, 3, 3, 2, 2, 2, 2, 2, 2, 2]);
  assert.deepEqual(splits[1].test, [3, 4, 5]);
  assert.equal(splits[1].train.length, 20);
  assert.ok(!splits[1].train.includes(4));
  assert.throws(() => kFoldSplits(5, 10), /5 pairs cannot be split into 10 folds/);
});

test('10-fold accuracy, TPR/FPR curves and VAL@FAR=1e-3 equal verification.py on 600 pairs', () => {
  const embeddings = torch.tensor(Float64Array.from(ref.embeddings), { shape: [ref.issame.length * 2, 4] });
  const dist = pairDistances(embeddings);
  embeddings.dispose();
  const r = evaluatePairs(dist, ref.issame);
  r.accuracy.forEach((a, i) => assert.ok(close(a, ref.accuracy[i]), `fold ${i}: ${a} vs ${ref.accuracy[i]}`));
  const { tpr, fpr } = calculateRoc(Array.from({ length: 400 }, (_, i) => i * 0.01), dist, ref.issame);
  tpr.forEach((v, i) => assert.ok(close(v, ref.tpr[i]), `tpr[${i}]`));
  fpr.forEach((v, i) => assert.ok(close(v, ref.fpr[i]), `fpr[${i}]`));
  assert.ok(close(r.val, ref.val), `val ${r.val} vs ${ref.val}`);
  assert.ok(close(r.valStd, ref.val_std));
  assert.ok(close(r.far, ref.far));
  assert.ok(r.accMean > 0.75 && r.accMean < 0.95, 'a case where the threshold matters');
});

/** Embeds an image as its per-channel means over the left and right halves (so a flip swaps them). */
class HalfMeans extends nn.Module {
  forward(x: torch.Tensor): torch.Tensor {
    return torch.tidy(() => torch.cat([x.narrow(3, 0, 56).mean([2, 3]), x.narrow(3, 56, 56).mean([2, 3])], 1));
  }
}

test('verifyBackbone: plain and flip-summed embeddings, XNorm, identical pairs are all accepted', () => {
  torch.manualSeed(5);
  torch.tidy(() => {
    const base = torch.randn([20, 3, 112, 112]);
    // pairs (2i, 2i+1): even pairs the same image twice, odd pairs two different images
    const images = torch.cat(Array.from({ length: 20 }, (_, p) => torch.stack([base.select(0, p), base.select(0, p % 2 === 0 ? p : (p + 1) % 20)])));
    const issame = Array.from({ length: 20 }, (_, p) => p % 2 === 0);
    const r = verifyBackbone(new HalfMeans(), { images, issame }, { batchSize: 7 });
    assert.equal(r.plain.accMean, 1);
    assert.equal(r.flip.accMean, 1);
    const expectedNorm = torch.cat([new HalfMeans().forward(images), new HalfMeans().forward(torch.flip(images, [3]))]).norm(2, 1).mean().item();
    assert.ok(close(r.xnorm, expectedNorm, 1e-6));
    assert.throws(() => verifyBackbone(new HalfMeans(), { images, issame: issame.slice(1) }), /40 images for 19 pairs/);
  });
});

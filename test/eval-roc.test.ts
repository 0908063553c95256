/** ROC curves and TAR@FAR against sklearn.metrics.roc_curve and eval_ijbc.py's table code (fixture), plus small cases by hand. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { IJB_FARS, rocAuc, rocCurve, tarAtFar } from '../src/eval/index.js';
import { fixturePath } from './helpers.js';

interface Case {
  name: string;
  labels: number[];
  scores: number[];
  drop_intermediate: boolean;
  fpr: number[];
  tpr: number[];
  thresholds: number[];
  auc: number;
  tar_at_far: number[];
}
const ref = JSON.parse(fs.readFileSync(fixturePath('roc_reference.json'), 'utf8')) as { fars: number[]; cases: Case[] };

test('the FARs are the doubles eval_ijbc.py uses (10 ** -k)', () => {
  assert.deepEqual(IJB_FARS, ref.fars);
});

for (const c of ref.cases) {
  test(`roc curve, AUC and TAR@FAR equal sklearn / eval_ijbc.py: ${c.name} (${c.labels.length} pairs)`, () => {
    const roc = rocCurve(c.labels, c.scores, { dropIntermediate: c.drop_intermediate });
    assert.deepEqual(Array.from(roc.fpr), c.fpr);
    assert.deepEqual(Array.from(roc.tpr), c.tpr);
    assert.deepEqual(Array.from(roc.thresholds.subarray(1)), c.thresholds);
    assert.equal(roc.thresholds[0], Infinity);
    assert.ok(Math.abs(rocAuc(roc) - c.auc) < 1e-12, `auc ${rocAuc(roc)} vs ${c.auc}`);
    assert.deepEqual(tarAtFar(roc).map((r) => r.tar), c.tar_at_far);
  });
}

test('roc by hand: a perfect ranking, collinear points dropped, TAR 1 at every FAR', () => {
  const roc = rocCurve([1, 1, 0, 0], [0.9, 0.8, 0.3, 0.1]);
  // thresholds 0.9, 0.8, 0.3, 0.1 give (fp, tp) = (0,1), (0,2), (1,2), (2,2); (1,2) lies between its neighbours
  assert.deepEqual(Array.from(roc.fpr), [0, 0, 0, 1]);
  assert.deepEqual(Array.from(roc.tpr), [0, 0.5, 1, 1]);
  assert.deepEqual(Array.from(roc.thresholds), [Infinity, 0.9, 0.8, 0.1]);
  assert.equal(rocAuc(roc), 1);
  // FPR 0 is nearest for every FAR ≤ 0.1; of the three points at 0 the last one (TAR 1) counts
  assert.deepEqual(tarAtFar(roc).map((r) => r.tar), [1, 1, 1, 1, 1, 1]);
});

test('roc by hand: a tie between a genuine and an impostor pair is one point', () => {
  // scores 0.7 (genuine), 0.5 (genuine and impostor), 0.2 (impostor), 0.1 (impostor)
  const roc = rocCurve([1, 1, 0, 0, 0], [0.7, 0.5, 0.5, 0.2, 0.1], { dropIntermediate: false });
  assert.deepEqual(Array.from(roc.fpr), [0, 0, 1 / 3, 2 / 3, 1]);
  assert.deepEqual(Array.from(roc.tpr), [0, 0.5, 1, 1, 1]);
  // nearest FPR to 0.1 is 0 (distance 0.1 < 0.233): TAR 0.5; to 0.3 it is 1/3
  assert.deepEqual(tarAtFar(roc, [0.1, 0.3]).map((r) => [r.fpr, r.tar]), [[0, 0.5], [1 / 3, 1]]);
  assert.ok(Math.abs(rocAuc(roc) - (0.25 + 2 / 3)) < 1e-15);
});

test('roc rejects what sklearn rejects or cannot score', () => {
  assert.throws(() => rocCurve([1, 1], [0.2, 0.4]), /needs both positive and negative pairs \(2 of 2/);
  assert.throws(() => rocCurve([1, 0], [0.2, NaN]), /score 1 is NaN/);
  assert.throws(() => rocCurve([1, 2], [0.2, 0.1]), /label 1 is 2/);
  assert.throws(() => rocCurve([1, 0, 1], [0.2, 0.1]), /3 labels for 2 scores/);
});

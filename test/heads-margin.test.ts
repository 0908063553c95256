/**
 * src/heads/margin.ts and the margin part of the fused kernel against arcface_torch
 * (test/fixtures/pfc_margin.json, from make_pfc_fixture.py: CombinedMarginLoss + DistCrossEntropy
 * in float64, B=8, D=16, C=50): ArcFace, CosFace, combined margins (m1, m2, m3 all set — arcface_torch
 * then applies the CosFace margin only) and inter-class filtering.
 *
 * Tolerances: the tensor-op path and the float64 kernel agree with PyTorch's float64 to 1e-9 of the
 * largest value (the fixture is printed with 10 significant digits); the float32 kernel to 1e-5.
 * A recorded fixture is sound here on any CPU: the reference is float64, where summation order
 * moves results by ~1e-15, six orders below the tolerance (no live reference needed).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import * as torch from '../src/torch/index.js';
import { CombinedMarginLoss, PartialFC, arcface, cosface, type CentreStorage } from '../src/heads/index.js';
import { fixturePath } from './helpers.js';
import { denseReference, relativeError } from './heads-reference.js';

interface MarginCase {
  name: string;
  s: number;
  m1: number;
  m2: number;
  m3: number;
  filter: number;
  logits: number[];
  loss: number;
  grad_embeddings: number[];
  grad_weight: number[];
}

const fx = JSON.parse(readFileSync(fixturePath('pfc_margin.json'), 'utf8'));
const { B, D, C } = fx as { B: number; D: number; C: number };
const cases: MarginCase[] = fx.margin_cases;
const marginOf = (c: MarginCase) => new CombinedMarginLoss({ s: c.s, m1: c.m1, m2: c.m2, m3: c.m3, interclassFilteringThreshold: c.filter });
// float32 values in the fixture (9 digits): rounded back to exactly those, then widened
const inputs = () => ({
  embeddings: torch.tensor(Float32Array.from(fx.embeddings), { shape: [B, D] }).double(),
  weight: torch.tensor(Float32Array.from(fx.weight), { shape: [C, D] }).double(),
});

test('presets and validation follow arcface_torch', () => {
  const a = arcface();
  assert.deepEqual([a.s, a.m1, a.m2, a.m3, a.kind], [64, 1, 0.5, 0, 'arcface']);
  const c = cosface();
  assert.deepEqual([c.s, c.m1, c.m2, c.m3, c.kind], [64, 1, 0, 0.4, 'cosface']);
  assert.equal(arcface({ s: 30, m: 0.3 }).m2, 0.3);
  assert.equal(new CombinedMarginLoss({ s: 64, m1: 0.9, m2: 0.4, m3: 0.15 }).kind, 'cosface');
  // arcface_torch raises for these: m1 ≠ 1 without m3, or a negative m3
  assert.throws(() => new CombinedMarginLoss({ s: 64, m1: 0.9, m2: 0.5, m3: 0 }), /unsupported margins m1=0.9/);
  assert.throws(() => new CombinedMarginLoss({ s: 64, m1: 1, m2: 0, m3: -0.1 }), /unsupported margins/);
  assert.throws(() => new CombinedMarginLoss({ s: NaN, m1: 1, m2: 0.5, m3: 0 }), /s must be a finite number/);
});

for (const c of cases) {
  test(`${c.name}: tensor-op path equals arcface_torch (logits, loss, gradients)`, () => {
    torch.tidy(() => {
      const { embeddings, weight } = inputs();
      const ref = denseReference(embeddings, weight, fx.labels, marginOf(c));
      assert.ok(relativeError(ref.logits, c.logits) < 1e-9, `logits: ${relativeError(ref.logits, c.logits)}`);
      assert.ok(Math.abs(ref.loss - c.loss) < 1e-9 * Math.abs(c.loss), `loss ${ref.loss} vs ${c.loss}`);
      assert.ok(relativeError(ref.gradEmbeddings, c.grad_embeddings) < 1e-9, 'embedding gradient');
      assert.ok(relativeError(ref.gradWeight, c.grad_weight) < 1e-9, 'centre gradient');
    });
  });

  for (const [storage, tol] of [['float64', 1e-9], ['float32', 1e-5]] as [CentreStorage, number][]) {
    test(`${c.name}: fused kernel (${storage}) equals arcface_torch`, () => {
      // tileRows 16: the 50 centres span four tiles, the last one partial
      const pfc = new PartialFC({ marginLoss: marginOf(c), embeddingSize: D, numClasses: C, storage, tileRows: 16, optimizer: { type: 'sgd', lr: 0.1 } });
      try {
        torch.tidy(() => {
          const { embeddings, weight } = inputs();
          pfc.loadStateDict(new Map([['weight', weight]]), { strict: false });
          const e = embeddings.to(storage === 'float64' ? 'float64' : 'float32').requiresGrad_();
          const loss = pfc.forward(e, torch.tensor(fx.labels, { dtype: 'int64' }));
          assert.equal(loss.dtype, storage === 'float64' ? 'float64' : 'float32');
          assert.ok(Math.abs(loss.item() - c.loss) <= tol * Math.abs(c.loss), `loss ${loss.item()} vs ${c.loss}`);
          loss.backward();
          const ge = Array.from(e.grad!.data() as ArrayLike<number>);
          assert.ok(relativeError(ge, c.grad_embeddings) < tol, `embedding gradient: ${relativeError(ge, c.grad_embeddings)}`);
          const gw = Array.from(pfc.sampledGrad().data() as ArrayLike<number>);
          assert.ok(relativeError(gw, c.grad_weight) < tol, `centre gradient: ${relativeError(gw, c.grad_weight)}`);
        });
      } finally {
        pfc.dispose();
      }
    });
  }
}

test('margin forward leaves its input alone and gives the straight-through gradient', () => {
  torch.tidy(() => {
    const cosines = torch.tensor([[0.2, -0.3, 0.9], [0.5, 0.1, -1]], { dtype: 'float64' }).requiresGrad_();
    const before = Array.from(cosines.data() as Float64Array);
    const out = arcface({ s: 10, m: 0.5 }).forward(cosines, torch.tensor([2, -1], { dtype: 'int64' }));
    assert.deepEqual(Array.from(cosines.data() as Float64Array), before);
    const v = out.data() as Float64Array;
    assert.ok(Math.abs(v[2] - 10 * Math.cos(Math.acos(0.9) + 0.5)) < 1e-12, 'target gets cos(θ + m)');
    assert.ok(Math.abs(v[0] - 2) < 1e-12 && Math.abs(v[4] - 1) < 1e-12, 'others (and rows labelled −1) only scale');
    out.sum().backward();
    // arcface_torch applies acos/cos under no_grad: ∂/∂cosine is s everywhere
    assert.deepEqual(Array.from(cosines.grad!.data() as Float64Array), [10, 10, 10, 10, 10, 10]);
  });
});

/**
 * src/heads/partial-fc.ts: the fused kernel against a plain dense float64 implementation
 * (./heads-reference.ts) and against arcface_torch's PartialFC_V2 (test/fixtures/pfc_margin.json);
 * sampling (positives always in, exact size, uniform negatives); the sparse SGD/AdamW update
 * against torch.optim's dense update; 16-bit storage; label validation; state dicts and export.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as torch from '../src/torch/index.js';
import type { Tensor } from '../src/torch/index.js';
import { native } from '../src/torch/native.js';
import { CombinedMarginLoss, PartialFC, arcface, cosface, classShard, type CentreStorage, type PartialFCOptions } from '../src/heads/index.js';
import { fixturePath } from './helpers.js';
import { chiSquareSurvival, denseReference, relativeError } from './heads-reference.js';

const fx = JSON.parse(readFileSync(fixturePath('pfc_margin.json'), 'utf8'));
const sgd = { type: 'sgd', lr: 0.1, momentum: 0.9, weightDecay: 5e-4 } as const;

function withHead<T>(o: Partial<PartialFCOptions> & { numClasses: number; embeddingSize: number }, fn: (pfc: PartialFC) => T): T {
  const pfc = new PartialFC({ marginLoss: arcface(), optimizer: sgd, ...o });
  try {
    return torch.tidy(() => fn(pfc));
  } finally {
    pfc.dispose();
  }
}

const ints = (t: Tensor): number[] => Array.from(t.data() as BigInt64Array, Number);
const floats = (t: Tensor): number[] => Array.from(t.data() as ArrayLike<number>);
const labelsTensor = (labels: number[]) => torch.tensor(labels, { dtype: 'int64' });

/** Embeddings near their class centre for half the rows (so no target probability is negligible everywhere). */
function batch(pfc: PartialFC, labels: number[], dtype: torch.Dtype = 'float64'): Tensor {
  return torch.tidy(() => {
    const centres = torch.indexSelect(pfc.weight.double(), 0, labelsTensor(labels));
    const noise = torch.randn(centres.shape, { dtype: 'float64' });
    const near = torch.normalize(centres).mul(3).add(noise.mul(0.5));
    const mask = torch.tensor(labels.map((_, i) => [i % 2]), { dtype: 'float64' });
    return near.mul(mask).add(noise.mul(torch.rsub(mask, 1))).to(dtype);
  });
}

const margins: [string, CombinedMarginLoss][] = [
  ['arcface', arcface()],
  ['cosface', cosface()],
  ['arcface + filtering', new CombinedMarginLoss({ s: 64, m1: 1, m2: 0.5, m3: 0, interclassFilteringThreshold: 0.1 })],
];

for (const [name, margin] of margins) {
  for (const [storage, tol] of [['float64', 1e-10], ['float32', 1e-5]] as [CentreStorage, number][]) {
    test(`sampleRate 1, ${name}, ${storage}: loss and gradients equal the dense float64 implementation`, () => {
      torch.manualSeed(1);
      // 301 centres in tiles of 64 (the last one partial), batch 32, D 24
      withHead({ marginLoss: margin, embeddingSize: 24, numClasses: 301, storage, tileRows: 64 }, (pfc) => {
        const labels = Array.from({ length: 32 }, (_, i) => (i * 37 + 5) % 301);
        const x = batch(pfc, labels);
        const e = x.to(storage === 'float64' ? 'float64' : 'float32').requiresGrad_();
        const loss = pfc.forward(e, labelsTensor(labels));
        loss.backward();
        const ref = denseReference(e, pfc.weight, labels, margin);
        assert.ok(Math.abs(loss.item() - ref.loss) <= tol * ref.loss, `loss ${loss.item()} vs ${ref.loss}`);
        assert.ok(relativeError(floats(e.grad!), ref.gradEmbeddings) < tol, `embeddings: ${relativeError(floats(e.grad!), ref.gradEmbeddings)}`);
        assert.ok(relativeError(floats(pfc.sampledGrad()), ref.gradWeight) < tol, 'centres');
        assert.deepEqual(ints(pfc.sampledIndex()), Array.from({ length: 301 }, (_, i) => i));
      });
    });
  }
}

test('sampleRate 0.3: loss and gradients equal the dense implementation over the sampled centres', () => {
  torch.manualSeed(2);
  withHead({ embeddingSize: 16, numClasses: 200, sampleRate: 0.3, storage: 'float64', tileRows: 16 }, (pfc) => {
    const labels = [5, 190, 77, 5, 33, 120, 199, 0];
    const e = batch(pfc, labels).requiresGrad_();
    const loss = pfc.forward(e, labelsTensor(labels));
    loss.backward();
    const index = ints(pfc.sampledIndex());
    assert.equal(index.length, 60);
    // labels[index_positive] = searchsorted(index, labels)
    assert.deepEqual(ints(pfc.sampledLabels()), labels.map((l) => index.indexOf(l)));
    const ref = denseReference(e, pfc.weight, labels, pfc.marginLoss, index);
    assert.ok(Math.abs(loss.item() - ref.loss) < 1e-10 * ref.loss);
    assert.ok(relativeError(floats(e.grad!), ref.gradEmbeddings) < 1e-10);
    assert.ok(relativeError(floats(pfc.sampledGrad()), ref.gradWeight) < 1e-10);
  });
});

// PartialFC_V2 ran in float32 when the fixture was recorded: its GEMMs (8 × 16 × 50) may sum in
// another order on another CPU kind, which moves results by a few float32 ulps (~1e-7 relative) —
// the 1e-5 tolerance leaves a 50× margin over that.
for (const c of fx.pfc_cases as { name: string; sample_rate: number; s: number; m1: number; m2: number; m3: number; num_sample: number; sampled: number[]; loss: number; grad_embeddings: number[]; grad_weight: number[] }[]) {
  for (const [implementation, logits] of [['fused', 'keep'], ['ops', 'keep'], ['ops', 'recompute']] as const) {
    test(`arcface_torch PartialFC_V2 (${c.name}, float32), implementation '${implementation}', logits '${logits}': same sample, loss and gradients`, () => {
      const margin = new CombinedMarginLoss({ s: c.s, m1: c.m1, m2: c.m2, m3: c.m3 });
      withHead({ marginLoss: margin, embeddingSize: fx.D, numClasses: fx.C, sampleRate: c.sample_rate, tileRows: 4, logits, implementation }, (pfc) => {
        assert.equal(pfc.numSample, c.num_sample);
        pfc.loadStateDict(new Map([['weight', torch.tensor(Float32Array.from(fx.weight), { shape: [fx.C, fx.D] })]]), { strict: false });
        const e = torch.tensor(Float32Array.from(fx.embeddings), { shape: [fx.B, fx.D] }).requiresGrad_();
        const loss = pfc.forward(e, labelsTensor(fx.labels));
        loss.backward();
        const index = ints(pfc.sampledIndex());
        assert.deepEqual(index, c.sampled);
        assert.ok(Math.abs(loss.item() - c.loss) < 1e-5 * c.loss, `loss ${loss.item()} vs ${c.loss}`);
        assert.ok(relativeError(floats(e.grad!), c.grad_embeddings) < 1e-5, `embeddings: ${relativeError(floats(e.grad!), c.grad_embeddings)}`);
        // arcface_torch's dense gradient: our sampled rows in place, zeros elsewhere
        const dense = torch.zeros([fx.C, fx.D]);
        torch.inplace.indexCopy(dense, 0, labelsTensor(index), pfc.sampledGrad());
        assert.ok(relativeError(floats(dense), c.grad_weight) < 1e-5, `centres: ${relativeError(floats(dense), c.grad_weight)}`);
      });
    });
  }
}

test('sampling keeps every positive and takes exactly floor(r · numLocal) centres', () => {
  withHead({ embeddingSize: 4, numClasses: 1000, sampleRate: 0.1, tileRows: 32 }, (pfc) => {
    for (let draw = 0; draw < 20; draw++) {
      const labels = ints(torch.randint(0, 1000, [64]));
      pfc.forward(torch.randn([64, 4]), labelsTensor(labels));
      const index = ints(pfc.sampledIndex());
      assert.equal(index.length, 100);
      assert.ok(index.every((v, i) => i === 0 || v > index[i - 1]), 'sorted, distinct');
      for (const l of labels) assert.ok(index.includes(l), `positive ${l} sampled`);
      assert.deepEqual(ints(pfc.sampledLabels()), labels.map((l) => index.indexOf(l)));
    }
  });
  for (const [numClasses, rate] of [[10, 0.99], [997, 0.37], [50, 0.02]] as [number, number][]) {
    withHead({ embeddingSize: 4, numClasses, sampleRate: rate }, (pfc) => {
      pfc.forward(torch.randn([1, 4]), labelsTensor([numClasses - 1]));
      assert.equal(pfc.sampledIndex().shape[0], Math.max(1, Math.floor(rate * numClasses)), `${numClasses} × ${rate}`);
    });
  }
  // more positives than places, or sampleRate 0: all positives, nothing else (as arcface_torch)
  withHead({ embeddingSize: 4, numClasses: 100, sampleRate: 0 }, (pfc) => {
    pfc.forward(torch.randn([3, 4]), labelsTensor([50, 7, 50]));
    assert.deepEqual(ints(pfc.sampledIndex()), [7, 50]);
  });
  withHead({ embeddingSize: 4, numClasses: 100, sampleRate: 0.05 }, (pfc) => {
    const labels = [9, 3, 77, 41, 3, 58, 12, 90];
    pfc.forward(torch.randn([8, 4]), labelsTensor(labels));
    assert.deepEqual(ints(pfc.sampledIndex()), [3, 9, 12, 41, 58, 77, 90]);
  });
});

test('negatives are uniform (chi-square, false-alarm rate 1e-3) and repeatable under manualSeed', () => {
  // 40 centres, 4 positives, 10 places: 6 of the 36 negatives per draw
  const numClasses = 40, labels = [3, 17, 17, 29, 38], draws = 4000;
  const counts = new Array<number>(numClasses).fill(0);
  withHead({ embeddingSize: 4, numClasses, sampleRate: 0.25 }, (pfc) => {
    const x = torch.randn([labels.length, 4]), y = labelsTensor(labels);
    torch.manualSeed(123);
    for (let d = 0; d < draws; d++) {
      torch.tidy(() => {
        pfc.forward(x, y);
        for (const r of ints(pfc.sampledIndex())) counts[r]++;
      });
    }
    torch.manualSeed(123);
    pfc.forward(x, y);
    const again = ints(pfc.sampledIndex());
    torch.manualSeed(123);
    pfc.forward(x, y);
    assert.deepEqual(ints(pfc.sampledIndex()), again);
  });
  const positives = new Set(labels);
  for (const p of positives) assert.equal(counts[p], draws);
  const negatives = counts.filter((_, r) => !positives.has(r));
  const n = negatives.length, k = 10 - positives.size, p = k / n;
  // Each draw is a k-subset, not k independent picks: Var(count) = draws·p(1−p), and the counts are
  // negatively correlated, so Σ(O−E)²/(draws·p(1−p)·n/(n−1)) ~ χ²(n−1).
  const expected = draws * p;
  const stat = negatives.reduce((s, o) => s + (o - expected) ** 2, 0) / (draws * p * (1 - p) * (n / (n - 1)));
  const pValue = chiSquareSurvival(stat, n - 1);
  assert.ok(pValue > 1e-3, `χ² = ${stat.toFixed(1)} with ${n - 1} degrees of freedom: p = ${pValue}`);
});

test('bad options are errors naming them, and leave nothing allocated', () => {
  const live = torch.liveTensors();
  const make = (o: Partial<PartialFCOptions>) => () => new PartialFC({ marginLoss: arcface(), embeddingSize: 4, numClasses: 10, optimizer: sgd, ...o });
  assert.throws(make({ sampleRate: -0.1 }), /sampleRate must be in \[0, 1\], got -0.1/);
  assert.throws(make({ sampleRate: 1.5 }), /sampleRate must be in \[0, 1\], got 1.5/);
  assert.throws(make({ storage: 'int8' as CentreStorage }), /storage must be one of/);
  assert.throws(make({ numClasses: 2.5 }), /numClasses must be a positive integer/);
  assert.throws(make({ optimizer: { type: 'adamw', lr: 0.1, betas: [1, 0.9] } }), /betas\[0\] must be in \[0, 1\), got 1/);
  assert.throws(make({ optimizer: { type: 'sgd', lr: 0.1, momentum: -1 } }), /momentum must be in/);
  assert.throws(make({ optimizer: { type: 'lamb', lr: 0.1 } as never }), /type must be 'sgd' or 'adamw'/);
  assert.equal(torch.liveTensors(), live);
});

test('class split matches arcface_torch (numLocal, classStart)', () => {
  const split = [0, 1, 2].map((rank) => classShard(10, rank, 3));
  assert.deepEqual(split, [{ numLocal: 4, classStart: 0 }, { numLocal: 3, classStart: 4 }, { numLocal: 3, classStart: 7 }]);
  const head = new PartialFC({ marginLoss: arcface(), embeddingSize: 4, numClasses: 10, rank: 2, worldSize: 3, sampleRate: 0.5, optimizer: sgd });
  try {
    assert.deepEqual([head.numLocal, head.classStart, head.numSample, head.weight.shape[0]], [3, 7, 1, 3]);
    assert.throws(() => head.forward(torch.randn([2, 4]), labelsTensor([1, 2])), /worldSize 3 needs a process group/);
  } finally {
    head.dispose();
  }
});

/** Runs a few steps on random batches, so that the optimizer state is not zero. */
function warmUp(pfc: PartialFC, steps: number, numClasses: number): void {
  for (let i = 0; i < steps; i++) {
    torch.tidy(() => {
      const e = torch.randn([16, pfc.embeddingSize]).requiresGrad_();
      pfc.forward(e, torch.randint(0, numClasses, [16])).backward();
      pfc.step();
    });
  }
}

/** Rows of a float32 matrix as bit patterns, to compare for identity. */
const bits = (t: Tensor, rows: number[]): number[][] => {
  const u = new Uint32Array(t.contiguous().toBuffer()), d = t.shape[1];
  return rows.map((r) => Array.from(u.subarray(r * d, (r + 1) * d)));
};

test('sparse SGD equals torch.optim.SGD on the sampled rows and leaves the other rows and their momentum bit-identical', () => {
  torch.manualSeed(3);
  const C = 120, lr = 0.2;
  withHead({ embeddingSize: 8, numClasses: C, sampleRate: 0.25, tileRows: 8, optimizer: { type: 'sgd', lr, momentum: 0.9, weightDecay: 5e-4 } }, (pfc) => {
    warmUp(pfc, 5, C);
    const w0 = pfc.weight.clone(), m0 = pfc.optimizer.state.get('momentum_buffer')!.clone();
    const e = torch.randn([16, 8]).requiresGrad_();
    pfc.forward(e, torch.randint(0, C, [16])).backward();
    const index = ints(pfc.sampledIndex());
    const idx = labelsTensor(index);
    // dense reference: the full matrix with the sampled rows' gradient, zeros elsewhere
    const wd = w0.clone();
    wd.grad = torch.inplace.indexCopy(torch.zerosLike(wd), 0, idx, pfc.sampledGrad());
    const md = m0.clone();
    native.sgdStep([wd], [md], { lr, momentum: 0.9, dampening: 0, weightDecay: 5e-4, nesterov: false });
    pfc.step();
    const m = pfc.optimizer.state.get('momentum_buffer')!;
    const rowsOf = (t: Tensor) => floats(torch.indexSelect(t, 0, idx));
    assert.ok(relativeError(rowsOf(pfc.weight), rowsOf(wd)) < 1e-6, 'sampled weights');
    assert.ok(relativeError(rowsOf(m), rowsOf(md)) < 1e-6, 'sampled momentum');
    const others = Array.from({ length: C }, (_, r) => r).filter((r) => !index.includes(r));
    assert.ok(others.length === C - index.length && others.length > 0);
    assert.deepEqual(bits(pfc.weight, others), bits(w0, others));
    assert.deepEqual(bits(m, others), bits(m0, others));
    assert.throws(() => pfc.step(), /no gradient to apply/);
  });
});

test('gradient accumulation: step() applies the per-row sum of the micro-batches\' gradients, scaled by scaleGrad, as one SGD step', () => {
  torch.manualSeed(7);
  const C = 120, lr = 0.2, scale = 0.25;
  withHead({ embeddingSize: 8, numClasses: C, sampleRate: 0.25, tileRows: 8, optimizer: { type: 'sgd', lr, momentum: 0.9, weightDecay: 5e-4 } }, (pfc) => {
    warmUp(pfc, 5, C);
    const w0 = pfc.weight.clone(), m0 = pfc.optimizer.state.get('momentum_buffer')!.clone();
    const dense = torch.zerosLike(w0);
    const touched = new Set<number>();
    for (let micro = 0; micro < 3; micro++) {
      pfc.forward(torch.randn([16, 8]).requiresGrad_(), torch.randint(0, C, [16])).backward();
      const index = pfc.sampledIndex();
      ints(index).forEach((r) => touched.add(r));
      torch.inplace.indexAdd(dense, 0, index, pfc.sampledGrad());
      if (micro < 2) assert.equal(pfc.accumulateGrad(), touched.size);
    }
    assert.ok(touched.size > pfc.numSample, 'the micro-batches sampled different rows');
    pfc.scaleGrad(scale);
    const wd = w0.clone(), md = m0.clone();
    wd.grad = dense.mul(scale);
    native.sgdStep([wd], [md], { lr, momentum: 0.9, dampening: 0, weightDecay: 5e-4, nesterov: false });
    pfc.step();
    const rows = [...touched].sort((a, b) => a - b), idx = labelsTensor(rows);
    const m = pfc.optimizer.state.get('momentum_buffer')!;
    const rowsOf = (t: Tensor) => floats(torch.indexSelect(t, 0, idx));
    assert.ok(relativeError(rowsOf(pfc.weight), rowsOf(wd)) < 1e-6, 'accumulated weights');
    assert.ok(relativeError(rowsOf(m), rowsOf(md)) < 1e-6, 'accumulated momentum');
    const others = Array.from({ length: C }, (_, r) => r).filter((r) => !touched.has(r));
    assert.deepEqual(bits(pfc.weight, others), bits(w0, others));
    assert.throws(() => pfc.step(), /no gradient to apply/);
    assert.throws(() => pfc.accumulateGrad(), /no gradient to apply/);
    // a skipped step (GradScaler found inf): the pending gradient goes, nothing moves
    const w1 = pfc.weight.clone();
    for (let micro = 0; micro < 2; micro++) {
      pfc.forward(torch.randn([16, 8]).requiresGrad_(), torch.randint(0, C, [16])).backward();
      if (micro === 0) pfc.accumulateGrad();
    }
    pfc.discardGrad();
    assert.throws(() => pfc.step(), /no gradient to apply/);
    const all = Array.from({ length: C }, (_, r) => r);
    assert.deepEqual(bits(pfc.weight, all), bits(w1, all));
  });
});

test('sparse AdamW equals torch.optim.AdamW on the sampled rows (per-row step counts) and leaves the rest bit-identical', () => {
  torch.manualSeed(4);
  const C = 60, o = { lr: 0.01, beta1: 0.9, beta2: 0.99, eps: 1e-8, weightDecay: 0.05 };
  withHead({ embeddingSize: 8, numClasses: C, sampleRate: 0.5, tileRows: 8, optimizer: { type: 'adamw', lr: o.lr, betas: [o.beta1, o.beta2], eps: o.eps, weightDecay: o.weightDecay } }, (pfc) => {
    const state = pfc.optimizer.state;
    let previous: number[] = [];
    for (let round = 0; round < 3; round++) {
      const w0 = pfc.weight.clone(), m0 = state.get('exp_avg')!.clone(), v0 = state.get('exp_avg_sq')!.clone();
      const steps0 = Array.from(state.get('step')!.data() as Int32Array);
      pfc.forward(torch.randn([12, 8]).requiresGrad_(), torch.randint(0, C, [12])).backward();
      const index = ints(pfc.sampledIndex());
      const grad = pfc.sampledGrad();
      pfc.step();
      const steps = Array.from(state.get('step')!.data() as Int32Array);
      // torch's AdamW on the whole matrix, one run per step count among the sampled rows
      for (const t of new Set(index.map((r) => steps0[r] + 1))) {
        const rows = index.filter((r) => steps0[r] + 1 === t);
        const wd = w0.clone(), md = m0.clone(), vd = v0.clone();
        wd.grad = torch.inplace.indexCopy(torch.zerosLike(wd), 0, labelsTensor(index), grad);
        native.adamwStep([wd], [md], [vd], [t], o);
        const sel = (x: Tensor) => floats(torch.indexSelect(x, 0, labelsTensor(rows)));
        assert.ok(relativeError(sel(pfc.weight), sel(wd)) < 1e-6, `weights, step ${t}`);
        assert.ok(relativeError(sel(state.get('exp_avg')!), sel(md)) < 1e-6, `exp_avg, step ${t}`);
        assert.ok(relativeError(sel(state.get('exp_avg_sq')!), sel(vd)) < 1e-6, `exp_avg_sq, step ${t}`);
      }
      const others = Array.from({ length: C }, (_, r) => r).filter((r) => !index.includes(r));
      for (const [now, before] of [[pfc.weight, w0], [state.get('exp_avg')!, m0], [state.get('exp_avg_sq')!, v0]] as [Tensor, Tensor][]) {
        assert.deepEqual(bits(now, others), bits(before, others));
      }
      assert.deepEqual(steps, steps0.map((s, r) => s + (index.includes(r) ? 1 : 0)));
      previous = index;
    }
    assert.ok(previous.length === 30);
  });
});

/** Raw bytes of a tensor, to compare for bit identity in any dtype. */
const raw = (t: Tensor): Buffer => Buffer.from(t.contiguous().toBuffer());

for (const sampleRate of [1, 0.3]) {
  for (const storage of ['float32', 'bfloat16'] as CentreStorage[]) {
    for (const optimizer of [sgd, { type: 'adamw', lr: 0.01, weightDecay: 0.05 }] as const) {
      test(`logits 'recompute' is bit-identical to 'keep' (r = ${sampleRate}, ${storage}, ${optimizer.type}, with accumulation)`, () => {
        // 150 centres in tiles of 16 (the last one partial), batch 12
        const C = 150, D = 24, B = 12;
        const heads = (['keep', 'recompute'] as const).map(
          (logits) => new PartialFC({ marginLoss: arcface(), embeddingSize: D, numClasses: C, sampleRate, storage, tileRows: 16, optimizer, logits }),
        );
        try {
          torch.tidy(() => {
            torch.manualSeed(11);
            heads[1].loadStateDict(heads[0].stateDict());
            // a plain step, then three micro-batches accumulated, scaled and applied as one step
            for (const [round, micro] of [[0, 0], [1, 0], [1, 1], [1, 2]]) {
              const x = torch.randn([B, D]), y = torch.randint(0, C, [B]);
              const seed = 100 + 10 * round + micro;
              const [keep, recompute] = heads.map((h) => {
                torch.manualSeed(seed);  // the same sample in both heads
                const e = x.clone().requiresGrad_();
                const loss = h.forward(e, y);
                loss.backward();
                const out = { loss: raw(loss), grad: raw(e.grad!), index: raw(h.sampledIndex()), rowGrad: raw(h.sampledGrad()) };
                if (round === 0) h.step();
                else if (micro < 2) h.accumulateGrad();
                else {
                  h.scaleGrad(0.5);
                  h.step();
                }
                return { ...out, state: [...h.stateDict().values()].map(raw) };
              });
              const at = `round ${round}, micro-batch ${micro}`;
              assert.ok(keep.index.equals(recompute.index), `sample, ${at}`);
              assert.ok(keep.loss.equals(recompute.loss), `loss, ${at}`);
              assert.ok(keep.grad.equals(recompute.grad), `embedding gradient, ${at}`);
              assert.ok(keep.rowGrad.equals(recompute.rowGrad), `sampledGrad, ${at}`);
              keep.state.forEach((b, i) => assert.ok(b.equals(recompute.state[i]), `state ${i}, ${at}`));
            }
          });
        } finally {
          for (const h of heads) h.dispose();
        }
      });
    }
  }
}

test('bufferBytes: keep holds the B × S softmax buffer and [S] norms; recompute holds tile-sized buffers and the [S] index only', () => {
  const B = 8, D = 16, T = 32;
  for (const storage of ['float32', 'bfloat16'] as CentreStorage[]) {
    const e = storage === 'float32' ? 4 : 2;
    for (const [C, sampleRate] of [[400, 0.5], [1000, 0.5], [300, 1]]) {
      const S = Math.floor(sampleRate * C), index = sampleRate < 1 ? S * 4 : 0;  // int32 rows, none when all are in
      const tiles = B * T * 4 + T * D * 4;  // scratch [B, T] and the rows of a tile [T, D], float32
      const expected = {
        keep: index + tiles + B * S * e + S * 4,
        recompute: index + tiles + (storage === 'float32' ? 0 : B * T * e) + T * 4,  // float32: exp values in the scratch tile
      };
      for (const logits of ['keep', 'recompute'] as const) {
        withHead({ embeddingSize: D, numClasses: C, sampleRate, storage, tileRows: T, logits }, (pfc) => {
          pfc.forward(torch.randn([B, D]).requiresGrad_(), torch.randint(0, C, [B])).backward();
          pfc.step();
          assert.equal(pfc.bufferBytes(), expected[logits], `${storage}, ${C} classes, r ${sampleRate}, ${logits}`);
        });
      }
    }
  }
  assert.throws(() => new PartialFC({ marginLoss: arcface(), embeddingSize: 4, numClasses: 10, optimizer: sgd, logits: 'drop' as 'keep' }), /logits must be one of keep, recompute, got 'drop'/);
});

test('16-bit storage: close to float32 within bf16/fp16 rounding, and half the memory', () => {
  torch.manualSeed(5);
  const C = 500, D = 32, labels = Array.from({ length: 24 }, (_, i) => (i * 53) % C);
  const heads = (['float32', 'bfloat16', 'float16'] as CentreStorage[]).map(
    (storage) => new PartialFC({ marginLoss: arcface(), embeddingSize: D, numClasses: C, sampleRate: 0.5, storage, tileRows: 64, optimizer: { ...sgd, lr: 1e-3 } }),
  );
  try {
    torch.tidy(() => {
      const state = heads[0].stateDict();
      for (const h of heads.slice(1)) h.loadStateDict(state);
      const x = torch.randn([24, D]);
      const results = heads.map((h) => {
        torch.manualSeed(6);  // the same sample in every head
        const e = x.clone().requiresGrad_();
        const losses = [];
        for (let s = 0; s < 3; s++) {
          const loss = h.forward(e, labelsTensor(labels));
          loss.backward();
          h.step();
          losses.push(loss.item());
        }
        return { losses, grad: floats(e.grad!), weight: floats(h.weight) };
      });
      // relative to float32: about 2× what was seen (bf16 6e-3, fp16 5e-4 after three steps)
      for (const [i, tol] of [[1, 1.5e-2], [2, 2e-3]] as [number, number][]) {
        for (let s = 0; s < 3; s++) assert.ok(Math.abs(results[i].losses[s] - results[0].losses[s]) < tol * results[0].losses[s], `${heads[i].storage} loss ${s}: ${results[i].losses} vs ${results[0].losses}`);
        assert.ok(relativeError(results[i].grad, results[0].grad) < tol, `${heads[i].storage} embedding gradient`);
        assert.ok(relativeError(results[i].weight, results[0].weight) < tol, `${heads[i].storage} centres`);
      }
    });
    const numels = (h: PartialFC) => torch.tidy(() => [...h.stateDict().values()].map((t) => t.numel));
    const nbytes = (h: PartialFC) => h.weight.storageKey().nbytes + h.optimizer.state.get('momentum_buffer')!.storageKey().nbytes;
    assert.deepEqual(numels(heads[1]), numels(heads[0]));
    assert.equal(nbytes(heads[1]) * 2, nbytes(heads[0]));
    assert.equal(nbytes(heads[0]), C * D * 4 * 2);
  } finally {
    for (const h of heads) h.dispose();
  }
});

test('bfloat16 embeddings from autocast: float32 math, the gradient flows back through bfloat16', () => {
  torch.manualSeed(7);
  withHead({ embeddingSize: 16, numClasses: 40 }, (pfc) => {
    const x = torch.randn([8, 16]).requiresGrad_();
    const labels = labelsTensor([1, 2, 3, 4, 5, 6, 7, 8]);
    const loss = torch.autocast({ deviceType: 'cpu', dtype: 'bfloat16' }, () => pfc.forward(x.bfloat16(), labels));
    assert.equal(loss.dtype, 'float32');
    loss.backward();
    assert.equal(x.grad!.dtype, 'float32');
    const ref = denseReference(torch.tidy(() => x.bfloat16().double()), pfc.weight, [1, 2, 3, 4, 5, 6, 7, 8], pfc.marginLoss);
    assert.ok(Math.abs(loss.item() - ref.loss) < 1e-5 * ref.loss);
    assert.ok(relativeError(floats(x.grad!), ref.gradEmbeddings) < 1e-2);  // the gradient passed through bfloat16
  });
});

test('labels: an out-of-range or non-integer label is an error naming it and its position', () => {
  withHead({ embeddingSize: 4, numClasses: 10 }, (pfc) => {
    const x = torch.randn([3, 4]);
    assert.throws(() => pfc.forward(x, labelsTensor([1, 10, 2])), /label 10 at position 1 is out of range \[0, 10\)/);
    assert.throws(() => pfc.forward(x, labelsTensor([1, 2, -1])), /label -1 at position 2 is out of range/);
    assert.throws(() => pfc.forward(x, torch.tensor([1, 2.5, 3], { dtype: 'float32' })), /label 2.5 at position 1 is not an integer/);
    assert.throws(() => pfc.forward(x, labelsTensor([1, 2])), /labels must have shape \[3\]/);
    assert.throws(() => pfc.forward(torch.randn([3, 5]), labelsTensor([1, 2, 3])), /embeddings must have shape \[B, 4\]/);
    // [B, 1] int32 and integral floats are accepted, as arcface_torch's labels.long()
    pfc.forward(x, torch.tensor([[1], [2], [9]], { dtype: 'int32' }));
    pfc.forward(x, torch.tensor([1, 2, 9], { dtype: 'float32' }));
  });
});

test('backward reaches the embeddings; head-only training works; stale losses are refused', () => {
  torch.manualSeed(8);
  withHead({ embeddingSize: 8, numClasses: 30, sampleRate: 0.5 }, (pfc) => {
    const y = labelsTensor([0, 1, 2, 3]);
    const frozen = torch.randn([4, 8]);
    const w0 = pfc.weight.clone();
    pfc.forward(frozen, y).backward();  // embeddings without grad: only the centres learn
    pfc.step(0.5);
    assert.ok(!torch.allclose(pfc.weight, w0));
    const first = pfc.forward(torch.randn([4, 8]).requiresGrad_(), y);
    pfc.forward(torch.randn([4, 8]).requiresGrad_(), y);
    assert.throws(() => first.backward(), /backward of a loss from an earlier forward/);
    assert.throws(() => pfc.step(), /no gradient to apply/);
  });
});

test('training reduces the loss; memory stays flat step after step', () => {
  torch.manualSeed(9);
  withHead({ embeddingSize: 16, numClasses: 64, sampleRate: 0.5, storage: 'bfloat16' }, (pfc) => {
    const x = torch.randn([32, 16]), y = torch.randint(0, 64, [32]);
    const run = () =>
      torch.tidy(() => {
        const loss = pfc.forward(x.clone().requiresGrad_(), y);
        loss.backward();
        pfc.step(0.5);
        return loss.item();
      });
    const first = run();
    for (let i = 0; i < 5; i++) run();
    const live = torch.liveTensors();
    let last = first;
    for (let i = 0; i < 30; i++) last = run();
    assert.equal(torch.liveTensors(), live);
    assert.ok(last < 0.5 * first, `loss ${first} → ${last}`);
  });
});

test('stateDict / loadStateDict round trip; exportWeight writes a torch.load-able file', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'pfc-'));
  try {
    torch.manualSeed(10);
    const o = { embeddingSize: 8, numClasses: 20, sampleRate: 0.5, optimizer: { type: 'adamw', lr: 0.01 } } as const;
    withHead(o, (a) => {
      warmUp(a, 3, 20);
      assert.deepEqual([...a.stateDict().keys()], ['weight', 'optimizer.exp_avg', 'optimizer.exp_avg_sq', 'optimizer.step']);
      withHead(o, (b) => {
        b.loadStateDict(a.stateDict());
        for (const [k, t] of a.stateDict()) assert.ok(torch.allclose(t.double(), b.stateDict().get(k)!.double(), 0, 0), k);
        assert.throws(() => b.loadStateDict(new Map([['weight', a.weight]])), /missing key\(s\): optimizer.exp_avg/);
        assert.throws(() => b.loadStateDict(new Map([...a.stateDict(), ['bias', a.weight]])), /unexpected key\(s\): bias/);
        assert.throws(() => b.loadStateDict(new Map([['weight', torch.zeros([3, 8])]]), { strict: false }), /weight: shape \[3, 8\]/);
      });
      const file = path.join(dir, 'softmax_fc.pt');
      a.exportWeight(file);
      const loaded = torch.loadStateDict(file);
      assert.deepEqual([...loaded.keys()], ['weight']);
      assert.ok(torch.allclose(loaded.get('weight')!, a.weight, 0, 0));
      torch.dispose([...loaded.values()]);
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

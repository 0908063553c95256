/**
 * PartialFC's implementation: 'ops' (src/heads/partial-fc-ops.ts, written from libtorch tensor ops
 * for CUDA) against the fused CPU kernel, on the CPU: the same sample (src/heads/sampler.ts draws
 * the kernel's random stream), loss, ∂loss/∂embeddings, sampled-row gradients and updated rows of
 * the shard and its optimizer state — SGD and AdamW, r = 1 and r < 1, 'keep' and 'recompute',
 * float64 / float32 / bfloat16 / float16 storage, gradient accumulation with scaleGrad — and
 * arcface_torch's PartialFC_V2 fixture; the errors of both; memory. The 2-process run is in
 * test/distributed.test.ts.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as torch from '../src/torch/index.js';
import type { Tensor } from '../src/torch/index.js';
import { native } from '../src/torch/native.js';
import { CombinedMarginLoss, PartialFC, arcface, cosface, type CentreStorage, type PartialFCOptions, type SparseOptimizerOptions } from '../src/heads/index.js';
import { sampleCentres } from '../src/heads/sampler.js';
import { relativeError } from './heads-reference.js';

const sgd = { type: 'sgd', lr: 0.1, momentum: 0.9, weightDecay: 5e-4 } as const;
const adamw = { type: 'adamw', lr: 0.01, weightDecay: 0.05 } as const;
const ints = (t: Tensor): number[] => Array.from(t.data() as BigInt64Array, Number);
const floats = (t: Tensor): number[] => Array.from(t.data() as ArrayLike<number>);
const labelsTensor = (labels: number[]) => torch.tensor(labels, { dtype: 'int64' });
const raw = (t: Tensor): Buffer => Buffer.from(t.contiguous().toBuffer());

/** A fused head and an 'ops' head with the same options and the same state; fn runs in a scope. */
function withPair<T>(o: Partial<PartialFCOptions> & { numClasses: number; embeddingSize: number }, fn: (fused: PartialFC, ops: PartialFC) => T): T {
  const [fused, ops] = (['fused', 'ops'] as const).map((implementation) => new PartialFC({ marginLoss: arcface(), optimizer: sgd, ...o, implementation }));
  try {
    return torch.tidy(() => {
      ops.loadStateDict(fused.stateDict());
      return fn(fused, ops);
    });
  } finally {
    fused.dispose();
    ops.dispose();
  }
}

/**
 * How close 'ops' comes to 'fused', as max |Δ| / max |value| over the values compared (the
 * loss: |Δ| / max(|loss|, 1)). In brackets, the largest seen here (AMD EPYC) over these tests and a
 * sweep of 48 seeded cases × 5 steps:
 * - float64: the same formulas, summed in another order: 1e-12 [3.5e-13]. This is the check that
 *   the two compute the same thing; the other dtypes bound the rounding.
 * - float32: the cosines differ by a float32 rounding or two (the kernel's oneDNN sgemm against
 *   at::mm, its vectorised norms against linalg_vector_norm, Cephes expf against libtorch's exp),
 *   and s = 64 turns one rounding of a cosine near 1 (2⁻²⁴ ≈ 6e-8) into 3.8e-6 of a logit, which
 *   p = exp(logit − M) and so every gradient carry as relative error: 2e-5 [3.8e-6]; the loss, a
 *   mean of logs, 1e-5 [1e-6]. AdamW's weights are looser: its first updates are ≈ lr·g/(|g| + eps)
 *   per element, which magnifies the difference of gradient elements near eps = 1e-8 (a gradient
 *   difference of 1.5e-12 moved one weight by 3.5e-7 here): 2e-3 [4.8e-4]; its moments, which see g
 *   itself, keep 2e-5.
 * - 16-bit storage: both round the same float32 values, so nearly every stored value is
 *   bit-identical (asserted: at least 95% [98.5%]); one whose float32 value differs by an ulp or two
 *   can round to the neighbouring 16-bit value, one ulp of the storage dtype: 2⁻⁸ (bf16) or 2⁻¹¹
 *   (fp16) of it, up to twice that relative to a larger neighbour. Stored exp values carry that into
 *   the gradients: bf16 4e-3 [6.1e-4], fp16 1e-3 [4.5e-5]; the state: bf16 1.6e-2 [5.3e-3], fp16
 *   2e-3 [6.2e-4]. AdamW's fp16 weights combine that with the eps magnification (and fp16's
 *   subnormal moments): 5e-2 [1.9e-2].
 */
const TOLERANCE: Record<CentreStorage, { loss: number; grad: number; state: number; adamwWeight: number }> = {
  float64: { loss: 1e-12, grad: 1e-12, state: 1e-12, adamwWeight: 1e-12 },
  float32: { loss: 1e-5, grad: 2e-5, state: 2e-5, adamwWeight: 2e-3 },
  bfloat16: { loss: 1e-5, grad: 4e-3, state: 1.6e-2, adamwWeight: 1.6e-2 },
  float16: { loss: 1e-5, grad: 1e-3, state: 2e-3, adamwWeight: 5e-2 },
};

const lossError = (a: number, b: number) => Math.abs(a - b) / Math.max(Math.abs(b), 1);

/** Share of elements whose bits differ. */
function differing(a: Tensor, b: Tensor): number {
  const x = raw(a), y = raw(b), size = a.storageKey().nbytes / a.numel;
  let n = 0;
  for (let i = 0; i < x.length; i += size) if (!x.subarray(i, i + size).equals(y.subarray(i, i + size))) n++;
  return n / a.numel;
}

test('the sampler draws the fused kernel\'s rows from the same generator, and leaves it in the same state', () => {
  const kernel = new native.PartialFcKernel({ embeddingSize: 4, dtype: 'float32', tileRows: 16 });
  try {
    torch.manualSeed(42);
    let lcg = 12345;  // the cases' own repeatable stream (a 32-bit LCG)
    const random = () => (lcg = (Math.imul(lcg, 1103515245) + 12345) >>> 0) / 2 ** 32;
    const cases = Array.from({ length: 300 }, (_, i) => {
      const numLocal = 1 + Math.floor(random() * 400), classStart = Math.floor(random() * 40);
      return { numLocal, classStart, numSample: Math.floor(random() * 1.1 * numLocal), batch: 1 + (i % 37), seed: 1000 + i };
    });
    let choices = 0;
    for (const c of cases) {
      torch.tidy(() => {
        const labels = torch.randint(0, c.numLocal + 2 * c.classStart + 1, [c.batch]);
        torch.manualSeed(c.seed);
        kernel.sample(labels, c.classStart, c.numLocal, c.numSample);
        const index = ints(kernel.sampledIndex() as Tensor), targets = ints(kernel.targets() as Tensor);
        const next = floats(torch.rand([2]));
        torch.manualSeed(c.seed);
        const s = sampleCentres(labels, c.classStart, c.numLocal, c.numSample);
        const at = JSON.stringify(c);
        assert.deepEqual(s.index ? Array.from(s.index) : Array.from({ length: s.numSampled }, (_, i) => i), index, `rows, ${at}`);
        assert.deepEqual(Array.from(s.targets), targets, `targets, ${at}`);
        assert.deepEqual(floats(torch.rand([2])), next, `generator state after sampling, ${at}`);
        if (s.index && s.numSampled === c.numSample && c.numSample > 0) choices++;
      });
    }
    assert.ok(choices > 150, `${choices} cases drew negatives`);
  } finally {
    kernel.dispose();
  }
});

interface StepResult {
  loss: number;
  grad: Tensor;
  index: Tensor;
  labels: Tensor;
  rowGrad: Tensor;
}

/** forward + backward on one head with the sample seeded; the caller then steps or accumulates. */
function forwardBackward(pfc: PartialFC, x: Tensor, y: Tensor, seed: number): StepResult {
  torch.manualSeed(seed);
  const e = x.clone().requiresGrad_();
  const loss = pfc.forward(e, y);
  loss.backward();
  return { loss: loss.item(), grad: e.grad!, index: pfc.sampledIndex(), labels: pfc.sampledLabels(), rowGrad: pfc.sampledGrad() };
}

/** Rows of a tensor (by index) as raw bytes. */
const rowBytes = (t: Tensor, rows: number[]) => raw(torch.indexSelect(t, 0, labelsTensor(rows)));

for (const storage of ['float64', 'float32', 'bfloat16', 'float16'] as CentreStorage[]) {
  for (const sampleRate of [1, 0.3]) {
    for (const optimizer of [sgd, adamw] as SparseOptimizerOptions[]) {
      for (const logits of ['keep', 'recompute'] as const) {
        const name = `${storage}, r = ${sampleRate}, ${optimizer.type}, ${logits}`;
        test(`implementation 'ops' equals 'fused' (${name}): sample, loss, gradients, a step, and 2 micro-batches accumulated`, () => {
          const tol = TOLERANCE[storage], C = 150, D = 24, B = 12;
          // 150 centres in tiles of 16 (the last one partial)
          withPair({ embeddingSize: D, numClasses: C, sampleRate, storage, tileRows: 16, optimizer, logits }, (fused, ops) => {
            torch.manualSeed(storage.length * 100 + sampleRate * 10 + optimizer.type.length + logits.length);
            // round 0: one step; round 1: two micro-batches accumulated, scaled by 1/2, one step.
            // Each round starts from the fused head's state, so the comparison is of one step.
            for (const [round, micros] of [[0, 1], [1, 2]]) {
              ops.loadStateDict(fused.stateDict());
              const before = new Map([...ops.stateDict()].map(([k, t]) => [k, t.clone()]));
              const touched = new Set<number>();
              for (let micro = 0; micro < micros; micro++) {
                const x = torch.randn([B, D]), y = torch.randint(0, C, [B]);
                const seed = 7 + 10 * round + micro;
                const [f, o] = [fused, ops].map((h) => forwardBackward(h, x, y, seed));
                const at = `round ${round}, micro-batch ${micro}`;
                assert.deepEqual(ints(o.index), ints(f.index), `sample, ${at}`);
                assert.deepEqual(ints(o.labels), ints(f.labels), `labels in the sample, ${at}`);
                assert.equal(ints(o.index).length, sampleRate === 1 ? C : Math.floor(sampleRate * C));
                assert.ok(lossError(o.loss, f.loss) <= tol.loss, `loss ${o.loss} vs ${f.loss}, ${at}`);
                const gradError = relativeError(floats(o.grad), floats(f.grad));
                assert.ok(gradError <= tol.grad, `∂loss/∂embeddings: ${gradError}, ${at}`);
                const rowError = relativeError(floats(o.rowGrad), floats(f.rowGrad));
                assert.ok(rowError <= tol.grad, `sampled rows' gradient: ${rowError}, ${at}`);
                ints(f.index).forEach((r) => touched.add(r));
                if (micro < micros - 1) {
                  assert.equal(ops.accumulateGrad(), fused.accumulateGrad());
                } else {
                  if (micros > 1) for (const h of [fused, ops]) h.scaleGrad(0.5);
                  fused.step();
                  ops.step();
                }
              }
              // the updated rows agree; the others (and their state) are untouched, bit for bit
              const rows = [...touched].sort((a, b) => a - b);
              const others = Array.from({ length: C }, (_, r) => r).filter((r) => !touched.has(r));
              const own = ops.stateDict(), reference = fused.stateDict();
              for (const [key, t] of own) {
                const want = torch.indexSelect(reference.get(key)!, 0, labelsTensor(rows)), got = torch.indexSelect(t, 0, labelsTensor(rows));
                const limit = key === 'weight' && optimizer.type === 'adamw' ? tol.adamwWeight : tol.state;
                const error = relativeError(floats(got), floats(want));
                assert.ok(error <= limit, `${key} (updated rows): ${error} > ${limit}, round ${round}`);
                if (storage === 'bfloat16' || storage === 'float16') {
                  assert.ok(differing(got, want) <= 0.05, `${key}: ${differing(got, want)} of the stored values differ, round ${round}`);
                }
                if (key === 'optimizer.step') assert.deepEqual(ints(got.long()), ints(want.long()), 'AdamW step counts');
                if (others.length > 0) assert.ok(rowBytes(t, others).equals(rowBytes(before.get(key)!, others)), `${key}: rows not sampled stay bit-identical`);
                assert.ok(!rowBytes(t, rows).equals(rowBytes(before.get(key)!, rows)), `${key}: the sampled rows moved`);
              }
              assert.throws(() => ops.step(), /PartialFC.step\(\): no gradient to apply/);
            }
            // one state dict layout: the same keys, dtypes and shapes (loadStateDict above is strict)
            const layout = (h: PartialFC) => [...h.stateDict()].map(([k, t]) => [k, t.dtype, t.shape.join('×'), t.isContiguous()]);
            assert.deepEqual(layout(ops), layout(fused));
          });
        });
      }
    }
  }
}

const margins: [string, CombinedMarginLoss][] = [
  ['cosface', cosface()],
  ['arcface + inter-class filtering', new CombinedMarginLoss({ s: 64, m1: 1, m2: 0.5, m3: 0, interclassFilteringThreshold: 0.1 })],
];
for (const [name, margin] of margins) {
  for (const storage of ['float64', 'float32'] as CentreStorage[]) {
    test(`implementation 'ops' equals 'fused' with ${name} (${storage}, SGD without momentum)`, () => {
      const tol = TOLERANCE[storage];
      withPair({ marginLoss: margin, embeddingSize: 24, numClasses: 301, storage, tileRows: 64, sampleRate: 0.5, optimizer: { type: 'sgd', lr: 0.1 } }, (fused, ops) => {
        torch.manualSeed(3);
        const x = torch.randn([32, 24]), y = torch.randint(0, 301, [32]);
        const [f, o] = [fused, ops].map((h) => forwardBackward(h, x, y, 4));
        assert.deepEqual(ints(o.index), ints(f.index));
        assert.ok(lossError(o.loss, f.loss) <= tol.loss, `loss ${o.loss} vs ${f.loss}`);
        assert.ok(relativeError(floats(o.grad), floats(f.grad)) <= tol.grad, 'embeddings');
        assert.ok(relativeError(floats(o.rowGrad), floats(f.rowGrad)) <= tol.grad, 'centres');
        fused.step();
        ops.step();
        assert.deepEqual([...ops.stateDict().keys()], ['weight']);
        assert.ok(relativeError(floats(ops.weight), floats(fused.weight)) <= tol.state, 'weights after the step');
      });
    });
  }
}

// Against arcface_torch's PartialFC_V2 fixture: heads-partial-fc.test.ts runs it for both implementations.

test("implementation 'ops' under bfloat16 autocast: float32 math, the gradient back through bfloat16, as the fused kernel", () => {
  withPair({ embeddingSize: 16, numClasses: 40, sampleRate: 0.5 }, (fused, ops) => {
    torch.manualSeed(5);
    const x = torch.randn([8, 16]), labels = labelsTensor([1, 2, 3, 4, 5, 6, 7, 8]);
    const [f, o] = [fused, ops].map((h) => {
      torch.manualSeed(6);
      const e = x.clone().requiresGrad_();
      const loss = torch.autocast({ deviceType: 'cpu', dtype: 'bfloat16' }, () => h.forward(e.bfloat16(), labels));
      loss.backward();
      return { loss, grad: e.grad! };
    });
    assert.equal(o.loss.dtype, 'float32');
    assert.equal(o.grad.dtype, 'float32');
    assert.ok(lossError(o.loss.item(), f.loss.item()) <= 1e-5, `loss ${o.loss.item()} vs ${f.loss.item()}`);
    // the gradient is rounded to bfloat16 on its way back: one bf16 ulp (2⁻⁸) may flip
    assert.ok(relativeError(floats(o.grad), floats(f.grad)) <= 8e-3, `embeddings: ${relativeError(floats(o.grad), floats(f.grad))}`);
  });
});

test("implementation 'ops': steps out of order, stale losses and devices are errors; a bad implementation is named", () => {
  withPair({ embeddingSize: 8, numClasses: 30, sampleRate: 0.5 }, (fused, ops) => {
    const y = labelsTensor([0, 1, 2, 3]);
    // (before any forward the fused kernel has no shard to check the momentum buffer against, and says that instead)
    assert.throws(() => ops.step(), /PartialFC.step\(\): no gradient to apply; call loss.backward\(\) after forward\(\) \(each step needs a new forward and backward\)/);
    for (const pfc of [fused, ops]) {
      const w0 = pfc.weight.clone();
      pfc.forward(torch.randn([4, 8]), y).backward();  // embeddings without grad: only the centres learn
      pfc.step(0.5);
      assert.ok(!torch.allclose(pfc.weight, w0));
      torch.noGrad(() => pfc.forward(torch.randn([4, 8]), y));
      assert.throws(() => pfc.accumulateGrad(), /PartialFC.accumulateGrad\(\): no gradient to apply; call loss.backward\(\) after forward\(\)$/);
      assert.throws(() => pfc.sampledGrad(), /PartialFC.rowGrads\(\): no gradient to apply/);
      // the embeddings are on another device than the CPU shard ('meta': shapes only, no data)
      assert.throws(() => pfc.forward(torch.empty([4, 8], { device: 'meta' }), y), pfc === fused
        ? /PartialFC: the fused kernel runs on CPU tensors, got embeddings on meta \(use implementation: 'ops' for meta tensors\)/
        : /Partial FC: embeddings on meta, the shard on cpu/);
    }
    // a loss of an earlier forward: the fused kernel refuses it by name; 'ops' through autograd's version check
    const stale = (pfc: PartialFC) => {
      const first = pfc.forward(torch.randn([4, 8]).requiresGrad_(), y);
      pfc.forward(torch.randn([4, 8]).requiresGrad_(), y);
      return () => first.backward();
    };
    assert.throws(stale(fused), /backward of a loss from an earlier forward/);
    assert.throws(stale(ops), /modified by an inplace operation/);
    assert.throws(() => ops.step(), /no gradient to apply/);
  });
  assert.throws(
    () => new PartialFC({ marginLoss: arcface(), embeddingSize: 4, numClasses: 10, optimizer: sgd, implementation: 'cuda' as 'ops' }),
    /implementation must be one of fused, ops, got 'cuda'/,
  );
});

test("implementation 'ops': memory is flat step after step; 'recompute' holds no B × S values; nothing held grows with the classes", () => {
  const B = 16, D = 16;
  for (const logits of ['keep', 'recompute'] as const) {
    const pfc = new PartialFC({ marginLoss: arcface(), embeddingSize: D, numClasses: 64, sampleRate: 0.5, storage: 'bfloat16', optimizer: adamw, logits, implementation: 'ops' });
    try {
      const x = torch.keep(torch.randn([B, D])), y = torch.keep(torch.randint(0, 64, [B]));
      // a step, then two micro-batches accumulated into one step, and so on
      const run = (i: number) =>
        torch.tidy(() => {
          const loss = pfc.forward(x.clone().requiresGrad_(), y);
          loss.backward();
          if (i % 3 === 2) pfc.accumulateGrad();
          else pfc.step(0.05);
          return loss.item();
        });
      const first = run(0);
      for (let i = 0; i < 6; i++) run(i);
      const live = torch.liveTensors(), held = pfc.bufferBytes();
      let last = first;
      for (let i = 0; i < 30; i++) last = run(i);
      assert.equal(torch.liveTensors(), live, `${logits}: tensors alive`);
      assert.equal(pfc.bufferBytes(), held, `${logits}: bytes held`);
      assert.ok(last < 0.5 * first, `${logits}: loss ${first} → ${last}`);
      torch.dispose([x, y]);
    } finally {
      pfc.dispose();
    }
  }
  // between backward and step, 'keep' holds the B × S exp values (storage dtype) and the [S]
  // float32 norms, 'recompute' neither; what either holds depends on S, not on the classes
  const heldAfterBackward = (numClasses: number, sampleRate: number, logits: 'keep' | 'recompute', storage: CentreStorage) => {
    const pfc = new PartialFC({ marginLoss: arcface(), embeddingSize: D, numClasses, sampleRate, storage, optimizer: sgd, logits, tileRows: 32, implementation: 'ops' });
    try {
      return torch.tidy(() => {
        torch.manualSeed(1);
        pfc.forward(torch.randn([B, D]).requiresGrad_(), torch.randint(0, 400, [B])).backward();
        return pfc.bufferBytes();
      });
    } finally {
      pfc.dispose();
    }
  };
  for (const [storage, size] of [['float32', 4], ['bfloat16', 2]] as [CentreStorage, number][]) {
    const S = 200;
    const keep = heldAfterBackward(400, 0.5, 'keep', storage), recompute = heldAfterBackward(400, 0.5, 'recompute', storage);
    assert.equal(keep - recompute, B * S * size + S * 4, `${storage}: keep − recompute`);
    assert.equal(heldAfterBackward(40000, 0.005, 'recompute', storage), recompute, `${storage}: 100× the classes at the same S`);
  }
});

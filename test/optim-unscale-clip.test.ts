/**
 * GradScaler's unscale + inf/NaN check and clipGradNorm, against closed forms computed here in float64
 * JS arithmetic with each dtype's rounding (float32: Math.fround; float16, bfloat16: round to nearest
 * even below).
 *
 * unscaleGrads follows _amp_foreach_non_finite_check_and_unscale_: the flag is set when a gradient holds
 * inf/NaN as given (before unscaling), each gradient is multiplied by the float32 inverse scale in float32
 * (float64 for float64 gradients; float16/bfloat16 widened to float32 and rounded back). Those formulas are
 * exact, so results must be equal — for libtorch's own kernel (the CPU has one since torch 2.3) and for
 * the plain-op fallback (torch 1.13) alike.
 *
 * clipGradNorm: the total norm is compared with the float64 sum at the dtype's precision (libtorch sums
 * in another order); the clipped float32/float64 gradients exactly, given the returned total, with
 * PyTorch's coefficient min(1, (total + 1e-6).reciprocal() · maxNorm) rounded op by op.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as torch from '../src/torch/index.js';
import { native } from '../src/torch/native.js';
import type { Dtype, Tensor } from '../src/torch/index.js';
import { GradScaler, SGD, clipGradNorm } from '../src/optim/index.js';

type FloatDtype = 'float32' | 'float64' | 'float16' | 'bfloat16';
const DTYPES: FloatDtype[] = ['float32', 'float64', 'float16', 'bfloat16'];

const FORMATS = {
  float16: { mantissa: 10, minExponent: -14, max: 65504 },
  bfloat16: { mantissa: 7, minExponent: -126, max: 3.3895313892515355e38 },
};

/** x rounded to the nearest value of `dtype` (ties to even; subnormals; past the largest finite → ±inf). */
function roundTo(x: number, dtype: FloatDtype): number {
  if (dtype === 'float64') return x;
  if (dtype === 'float32') return Math.fround(x);
  if (!Number.isFinite(x) || x === 0) return x;
  const f = FORMATS[dtype];
  const a = Math.abs(x);
  let e = Math.floor(Math.log2(a));
  if (2 ** e > a) e -= 1;
  else if (2 ** (e + 1) <= a) e += 1;
  const quantum = 2 ** (Math.max(e, f.minExponent) - f.mantissa);
  const n = a / quantum, low = Math.floor(n), frac = n - low;
  const r = (frac > 0.5 || (frac === 0.5 && low % 2 === 1) ? low + 1 : low) * quantum;
  return Math.sign(x) * (r > f.max ? Infinity : r);
}

test('roundTo agrees with libtorch float16/bfloat16 conversion, subnormals and overflow included', () => {
  using _scope = new torch.Scope();
  const xs = [1 / 3, -2.7182817, 65504, 65519.99, 65520, 1e-5, -3e-8, 6e-8, 1.0000001, 3.3895e38, 3.4e38, 1e-40];
  const f32 = xs.map(Math.fround);
  for (const dtype of ['float16', 'bfloat16'] as const) {
    const t = torch.tensor(Float32Array.from(f32)).to(dtype);
    assert.deepEqual([...t.data()], f32.map((x) => roundTo(x, dtype)), dtype);
  }
});

/** Deterministic values in [lo, hi) (a small LCG, independent of torch's generator). */
function values(n: number, seed: number, lo = -0.5, hi = 0.5): number[] {
  let s = seed >>> 0;
  return Array.from({ length: n }, () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return lo + ((hi - lo) * s) / 2 ** 32;
  });
}

/** A tensor of `dtype` holding exactly `data` (values must be representable in it). */
function exact(data: number[], dtype: Dtype, shape = [data.length]): Tensor {
  const wide = torch.tensor(Float64Array.from(data), { dtype: 'float64', shape });
  const t = wide.to(dtype);
  wide.dispose();
  return t;
}

const sameNumber = (a: number, b: number) => a === b || (Number.isNaN(a) && Number.isNaN(b));

function assertSameValues(actual: ArrayLike<number>, expected: number[], what: string): void {
  assert.equal(actual.length, expected.length, `${what}: length`);
  for (let i = 0; i < expected.length; i++) assert.ok(sameNumber(actual[i], expected[i]), `${what}[${i}]: ${actual[i]}, expected ${expected[i]}`);
}

/** The closed form of unscaling one element: non-finite values stay non-finite (× a positive inverse). */
const unscaled = (x: number, inv: number, dtype: FloatDtype): number => (dtype === 'float64' ? x * inv : roundTo(Math.fround(x * inv), dtype));

interface GradCase {
  dtype: FloatDtype;
  shape: number[];
  data: number[];
}

/** Parameters (zeros) of the cases' dtypes with the cases' gradients, plus one without a gradient. */
function paramsWithGrads(cases: GradCase[]): Tensor[] {
  const params = cases.map((c) => torch.zeros(c.shape, { dtype: c.dtype, requiresGrad: true }));
  params.forEach((p, i) => (p.grad = exact(cases[i].data, cases[i].dtype, cases[i].shape)));
  return [...params, torch.zeros([2], { requiresGrad: true })];
}

function checkUnscale(cases: GradCase[], scale: number, expectFound: boolean, what: string): void {
  const params = paramsWithGrads(cases);
  const inv = Math.fround(1 / scale);
  const found: Tensor = native.unscaleGrads(params, inv);
  assert.equal(found.dtype, 'float32', `${what}: found_inf dtype`);
  assert.deepEqual(found.shape, [], `${what}: found_inf is 0-d`);
  assert.equal(found.item(), expectFound ? 1 : 0, `${what}: found_inf`);
  cases.forEach((c, i) => {
    assert.equal(params[i].grad!.dtype, c.dtype, `${what}: grad ${i} keeps its dtype`);
    assertSameValues(params[i].grad!.data() as ArrayLike<number>, c.data.map((x) => unscaled(x, inv, c.dtype)), `${what}: grad ${i}`);
  });
  assert.equal(params[cases.length].grad, undefined, `${what}: a parameter without gradient stays so`);
}

const BAD = {
  none: [],
  'inf in one parameter': [[0, 3, Infinity]],
  'NaN in another': [[2, 1, NaN]],
  '-inf alone': [[1, 5, -Infinity]],
  '-inf and NaN in two': [[1, 0, -Infinity], [2, 4, NaN]],
} as Record<string, [number, number, number][]>;

/** Gradients of one dtype, as a scaled backward leaves them: values × scale, representable in the dtype. */
function scaledGrads(dtype: FloatDtype, scale: number, bad: [number, number, number][]): GradCase[] {
  const shapes = [[4, 5], [7], [6]];
  const cases = shapes.map((shape, k) => {
    const n = shape.reduce((a, b) => a * b, 1);
    // a spread of magnitudes: float16 subnormals after unscaling at the small end
    const data = values(n, 17 + k).map((v, i) => roundTo(v * scale * 10 ** -(i % 4), dtype));
    return { dtype, shape, data };
  });
  for (const [param, index, value] of bad) cases[param].data[index] = value;
  return cases;
}

for (const dtype of DTYPES) {
  for (const scale of [65536, 3, 1]) {
    for (const [name, bad] of Object.entries(BAD)) {
      test(`unscaleGrads, ${dtype} gradients, scale ${scale}, ${name}: found_inf and the unscaled values match the closed form`, () => {
        using _scope = new torch.Scope();
        checkUnscale(scaledGrads(dtype, scale, bad), scale, bad.length > 0, `${dtype} ×${scale}`);
      });
    }
  }
}

test('unscaleGrads over gradients of four dtypes in one call: one flag for all groups', () => {
  using _scope = new torch.Scope();
  const mixed = (bad: [number, number, number][]) =>
    DTYPES.map((dtype, k) => {
      const c = scaledGrads(dtype, 1024, k === 3 ? bad : [])[k % 3];
      return { ...c, dtype };
    });
  checkUnscale(mixed([]), 1024, false, 'mixed, clean');
  checkUnscale(mixed([[0, 2, Infinity]]), 1024, true, 'mixed, inf in the bfloat16 gradient');
});

test('unscaleGrads checks the gradients as given: a finite value that overflows once unscaled is not flagged (as PyTorch)', () => {
  using _scope = new torch.Scope();
  // scale 0.5 (after backoffs): inv_scale 2 doubles the values; these overflow their dtype
  checkUnscale([{ dtype: 'float16', shape: [3], data: [40000, -1, 0.5] }], 0.5, false, 'float16 40000 × 2');
  checkUnscale([{ dtype: 'float32', shape: [2], data: [Math.fround(3e38), 1] }], 0.5, false, 'float32 3e38 × 2');
  checkUnscale([{ dtype: 'float16', shape: [3], data: [40000, Infinity, 0.5] }], 0.5, true, 'float16 with inf');
});

test('unscaleGrads without gradients, or with an empty one: found_inf 0', () => {
  using _scope = new torch.Scope();
  const found: Tensor = native.unscaleGrads([torch.zeros([3], { requiresGrad: true })], 0.5);
  assert.equal(found.item(), 0);
  checkUnscale([{ dtype: 'float32', shape: [0], data: [] }, { dtype: 'float16', shape: [2, 0], data: [] }], 4, false, 'empty gradients');
});

test('GradScaler reads one value back per iteration (the found-inf flag, in step), however many parameters', () => {
  using _scope = new torch.Scope();
  const params = Array.from({ length: 24 }, (_, k) => torch.zeros([k + 1], { requiresGrad: true }));
  const opt = new SGD(params, { lr: 0.1, momentum: 0.9 });
  const scaler = new GradScaler({ initScale: 1024, growthInterval: 2 });
  const proto = torch.Tensor.prototype as { item(): number };
  const item = proto.item;
  let reads = 0;
  proto.item = function (this: Tensor) {
    reads += 1;
    return item.call(this);
  };
  try {
    for (const [k, bad] of [[0, false], [1, true], [2, false]] as const) {
      params.forEach((p, i) => (p.grad = exact(values(i + 1, 5 + k + i).map((v) => (bad && i === 7 ? Infinity : v * 1024)), 'float32')));
      reads = 0;
      scaler.unscale_(opt);
      clipGradNorm(params, 5).dispose();
      const stepped = scaler.step(opt);
      scaler.update();
      assert.equal(reads, 1, `iteration ${k + 1}: values read back`);
      assert.equal(stepped, !bad, `iteration ${k + 1}: stepped`);
      opt.zeroGrad();
    }
  } finally {
    proto.item = item;
  }
  assert.equal(scaler.getScale(), 512, 'backed off once, not yet grown again');
  opt.dispose();
});

// ---- clipGradNorm ------------------------------------------------------------------------------

/** PyTorch's clip coefficient in float32, op by op: min(1, fround(fround(1 / fround(total + 1e-6)) · maxNorm)). */
function coefFloat32(total: number, maxNorm: number): number {
  const shifted = Math.fround(total + Math.fround(1e-6));
  return Math.min(1, Math.fround(Math.fround(1 / shifted) * Math.fround(maxNorm)));
}

const normOf = (xs: number[], p: number): number =>
  p === Infinity ? Math.max(...xs.map(Math.abs)) : Math.pow(xs.reduce((s, x) => s + Math.abs(x) ** p, 0), 1 / p);

/** Relative precision of a dtype's rounding, times a few roundings of slack for the sums. */
const NORM_RTOL: Record<FloatDtype, number> = { float64: 1e-12, float32: 1e-6, float16: 4 * 2 ** -11, bfloat16: 4 * 2 ** -8 };

for (const dtype of DTYPES) {
  for (const normType of [2, 1, 3, Infinity]) {
    for (const maxNorm of [0.5, 1e6]) {
      test(`clipGradNorm(${dtype} gradients, norm ${normType}, maxNorm ${maxNorm}): total norm and clipped gradients`, () => {
        using _scope = new torch.Scope();
        const cases = scaledGrads(dtype, 4, []);
        const params = paramsWithGrads(cases);
        const total = clipGradNorm(params, maxNorm, normType === Infinity ? 'inf' : normType);
        assert.deepEqual(total.shape, [], 'a 0-d tensor');
        assert.equal(total.device, 'cpu');
        const expected = normOf(cases.flatMap((c) => c.data), normType);
        const got = total.item();
        assert.ok(Math.abs(got - expected) <= NORM_RTOL[dtype] * expected, `total norm ${got}, closed form ${expected}`);
        cases.forEach((c, i) => {
          const g = Array.from(params[i].grad!.data() as ArrayLike<number>);
          if (dtype === 'float32') {
            const coef = coefFloat32(got, maxNorm);
            assertSameValues(g, c.data.map((x) => Math.fround(x * coef)), `clipped grad ${i}`);
          } else if (dtype === 'float64') {
            const coef = Math.min(1, (1 / (got + 1e-6)) * maxNorm);
            assertSameValues(g, c.data.map((x) => x * coef), `clipped grad ${i}`);
          } else {
            // 16-bit: the coefficient is rounded to the gradient's dtype (a 0-d float tensor keeps it): compare at its precision
            const coef = Math.min(1, maxNorm / (got + 1e-6));
            g.forEach((v, j) => {
              const want = c.data[j] * coef;
              assert.ok(Math.abs(v - want) <= 2 * NORM_RTOL[dtype] * Math.abs(want) + 2 ** -24, `clipped grad ${i}[${j}]: ${v} vs ${want}`);
            });
          }
        });
        if (maxNorm > expected) cases.forEach((c, i) => assertSameValues(params[i].grad!.data() as ArrayLike<number>, c.data, `unclipped grad ${i}`));
      });
    }
  }
}

test('clipGradNorm over float32 and float64 gradients together: one total of all norms', () => {
  using _scope = new torch.Scope();
  const cases: GradCase[] = [
    { dtype: 'float32', shape: [5], data: values(5, 3).map(Math.fround) },
    { dtype: 'float64', shape: [3, 2], data: values(6, 4) },
    { dtype: 'float32', shape: [4], data: values(4, 5).map(Math.fround) },
  ];
  const params = paramsWithGrads(cases);
  const total = clipGradNorm(params, 0.25);
  assert.equal(total.dtype, 'float64', 'stacking the per-gradient norms promotes, as torch.stack does in clip_grad_norm_');
  const expected = normOf(cases.flatMap((c) => c.data), 2);
  assert.ok(Math.abs(total.item() - expected) <= 1e-6 * expected, `total ${total.item()} vs ${expected}`);
});

test("clipGradNorm's coefficient is PyTorch's (total + 1e-6).reciprocal() · maxNorm, not a division (one rounding apart here)", () => {
  using _scope = new torch.Scope();
  // inf-norm: the total is exactly max |g| = 5.0411; 5 / (total + 1e-6) rounds differently from the reciprocal times 5
  const t = Math.fround(5.0411);
  const data = [t, -1.5, 0.25].map(Math.fround);
  const [p] = paramsWithGrads([{ dtype: 'float32', shape: [3], data }]);
  const shifted = Math.fround(t + Math.fround(1e-6));
  assert.notEqual(Math.fround(5 / shifted), coefFloat32(t, 5), 'the case separates the two formulas');
  assert.equal(clipGradNorm([p], 5, 'inf').item(), t);
  assertSameValues(p.grad!.data() as ArrayLike<number>, data.map((x) => Math.fround(x * coefFloat32(t, 5))), 'clipped');
});

test('clipGradNorm and unscaleGrads name what is wrong with their input', () => {
  assert.throws(() => clipGradNorm([{} as Tensor], 1), /clipGradNorm params/);
  assert.throws(() => native.unscaleGrads([1], 1), /unscaleGrads params/);
  assert.throws(() => native.unscaleGrads({} as unknown[], 1), /unscaleGrads params must be an array/);
});

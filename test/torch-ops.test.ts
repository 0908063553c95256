/**
 * The tensor operations of src/torch against independent references: closed forms, hand-computed
 * values, JS loops, and finite differences (gradcheck) for every differentiable family.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as torch from '../src/torch/index.js';
import type { Tensor } from '../src/torch/index.js';
import { assertClose, gradcheck } from './gradcheck.js';

// ------------------------------------------------------------------ helpers

/** Runs a test body in a scope, so every tensor it makes is freed. */
const scoped = (fn: () => void) => () => torch.tidy(fn);

/** Deterministic values in [lo, hi) from a small LCG (independent of torch's generator). */
function values(n: number, seed = 1, lo = -1, hi = 1): number[] {
  let s = seed >>> 0;
  return Array.from({ length: n }, () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return lo + ((hi - lo) * s) / 2 ** 32;
  });
}

const numel = (shape: number[]) => shape.reduce((a, b) => a * b, 1);

/** A float64 tensor of given values and shape (a leaf with requiresGrad when asked). */
const f64 = (data: number[], shape: number[], requiresGrad = false): Tensor =>
  torch.tensor(Float64Array.from(data), { dtype: 'float64', shape, requiresGrad });

/** A float64 leaf of the shape with deterministic values, requiring grad. */
const leaf = (shape: number[], seed = 1, lo = -1, hi = 1): Tensor => f64(values(numel(shape), seed, lo, hi), shape, true);

const long = (data: number[] | number[][]) => torch.tensor(data, { dtype: 'int64' });
const flat = (t: Tensor): number[] => Array.from(t.data() as ArrayLike<number | bigint>, Number);

/** erf by its Taylor series (enough for |x| ≤ 3 in double precision). */
function erf(x: number): number {
  let term = x, total = x;
  for (let n = 1; n < 200; n++) {
    term *= (-x * x) / n;
    total += term / (2 * n + 1);
  }
  return (2 / Math.sqrt(Math.PI)) * total;
}

/** bfloat16 rounding of a float32 value (round to nearest even on the upper 16 bits). */
function bf16Round(x: number): number {
  const bits = new Uint32Array(new Float32Array([x]).buffer)[0];
  const rounded = ((bits + 0x7fff + ((bits >>> 16) & 1)) >>> 16) << 16;
  return new Float32Array(new Uint32Array([rounded >>> 0]).buffer)[0];
}

// ------------------------------------------------------------------ creation

describe('creation', () => {
  test('tensor() from nested arrays gives float32 with the nested shape', scoped(() => {
    const t = torch.tensor([[1, 2, 3], [4, 5, 6]]);
    assert.equal(t.dtype, 'float32');
    assert.deepEqual(t.shape, [2, 3]);
    assert.deepEqual(t.toArray(), [[1, 2, 3], [4, 5, 6]]);
  }));

  test('tensor() with dtype float64 keeps full double precision', scoped(() => {
    const t = torch.tensor([0.1, 1 / 3], { dtype: 'float64' });
    assert.deepEqual(Array.from(t.data() as Float64Array), [0.1, 1 / 3]);
  }));

  test('tensor() with integer dtypes keeps integers above 2^24 and truncates fractions', scoped(() => {
    assert.deepEqual(torch.tensor([16777217, -2.5, 2.7], { dtype: 'int32' }).toArray(), [16777217, -2, 2]);
    const big = torch.tensor([2 ** 40 + 1, -1.7, 1.7], { dtype: 'int64' });
    assert.deepEqual(Array.from(big.data() as BigInt64Array), [2n ** 40n + 1n, -1n, 1n]);
  }));

  test('tensor() from typed arrays takes their dtype and an optional shape', scoped(() => {
    assert.equal(torch.tensor(new Float64Array([1, 2])).dtype, 'float64');
    assert.equal(torch.tensor(new Int32Array([1, 2])).dtype, 'int32');
    assert.equal(torch.tensor(new BigInt64Array([1n, 2n])).dtype, 'int64');
    assert.equal(torch.tensor(new Uint8Array([1, 2])).dtype, 'uint8');
    const shaped = torch.tensor(new Float32Array([1, 2, 3, 4, 5, 6]), { shape: [3, 2] });
    assert.deepEqual(shaped.toArray(), [[1, 2], [3, 4], [5, 6]]);
    assert.deepEqual(torch.tensor(new Uint8Array([1, 0]), { dtype: 'bool' }).toArray(), [true, false]);
    assert.deepEqual(torch.tensor(new Float32Array([1.5, -2]), { dtype: 'float64' }).toArray(), [1.5, -2]);
  }));

  test('tensor() reads Uint16Array as raw float16 / bfloat16 bits', scoped(() => {
    assert.deepEqual(torch.tensor(new Uint16Array([0x3c00, 0xc000, 0x3555]), { dtype: 'float16' }).toArray(), [1, -2, 0.333251953125]);
    assert.deepEqual(torch.tensor(new Uint16Array([0x3f80, 0xbfc0]), { dtype: 'bfloat16' }).toArray(), [1, -1.5]);
  }));

  test('tensor() of booleans is bool unless a dtype is given', scoped(() => {
    const b = torch.tensor([true, false, true]);
    assert.equal(b.dtype, 'bool');
    assert.deepEqual(b.toArray(), [true, false, true]);
    assert.deepEqual(torch.tensor([true, false], { dtype: 'float32' }).toArray(), [1, 0]);
    assert.deepEqual(torch.tensor([0, 2, -1], { dtype: 'bool' }).toArray(), [false, true, true]);
  }));

  test('tensor() of a number is 0-dimensional', scoped(() => {
    const s = torch.tensor(3.5);
    assert.deepEqual(s.shape, []);
    assert.equal(s.ndim, 0);
    assert.equal(s.item(), 3.5);
    assert.equal(s.toArray(), 3.5);
  }));

  test('tensor() rejects ragged nested arrays', () => {
    assert.throws(() => torch.tensor([[1, 2], [3]]), /ragged/);
  });

  test('zeros, ones, full and empty have the requested shape and dtype', scoped(() => {
    assert.deepEqual(torch.zeros([2, 2]).toArray(), [[0, 0], [0, 0]]);
    assert.deepEqual(torch.ones([3], { dtype: 'int64' }).toArray(), [1, 1, 1]);
    assert.equal(torch.ones([3], { dtype: 'int64' }).dtype, 'int64');
    assert.deepEqual(torch.full([2], 7.5).toArray(), [7.5, 7.5]);
    assert.equal(torch.full([2], 7).dtype, 'float32');
    const e = torch.empty([4, 0, 2], { dtype: 'float64' });
    assert.deepEqual([e.shape, e.dtype, e.numel], [[4, 0, 2], 'float64', 0]);
    assert.equal(torch.zeros([2], { requiresGrad: true }).requiresGrad, true);
  }));

  test('the *Like constructors copy shape and dtype, or take a new dtype', scoped(() => {
    const x = torch.zeros([2, 3], { dtype: 'float64' });
    for (const t of [torch.zerosLike(x), torch.onesLike(x), torch.fullLike(x, 2), torch.emptyLike(x), torch.randnLike(x), torch.randLike(x)]) {
      assert.deepEqual([t.shape, t.dtype], [[2, 3], 'float64']);
    }
    assert.deepEqual(torch.onesLike(x, { dtype: 'int32' }).toArray(), [[1, 1, 1], [1, 1, 1]]);
    assert.deepEqual(flat(torch.fullLike(x, 2)), [2, 2, 2, 2, 2, 2]);
  }));

  test('arange is int64 for integer arguments and float32 otherwise', scoped(() => {
    const i = torch.arange(5);
    assert.equal(i.dtype, 'int64');
    assert.deepEqual(i.toArray(), [0, 1, 2, 3, 4]);
    assert.deepEqual(torch.arange(2, 11, 3).toArray(), [2, 5, 8]);
    const f = torch.arange(1, 2, 0.25);
    assert.equal(f.dtype, 'float32');
    assert.deepEqual(f.toArray(), [1, 1.25, 1.5, 1.75]);
    assert.equal(torch.arange(3, undefined, 1, { dtype: 'float64' }).dtype, 'float64');
  }));

  test('linspace includes both ends and eye is the identity', scoped(() => {
    assert.deepEqual(torch.linspace(-1, 1, 5).toArray(), [-1, -0.5, 0, 0.5, 1]);
    assert.deepEqual(torch.eye(3).toArray(), [[1, 0, 0], [0, 1, 0], [0, 0, 1]]);
  }));

  test('manualSeed makes random draws reproducible, and other seeds differ', scoped(() => {
    const draw = (seed: number) => {
      torch.manualSeed(seed);
      return [...flat(torch.randn([16])), ...flat(torch.rand([4])), ...flat(torch.randint(0, 100, [4])), ...flat(torch.randperm(6))];
    };
    assert.deepEqual(draw(7), draw(7));
    assert.notDeepEqual(draw(7), draw(8));
  }));

  test('getRngState/setRngState replay the draws that followed (Partial FC sampling included); a bad state is an error', scoped(() => {
    torch.manualSeed(11);
    torch.randn([5]);
    const state = torch.getRngState();
    assert.equal(state.dtype, 'uint8');
    const after = [...flat(torch.randn([8])), ...flat(torch.randperm(6))];
    torch.randn([3]);
    torch.setRngState(state);
    assert.deepEqual([...flat(torch.randn([8])), ...flat(torch.randperm(6))], after);
    assert.throws(() => torch.setRngState(torch.zeros([3])), /ByteTensor/);
  }));

  test('manualSeed rejects negative and fractional seeds', () => {
    assert.throws(() => torch.manualSeed(-1), RangeError);
    assert.throws(() => torch.manualSeed(1.5), RangeError);
  });

  test('randn has mean 0 and standard deviation 1', scoped(() => {
    torch.manualSeed(0);
    const x = torch.randn([200000], { dtype: 'float64' });
    assert.ok(Math.abs(x.mean().item()) < 0.01);
    assert.ok(Math.abs(torch.std(x).item() - 1) < 0.01);
    // about 68.3% of a standard normal lies within one standard deviation
    const within = torch.lt(x.abs(), 1).float().mean().item();
    assert.ok(Math.abs(within - 0.6827) < 0.005);
  }));

  test('rand is uniform on [0, 1)', scoped(() => {
    torch.manualSeed(1);
    const x = torch.rand([200000], { dtype: 'float64' });
    assert.ok(torch.min(x).item() >= 0 && torch.max(x).item() < 1);
    assert.ok(Math.abs(x.mean().item() - 0.5) < 0.005);
    assert.ok(Math.abs(torch.variance(x).item() - 1 / 12) < 0.002);
  }));

  test('randint draws int64 values covering [low, high)', scoped(() => {
    torch.manualSeed(2);
    const r = torch.randint(-3, 4, [5000]);
    assert.equal(r.dtype, 'int64');
    assert.deepEqual(torch.unique(r).values.toArray(), [-3, -2, -1, 0, 1, 2, 3]);
    assert.equal(torch.randint(0, 5, [2], { dtype: 'int32' }).dtype, 'int32');
  }));

  test('randperm is a permutation', scoped(() => {
    const p = torch.randperm(50);
    assert.deepEqual(torch.sort(p).values.toArray(), Array.from({ length: 50 }, (_, i) => i));
  }));
});

// ------------------------------------------------------------------ dtypes

describe('dtype casts and data out', () => {
  const source = [0, 1, -2, 3.75, 100];

  test('float casts round trip exactly representable values', scoped(() => {
    const x = torch.tensor(source);
    for (const dtype of ['float32', 'float64', 'float16', 'bfloat16'] as const) {
      const y = x.to(dtype);
      assert.equal(y.dtype, dtype);
      assert.deepEqual(y.float().toArray(), source, dtype);
    }
  }));

  test('integer casts truncate toward zero; uint8 and bool as in C', scoped(() => {
    const x = torch.tensor([2.9, -2.9, 0, 7.5]);
    assert.deepEqual(x.long().toArray(), [2, -2, 0, 7]);
    assert.deepEqual(x.int().toArray(), [2, -2, 0, 7]);
    assert.deepEqual(torch.tensor([2.9, 0, 255]).byte().toArray(), [2, 0, 255]);
    assert.deepEqual(x.bool().toArray(), [true, true, false, true]);
    assert.deepEqual(x.bool().float().toArray(), [1, 1, 0, 1]);
    assert.deepEqual(x.long().double().toArray(), [2, -2, 0, 7]);
  }));

  test('bfloat16 rounds 1/3 as the bit-level rounding of its float32', scoped(() => {
    const expected = bf16Round(1 / 3);
    assert.equal(expected, 0.333984375);
    assert.equal(torch.tensor([1 / 3]).bfloat16().item(), expected);
    assert.equal(torch.tensor([1 / 3], { dtype: 'bfloat16' }).item(), expected);
    const many = values(64, 3, -100, 100);
    assert.deepEqual(flat(torch.tensor(many).to('bfloat16')), many.map(bf16Round));
  }));

  test('float16 rounds 1/3 to 1365/4096', scoped(() => {
    assert.equal(torch.tensor([1 / 3]).half().item(), 1365 / 4096);
  }));

  test('data() returns the typed array of the dtype (16-bit floats widened)', scoped(() => {
    const x = torch.tensor([1, 2]);
    assert.ok(x.data() instanceof Float32Array);
    assert.ok(x.double().data() instanceof Float64Array);
    assert.ok(x.half().data() instanceof Float32Array);
    assert.ok(x.bfloat16().data() instanceof Float32Array);
    assert.ok(x.long().data() instanceof BigInt64Array);
    assert.ok(x.int().data() instanceof Int32Array);
    assert.ok(x.byte().data() instanceof Uint8Array);
    assert.ok(x.bool().data() instanceof Uint8Array);
  }));

  test('data() and toArray() read non-contiguous tensors in logical order', scoped(() => {
    const t = torch.tensor([[1, 2, 3], [4, 5, 6]]).t();
    assert.deepEqual(flat(t), [1, 4, 2, 5, 3, 6]);
    assert.deepEqual(t.toArray(), [[1, 4], [2, 5], [3, 6]]);
  }));

  test('to() also takes a device; tensors live on the CPU here', scoped(() => {
    const x = torch.tensor([1, 2], { device: 'cpu' });
    assert.equal(x.device, 'cpu');
    const y = x.to('cpu');
    assert.deepEqual([y.device, y.dtype, y.toArray()], ['cpu', 'float32', [1, 2]]);
  }));

  test('asking for CUDA where there is none says why (no CUDA build, or no device)', { skip: torch.runtimeInfo().cudaAvailable ? 'a CUDA device is here' : false }, scoped(() => {
    const why = torch.runtimeInfo().cudaBuild ? /device 'cuda:0' is not available: the addon is built with CUDA, but no CUDA device is visible/ : /device 'cuda:0' is not available: the addon is built without CUDA \(rebuild it with ARCFACE_TORCH_DIR=.* ARCFACE_CUDA=1 bash scripts\/setup\.sh\)/;
    assert.throws(() => torch.tensor([1, 2]).to('cuda:0'), why);
    assert.throws(() => torch.zeros([2], { device: 'cuda:0' }), why);
  }));

  test('item() gives a number, or a boolean for bool', scoped(() => {
    assert.equal(torch.tensor([42], { dtype: 'int64' }).item(), 42);
    assert.equal(torch.tensor(true).item(), true);
    assert.throws(() => torch.tensor([1, 2]).item(), /a Tensor with 2 elements cannot be converted to Scalar/);
  }));

  test('isFloatingDtype', () => {
    assert.deepEqual(['float32', 'float64', 'float16', 'bfloat16', 'int64', 'bool'].map(torch.isFloatingDtype), [true, true, true, true, false, false]);
  });
});

// ------------------------------------------------------------------ elementwise

describe('elementwise arithmetic', () => {
  const a = values(6, 11, -2, 2), b = values(3, 12, 0.5, 2);
  /** JS reference of a [2,3] ⊙ [3] broadcast. */
  const broadcast = (op: (x: number, y: number) => number) => a.map((x, i) => op(x, b[i % 3]));

  test('add, sub, mul, div broadcast a [3] row over [2, 3]', scoped(() => {
    const x = f64(a, [2, 3]), y = f64(b, [3]);
    assertClose(torch.add(x, y), broadcast((p, q) => p + q));
    assertClose(torch.sub(x, y), broadcast((p, q) => p - q));
    assertClose(torch.mul(x, y), broadcast((p, q) => p * q));
    assertClose(torch.div(x, y), broadcast((p, q) => p / q));
    assertClose(torch.pow(y, x.abs()), broadcast((p, q) => q ** Math.abs(p)));
  }));

  test('a [2, 1] column and a [1, 3] row broadcast to [2, 3]', scoped(() => {
    const col = torch.tensor([[1], [2]]), row = torch.tensor([[10, 20, 30]]);
    assert.deepEqual(torch.add(col, row).toArray(), [[11, 21, 31], [12, 22, 32]]);
  }));

  test('scalar operands and alpha', scoped(() => {
    const x = torch.tensor([1, 2, 4]), y = torch.tensor([1, 1, 1]);
    assert.deepEqual(x.add(0.5).toArray(), [1.5, 2.5, 4.5]);
    assert.deepEqual(x.sub(1).toArray(), [0, 1, 3]);
    assert.deepEqual(x.mul(3).toArray(), [3, 6, 12]);
    assert.deepEqual(x.div(4).toArray(), [0.25, 0.5, 1]);
    assert.deepEqual(x.pow(2).toArray(), [1, 4, 16]);
    assert.deepEqual(x.add(y, 2).toArray(), [3, 4, 6]);
    assert.deepEqual(x.sub(y, 3).toArray(), [-2, -1, 1]);
    assert.deepEqual(torch.rsub(x, 10, 2).toArray(), [8, 6, 2]);
  }));

  test('integer tensors stay integer with integer scalars; division is true division', scoped(() => {
    const i = torch.tensor([1, 2, 3], { dtype: 'int64' });
    assert.equal(i.add(1).dtype, 'int64');
    assert.equal(i.mul(2).dtype, 'int64');
    assert.equal(i.add(0.5).dtype, 'float32');
    assert.deepEqual(i.div(2).toArray(), [0.5, 1, 1.5]);
  }));

  test('addcmul, addcdiv and lerp', scoped(() => {
    const x = torch.tensor([1, 2]), p = torch.tensor([2, 3]), q = torch.tensor([4, 6]);
    assert.deepEqual(torch.addcmul(x, p, q, 0.5).toArray(), [5, 11]);
    assert.deepEqual(torch.addcdiv(x, q, p, 2).toArray(), [5, 6]);
    assert.deepEqual(torch.lerp(x, q, 0.25).toArray(), [1.75, 3]);
    assert.deepEqual(torch.lerp(x, q, torch.tensor([0, 1])).toArray(), [1, 6]);
  }));

  test('gradients of add, sub, mul, div and pow through broadcasting', () => {
    torch.tidy(() => {
      const x = leaf([2, 3], 1), y = leaf([3], 2, 0.5, 2), pos = leaf([2, 3], 3, 0.5, 2);
      gradcheck((x, y) => torch.add(x, y, 1.5), [x, y]);
      gradcheck((x, y) => torch.sub(x, y, 0.5), [x, y]);
      gradcheck((x, y) => torch.mul(x, y), [x, y]);
      gradcheck((x, y) => torch.div(x, y), [x, y]);
      gradcheck((p, x) => torch.pow(p, x), [pos, x]);
      gradcheck((p) => torch.pow(p, 2.5), [pos]);
      gradcheck((x) => torch.rsub(x, 3, 2), [x]);
      gradcheck((x, y) => torch.addcdiv(x, x, y, 0.5), [x, y]);
      gradcheck((x, y) => torch.lerp(x, torch.expand(y, [2, 3]), 0.3), [x, y]);
    });
  });
});

describe('elementwise functions', () => {
  const xs = values(12, 21, -3, 3);
  const sigmoid = (v: number) => 1 / (1 + Math.exp(-v));
  const cases: [string, (x: Tensor) => Tensor, (v: number) => number, number[]][] = [
    ['neg', torch.neg, (v) => -v, xs],
    ['abs', torch.abs, Math.abs, xs],
    ['exp', torch.exp, Math.exp, xs],
    ['log', torch.log, Math.log, xs.map(Math.abs)],
    ['log1p', torch.log1p, Math.log1p, xs.map(Math.abs)],
    ['sqrt', torch.sqrt, Math.sqrt, xs.map(Math.abs)],
    ['rsqrt', torch.rsqrt, (v) => 1 / Math.sqrt(v), xs.map(Math.abs)],
    ['square', torch.square, (v) => v * v, xs],
    ['reciprocal', torch.reciprocal, (v) => 1 / v, xs],
    ['sin', torch.sin, Math.sin, xs],
    ['cos', torch.cos, Math.cos, xs],
    ['acos', torch.acos, Math.acos, xs.map((v) => v / 3.5)],
    ['asin', torch.asin, Math.asin, xs.map((v) => v / 3.5)],
    ['tanh', torch.tanh, Math.tanh, xs],
    ['sigmoid', torch.sigmoid, sigmoid, xs],
    ['relu', torch.relu, (v) => Math.max(v, 0), xs],
    ['relu6', torch.relu6, (v) => Math.min(Math.max(v, 0), 6), xs.map((v) => 3 * v)],
    ['hardtanh', torch.hardtanh, (v) => Math.min(Math.max(v, -1), 1), xs],
    ['leakyRelu', (x) => torch.leakyRelu(x, 0.2), (v) => (v > 0 ? v : 0.2 * v), xs],
    ['gelu', torch.gelu, (v) => 0.5 * v * (1 + erf(v / Math.SQRT2)), xs],
    ['gelu tanh', (x) => torch.gelu(x, 'tanh'), (v) => 0.5 * v * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (v + 0.044715 * v ** 3))), xs],
    ['sign', torch.sign, Math.sign, [...xs, 0]],
    ['floor', torch.floor, Math.floor, xs],
    ['ceil', torch.ceil, Math.ceil, xs],
  ];

  for (const [name, op, reference, input] of cases) {
    test(`${name} matches its JS reference in float64`, scoped(() => {
      assertClose(op(f64(input, [input.length])), input.map(reference), { rtol: 1e-12, atol: 1e-12 });
    }));
  }

  test('round rounds half to even', scoped(() => {
    assert.deepEqual(torch.round(torch.tensor([0.5, 1.5, 2.5, -1.5, 2.4])).toArray(), [0, 2, 2, -2, 2]);
  }));

  test('isfinite and isnan', scoped(() => {
    const x = torch.tensor([1, Infinity, -Infinity, NaN]);
    assert.deepEqual(torch.isfinite(x).toArray(), [true, false, false, false]);
    assert.deepEqual(torch.isnan(x).toArray(), [false, false, false, true]);
  }));

  test('clamp with scalar bounds, one bound, and tensor bounds', scoped(() => {
    const x = torch.tensor([-2, -0.5, 0.5, 2]);
    assert.deepEqual(x.clamp(-1, 1).toArray(), [-1, -0.5, 0.5, 1]);
    assert.deepEqual(x.clamp(0).toArray(), [0, 0, 0.5, 2]);
    assert.deepEqual(x.clamp(undefined, 0).toArray(), [-2, -0.5, 0, 0]);
    assert.deepEqual(x.clamp(torch.tensor([-3, 0, 0, 0]), torch.tensor([3, 3, 0.25, 3])).toArray(), [-2, 0, 0.25, 2]);
    assert.deepEqual(x.clamp(torch.tensor([-3, 0, 0, 0])).toArray(), [-2, 0, 0.5, 2]);
  }));

  test('clamp with one tensor bound and one scalar bound', scoped(() => {
    const x = torch.tensor([-2, -0.5, 0.5, 2]);
    assert.deepEqual(x.clamp(torch.tensor([-3, 0, 0, 0]), 1).toArray(), [-2, 0, 0.5, 1]);
    assert.deepEqual(x.clamp(-1, torch.tensor([3, 3, 0.25, 3])).toArray(), [-1, -0.5, 0.25, 2]);
    const i = long([1, 5, 9]).clamp(long([2, 2, 2]), 6);
    assert.deepEqual([i.dtype, i.toArray()], ['int64', [2, 5, 6]]);
    // as torch.clamp: with min > max every element becomes max
    assert.deepEqual(x.clamp(torch.fullLike(x, 5), 1).toArray(), [1, 1, 1, 1]);
  }));

  test('maximum, minimum and where', scoped(() => {
    const x = torch.tensor([1, 5, 3]), y = torch.tensor([4, 2, 3]);
    assert.deepEqual(x.maximum(y).toArray(), [4, 5, 3]);
    assert.deepEqual(x.minimum(y).toArray(), [1, 2, 3]);
    const cond = torch.tensor([true, false, true]);
    assert.deepEqual(torch.where(cond, x, y).toArray(), [1, 2, 3]);
    assert.deepEqual(torch.where(cond, x, -1).toArray(), [1, -1, 3]);
  }));

  test('comparisons with tensors and scalars give bool tensors', scoped(() => {
    const x = torch.tensor([1, 2, 3]), y = torch.tensor([3, 2, 1]);
    assert.equal(x.eq(y).dtype, 'bool');
    assert.deepEqual(x.eq(y).toArray(), [false, true, false]);
    assert.deepEqual(x.ne(y).toArray(), [true, false, true]);
    assert.deepEqual(x.lt(y).toArray(), [true, false, false]);
    assert.deepEqual(x.le(y).toArray(), [true, true, false]);
    assert.deepEqual(x.gt(2).toArray(), [false, false, true]);
    assert.deepEqual(x.ge(2).toArray(), [false, true, true]);
    assert.deepEqual(x.eq(2).toArray(), [false, true, false]);
  }));

  test('logical and, or, not', scoped(() => {
    const p = torch.tensor([true, true, false, false]), q = torch.tensor([true, false, true, false]);
    assert.deepEqual(torch.logicalAnd(p, q).toArray(), [true, false, false, false]);
    assert.deepEqual(torch.logicalOr(p, q).toArray(), [true, true, true, false]);
    assert.deepEqual(torch.logicalNot(p).toArray(), [false, false, true, true]);
  }));

  test('allclose honours rtol and atol', scoped(() => {
    const x = torch.tensor([1, 2]);
    assert.equal(torch.allclose(x, torch.tensor([1, 2.0001])), false);
    assert.equal(torch.allclose(x, torch.tensor([1, 2.0001]), 1e-4), true);
    assert.equal(torch.allclose(x, torch.tensor([1.001, 2]), 0, 1e-2), true);
  }));

  test('gradients of the differentiable functions', () => {
    torch.tidy(() => {
      // inputs keep a distance from kinks (0 for abs/relu, ±1 and 6 for the hard clamps)
      const x = f64([-2.5, -1.3, -0.4, 0.3, 0.9, 1.6, 2.2, 7], [8], true);
      const pos = leaf([8], 5, 0.2, 3);
      const inside = leaf([8], 6, -0.95, 0.95);
      const smooth: ((t: Tensor) => Tensor)[] = [torch.neg, torch.abs, torch.exp, torch.sin, torch.cos, torch.tanh, torch.sigmoid, torch.relu, torch.relu6,
        torch.hardtanh, torch.gelu, (t) => torch.gelu(t, 'tanh'), (t) => torch.leakyRelu(t, 0.1), torch.square];
      for (const op of smooth) gradcheck(op, [x]);
      for (const op of [torch.log, torch.log1p, torch.sqrt, torch.rsqrt, torch.reciprocal]) gradcheck(op, [pos]);
      gradcheck(torch.acos, [inside]);
      gradcheck(torch.asin, [inside]);
      gradcheck((t) => torch.clamp(t, -1, 1.2), [x]);
      gradcheck((t, lo) => torch.clamp(t, lo, 1.2), [x, f64([-2, -1, -1, 0.5, 0, 0, 0, 0], [8], true)]);
      gradcheck((t, u) => torch.maximum(t, u), [x, f64([0, 0, 0, 0, 0, 0, 0, 0], [8], true)]);
      gradcheck((t) => torch.where(torch.gt(t, 0), t, torch.mul(t, t)), [x]);
    });
  });
});

// ------------------------------------------------------------------ reductions

describe('reductions', () => {
  // [2, 3, 4] with distinct values, so max/min/argmax have unique answers
  const data = values(24, 31, -4, 4);
  const at = (i: number, j: number, k: number) => data[i * 12 + j * 4 + k];
  const range = (n: number) => Array.from({ length: n }, (_, i) => i);
  const x = () => f64(data, [2, 3, 4]);

  test('sum and mean over everything, one dim, several dims, keepdim', scoped(() => {
    const total = data.reduce((p, q) => p + q, 0);
    assertClose(x().sum(), total, { rtol: 1e-12 });
    assertClose(x().mean(), total / 24, { rtol: 1e-12 });
    const byDim1 = range(2).flatMap((i) => range(4).map((k) => at(i, 0, k) + at(i, 1, k) + at(i, 2, k)));
    assertClose(x().sum(1), byDim1, { rtol: 1e-12 });
    assertClose(x().mean(1), byDim1.map((v) => v / 3), { rtol: 1e-12 });
    const byDims = range(3).map((j) => range(2).reduce((s, i) => s + range(4).reduce((t, k) => t + at(i, j, k), 0), 0));
    assertClose(x().sum([0, 2]), byDims, { rtol: 1e-12 });
    assert.deepEqual(x().sum(-1, { keepdim: true }).shape, [2, 3, 1]);
    assert.deepEqual(x().mean([0, 2], { keepdim: true }).shape, [1, 3, 1]);
  }));

  test('keepdim without dims reduces everything to size-1 dims', scoped(() => {
    const total = data.reduce((p, q) => p + q, 0);
    const s = x().sum(undefined, { keepdim: true });
    assert.deepEqual(s.shape, [1, 1, 1]);
    assertClose(s, total, { rtol: 1e-12 });
    assert.deepEqual(x().mean(undefined, { keepdim: true }).shape, [1, 1, 1]);
  }));

  test('sum and mean take an accumulation dtype', scoped(() => {
    const ints = torch.tensor([1, 2, 3, 4], { dtype: 'int32' });
    assert.equal(torch.sum(ints).dtype, 'int64');
    assert.equal(torch.sum(ints, undefined, { dtype: 'float64' }).dtype, 'float64');
    assert.equal(torch.mean(ints, 0, { dtype: 'float32' }).item(), 2.5);
    assert.equal(torch.sum(torch.tensor([1, 2]), 0, { dtype: 'float64' }).dtype, 'float64');
  }));

  test('max and min overall and along a dim with indices; argmax, argmin', scoped(() => {
    assert.equal(x().max().item(), Math.max(...data));
    assert.equal(x().min().item(), Math.min(...data));
    const { values: v, indices } = x().max(2);
    const expectIdx = range(6).map((r) => { const row = data.slice(r * 4, r * 4 + 4); return row.indexOf(Math.max(...row)); });
    assert.deepEqual(flat(indices), expectIdx);
    assert.deepEqual(flat(v), range(6).map((r) => Math.max(...data.slice(r * 4, r * 4 + 4))));
    assert.equal(indices.dtype, 'int64');
    const mn = x().min(0, true);
    assert.deepEqual(mn.values.shape, [1, 3, 4]);
    assert.deepEqual(flat(mn.values), range(12).map((r) => Math.min(data[r], data[12 + r])));
    assert.deepEqual(flat(mn.indices), range(12).map((r) => (data[r] < data[12 + r] ? 0 : 1)));
    assert.equal(x().argmax().item(), data.indexOf(Math.max(...data)));
    assert.deepEqual(flat(x().argmax(2)), expectIdx);
    assert.deepEqual(torch.argmin(x(), 2, true).shape, [2, 3, 1]);
  }));

  test('prod overall and along a dim', scoped(() => {
    const p = torch.tensor([[1, 2, 3], [4, 5, 6]]);
    assert.equal(torch.prod(p).item(), 720);
    assert.deepEqual(torch.prod(p, 1).toArray(), [6, 120]);
    assert.deepEqual(torch.prod(p, 0, true).toArray(), [[4, 10, 18]]);
  }));

  test('variance and std: unbiased by default, biased on request', scoped(() => {
    const v = [2, 4, 4, 4, 5, 5, 7, 9];
    const t = f64(v, [8]);
    assertClose(torch.variance(t), 32 / 7, { rtol: 1e-12 });
    assertClose(torch.variance(t, undefined, false), 4, { rtol: 1e-12 });
    assertClose(torch.std(t), Math.sqrt(32 / 7), { rtol: 1e-12 });
    assertClose(torch.std(t, 0, false), 2, { rtol: 1e-12 });
    const rows = f64([1, 2, 3, 10, 20, 30], [2, 3]);
    assertClose(torch.variance(rows, 1), [1, 100], { rtol: 1e-12 });
    assert.deepEqual(torch.std(rows, 1, true, true).shape, [2, 1]);
  }));

  test('norm for p = 1, 2 and infinity, overall and along a dim', scoped(() => {
    const t = f64([3, -4, 0, 12], [2, 2]);
    assertClose(t.norm(1), 19, { rtol: 1e-12 });
    assertClose(t.norm(), 13, { rtol: 1e-12 });
    assertClose(t.norm(Infinity), 12, { rtol: 1e-12 });
    assertClose(t.norm(2, 1), [5, 12], { rtol: 1e-12 });
    assertClose(torch.norm(t, 1, 0, true), [3, 16], { rtol: 1e-12 });
  }));

  test('logsumexp is stable for large inputs', scoped(() => {
    assertClose(torch.logsumexp(f64([1000, 1000], [2]), 0), 1000 + Math.LN2, { rtol: 1e-14 });
    const rows = f64([1, 2, 3, -1, 0, 1], [2, 3]);
    const lse = (r: number[]) => Math.log(r.reduce((s, v) => s + Math.exp(v), 0));
    assertClose(torch.logsumexp(rows, 1), [lse([1, 2, 3]), lse([-1, 0, 1])], { rtol: 1e-14 });
    assert.deepEqual(torch.logsumexp(rows, [0, 1], true).shape, [1, 1]);
  }));

  test('all and any', scoped(() => {
    assert.equal(torch.tensor([true, true]).all().item(), true);
    assert.equal(torch.tensor([true, false]).all().item(), false);
    assert.equal(torch.tensor([false, true]).any().item(), true);
    assert.equal(torch.tensor([0, 0]).any().item(), false);
  }));

  test('cumsum along a dim, with a dtype', scoped(() => {
    const t = torch.tensor([[1, 2, 3], [4, 5, 6]]);
    assert.deepEqual(torch.cumsum(t, 1).toArray(), [[1, 3, 6], [4, 9, 15]]);
    assert.deepEqual(torch.cumsum(t, 0).toArray(), [[1, 2, 3], [5, 7, 9]]);
    assert.equal(torch.cumsum(t, 0, 'float64').dtype, 'float64');
  }));

  test('gradients of the reductions', () => {
    torch.tidy(() => {
      const t = leaf([2, 3, 4], 31, -4, 4);
      gradcheck((t) => t.sum(), [t]);
      gradcheck((t) => t.sum([0, 2], { keepdim: true }), [t]);
      gradcheck((t) => t.mean(1), [t]);
      gradcheck((t) => torch.prod(t, 2), [t]);
      gradcheck((t) => torch.prod(t), [leaf([5], 4, 0.5, 1.5)]);
      gradcheck((t) => torch.variance(t, 2), [t]);
      gradcheck((t) => torch.std(t, [0, 1], false), [t]);
      gradcheck((t) => t.norm(), [t]);
      gradcheck((t) => t.norm(1, 2), [t]);
      gradcheck((t) => t.norm(Infinity, 2), [t]);
      gradcheck((t) => torch.logsumexp(t, 1), [t]);
      gradcheck((t) => t.max(2).values, [t]);
      gradcheck((t) => t.min(0).values, [t]);
      gradcheck((t) => t.max(), [t]);
      gradcheck((t) => torch.cumsum(t, 1), [t]);
    });
  });
});

// ------------------------------------------------------------------ views

describe('shapes and views', () => {
  const grid = () => torch.arange(24, undefined, 1, { dtype: 'float32' }).reshape(2, 3, 4);

  test('reshape and view keep row-major order; view accepts -1', scoped(() => {
    assert.deepEqual(torch.arange(6).reshape(2, 3).toArray(), [[0, 1, 2], [3, 4, 5]]);
    assert.deepEqual(torch.arange(6).view([3, -1]).toArray(), [[0, 1], [2, 3], [4, 5]]);
  }));

  test('view refuses a non-contiguous layout where reshape copies', scoped(() => {
    const t = torch.arange(6).reshape(2, 3).t();
    assert.throws(() => t.view(6), /view size is not compatible with input tensor's size and stride/);
    assert.deepEqual(t.reshape(6).toArray(), [0, 3, 1, 4, 2, 5]);
  }));

  test('views share storage: a write through the view shows in the base', scoped(() => {
    const base = torch.zeros([2, 3]);
    base.view(6).fill_(1);
    assert.deepEqual(flat(base), [1, 1, 1, 1, 1, 1]);
    base.t().select(0, 1).add_(5); // column 1 of base
    assert.deepEqual(base.toArray(), [[1, 6, 1], [1, 6, 1]]);
    torch.narrow(base, 1, 2, 1).zero_();
    assert.deepEqual(base.toArray(), [[1, 6, 0], [1, 6, 0]]);
    base.unsqueeze(0).squeeze(0).mul_(2);
    assert.deepEqual(base.toArray(), [[2, 12, 0], [2, 12, 0]]);
    assert.equal(base.view(6).storageKey().key, base.storageKey().key);
  }));

  test('permute and transpose reorder dims and strides without copying', scoped(() => {
    const g = grid();
    const p = g.permute(2, 0, 1);
    assert.deepEqual(p.shape, [4, 2, 3]);
    assert.deepEqual(p.strides(), [1, 12, 4]);
    assert.equal(p.isContiguous(), false);
    assert.equal(p.toArray()[3][1][2], 1 * 12 + 2 * 4 + 3);
    const tr = g.transpose(0, 2);
    assert.deepEqual(tr.shape, [4, 3, 2]);
    assert.equal(tr.toArray()[1][2][1], 12 + 8 + 1);
    assert.deepEqual(torch.tensor([[1, 2]]).t().toArray(), [[1], [2]]);
  }));

  test('contiguous copies a permuted tensor into row-major order', scoped(() => {
    const p = grid().permute([2, 0, 1]);
    const c = p.contiguous();
    assert.equal(c.isContiguous(), true);
    assert.deepEqual(c.strides(), [6, 3, 1]);
    assert.deepEqual(c.toArray(), p.toArray());
    const already = grid();
    assert.equal(already.contiguous().storageKey().key, already.storageKey().key);
  }));

  test('flatten and unflatten', scoped(() => {
    assert.deepEqual(grid().flatten().shape, [24]);
    assert.deepEqual(grid().flatten(1).shape, [2, 12]);
    assert.deepEqual(grid().flatten(0, 1).shape, [6, 4]);
    const u = torch.unflatten(grid(), 2, [2, 2]);
    assert.deepEqual(u.shape, [2, 3, 2, 2]);
    assert.deepEqual(flat(u), flat(grid()));
  }));

  test('narrow, select and slice (with a step) pick the right elements', scoped(() => {
    const m = torch.arange(20).reshape(4, 5);
    assert.deepEqual(m.narrow(1, 1, 2).toArray(), [[1, 2], [6, 7], [11, 12], [16, 17]]);
    assert.deepEqual(m.select(0, 2).toArray(), [10, 11, 12, 13, 14]);
    assert.deepEqual(m.select(1, -1).toArray(), [4, 9, 14, 19]);
    assert.deepEqual(torch.slice(m, 1, 0, 5, 2).toArray(), [[0, 2, 4], [5, 7, 9], [10, 12, 14], [15, 17, 19]]);
    assert.deepEqual(torch.slice(m, 0, 1).shape, [3, 5]);
    const s = torch.slice(m, 0, 1, 3);
    assert.equal(s.storageOffset(), 5);
  }));

  test('squeeze and unsqueeze', scoped(() => {
    const t = torch.zeros([1, 3, 1, 2]);
    assert.deepEqual(t.squeeze().shape, [3, 2]);
    assert.deepEqual(t.squeeze(2).shape, [1, 3, 2]);
    assert.deepEqual(t.squeeze(1).shape, [1, 3, 1, 2]);
    assert.deepEqual(t.unsqueeze(-1).shape, [1, 3, 1, 2, 1]);
    assert.deepEqual(t.unsqueeze(0).shape, [1, 1, 3, 1, 2]);
  }));

  test('expand broadcasts with stride 0; repeat copies', scoped(() => {
    const col = torch.tensor([[1], [2]]);
    const e = col.expand(2, 3);
    assert.deepEqual(e.toArray(), [[1, 1, 1], [2, 2, 2]]);
    assert.deepEqual(e.strides(), [1, 0]);
    assert.deepEqual(col.expand([-1, 2]).shape, [2, 2]);
    assert.deepEqual(col.expandAs(torch.zeros([2, 4])).shape, [2, 4]);
    const r = torch.tensor([1, 2]).repeat(2, 2);
    assert.deepEqual(r.toArray(), [[1, 2, 1, 2], [1, 2, 1, 2]]);
  }));

  test('cat and stack', scoped(() => {
    const a = torch.tensor([[1, 2]]), b = torch.tensor([[3, 4]]);
    assert.deepEqual(torch.cat([a, b]).toArray(), [[1, 2], [3, 4]]);
    assert.deepEqual(torch.cat([a, b], 1).toArray(), [[1, 2, 3, 4]]);
    assert.deepEqual(torch.stack([a, b]).shape, [2, 1, 2]);
    assert.deepEqual(torch.stack([a, b], 2).toArray(), [[[1, 3], [2, 4]]]);
  }));

  test('split by size and by sizes, chunk', scoped(() => {
    const t = torch.arange(7);
    assert.deepEqual(torch.split(t, 3).map((p) => p.toArray()), [[0, 1, 2], [3, 4, 5], [6]]);
    assert.deepEqual(torch.split(t, [2, 5]).map((p) => p.toArray()), [[0, 1], [2, 3, 4, 5, 6]]);
    assert.deepEqual(torch.chunk(t, 3).map((p) => p.toArray()), [[0, 1, 2], [3, 4, 5], [6]]);
    assert.deepEqual(torch.chunk(torch.arange(6).reshape(2, 3), 3, 1).map((p) => p.shape), [[2, 1], [2, 1], [2, 1]]);
  }));

  test('flip reverses the given dims', scoped(() => {
    const m = torch.tensor([[1, 2, 3], [4, 5, 6]]);
    assert.deepEqual(torch.flip(m, [1]).toArray(), [[3, 2, 1], [6, 5, 4]]);
    assert.deepEqual(torch.flip(m, [0, 1]).toArray(), [[6, 5, 4], [3, 2, 1]]);
  }));

  test('channels_last: NHWC strides, same values, and the same conv2d result', scoped(() => {
    const x = f64(values(2 * 3 * 4 * 5, 41), [2, 3, 4, 5]);
    const cl = x.contiguous('channels_last');
    assert.deepEqual(cl.strides(), [60, 1, 15, 3]);
    assert.equal(cl.isContiguous('channels_last'), true);
    assert.equal(cl.isContiguous(), false);
    assert.deepEqual(cl.shape, [2, 3, 4, 5]);
    assert.deepEqual(flat(cl), flat(x));
    assert.deepEqual(cl.clone('preserve').strides(), [60, 1, 15, 3]);
    assert.deepEqual(torch.empty([2, 3, 4, 5], { memoryFormat: 'channels_last' }).strides(), [60, 1, 15, 3]);
    const w = f64(values(4 * 3 * 3 * 3, 42), [4, 3, 3, 3]), b = f64([0.1, 0.2, 0.3, 0.4], [4]);
    const opts = { padding: 1, stride: [1, 2] as [number, number] };
    assertClose(torch.conv2d(cl, w, b, opts), torch.conv2d(x, w, b, opts), { rtol: 1e-12, atol: 1e-12 });
    const xf = x.float(), wf = w.float();
    assertClose(torch.conv2d(xf.contiguous('channels_last'), wf.contiguous('channels_last')), torch.conv2d(xf, wf), { rtol: 1e-5, atol: 1e-5 });
  }));

  test('gradients flow through views', () => {
    torch.tidy(() => {
      const t = leaf([2, 3, 4], 51);
      gradcheck((t) => t.permute(2, 0, 1).reshape(4, 6).narrow(1, 1, 3), [t]);
      gradcheck((t) => torch.slice(t.transpose(0, 1), 2, 0, 4, 2).select(0, 1), [t]);
      gradcheck((t) => torch.cat([t, torch.flip(t, [2])], 1), [t]);
      gradcheck((t) => torch.stack(torch.split(t, 2, 2), 0), [t]);
      gradcheck((t) => t.sum(1, { keepdim: true }).expand(2, 5, 4).mul(t.repeat(1, 2, 1).narrow(1, 0, 5)), [t]);
      gradcheck((t) => torch.unflatten(t.flatten(), 0, [4, 6]).unsqueeze(1).squeeze(), [t]);
    });
  });
});

// ------------------------------------------------------------------ linear algebra and nn

/** C = A·B for row-major A [n, k] and B [k, m]. */
function matmulRef(a: number[], b: number[], n: number, k: number, m: number): number[] {
  const out = new Array(n * m).fill(0);
  for (let i = 0; i < n; i++) for (let j = 0; j < m; j++) for (let p = 0; p < k; p++) out[i * m + j] += a[i * k + p] * b[p * m + j];
  return out;
}

interface ConvRefOptions {
  stride: [number, number];
  padTop: number;
  padLeft: number;
  dilation: [number, number];
  groups: number;
  outH: number;
  outW: number;
}
/** Direct 2-D convolution (cross-correlation) of NCHW input with [O, C/groups, kh, kw] weights. */
function conv2dRef(x: number[], xs: number[], w: number[], ws: number[], bias: number[] | undefined, o: ConvRefOptions): number[] {
  const [n, c, h, wd] = xs, [oc, cpg, kh, kw] = ws;
  const ocpg = oc / o.groups;
  const out: number[] = [];
  for (let b = 0; b < n; b++)
    for (let f = 0; f < oc; f++)
      for (let y = 0; y < o.outH; y++)
        for (let z = 0; z < o.outW; z++) {
          let acc = bias ? bias[f] : 0;
          const g = Math.floor(f / ocpg);
          for (let ci = 0; ci < cpg; ci++)
            for (let i = 0; i < kh; i++)
              for (let j = 0; j < kw; j++) {
                const iy = y * o.stride[0] - o.padTop + i * o.dilation[0];
                const ix = z * o.stride[1] - o.padLeft + j * o.dilation[1];
                if (iy < 0 || iy >= h || ix < 0 || ix >= wd) continue;
                acc += x[((b * c + g * cpg + ci) * h + iy) * wd + ix] * w[((f * cpg + ci) * kh + i) * kw + j];
              }
          out.push(acc);
        }
  return out;
}

describe('matmul and linear', () => {
  test('2-D matmul and mm match a JS product', scoped(() => {
    const a = values(12, 61), b = values(20, 62);
    const expected = matmulRef(a, b, 3, 4, 5);
    assertClose(torch.matmul(f64(a, [3, 4]), f64(b, [4, 5])), expected, { rtol: 1e-12, atol: 1e-14 });
    assertClose(torch.mm(f64(a, [3, 4]), f64(b, [4, 5])), expected, { rtol: 1e-12, atol: 1e-14 });
  }));

  test('batched matmul and bmm multiply each batch', scoped(() => {
    const a = values(24, 63), b = values(40, 64);
    const expected = [...matmulRef(a.slice(0, 12), b.slice(0, 20), 3, 4, 5), ...matmulRef(a.slice(12), b.slice(20), 3, 4, 5)];
    assertClose(torch.matmul(f64(a, [2, 3, 4]), f64(b, [2, 4, 5])), expected, { rtol: 1e-12, atol: 1e-14 });
    assertClose(torch.bmm(f64(a, [2, 3, 4]), f64(b, [2, 4, 5])), expected, { rtol: 1e-12, atol: 1e-14 });
  }));

  test('matmul broadcasts a matrix over the batch, and handles vectors', scoped(() => {
    const a = values(24, 65), b = values(20, 66);
    const expected = [...matmulRef(a.slice(0, 12), b, 3, 4, 5), ...matmulRef(a.slice(12), b, 3, 4, 5)];
    assertClose(torch.matmul(f64(a, [2, 3, 4]), f64(b, [4, 5])), expected, { rtol: 1e-12, atol: 1e-14 });
    assert.deepEqual(torch.matmul(torch.tensor([1, 2]), torch.tensor([[1, 2], [3, 4]])).toArray(), [7, 10]);
    assert.equal(torch.matmul(torch.tensor([1, 2]), torch.tensor([3, 4])).item(), 11);
  }));

  test('linear is x·Wᵀ + b', scoped(() => {
    const x = values(6, 67), w = values(12, 68), b = [0.5, -1, 2, 0];
    const wt = [0, 1, 2].flatMap((k) => [0, 1, 2, 3].map((o) => w[o * 3 + k]));
    const expected = matmulRef(x, wt, 2, 3, 4);
    assertClose(torch.linear(f64(x, [2, 3]), f64(w, [4, 3])), expected, { rtol: 1e-12, atol: 1e-14 });
    assertClose(torch.linear(f64(x, [2, 3]), f64(w, [4, 3]), f64(b, [4])), expected.map((v, i) => v + b[i % 4]), { rtol: 1e-12, atol: 1e-14 });
  }));

  test('gradients of matmul, mm, bmm and linear', () => {
    torch.tidy(() => {
      const a = leaf([2, 3, 4], 61), b = leaf([4, 2], 62), w = leaf([5, 4], 63), bias = leaf([5], 64);
      gradcheck((a, b) => torch.matmul(a, b), [a, b]);
      gradcheck((a, b) => torch.mm(a, b), [leaf([3, 4], 65), b]);
      gradcheck((a, b) => torch.bmm(a, b), [a, leaf([2, 4, 2], 66)]);
      gradcheck((x, w, bias) => torch.linear(x, w, bias), [a, w, bias]);
    });
  });
});

describe('conv2d', () => {
  const x = values(2 * 4 * 6 * 7, 71), xs = [2, 4, 6, 7];
  /** Checks conv2d against conv2dRef; `geometry` gives the expected padding and output size. */
  const check = (ws: number[], withBias: boolean, opts: torch.Conv2dOptions, geometry: Partial<ConvRefOptions> & { outH: number; outW: number }) =>
    torch.tidy(() => {
      const ref: ConvRefOptions = { stride: [1, 1], padTop: 0, padLeft: 0, dilation: [1, 1], groups: 1, ...geometry };
      const w = values(numel(ws), 72), b = withBias ? values(ws[0], 73) : undefined;
      const out = torch.conv2d(f64(x, xs), f64(w, ws), b && f64(b, [ws[0]]), opts);
      assert.deepEqual(out.shape, [2, ws[0], ref.outH, ref.outW]);
      assertClose(out, conv2dRef(x, xs, w, ws, b, ref), { rtol: 1e-12, atol: 1e-13 });
    });

  test('stride 1, no padding, with bias', () => check([3, 4, 3, 3], true, {}, { outH: 4, outW: 5 }));
  test('integer stride and padding', () => check([3, 4, 3, 3], true, { stride: 2, padding: 1 }, { stride: [2, 2], padTop: 1, padLeft: 1, outH: 3, outW: 4 }));
  test('pair stride and padding', () => check([2, 4, 3, 2], false, { stride: [1, 2], padding: [2, 1] }, { stride: [1, 2], padTop: 2, padLeft: 1, outH: 8, outW: 4 }));
  test('dilation', () => check([2, 4, 3, 3], true, { dilation: [2, 1], padding: 1 }, { dilation: [2, 1], padTop: 1, padLeft: 1, outH: 4, outW: 7 }));
  test('groups', () => check([6, 2, 3, 3], true, { groups: 2, padding: 1 }, { groups: 2, padTop: 1, padLeft: 1, outH: 6, outW: 7 }));
  test('depthwise (groups = channels)', () => check([4, 1, 3, 3], false, { groups: 4 }, { groups: 4, outH: 4, outW: 5 }));
  test("padding 'same' keeps the size (odd kernel, dilation 2)", () => check([3, 4, 3, 3], true, { padding: 'same', dilation: 2 }, { dilation: [2, 2], padTop: 2, padLeft: 2, outH: 6, outW: 7 }));
  // an even kernel pads one more on the bottom/right, as PyTorch does
  test("padding 'same' with an even kernel", () => check([3, 4, 2, 4], false, { padding: 'same' }, { padTop: 0, padLeft: 1, outH: 6, outW: 7 }));
  test("padding 'valid' is no padding", () => check([3, 4, 3, 3], false, { padding: 'valid' }, { outH: 4, outW: 5 }));

  test('gradients of input, weight and bias', () => {
    torch.tidy(() => {
      const input = leaf([1, 4, 5, 5], 74), w = leaf([2, 2, 3, 3], 75), b = leaf([2], 76);
      gradcheck((x, w, b) => torch.conv2d(x, w, b, { stride: 2, padding: 1, groups: 2 }), [input, w, b]);
      gradcheck((x, w) => torch.conv2d(x, w, undefined, { padding: 'same', dilation: [1, 2] }), [input, leaf([3, 4, 2, 3], 77)]);
    });
  });
});

describe('normalization layers', () => {
  const shape = [3, 2, 2, 2], eps = 1e-5;
  const xv = values(24, 81, -2, 3);
  /** Per-channel biased mean and variance of an NCHW array. */
  const channelStats = (v: number[], [n, c, h, w]: number[]) =>
    Array.from({ length: c }, (_, ch) => {
      const xs: number[] = [];
      for (let b = 0; b < n; b++) for (let i = 0; i < h * w; i++) xs.push(v[(b * c + ch) * h * w + i]);
      const mean = xs.reduce((s, q) => s + q, 0) / xs.length;
      const variance = xs.reduce((s, q) => s + (q - mean) ** 2, 0) / xs.length;
      return { mean, variance, count: xs.length };
    });
  const channelOf = (i: number) => Math.floor(i / 4) % 2;

  test('batchNorm in training normalises with batch statistics and updates running stats', scoped(() => {
    const weight = [1.5, -0.5], bias = [0.1, 0.2], momentum = 0.3;
    const rm = f64([0.5, -0.5], [2]), rv = f64([2, 3], [2]);
    const out = torch.batchNorm(f64(xv, shape), rm, rv, { weight: f64(weight, [2]), bias: f64(bias, [2]), training: true, momentum, eps });
    const stats = channelStats(xv, shape);
    assertClose(out, xv.map((v, i) => { const s = stats[channelOf(i)]; return ((v - s.mean) / Math.sqrt(s.variance + eps)) * weight[channelOf(i)] + bias[channelOf(i)]; }), { rtol: 1e-10, atol: 1e-12 });
    // the running variance is updated with the unbiased batch variance
    assertClose(rm, [0.5, -0.5].map((r, c) => (1 - momentum) * r + momentum * stats[c].mean), { rtol: 1e-12 });
    assertClose(rv, [2, 3].map((r, c) => (1 - momentum) * r + momentum * stats[c].variance * (stats[c].count / (stats[c].count - 1))), { rtol: 1e-12 });
  }));

  test('batchNorm in eval uses the running statistics and leaves them alone', scoped(() => {
    const rm = f64([0.5, -0.5], [2]), rv = f64([2, 3], [2]);
    const out = torch.batchNorm(f64(xv, shape), rm, rv, { training: false, eps });
    assertClose(out, xv.map((v, i) => (v - [0.5, -0.5][channelOf(i)]) / Math.sqrt([2, 3][channelOf(i)] + eps)), { rtol: 1e-12 });
    assert.deepEqual(flat(rm), [0.5, -0.5]);
    assert.deepEqual(flat(rv), [2, 3]);
  }));

  test('layerNorm normalises the trailing dims, then scales and shifts', scoped(() => {
    const x = values(12, 82, -3, 3), weight = values(6, 83), bias = values(6, 84);
    const out = torch.layerNorm(f64(x, [2, 3, 2]), [3, 2], f64(weight, [3, 2]), f64(bias, [3, 2]), eps);
    const expected = [0, 1].flatMap((r) => {
      const row = x.slice(r * 6, r * 6 + 6);
      const mean = row.reduce((s, q) => s + q, 0) / 6;
      const variance = row.reduce((s, q) => s + (q - mean) ** 2, 0) / 6;
      return row.map((q, i) => ((q - mean) / Math.sqrt(variance + eps)) * weight[i] + bias[i]);
    });
    assertClose(out, expected, { rtol: 1e-10, atol: 1e-12 });
    const plain = torch.layerNorm(f64(x, [4, 3]), [3]);
    assertClose(plain.mean(1), [0, 0, 0, 0], { atol: 1e-12 });
  }));

  test('normalize divides by the p-norm along a dim, clamped by eps', scoped(() => {
    assertClose(torch.normalize(f64([3, 4, 0, 0], [2, 2])), [0.6, 0.8, 0, 0], { rtol: 1e-12 });
    assertClose(torch.normalize(f64([3, -1, 1, 3], [2, 2]), 1, 0), [0.75, -0.25, 0.25, 0.75], { rtol: 1e-12 });
    assertClose(torch.normalize(f64([1e-20, 0], [1, 2]), 2, 1, 1e-12), [1e-8, 0], { rtol: 1e-12 });
  }));

  test('gradients of batchNorm (training), layerNorm and normalize', () => {
    torch.tidy(() => {
      const x = leaf(shape, 85, -2, 3), w = leaf([2], 86, 0.5, 1.5), b = leaf([2], 87);
      gradcheck((x, w, b) => torch.batchNorm(x, undefined, undefined, { weight: w, bias: b, training: true }), [x, w, b]);
      gradcheck((x, w, b) => torch.batchNorm(x, torch.zeros([2], { dtype: 'float64' }), torch.ones([2], { dtype: 'float64' }), { weight: w, bias: b, training: true }), [x, w, b]);
      const y = leaf([2, 3, 2], 88), lw = leaf([3, 2], 89), lb = leaf([3, 2], 90);
      gradcheck((y, w, b) => torch.layerNorm(y, [3, 2], w, b), [y, lw, lb]);
      gradcheck((y) => torch.normalize(y, 2, 1), [y]);
      gradcheck((y) => torch.normalize(y, 1, 2), [y]);
    });
  });
});

describe('activations, dropout, pooling', () => {
  test('prelu with one weight per channel or a single shared weight', scoped(() => {
    const x = f64([-1, 2, 3, -4], [1, 2, 2]); // channel 0: [-1, 2], channel 1: [3, -4]
    assert.deepEqual(torch.prelu(x, f64([0.1, 0.5], [2])).toArray(), [[[-0.1, 2], [3, -2]]]);
    assert.deepEqual(torch.prelu(x, f64([0.25], [1])).toArray(), [[[-0.25, 2], [3, -1]]]);
  }));

  test('gradient of prelu (per-channel and single)', () => {
    torch.tidy(() => {
      const x = f64([-1, 2, -0.5, 3, -4, 0.7, 1.1, -2.2], [2, 2, 2], true);
      gradcheck((x, w) => torch.prelu(x, w), [x, f64([0.1, 0.5], [2], true)]);
      gradcheck((x, w) => torch.prelu(x, w), [x, f64([0.3], [1], true)]);
    });
  });

  test('dropout is the identity for p = 0 and outside training', scoped(() => {
    const x = torch.randn([100]);
    assert.deepEqual(flat(torch.dropout(x, 0)), flat(x));
    assert.deepEqual(flat(torch.dropout(x, 0.5, false)), flat(x));
  }));

  test('dropout with p = 0.5 zeroes about half and scales the rest by 2', scoped(() => {
    torch.manualSeed(3);
    const out = flat(torch.dropout(torch.ones([20000]), 0.5));
    const zeros = out.filter((v) => v === 0).length;
    assert.ok(Math.abs(zeros / out.length - 0.5) < 0.02, `zero fraction ${zeros / out.length}`);
    assert.ok(out.every((v) => v === 0 || v === 2));
    const p = 0.2;
    const kept = flat(torch.dropout(torch.ones([1000]), p)).filter((v) => v !== 0);
    assert.ok(kept.every((v) => Math.abs(v - 1 / (1 - p)) < 1e-6));
  }));

  // JS pooling over one [H, W] plane; windows are [start, end) clipped to the input
  const plane = values(5 * 6, 91);
  const poolRef = (reduce: (v: number[], window: number) => number, k: number, s: number, pad: number, outH: number, outW: number) =>
    Array.from({ length: outH * outW }, (_, o) => {
      const oy = Math.floor(o / outW), ox = o % outW, v: number[] = [];
      for (let i = 0; i < k; i++) for (let j = 0; j < k; j++) {
        const y = oy * s - pad + i, x = ox * s - pad + j;
        if (y >= 0 && y < 5 && x >= 0 && x < 6) v.push(plane[y * 6 + x]);
      }
      return reduce(v, k * k);
    });

  test('maxPool2d matches a JS window maximum', scoped(() => {
    const x = f64(plane, [1, 1, 5, 6]);
    assertClose(torch.maxPool2d(x, 2), poolRef((v) => Math.max(...v), 2, 2, 0, 2, 3));
    assertClose(torch.maxPool2d(x, 3, { stride: 2, padding: 1 }), poolRef((v) => Math.max(...v), 3, 2, 1, 3, 3));
    assert.deepEqual(torch.maxPool2d(x, 2, { ceilMode: true }).shape, [1, 1, 3, 3]);
    // dilation 2: each window is x[i][j], x[i][j+2], x[i+2][j], x[i+2][j+2]; the last is largest
    const grid = torch.arange(16, undefined, 1, { dtype: 'float32' }).reshape(1, 1, 4, 4);
    assert.deepEqual(torch.maxPool2d(grid, 2, { stride: 1, dilation: 2 }).toArray(), [[[[10, 11], [14, 15]]]]);
  }));

  test('avgPool2d matches a JS window mean, with and without counting padding', scoped(() => {
    const x = f64(plane, [1, 1, 5, 6]);
    assertClose(torch.avgPool2d(x, 2), poolRef((v) => v.reduce((s, q) => s + q, 0) / 4, 2, 2, 0, 2, 3), { rtol: 1e-12 });
    assertClose(torch.avgPool2d(x, 3, { stride: 2, padding: 1 }), poolRef((v, n) => v.reduce((s, q) => s + q, 0) / n, 3, 2, 1, 3, 3), { rtol: 1e-12 });
    assertClose(torch.avgPool2d(x, 3, { stride: 2, padding: 1, countIncludePad: false }), poolRef((v) => v.reduce((s, q) => s + q, 0) / v.length, 3, 2, 1, 3, 3), { rtol: 1e-12 });
  }));

  test('adaptiveAvgPool2d averages the windows [floor(i·in/out), ceil((i+1)·in/out))', scoped(() => {
    const x = f64(plane, [1, 1, 5, 6]);
    const expected: number[] = [];
    for (let i = 0; i < 3; i++) for (let j = 0; j < 4; j++) {
      const y0 = Math.floor((i * 5) / 3), y1 = Math.ceil(((i + 1) * 5) / 3), x0 = Math.floor((j * 6) / 4), x1 = Math.ceil(((j + 1) * 6) / 4);
      let s = 0;
      for (let y = y0; y < y1; y++) for (let xx = x0; xx < x1; xx++) s += plane[y * 6 + xx];
      expected.push(s / ((y1 - y0) * (x1 - x0)));
    }
    assertClose(torch.adaptiveAvgPool2d(x, [3, 4]), expected, { rtol: 1e-12 });
    assertClose(torch.adaptiveAvgPool2d(x, 1), plane.reduce((s, q) => s + q, 0) / 30, { rtol: 1e-12 });
  }));

  test('gradients of the pools', () => {
    torch.tidy(() => {
      const x = leaf([1, 2, 5, 6], 92);
      gradcheck((x) => torch.maxPool2d(x, 3, { stride: 2, padding: 1 }), [x]);
      gradcheck((x) => torch.avgPool2d(x, 3, { stride: 2, padding: 1, countIncludePad: false }), [x]);
      gradcheck((x) => torch.adaptiveAvgPool2d(x, [3, 4]), [x]);
    });
  });
});

describe('softmax and losses', () => {
  const logits = values(12, 101, -3, 3);
  const logSoftmaxRow = (row: number[]) => {
    const m = Math.max(...row), lse = m + Math.log(row.reduce((s, v) => s + Math.exp(v - m), 0));
    return row.map((v) => v - lse);
  };
  const rows = [0, 1, 2].map((r) => logSoftmaxRow(logits.slice(r * 4, r * 4 + 4)));

  test('softmax rows sum to 1 and match exp(x)/Σexp(x)', scoped(() => {
    const s = torch.softmax(f64(logits, [3, 4]), 1);
    assertClose(s.sum(1), [1, 1, 1], { rtol: 1e-14 });
    assertClose(s, rows.flat().map(Math.exp), { rtol: 1e-12 });
    assertClose(f64(logits, [3, 4]).softmax(0).sum(0), [1, 1, 1, 1], { rtol: 1e-14 });
    assert.equal(torch.softmax(torch.tensor([1, 2]), 0, 'float64').dtype, 'float64');
  }));

  test('logSoftmax matches x − logsumexp(x), also for large logits', scoped(() => {
    assertClose(torch.logSoftmax(f64(logits, [3, 4]), 1), rows.flat(), { rtol: 1e-12 });
    assertClose(torch.logSoftmax(f64([1000, 0], [2]), 0), [0, -1000], { atol: 1e-12 });
  }));

  const targets = [2, 0, 3];
  const nll = targets.map((t, i) => -rows[i][t]);

  test('crossEntropy with reduction none, sum and mean', scoped(() => {
    const x = f64(logits, [3, 4]), t = long(targets);
    assertClose(torch.crossEntropy(x, t, { reduction: 'none' }), nll, { rtol: 1e-12 });
    assertClose(torch.crossEntropy(x, t, { reduction: 'sum' }), nll[0] + nll[1] + nll[2], { rtol: 1e-12 });
    assertClose(torch.crossEntropy(x, t), (nll[0] + nll[1] + nll[2]) / 3, { rtol: 1e-12 });
  }));

  test('crossEntropy skips ignoreIndex targets, also in the mean', scoped(() => {
    const x = f64(logits, [3, 4]), t = long([2, -100, 3]);
    assertClose(torch.crossEntropy(x, t, { reduction: 'none' }), [nll[0], 0, nll[2]], { rtol: 1e-12 });
    assertClose(torch.crossEntropy(x, t), (nll[0] + nll[2]) / 2, { rtol: 1e-12 });
    assertClose(torch.crossEntropy(x, long([2, 1, 1]), { ignoreIndex: 1 }), nll[0], { rtol: 1e-12 });
  }));

  test('crossEntropy with class weights takes the weighted mean', scoped(() => {
    const w = [0.5, 1, 2, 4];
    const expected = (w[2] * nll[0] + w[0] * nll[1] + w[3] * nll[2]) / (w[2] + w[0] + w[3]);
    assertClose(torch.crossEntropy(f64(logits, [3, 4]), long(targets), { weight: f64(w, [4]) }), expected, { rtol: 1e-12 });
  }));

  test('crossEntropy with label smoothing mixes in the uniform target', scoped(() => {
    const eps = 0.2, C = 4;
    const smoothed = targets.map((t, i) => (1 - eps) * -rows[i][t] + (eps / C) * -rows[i].reduce((s, v) => s + v, 0));
    const x = f64(logits, [3, 4]);
    assertClose(torch.crossEntropy(x, long(targets), { labelSmoothing: eps, reduction: 'none' }), smoothed, { rtol: 1e-12 });
    assertClose(torch.crossEntropy(x, long(targets), { labelSmoothing: eps }), smoothed.reduce((s, v) => s + v, 0) / 3, { rtol: 1e-12 });
  }));

  test('nllLoss on log-probabilities and mseLoss', scoped(() => {
    const lp = torch.logSoftmax(f64(logits, [3, 4]), 1);
    assertClose(torch.nllLoss(lp, long(targets), { reduction: 'sum' }), nll[0] + nll[1] + nll[2], { rtol: 1e-12 });
    const a = f64([1, 2, 3], [3]), b = f64([1, 0, 6], [3]);
    assertClose(torch.mseLoss(a, b), 13 / 3, { rtol: 1e-14 });
    assertClose(torch.mseLoss(a, b, 'sum'), 13, { rtol: 1e-14 });
    assertClose(torch.mseLoss(a, b, 'none'), [0, 4, 9], { rtol: 1e-14 });
  }));

  test('gradients of softmax, logSoftmax, crossEntropy, nllLoss and mseLoss', () => {
    torch.tidy(() => {
      const x = f64(logits, [3, 4], true);
      gradcheck((x) => torch.softmax(x, 1), [x]);
      gradcheck((x) => torch.logSoftmax(x, 0), [x]);
      gradcheck((x) => torch.crossEntropy(x, long(targets)), [x]);
      gradcheck((x) => torch.crossEntropy(x, long([2, -100, 3]), { reduction: 'sum', labelSmoothing: 0.1 }), [x]);
      gradcheck((x, w) => torch.crossEntropy(x, long(targets), { weight: w }), [x, f64([0.5, 1, 2, 4], [4])]);
      gradcheck((x) => torch.nllLoss(torch.logSoftmax(x, 1), long(targets)), [x]);
      gradcheck((a, b) => torch.mseLoss(a, b), [leaf([5], 102), leaf([5], 103)]);
    });
  });
});

// ------------------------------------------------------------------ indexing

describe('indexing', () => {
  const m = () => torch.tensor([[1, 2, 3], [4, 5, 6], [7, 8, 9]]);

  test('indexSelect picks rows or columns, with repeats', scoped(() => {
    assert.deepEqual(m().indexSelect(0, long([2, 0, 2])).toArray(), [[7, 8, 9], [1, 2, 3], [7, 8, 9]]);
    assert.deepEqual(torch.indexSelect(m(), 1, long([1])).toArray(), [[2], [5], [8]]);
  }));

  test('gather reads out[i][j] = x[i][index[i][j]] along dim 1', scoped(() => {
    assert.deepEqual(m().gather(1, long([[0, 0], [2, 1], [1, 2]])).toArray(), [[1, 1], [6, 5], [8, 9]]);
    assert.deepEqual(m().gather(0, long([[2, 0, 1]])).toArray(), [[7, 2, 6]]);
  }));

  test('scatter writes a tensor or a value at the index; the input is untouched', scoped(() => {
    const z = torch.zeros([2, 3]);
    assert.deepEqual(torch.scatter(z, 1, long([[0, 2], [1, 0]]), torch.tensor([[1, 2], [3, 4]])).toArray(), [[1, 0, 2], [4, 3, 0]]);
    assert.deepEqual(torch.scatter(z, 1, long([[1], [2]]), 9).toArray(), [[0, 9, 0], [0, 0, 9]]);
    assert.deepEqual(flat(z), [0, 0, 0, 0, 0, 0]);
  }));

  test('scatterAdd sums duplicates', scoped(() => {
    const out = torch.scatterAdd(torch.ones([2, 3]), 1, long([[0, 0], [1, 1]]), torch.tensor([[1, 2], [3, 4]]));
    assert.deepEqual(out.toArray(), [[4, 1, 1], [1, 8, 1]]);
  }));

  test('indexAdd adds alpha·source rows at the index, duplicates summed', scoped(() => {
    const out = torch.indexAdd(torch.ones([3, 2]), 0, long([0, 2, 0]), torch.tensor([[1, 1], [2, 2], [3, 3]]), 2);
    assert.deepEqual(out.toArray(), [[9, 9], [1, 1], [5, 5]]);
  }));

  test('index: advanced indexing with tensors, broadcasting and null', scoped(() => {
    const x = torch.arange(12).reshape(3, 4);
    assert.deepEqual(x.index([long([0, 2]), long([1, 3])]).toArray(), [1, 11]);
    assert.deepEqual(x.index([long([[0], [2]]), long([1, 3])]).toArray(), [[1, 3], [9, 11]]);
    assert.deepEqual(x.index([null, long([0, 3])]).toArray(), [[0, 3], [4, 7], [8, 11]]);
    assert.deepEqual(x.index([long([2, 2])]).toArray(), [[8, 9, 10, 11], [8, 9, 10, 11]]);
    assert.deepEqual(x.index([torch.tensor([true, false, true])]).shape, [2, 4]);
  }));

  test('indexPut replaces or accumulates (duplicates summed); out of place', scoped(() => {
    const z = torch.zeros([4]), idx = long([0, 0, 2]), v = torch.tensor([1, 2, 3]);
    assert.deepEqual(torch.indexPut(z, [idx], v, true).toArray(), [3, 0, 3, 0]);
    assert.deepEqual(torch.indexPut(z, [long([1, 3])], torch.tensor([5, 6])).toArray(), [0, 5, 0, 6]);
    assert.deepEqual(flat(z), [0, 0, 0, 0]);
    const g = torch.zeros([2, 3]);
    assert.deepEqual(torch.indexPut(g, [null, long([1])], torch.tensor([7])).toArray(), [[0, 7, 0], [0, 7, 0]]);
  }));

  test('inplace.indexPut modifies and returns its first argument', scoped(() => {
    const z = torch.zeros([3]);
    const r = torch.inplace.indexPut(z, [long([0, 0, 2])], torch.tensor([1, 2, 3]), true);
    assert.equal(r, z);
    assert.deepEqual(z.toArray(), [3, 0, 3]);
  }));

  test('the other in-place indexing ops: indexCopy, indexAdd, scatter, maskedFill', scoped(() => {
    const z = torch.zeros([3, 2]);
    assert.equal(torch.inplace.indexCopy(z, 0, long([2, 0]), torch.tensor([[1, 2], [3, 4]])), z);
    assert.deepEqual(z.toArray(), [[3, 4], [0, 0], [1, 2]]);
    torch.inplace.indexAdd(z, 0, long([1, 1]), torch.tensor([[1, 1], [2, 2]]), 10);
    assert.deepEqual(z.toArray(), [[3, 4], [30, 30], [1, 2]]);
    torch.inplace.scatter(z, 1, long([[1], [0], [1]]), torch.tensor([[-1], [-2], [-3]]));
    assert.deepEqual(z.toArray(), [[3, -1], [-2, 30], [1, -3]]);
    torch.inplace.maskedFill(z, torch.tensor([[true, false], [false, false], [false, true]]), 0);
    assert.deepEqual(z.toArray(), [[0, -1], [-2, 30], [1, 0]]);
  }));

  test('maskedFill (scalar or 0-dim tensor), maskedSelect and nonzero', scoped(() => {
    const x = torch.tensor([[1, -2], [-3, 4]]);
    const neg = x.lt(0);
    assert.deepEqual(x.maskedFill(neg, 0).toArray(), [[1, 0], [0, 4]]);
    assert.deepEqual(x.maskedFill(neg, torch.tensor(9)).toArray(), [[1, 9], [9, 4]]);
    assert.deepEqual(torch.maskedSelect(x, neg).toArray(), [-2, -3]);
    const nz = torch.nonzero(neg);
    assert.equal(nz.dtype, 'int64');
    assert.deepEqual(nz.toArray(), [[0, 1], [1, 0]]);
  }));

  test('topk, largest and smallest', scoped(() => {
    const x = torch.tensor([5, 1, 4, 2, 3]);
    const hi = torch.topk(x, 2);
    assert.deepEqual([hi.values.toArray(), hi.indices.toArray()], [[5, 4], [0, 2]]);
    const lo = torch.topk(x, 2, -1, false);
    assert.deepEqual([lo.values.toArray(), lo.indices.toArray()], [[1, 2], [1, 3]]);
    assert.deepEqual(torch.topk(torch.tensor([[1, 3], [4, 2]]), 1, 0).indices.toArray(), [[1, 0]]);
  }));

  test('sort ascending and descending; stable keeps the order of equal keys', scoped(() => {
    const x = torch.tensor([2, 1, 2, 1, 2]);
    const asc = torch.sort(x, -1, false, true);
    assert.deepEqual([asc.values.toArray(), asc.indices.toArray()], [[1, 1, 2, 2, 2], [1, 3, 0, 2, 4]]);
    const desc = torch.sort(x, 0, true, true);
    assert.deepEqual([desc.values.toArray(), desc.indices.toArray()], [[2, 2, 2, 1, 1], [0, 2, 4, 1, 3]]);
    assert.deepEqual(torch.sort(torch.tensor([[3, 1], [0, 2]]), 0).values.toArray(), [[0, 1], [3, 2]]);
  }));

  test('argsort', scoped(() => {
    assert.deepEqual(torch.argsort(torch.tensor([0.3, -1, 2])).toArray(), [1, 0, 2]);
    assert.deepEqual(torch.argsort(torch.tensor([0.3, -1, 2]), -1, true).toArray(), [2, 0, 1]);
  }));

  test('unique gives sorted values, the inverse index and the counts', scoped(() => {
    const u = torch.unique(torch.tensor([3, 1, 2, 3, 1, 3], { dtype: 'int64' }));
    assert.deepEqual(u.values.toArray(), [1, 2, 3]);
    assert.deepEqual(u.inverse.toArray(), [2, 0, 1, 2, 0, 2]);
    assert.deepEqual(u.counts.toArray(), [2, 1, 3]);
  }));

  test('searchsorted with left and right sides', scoped(() => {
    const seq = torch.tensor([1, 3, 5, 7]), v = torch.tensor([3, 6, 9, 0, 7]);
    assert.deepEqual(torch.searchsorted(seq, v).toArray(), [1, 3, 4, 0, 3]);
    assert.deepEqual(torch.searchsorted(seq, v, true).toArray(), [2, 3, 4, 0, 4]);
    assert.equal(torch.searchsorted(seq, v, false, true).dtype, 'int32');
  }));

  test('gradients of indexSelect, gather, index, scatterAdd, indexPut, maskedFill', () => {
    torch.tidy(() => {
      const x = leaf([3, 4], 111);
      gradcheck((x) => x.indexSelect(0, long([2, 0, 2])), [x]);
      gradcheck((x) => x.gather(1, long([[0, 0], [3, 1], [2, 2]])), [x]);
      gradcheck((x) => x.index([long([0, 2, 2]), long([1, 3, 3])]), [x]);
      gradcheck((x) => x.index([null, long([3, 0, 3])]), [x]);
      gradcheck((x, s) => torch.scatterAdd(x, 1, long([[0, 0], [1, 1], [3, 3]]), s), [x, leaf([3, 2], 112)]);
      gradcheck((x, v) => torch.indexPut(x, [long([0, 0, 2]), long([1, 1, 3])], v, true), [x, leaf([3], 113)]);
      gradcheck((x, s) => torch.indexAdd(x, 0, long([1, 1]), s, 0.5), [x, leaf([2, 4], 114)]);
      gradcheck((x) => x.maskedFill(torch.gt(x, 0), 0.5), [x]);
      gradcheck((x) => torch.topk(x, 2, 1).values, [x]);
      gradcheck((x) => torch.sort(x, 0, true).values, [x]);
    });
  });
});

// ------------------------------------------------------------------ in place

describe('in-place methods', () => {
  test('add_, sub_, mul_, div_ return this and change the tensor', scoped(() => {
    const x = torch.tensor([1, 2, 3]);
    assert.equal(x.add_(1), x);
    assert.equal(x.mul_(torch.tensor([2, 2, 2])), x);
    assert.equal(x.sub_(torch.tensor([1, 1, 1]), 2), x);
    assert.equal(x.div_(2), x);
    assert.deepEqual(x.toArray(), [1, 2, 3]);
  }));

  test('copy_, zero_, fill_, clamp_', scoped(() => {
    const x = torch.zeros([3]);
    assert.equal(x.copy_(torch.tensor([-5, 0.5, 5], { dtype: 'float64' })), x);
    assert.deepEqual(x.toArray(), [-5, 0.5, 5]);
    assert.deepEqual(x.clamp_(-1, 1).toArray(), [-1, 0.5, 1]);
    assert.deepEqual(x.fill_(7).toArray(), [7, 7, 7]);
    assert.deepEqual(x.zero_().toArray(), [0, 0, 0]);
  }));

  test('uniform_ and normal_ fill with the requested distribution', scoped(() => {
    torch.manualSeed(4);
    const u = torch.empty([50000], { dtype: 'float64' }).uniform_(-2, 4);
    assert.ok(torch.min(u).item() >= -2 && torch.max(u).item() < 4);
    assert.ok(Math.abs(u.mean().item() - 1) < 0.05);
    const n = torch.empty([50000], { dtype: 'float64' }).normal_(3, 0.5);
    assert.ok(Math.abs(n.mean().item() - 3) < 0.01);
    assert.ok(Math.abs(torch.std(n).item() - 0.5) < 0.01);
  }));

  test('truncNormal stays inside [a, b] with the right mean', scoped(() => {
    torch.manualSeed(5);
    const x = torch.truncNormal(torch.empty([50000], { dtype: 'float64' }), 0, 1, -2, 2);
    assert.ok(torch.min(x).item() >= -2 && torch.max(x).item() <= 2);
    assert.ok(Math.abs(x.mean().item()) < 0.02);
    // variance of a standard normal truncated to [-2, 2]: 1 − 2·2·φ(2)/(Φ(2) − Φ(−2))
    const phi2 = Math.exp(-2) / Math.sqrt(2 * Math.PI), mass = erf(2 / Math.SQRT2);
    assert.ok(Math.abs(torch.variance(x).item() - (1 - (4 * phi2) / mass)) < 0.02);
  }));
});

/**
 * Tensor operations, one function per ATen operator (composites say so). Tensor's methods
 * delegate here; `torch.add(a, b)` and `a.add(b)` are the same call.
 */
import { aten } from './dispatch.js';
import { tidy } from './scope.js';
import type { Tensor } from './tensor.js';
import type { Dtype, MemoryFormat } from './dtype.js';

export type Scalar = number | boolean;
export type TensorOrScalar = Tensor | Scalar;
export type Reduction = 'none' | 'mean' | 'sum';

const isScalar = (v: unknown): v is Scalar => typeof v === 'number' || typeof v === 'boolean';
const dims = (dim: number | number[]): number[] => (typeof dim === 'number' ? [dim] : dim);
const REDUCTION = { none: 0, mean: 1, sum: 2 } as const;

// ---------------------------------------------------------------- arithmetic
const _add = aten('add.Tensor'), _addS = aten('add.Scalar');
const _sub = aten('sub.Tensor'), _subS = aten('sub.Scalar'), _rsubS = aten('rsub.Scalar');
const _mul = aten('mul.Tensor'), _mulS = aten('mul.Scalar');
const _div = aten('div.Tensor'), _divS = aten('div.Scalar');
const _pow = aten('pow.Tensor_Tensor'), _powS = aten('pow.Tensor_Scalar');
export const add = (a: Tensor, b: TensorOrScalar, alpha = 1): Tensor => (isScalar(b) ? _addS(a, b, alpha) : _add(a, b, alpha));
export const sub = (a: Tensor, b: TensorOrScalar, alpha = 1): Tensor => (isScalar(b) ? _subS(a, b, alpha) : _sub(a, b, alpha));
/** b − a·alpha for a scalar b (PyTorch's rsub). */
export const rsub = (a: Tensor, b: Scalar, alpha = 1): Tensor => _rsubS(a, b, alpha);
export const mul = (a: Tensor, b: TensorOrScalar): Tensor => (isScalar(b) ? _mulS(a, b) : _mul(a, b));
export const div = (a: Tensor, b: TensorOrScalar): Tensor => (isScalar(b) ? _divS(a, b) : _div(a, b));
export const pow = (a: Tensor, b: TensorOrScalar): Tensor => (isScalar(b) ? _powS(a, b) : _pow(a, b));
const _powSB = aten('pow.Scalar');
/** base ** exponent for a number base: torch.pow(2.0, t). */
export const scalarPow = (base: number, exponent: Tensor): Tensor => _powSB(base, exponent);
export const addcmul = aten('addcmul') as (a: Tensor, t1: Tensor, t2: Tensor, value?: number) => Tensor;
export const addcdiv = aten('addcdiv') as (a: Tensor, t1: Tensor, t2: Tensor, value?: number) => Tensor;
const _lerpS = aten('lerp.Scalar'), _lerpT = aten('lerp.Tensor');
export const lerp = (a: Tensor, end: Tensor, weight: TensorOrScalar): Tensor => (isScalar(weight) ? _lerpS : _lerpT)(a, end, weight);
export const maximum = aten('maximum') as (a: Tensor, b: Tensor) => Tensor;
export const minimum = aten('minimum') as (a: Tensor, b: Tensor) => Tensor;

type Unary = (x: Tensor) => Tensor;
export const neg = aten('neg') as Unary;
export const abs = aten('abs') as Unary;
export const exp = aten('exp') as Unary;
export const log = aten('log') as Unary;
export const log1p = aten('log1p') as Unary;
export const sqrt = aten('sqrt') as Unary;
export const rsqrt = aten('rsqrt') as Unary;
export const square = aten('square') as Unary;
export const reciprocal = aten('reciprocal') as Unary;
export const sin = aten('sin') as Unary;
export const cos = aten('cos') as Unary;
export const acos = aten('acos') as Unary;
export const asin = aten('asin') as Unary;
export const tanh = aten('tanh') as Unary;
export const sigmoid = aten('sigmoid') as Unary;
export const relu = aten('relu') as Unary;
export const sign = aten('sign') as Unary;
export const floor = aten('floor') as Unary;
export const ceil = aten('ceil') as Unary;
export const round = aten('round') as Unary;
export const isfinite = aten('isfinite') as Unary;
export const isnan = aten('isnan') as Unary;
/** Whether the sign bit is set (true for −0.0 too). */
export const signbit = aten('signbit') as Unary;
export const logicalNot = aten('logical_not') as Unary;
export const logicalAnd = aten('logical_and') as (a: Tensor, b: Tensor) => Tensor;
export const logicalOr = aten('logical_or') as (a: Tensor, b: Tensor) => Tensor;
const _gelu = aten('gelu'), _hardtanh = aten('hardtanh'), _leaky = aten('leaky_relu');
export const gelu = (x: Tensor, approximate: 'none' | 'tanh' = 'none'): Tensor => _gelu(x, approximate);
export const relu6 = (x: Tensor): Tensor => _hardtanh(x, 0, 6);
export const hardtanh = (x: Tensor, min = -1, max = 1): Tensor => _hardtanh(x, min, max);
export const leakyRelu = (x: Tensor, slope = 0.01): Tensor => _leaky(x, slope);

const _clamp = aten('clamp'), _clampT = aten('clamp.Tensor');
const isTensorBound = (b?: TensorOrScalar): b is Tensor => b !== undefined && !isScalar(b);
/** Clamp to [min, max]; either bound may be undefined, a scalar or a tensor (mixed too). */
export const clamp = (x: Tensor, min?: TensorOrScalar, max?: TensorOrScalar): Tensor => {
  if (!isTensorBound(min) && !isTensorBound(max)) return _clamp(x, min, max);
  if (min === undefined || max === undefined || (isTensorBound(min) && isTensorBound(max))) return _clampT(x, min, max);
  // one scalar and one tensor bound (clamp.Tensor takes no scalars): lower bound first, as clamp does
  return tidy(() => clamp(clamp(x, min), undefined, max));
};

// comparisons give bool tensors
const cmp = (name: string) => {
  const t = aten(`${name}.Tensor`), s = aten(`${name}.Scalar`);
  return (a: Tensor, b: TensorOrScalar): Tensor => (isScalar(b) ? s(a, b) : t(a, b));
};
export const eq = cmp('eq'), ne = cmp('ne'), lt = cmp('lt'), le = cmp('le'), gt = cmp('gt'), ge = cmp('ge');
const _whereT = aten('where.self'), _whereS = aten('where.ScalarOther');
/** Elementwise cond ? a : b. */
export const where = (cond: Tensor, a: Tensor, b: TensorOrScalar): Tensor => (isScalar(b) ? _whereS(cond, a, b) : _whereT(cond, a, b));
const _allclose = aten('allclose');
export const allclose = (a: Tensor, b: Tensor, rtol = 1e-5, atol = 1e-8): boolean => _allclose(a, b, rtol, atol, false);

// ---------------------------------------------------------------- reductions
export interface ReduceOptions {
  keepdim?: boolean;
  dtype?: Dtype;
}
const reduce = (all: string, byDim: string) => {
  const a = aten(all), d = aten(byDim);
  // keepdim without dim reduces everything to size-1 dims (the by-dim overload takes dim=None)
  return (x: Tensor, dim?: number | number[], opts: ReduceOptions = {}): Tensor =>
    dim === undefined && !opts.keepdim ? a(x, opts.dtype) : d(x, dim === undefined ? undefined : dims(dim), opts.keepdim ?? false, opts.dtype);
};
export const sum = reduce('sum', 'sum.dim_IntList');
export const mean = reduce('mean', 'mean.dim');
const _prod = aten('prod'), _prodD = aten('prod.dim_int');
export const prod = (x: Tensor, dim?: number, keepdim = false): Tensor => (dim === undefined ? _prod(x) : _prodD(x, dim, keepdim));

export interface ValuesIndices {
  values: Tensor;
  indices: Tensor;
}
const pair = ([values, indices]: [Tensor, Tensor]): ValuesIndices => ({ values, indices });
const _max = aten('max'), _maxD = aten('max.dim'), _min = aten('min'), _minD = aten('min.dim');
/** Largest element, or with `dim`, the largest along it with their indices. */
export function max(x: Tensor): Tensor;
export function max(x: Tensor, dim: number, keepdim?: boolean): ValuesIndices;
export function max(x: Tensor, dim?: number, keepdim = false): Tensor | ValuesIndices {
  return dim === undefined ? _max(x) : pair(_maxD(x, dim, keepdim));
}
export function min(x: Tensor): Tensor;
export function min(x: Tensor, dim: number, keepdim?: boolean): ValuesIndices;
export function min(x: Tensor, dim?: number, keepdim = false): Tensor | ValuesIndices {
  return dim === undefined ? _min(x) : pair(_minD(x, dim, keepdim));
}
const _argmax = aten('argmax'), _argmin = aten('argmin');
export const argmax = (x: Tensor, dim?: number, keepdim = false): Tensor => _argmax(x, dim, keepdim);
export const argmin = (x: Tensor, dim?: number, keepdim = false): Tensor => _argmin(x, dim, keepdim);
const _var = aten('var.dim'), _std = aten('std.dim');
export const variance = (x: Tensor, dim?: number | number[], unbiased = true, keepdim = false): Tensor =>
  _var(x, dim === undefined ? undefined : dims(dim), unbiased, keepdim);
export const std = (x: Tensor, dim?: number | number[], unbiased = true, keepdim = false): Tensor =>
  _std(x, dim === undefined ? undefined : dims(dim), unbiased, keepdim);
const _norm = aten('linalg_vector_norm');
/** Vector p-norm over all elements or over `dim`. */
export const norm = (x: Tensor, p = 2, dim?: number | number[], keepdim = false): Tensor =>
  _norm(x, p, dim === undefined ? undefined : dims(dim), keepdim);
const _lse = aten('logsumexp');
export const logsumexp = (x: Tensor, dim: number | number[], keepdim = false): Tensor => _lse(x, dims(dim), keepdim);
const _all = aten('all'), _any = aten('any');
export const all = (x: Tensor): Tensor => _all(x);
export const any = (x: Tensor): Tensor => _any(x);
const _cumsum = aten('cumsum');
export const cumsum = (x: Tensor, dim: number, dtype?: Dtype): Tensor => _cumsum(x, dim, dtype);

// ---------------------------------------------------------------- shapes and views
const _reshape = aten('reshape'), _view = aten('view'), _permute = aten('permute'), _transpose = aten('transpose.int');
export const reshape = (x: Tensor, shape: number[]): Tensor => _reshape(x, shape);
export const view = (x: Tensor, shape: number[]): Tensor => _view(x, shape);
export const permute = (x: Tensor, order: number[]): Tensor => _permute(x, order);
export const transpose = (x: Tensor, dim0: number, dim1: number): Tensor => _transpose(x, dim0, dim1);
const _flatten = aten('flatten.using_ints'), _unflatten = aten('unflatten.int');
export const flatten = (x: Tensor, startDim = 0, endDim = -1): Tensor => _flatten(x, startDim, endDim);
export const unflatten = (x: Tensor, dim: number, sizes: number[]): Tensor => _unflatten(x, dim, sizes);
const _contiguous = aten('contiguous');
export const contiguous = (x: Tensor, memoryFormat: MemoryFormat = 'contiguous'): Tensor => _contiguous(x, memoryFormat);
const _narrow = aten('narrow'), _select = aten('select.int'), _slice = aten('slice.Tensor');
export const narrow = (x: Tensor, dim: number, start: number, length: number): Tensor => _narrow(x, dim, start, length);
export const select = (x: Tensor, dim: number, index: number): Tensor => _select(x, dim, index);
/** x[start:end:step] along dim. */
export const slice = (x: Tensor, dim: number, start?: number, end?: number, step = 1): Tensor => _slice(x, dim, start, end, step);
const _squeeze = aten('squeeze'), _squeezeD = aten('squeeze.dim'), _unsqueeze = aten('unsqueeze');
export const squeeze = (x: Tensor, dim?: number): Tensor => (dim === undefined ? _squeeze(x) : _squeezeD(x, dim));
export const unsqueeze = (x: Tensor, dim: number): Tensor => _unsqueeze(x, dim);
const _expand = aten('expand'), _repeat = aten('repeat');
export const expand = (x: Tensor, shape: number[]): Tensor => _expand(x, shape, false);
export const repeat = (x: Tensor, times: number[]): Tensor => _repeat(x, times);
const _cat = aten('cat'), _stack = aten('stack');
export const cat = (tensors: Tensor[], dim = 0): Tensor => _cat(tensors, dim);
export const stack = (tensors: Tensor[], dim = 0): Tensor => _stack(tensors, dim);
const _split = aten('split.Tensor'), _splitSizes = aten('split_with_sizes'), _chunk = aten('chunk');
/** Pieces of `size` elements along dim (or of the given sizes). */
export const split = (x: Tensor, size: number | number[], dim = 0): Tensor[] =>
  typeof size === 'number' ? _split(x, size, dim) : _splitSizes(x, size, dim);
export const chunk = (x: Tensor, chunks: number, dim = 0): Tensor[] => _chunk(x, chunks, dim);
const _clone = aten('clone');
export const clone = (x: Tensor, memoryFormat?: MemoryFormat): Tensor => _clone(x, memoryFormat);
export const detach = aten('detach') as Unary;
const _flip = aten('flip');
export const flip = (x: Tensor, dimsToFlip: number[]): Tensor => _flip(x, dimsToFlip);

// ---------------------------------------------------------------- indexing
const _indexSelect = aten('index_select'), _gather = aten('gather');
export const indexSelect = (x: Tensor, dim: number, index: Tensor): Tensor => _indexSelect(x, dim, index);
export const gather = (x: Tensor, dim: number, index: Tensor): Tensor => _gather(x, dim, index, false);
const _scatter = aten('scatter.src'), _scatterV = aten('scatter.value'), _scatterAdd = aten('scatter_add');
/** Out-of-place scatter: a copy of x with src (tensor or value) written at index along dim. */
export const scatter = (x: Tensor, dim: number, index: Tensor, src: TensorOrScalar): Tensor =>
  isScalar(src) ? _scatterV(x, dim, index, src) : _scatter(x, dim, index, src);
export const scatterAdd = (x: Tensor, dim: number, index: Tensor, src: Tensor): Tensor => _scatterAdd(x, dim, index, src);
const _indexAdd = aten('index_add');
export const indexAdd = (x: Tensor, dim: number, index: Tensor, source: Tensor, alpha = 1): Tensor => _indexAdd(x, dim, index, source, alpha);
const _index = aten('index.Tensor'), _indexPut = aten('index_put');
/** x[i0, i1, …] with tensor indices (null: the whole dimension), as PyTorch advanced indexing. */
export const index = (x: Tensor, indices: (Tensor | null)[]): Tensor => _index(x, indices);
/** Out-of-place x[indices] = values (accumulate: +=). */
export const indexPut = (x: Tensor, indices: (Tensor | null)[], values: Tensor, accumulate = false): Tensor =>
  _indexPut(x, indices, values, accumulate);
const _maskedFill = aten('masked_fill.Scalar'), _maskedFillT = aten('masked_fill.Tensor');
export const maskedFill = (x: Tensor, mask: Tensor, value: TensorOrScalar): Tensor =>
  isScalar(value) ? _maskedFill(x, mask, value) : _maskedFillT(x, mask, value);
export const maskedSelect = aten('masked_select') as (x: Tensor, mask: Tensor) => Tensor;
export const nonzero = aten('nonzero') as Unary;
const _topk = aten('topk');
export const topk = (x: Tensor, k: number, dim = -1, largest = true, sorted = true): ValuesIndices => pair(_topk(x, k, dim, largest, sorted));
const _sort = aten('sort.stable'), _argsort = aten('argsort');
export const sort = (x: Tensor, dim = -1, descending = false, stable = false): ValuesIndices => pair(_sort(x, stable, dim, descending));
export const argsort = (x: Tensor, dim = -1, descending = false): Tensor => _argsort(x, dim, descending);
export interface UniqueResult {
  values: Tensor;
  inverse: Tensor;
  counts: Tensor;
}
const _unique = aten('_unique2');
/** Sorted distinct values, with the index of each input element into them and their counts. */
export const unique = (x: Tensor, sorted = true): UniqueResult => {
  const [values, inverse, counts] = _unique(x, sorted, true, true);
  return { values, inverse, counts };
};
const _searchsorted = aten('searchsorted.Tensor');
/** Index where each value would be inserted into the sorted last dimension of `sortedSequence`. */
export const searchsorted = (sortedSequence: Tensor, values: Tensor, right = false, outInt32 = false): Tensor =>
  _searchsorted(sortedSequence, values, outInt32, right);

// ---------------------------------------------------------------- linear algebra and nn functions
export const matmul = aten('matmul') as (a: Tensor, b: Tensor) => Tensor;
export const mm = aten('mm') as (a: Tensor, b: Tensor) => Tensor;
export const bmm = aten('bmm') as (a: Tensor, b: Tensor) => Tensor;
const _linear = aten('linear');
/** x · Wᵀ + b */
export const linear = (x: Tensor, weight: Tensor, bias?: Tensor): Tensor => _linear(x, weight, bias);

export interface Conv2dOptions {
  stride?: number | [number, number];
  padding?: number | [number, number] | 'same' | 'valid';
  dilation?: number | [number, number];
  groups?: number;
}
const _conv2d = aten('conv2d'), _conv2dPad = aten('conv2d.padding');
export const conv2d = (x: Tensor, weight: Tensor, bias?: Tensor, o: Conv2dOptions = {}): Tensor =>
  (typeof o.padding === 'string' ? _conv2dPad : _conv2d)(x, weight, bias, o.stride ?? 1, o.padding ?? 0, o.dilation ?? 1, o.groups ?? 1);

export interface BatchNormOptions {
  weight?: Tensor;
  bias?: Tensor;
  training?: boolean;
  momentum?: number;
  eps?: number;
}
const _batchNorm = aten('batch_norm');
/** Batch norm over dim 1; in training, running statistics (if given) are updated in place. */
export const batchNorm = (x: Tensor, runningMean: Tensor | undefined, runningVar: Tensor | undefined, o: BatchNormOptions = {}): Tensor =>
  _batchNorm(x, o.weight, o.bias, runningMean, runningVar, o.training ?? false, o.momentum ?? 0.1, o.eps ?? 1e-5, true);
const _layerNorm = aten('layer_norm');
export const layerNorm = (x: Tensor, normalizedShape: number[], weight?: Tensor, bias?: Tensor, eps = 1e-5): Tensor =>
  _layerNorm(x, normalizedShape, weight, bias, eps, true);
export const prelu = aten('prelu') as (x: Tensor, weight: Tensor) => Tensor;
const _dropout = aten('dropout');
export const dropout = (x: Tensor, p = 0.5, training = true): Tensor => _dropout(x, p, training);

export interface Pool2dOptions {
  stride?: number | [number, number];
  padding?: number | [number, number];
  ceilMode?: boolean;
}
const _maxPool = aten('max_pool2d'), _avgPool = aten('avg_pool2d'), _adaptiveAvg = aten('adaptive_avg_pool2d');
export const maxPool2d = (x: Tensor, kernel: number | [number, number], o: Pool2dOptions & { dilation?: number } = {}): Tensor =>
  _maxPool(x, kernel, o.stride ?? kernel, o.padding ?? 0, o.dilation ?? 1, o.ceilMode ?? false);
export const avgPool2d = (x: Tensor, kernel: number | [number, number], o: Pool2dOptions & { countIncludePad?: boolean } = {}): Tensor =>
  _avgPool(x, kernel, o.stride ?? kernel, o.padding ?? 0, o.ceilMode ?? false, o.countIncludePad ?? true);
export const adaptiveAvgPool2d = (x: Tensor, outputSize: number | [number, number]): Tensor => _adaptiveAvg(x, outputSize);

/** x / max(‖x‖_p, eps) along dim (composite, as torch.nn.functional.normalize). */
export const normalize = (x: Tensor, p = 2, dim = 1, eps = 1e-12): Tensor =>
  tidy(() => div(x, expand(clamp(norm(x, p, dim, true), eps), x.shape)));

const _softmax = aten('softmax.int'), _logSoftmax = aten('log_softmax.int');
export const softmax = (x: Tensor, dim: number, dtype?: Dtype): Tensor => _softmax(x, dim, dtype);
export const logSoftmax = (x: Tensor, dim: number, dtype?: Dtype): Tensor => _logSoftmax(x, dim, dtype);

export interface CrossEntropyOptions {
  weight?: Tensor;
  reduction?: Reduction;
  ignoreIndex?: number;
  labelSmoothing?: number;
}
const _crossEntropy = aten('cross_entropy_loss'), _nll = aten('nll_loss_nd');
/** Softmax cross-entropy of logits [N, C] against class indices [N] (int64). */
export const crossEntropy = (logits: Tensor, target: Tensor, o: CrossEntropyOptions = {}): Tensor =>
  _crossEntropy(logits, target, o.weight, REDUCTION[o.reduction ?? 'mean'], o.ignoreIndex ?? -100, o.labelSmoothing ?? 0);
export const nllLoss = (logProbs: Tensor, target: Tensor, o: Omit<CrossEntropyOptions, 'labelSmoothing'> = {}): Tensor =>
  _nll(logProbs, target, o.weight, REDUCTION[o.reduction ?? 'mean'], o.ignoreIndex ?? -100);
const _mse = aten('mse_loss');
export const mseLoss = (a: Tensor, b: Tensor, reduction: Reduction = 'mean'): Tensor => _mse(a, b, REDUCTION[reduction]);

// ---------------------------------------------------------------- types and devices
const _toDtype = aten('to.dtype'), _toDevice = aten('to.device');
export const toDtype = (x: Tensor, dtype: Dtype): Tensor => _toDtype(x, dtype, false, false);
/** A copy on `device` (x itself when it is there: call dispose on both alike); nonBlocking from pinned host memory to a GPU returns at once (stream-ordered). */
export const toDevice = (x: Tensor, device: string, dtype?: Dtype, nonBlocking = false): Tensor => _toDevice(x, device, dtype ?? x.dtype, nonBlocking, false);
const _pinMemory = aten('pin_memory'), _isPinned = aten('is_pinned');
/** A copy in page-locked host memory (needs a CUDA device: host memory is pinned for copies to it). */
export const pinMemory = (x: Tensor): Tensor => _pinMemory(x);
export const isPinned = (x: Tensor): boolean => _isPinned(x) as unknown as boolean;

// ---------------------------------------------------------------- in place
/** In-place ATen ops return an alias of their first argument; hand back the caller's own Tensor. */
const inPlace = <A extends unknown[]>(op: (x: Tensor, ...args: A) => Tensor) => (x: Tensor, ...args: A): Tensor => {
  op(x, ...args).dispose();
  return x;
};
const scalarOrTensor = (scalarOp: string, tensorOp: string) => {
  const s = aten(scalarOp), t = aten(tensorOp);
  return (x: Tensor, b: TensorOrScalar, ...rest: unknown[]): Tensor => (isScalar(b) ? s : t)(x, b, ...rest);
};
/** Operations that modify their first argument and return it. */
export const inplace = {
  add: inPlace(scalarOrTensor('add_.Scalar', 'add_.Tensor') as (x: Tensor, b: TensorOrScalar, alpha?: number) => Tensor),
  sub: inPlace(scalarOrTensor('sub_.Scalar', 'sub_.Tensor') as (x: Tensor, b: TensorOrScalar, alpha?: number) => Tensor),
  mul: inPlace(scalarOrTensor('mul_.Scalar', 'mul_.Tensor') as (x: Tensor, b: TensorOrScalar) => Tensor),
  div: inPlace(scalarOrTensor('div_.Scalar', 'div_.Tensor') as (x: Tensor, b: TensorOrScalar) => Tensor),
  copy: inPlace(aten('copy_') as (x: Tensor, src: Tensor) => Tensor),
  zero: inPlace(aten('zero_') as Unary),
  fill: inPlace(aten('fill_.Scalar') as (x: Tensor, value: Scalar) => Tensor),
  clamp: inPlace(aten('clamp_') as (x: Tensor, min?: number, max?: number) => Tensor),
  uniform: inPlace(aten('uniform_') as (x: Tensor, from?: number, to?: number) => Tensor),
  normal: inPlace(aten('normal_') as (x: Tensor, mean?: number, std?: number) => Tensor),
  erfinv: inPlace(aten('erfinv_') as Unary),
  indexPut: inPlace(aten('index_put_') as (x: Tensor, indices: (Tensor | null)[], values: Tensor, accumulate?: boolean) => Tensor),
  indexCopy: inPlace(aten('index_copy_') as (x: Tensor, dim: number, index: Tensor, source: Tensor) => Tensor),
  indexAdd: inPlace(aten('index_add_') as (x: Tensor, dim: number, index: Tensor, source: Tensor, alpha?: number) => Tensor),
  /** x += value · t1 · t2 */
  addcmul: inPlace(aten('addcmul_') as (x: Tensor, t1: Tensor, t2: Tensor, value?: number) => Tensor),
  /** x = beta·x + alpha·(a · b) */
  addmm: inPlace(aten('addmm_') as (x: Tensor, a: Tensor, b: Tensor, beta?: number, alpha?: number) => Tensor),
  scatter: inPlace(aten('scatter_.src') as (x: Tensor, dim: number, index: Tensor, src: Tensor) => Tensor),
  maskedFill: inPlace(aten('masked_fill_.Scalar') as (x: Tensor, mask: Tensor, value: Scalar) => Tensor),
  requiresGrad: inPlace(aten('requires_grad_') as (x: Tensor, requiresGrad?: boolean) => Tensor),
};

// Fill initialisers used by nn.init (in place, under no_grad by the caller).
export const truncNormal = (x: Tensor, mean: number, std: number, a: number, b: number): Tensor =>
  tidy(() => {
    // As torch.nn.init.trunc_normal_: inverse-CDF sampling of a normal restricted to [a, b].
    const normCdf = (v: number) => (1 + erf(v / Math.SQRT2)) / 2;
    const l = normCdf((a - mean) / std), u = normCdf((b - mean) / std);
    inplace.uniform(x, 2 * l - 1, 2 * u - 1);
    inplace.erfinv(x);
    inplace.mul(x, std * Math.SQRT2);
    inplace.add(x, mean);
    return inplace.clamp(x, a, b);
  });

/** erf of a JS number (Taylor series near 0, continued fraction in the tail). */
function erf(x: number): number {
  const sign = x < 0 ? -1 : 1;
  const ax = Math.abs(x);
  if (ax < 3) {
    let term = ax, total = ax;
    for (let n = 1; n < 100; n++) {
      term *= (-ax * ax) / n;
      const add = term / (2 * n + 1);
      total += add;
      if (Math.abs(add) < 1e-17 * Math.abs(total)) break;
    }
    return sign * (2 / Math.sqrt(Math.PI)) * total;
  }
  let f = 0;
  for (let n = 60; n >= 1; n--) f = (n / 2) / (ax + f);
  return sign * (1 - Math.exp(-ax * ax) / Math.sqrt(Math.PI) / (ax + f));
}

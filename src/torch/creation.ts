/** Making tensors: from JS data, filled, random, ranges. All default to float32 on the CPU. */
import { native } from './native.js';
import { resolveDevice } from './device.js';
import { aten } from './dispatch.js';
import { Tensor } from './tensor.js';
import { toDtype } from './ops.js';
import { dtypeOfArray, type Dtype, type MemoryFormat, type TypedArray } from './dtype.js';

export interface TensorOptions {
  dtype?: Dtype;
  device?: string;
  requiresGrad?: boolean;
}

type NestedNumbers = number | boolean | NestedNumbers[];

const withGrad = (t: Tensor, o: TensorOptions): Tensor => (o.requiresGrad ? t.requiresGrad_(true) : t);

/** A tensor holding a copy of `data`: a number, nested arrays, or a typed array (with an optional shape). */
export function tensor(data: NestedNumbers | TypedArray, options: TensorOptions & { shape?: number[] } = {}): Tensor {
  let flat: TypedArray;
  let shape: number[];
  if (ArrayBuffer.isView(data)) {
    flat = data as TypedArray;
    shape = options.shape ?? [flat.length];
  } else {
    shape = shapeOf(data);
    const values = (Array.isArray(data) ? (data as unknown[]).flat(Infinity) : [data]) as (number | boolean)[];
    const isBool = values.length > 0 && values.every((v) => typeof v === 'boolean');
    // Staged at the target's precision: float64 and int32 values must not pass through float32.
    // int64 truncates toward zero, as PyTorch does.
    const { dtype } = options;
    flat =
      dtype === 'int64' ? BigInt64Array.from(values, (v) => BigInt(Math.trunc(Number(v))))
      : isBool ? Uint8Array.from(values, Number)
      : dtype === undefined || dtype === 'float32' ? Float32Array.from(values, Number)
      : Float64Array.from(values, Number);
    if (isBool && dtype === undefined) options = { ...options, dtype: 'bool' };
  }
  // Uint8Array can hold bools, and Uint16Array the raw bits of float16/bfloat16, when the dtype says so.
  const rawBits =
    (options.dtype === 'bool' && flat instanceof Uint8Array) ||
    ((options.dtype === 'float16' || options.dtype === 'bfloat16') && flat instanceof Uint16Array);
  const sourceDtype = rawBits ? options.dtype! : dtypeOfArray(flat);
  let t: Tensor = native.fromBuffer(flat, sourceDtype, shape);
  const dtype = options.dtype ?? sourceDtype;
  if (dtype !== sourceDtype) {
    const cast = toDtype(t, dtype);
    t.dispose();
    t = cast;
  }
  if (options.device && options.device !== 'cpu') {
    const moved = t.to(options.device);
    t.dispose();
    t = moved;
  }
  return withGrad(t, options);
}

function shapeOf(data: NestedNumbers): number[] {
  const shape: number[] = [];
  let level: NestedNumbers = data;
  while (Array.isArray(level)) {
    shape.push(level.length);
    level = level[0];
  }
  const expected = shape.reduce((a, b) => a * b, 1);
  if (Array.isArray(data) && (data as unknown[]).flat(Infinity).length !== expected) {
    throw new TypeError(`tensor(): ragged nested array (shape [${shape.join(', ')}] expected ${expected} elements)`);
  }
  return shape;
}

const _zeros = aten('zeros'), _ones = aten('ones'), _full = aten('full'), _empty = aten('empty.memory_format');
const _randn = aten('randn'), _rand = aten('rand'), _randint = aten('randint.low'), _randperm = aten('randperm');
const _arange = aten('arange.start_step'), _eye = aten('eye'), _linspace = aten('linspace');

const make = (t: Tensor, o: TensorOptions) => withGrad(t, o);
export const zeros = (shape: number[], o: TensorOptions = {}): Tensor => make(_zeros(shape, o.dtype, undefined, o.device), o);
export const ones = (shape: number[], o: TensorOptions = {}): Tensor => make(_ones(shape, o.dtype, undefined, o.device), o);
export const full = (shape: number[], value: number, o: TensorOptions = {}): Tensor =>
  make(_full(shape, value, o.dtype ?? 'float32', undefined, o.device), o);
export const empty = (shape: number[], o: TensorOptions & { memoryFormat?: MemoryFormat } = {}): Tensor =>
  make(_empty(shape, o.dtype, undefined, o.device, undefined, o.memoryFormat), o);
/** Standard normal samples (torch.randn). */
export const randn = (shape: number[], o: TensorOptions = {}): Tensor => make(_randn(shape, o.dtype, undefined, o.device), o);
/** Uniform samples in [0, 1). */
export const rand = (shape: number[], o: TensorOptions = {}): Tensor => make(_rand(shape, o.dtype, undefined, o.device), o);
/** Integers uniform in [low, high), int64 by default. */
export const randint = (low: number, high: number, shape: number[], o: TensorOptions = {}): Tensor =>
  make(_randint(low, high, shape, o.dtype ?? 'int64', undefined, o.device), o);
export const randperm = (n: number, o: TensorOptions = {}): Tensor => make(_randperm(n, o.dtype ?? 'int64', undefined, o.device), o);
/** start, start+step, … < end; int64 when all three are integers (as torch.arange). */
export function arange(start: number, end?: number, step = 1, o: TensorOptions = {}): Tensor {
  if (end === undefined) [start, end] = [0, start];
  const integral = [start, end, step].every(Number.isInteger);
  return make(_arange(start, end, step, o.dtype ?? (integral ? 'int64' : 'float32'), undefined, o.device), o);
}
export const linspace = (start: number, end: number, steps: number, o: TensorOptions = {}): Tensor =>
  make(_linspace(start, end, steps, o.dtype, undefined, o.device), o);
export const eye = (n: number, o: TensorOptions = {}): Tensor => make(_eye(n, o.dtype, undefined, o.device), o);

const _zerosLike = aten('zeros_like'), _onesLike = aten('ones_like'), _fullLike = aten('full_like');
const _emptyLike = aten('empty_like'), _randnLike = aten('randn_like'), _randLike = aten('rand_like');
export const zerosLike = (x: Tensor, o: TensorOptions = {}): Tensor => make(_zerosLike(x, o.dtype), o);
export const onesLike = (x: Tensor, o: TensorOptions = {}): Tensor => make(_onesLike(x, o.dtype), o);
export const fullLike = (x: Tensor, value: number, o: TensorOptions = {}): Tensor => make(_fullLike(x, value, o.dtype), o);
export const emptyLike = (x: Tensor, o: TensorOptions = {}): Tensor => make(_emptyLike(x, o.dtype), o);
export const randnLike = (x: Tensor, o: TensorOptions = {}): Tensor => make(_randnLike(x, o.dtype), o);
export const randLike = (x: Tensor, o: TensorOptions = {}): Tensor => make(_randLike(x, o.dtype), o);

/** Seeds the global random generators (torch.manual_seed). */
export function manualSeed(seed: number): void {
  if (!Number.isInteger(seed) || seed < 0) throw new RangeError(`manualSeed: seed must be a non-negative integer, got ${seed}`);
  native.manualSeed(seed);
}

/**
 * A default generator's state, a uint8 tensor: the CPU's (torch.get_rng_state; Partial FC sampling
 * draws from it too), or a CUDA device's (torch.cuda.get_rng_state(device)); 'cuda' is this process's
 * GPU, cuda:LOCAL_RANK, as everywhere else (resolveDevice).
 */
export function getRngState(device?: string): Tensor {
  return native.getRngState(device === undefined ? undefined : resolveDevice(device, 'getRngState')) as Tensor;
}

/** Restores a state from getRngState(device) (torch.set_rng_state / torch.cuda.set_rng_state). */
export function setRngState(state: Tensor, device?: string): void {
  native.setRngState(state, device === undefined ? undefined : resolveDevice(device, 'setRngState'));
}

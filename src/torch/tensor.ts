/**
 * Tensor: a handle to one libtorch tensor. Metadata (shape, dtype, device, grad) lives in C++;
 * methods delegate to ./ops.ts. A tensor is freed by dispose(), by the scope it was made in
 * (see ./scope.ts), or — only as a safety net — when V8 collects it.
 */
import { native, TensorBase } from './native.js';
import { aten } from './dispatch.js';
import { track } from './scope.js';
import * as ops from './ops.js';
import { typedArrayOf, type Dtype, type MemoryFormat, type TypedArray } from './dtype.js';
import type { Scalar, TensorOrScalar, ReduceOptions, Conv2dOptions } from './ops.js';

export interface BackwardOptions {
  /** gradient of the output (default: 1 for a scalar output) */
  gradient?: Tensor;
  retainGraph?: boolean;
  createGraph?: boolean;
  /** accumulate only into these leaves */
  inputs?: Tensor[];
}

const _backward = aten('_backward');
const _item = aten('item');
const _retainGrad = aten('retain_grad');

export class Tensor extends (native.TensorBase as typeof TensorBase) {
  declare readonly dtype: Dtype;

  constructor() {
    super();
    track(this);
  }

  override get grad(): Tensor | undefined {
    return super.grad;
  }
  override set grad(value: Tensor | undefined) {
    super.grad = value;
  }

  [Symbol.dispose](): void {
    this.dispose();
  }

  get size(): number[] {
    return this.shape;
  }

  // ------------------------------------------------------------ data out
  /** The single element as a JS number (or boolean for bool tensors). */
  item(): number {
    return _item(this);
  }

  /** Elements in row-major order; float16/bfloat16 come back widened to float32. */
  data(): TypedArray {
    if (this.dtype === 'float16' || this.dtype === 'bfloat16') {
      const wide = ops.toDtype(this, 'float32');
      try {
        return wide.data();
      } finally {
        wide.dispose();
      }
    }
    return typedArrayOf(this.dtype, this.toBuffer());
  }

  /** Nested JS arrays of numbers (booleans for bool), like PyTorch's tolist(). */
  toArray(): any {
    const flat = this.data();
    const values: (number | boolean)[] = Array.from(flat as ArrayLike<number | bigint>, (v) =>
      this.dtype === 'bool' ? v !== 0 : Number(v),
    );
    const shape = this.shape;
    if (shape.length === 0) return values[0];
    const build = (dim: number, offset: number): any[] => {
      const n = shape[dim];
      if (dim === shape.length - 1) return values.slice(offset, offset + n);
      const stride = shape.slice(dim + 1).reduce((a, b) => a * b, 1);
      return Array.from({ length: n }, (_, i) => build(dim + 1, offset + i * stride));
    };
    return build(0, 0);
  }

  override toString(): string {
    return `Tensor(shape=[${this.isDisposed ? '?' : this.shape.join(', ')}], dtype=${this.isDisposed ? '?' : this.dtype}${this.isDisposed ? ', disposed' : ''})`;
  }

  // ------------------------------------------------------------ autograd
  backward(options: BackwardOptions = {}): void {
    _backward(this, options.inputs ?? [], options.gradient, options.retainGraph, options.createGraph ?? false);
  }
  detach(): Tensor {
    return ops.detach(this);
  }
  /** Sets requiresGrad and returns this tensor. */
  requiresGrad_(requiresGrad = true): this {
    this.requiresGrad = requiresGrad;
    return this;
  }
  /** Keep .grad for this non-leaf tensor after backward. */
  retainGrad(): this {
    _retainGrad(this);
    return this;
  }

  // ------------------------------------------------------------ conversions
  /** A copy in another dtype or on another device; `nonBlocking` copies from pinned memory without waiting. */
  to(dtypeOrDevice: Dtype | string, { nonBlocking = false }: { nonBlocking?: boolean } = {}): Tensor {
    return isDtypeName(dtypeOrDevice) ? ops.toDtype(this, dtypeOrDevice) : ops.toDevice(this, dtypeOrDevice, undefined, nonBlocking);
  }
  /** This tensor takes `data`'s storage, shape, dtype and device; the object and requiresGrad stay (PyTorch's `t.data = data`). */
  setData_(data: Tensor): this {
    native.setData(this, data);
    return this;
  }
  /** A copy in page-locked host memory, for non-blocking copies to a GPU. */
  pinMemory(): Tensor { return ops.pinMemory(this); }
  isPinned(): boolean { return ops.isPinned(this); }
  float(): Tensor { return ops.toDtype(this, 'float32'); }
  double(): Tensor { return ops.toDtype(this, 'float64'); }
  half(): Tensor { return ops.toDtype(this, 'float16'); }
  bfloat16(): Tensor { return ops.toDtype(this, 'bfloat16'); }
  long(): Tensor { return ops.toDtype(this, 'int64'); }
  int(): Tensor { return ops.toDtype(this, 'int32'); }
  byte(): Tensor { return ops.toDtype(this, 'uint8'); }
  bool(): Tensor { return ops.toDtype(this, 'bool'); }
  clone(memoryFormat?: MemoryFormat): Tensor { return ops.clone(this, memoryFormat); }
  contiguous(memoryFormat: MemoryFormat = 'contiguous'): Tensor { return ops.contiguous(this, memoryFormat); }

  // ------------------------------------------------------------ arithmetic
  add(other: TensorOrScalar, alpha = 1): Tensor { return ops.add(this, other, alpha); }
  sub(other: TensorOrScalar, alpha = 1): Tensor { return ops.sub(this, other, alpha); }
  mul(other: TensorOrScalar): Tensor { return ops.mul(this, other); }
  div(other: TensorOrScalar): Tensor { return ops.div(this, other); }
  pow(exponent: TensorOrScalar): Tensor { return ops.pow(this, exponent); }
  neg(): Tensor { return ops.neg(this); }
  abs(): Tensor { return ops.abs(this); }
  exp(): Tensor { return ops.exp(this); }
  log(): Tensor { return ops.log(this); }
  sqrt(): Tensor { return ops.sqrt(this); }
  rsqrt(): Tensor { return ops.rsqrt(this); }
  square(): Tensor { return ops.square(this); }
  reciprocal(): Tensor { return ops.reciprocal(this); }
  sin(): Tensor { return ops.sin(this); }
  cos(): Tensor { return ops.cos(this); }
  acos(): Tensor { return ops.acos(this); }
  tanh(): Tensor { return ops.tanh(this); }
  sigmoid(): Tensor { return ops.sigmoid(this); }
  relu(): Tensor { return ops.relu(this); }
  sign(): Tensor { return ops.sign(this); }
  clamp(min?: TensorOrScalar, max?: TensorOrScalar): Tensor { return ops.clamp(this, min, max); }
  maximum(other: Tensor): Tensor { return ops.maximum(this, other); }
  minimum(other: Tensor): Tensor { return ops.minimum(this, other); }
  eq(other: TensorOrScalar): Tensor { return ops.eq(this, other); }
  ne(other: TensorOrScalar): Tensor { return ops.ne(this, other); }
  lt(other: TensorOrScalar): Tensor { return ops.lt(this, other); }
  le(other: TensorOrScalar): Tensor { return ops.le(this, other); }
  gt(other: TensorOrScalar): Tensor { return ops.gt(this, other); }
  ge(other: TensorOrScalar): Tensor { return ops.ge(this, other); }
  matmul(other: Tensor): Tensor { return ops.matmul(this, other); }

  // ------------------------------------------------------------ reductions
  sum(dim?: number | number[], opts?: ReduceOptions): Tensor { return ops.sum(this, dim, opts); }
  mean(dim?: number | number[], opts?: ReduceOptions): Tensor { return ops.mean(this, dim, opts); }
  max(): Tensor;
  max(dim: number, keepdim?: boolean): ops.ValuesIndices;
  max(dim?: number, keepdim?: boolean): Tensor | ops.ValuesIndices {
    return dim === undefined ? ops.max(this) : ops.max(this, dim, keepdim);
  }
  min(): Tensor;
  min(dim: number, keepdim?: boolean): ops.ValuesIndices;
  min(dim?: number, keepdim?: boolean): Tensor | ops.ValuesIndices {
    return dim === undefined ? ops.min(this) : ops.min(this, dim, keepdim);
  }
  argmax(dim?: number, keepdim = false): Tensor { return ops.argmax(this, dim, keepdim); }
  norm(p = 2, dim?: number | number[], keepdim = false): Tensor { return ops.norm(this, p, dim, keepdim); }
  all(): Tensor { return ops.all(this); }
  any(): Tensor { return ops.any(this); }

  // ------------------------------------------------------------ shapes and views
  reshape(...shape: number[] | [number[]]): Tensor { return ops.reshape(this, flatArgs(shape)); }
  view(...shape: number[] | [number[]]): Tensor { return ops.view(this, flatArgs(shape)); }
  permute(...order: number[] | [number[]]): Tensor { return ops.permute(this, flatArgs(order)); }
  transpose(dim0: number, dim1: number): Tensor { return ops.transpose(this, dim0, dim1); }
  /** Transpose of a 2-D tensor. */
  t(): Tensor { return ops.transpose(this, 0, 1); }
  flatten(startDim = 0, endDim = -1): Tensor { return ops.flatten(this, startDim, endDim); }
  narrow(dim: number, start: number, length: number): Tensor { return ops.narrow(this, dim, start, length); }
  select(dim: number, index: number): Tensor { return ops.select(this, dim, index); }
  squeeze(dim?: number): Tensor { return ops.squeeze(this, dim); }
  unsqueeze(dim: number): Tensor { return ops.unsqueeze(this, dim); }
  expand(...shape: number[] | [number[]]): Tensor { return ops.expand(this, flatArgs(shape)); }
  expandAs(other: Tensor): Tensor { return ops.expand(this, other.shape); }
  repeat(...times: number[] | [number[]]): Tensor { return ops.repeat(this, flatArgs(times)); }

  // ------------------------------------------------------------ indexing
  indexSelect(dim: number, index: Tensor): Tensor { return ops.indexSelect(this, dim, index); }
  gather(dim: number, index: Tensor): Tensor { return ops.gather(this, dim, index); }
  index(indices: (Tensor | null)[]): Tensor { return ops.index(this, indices); }
  maskedFill(mask: Tensor, value: TensorOrScalar): Tensor { return ops.maskedFill(this, mask, value); }

  // ------------------------------------------------------------ nn
  softmax(dim: number): Tensor { return ops.softmax(this, dim); }
  logSoftmax(dim: number): Tensor { return ops.logSoftmax(this, dim); }
  conv2d(weight: Tensor, bias?: Tensor, options?: Conv2dOptions): Tensor { return ops.conv2d(this, weight, bias, options); }

  // ------------------------------------------------------------ in place (return this)
  add_(other: TensorOrScalar, alpha = 1): this { ops.inplace.add(this, other, alpha); return this; }
  sub_(other: TensorOrScalar, alpha = 1): this { ops.inplace.sub(this, other, alpha); return this; }
  mul_(other: TensorOrScalar): this { ops.inplace.mul(this, other); return this; }
  div_(other: TensorOrScalar): this { ops.inplace.div(this, other); return this; }
  copy_(src: Tensor): this { ops.inplace.copy(this, src); return this; }
  zero_(): this { ops.inplace.zero(this); return this; }
  fill_(value: Scalar): this { ops.inplace.fill(this, value); return this; }
  clamp_(min?: number, max?: number): this { ops.inplace.clamp(this, min, max); return this; }
  uniform_(from = 0, to = 1): this { ops.inplace.uniform(this, from, to); return this; }
  normal_(mean = 0, std = 1): this { ops.inplace.normal(this, mean, std); return this; }
}

native.setTensorClass(Tensor);

const DTYPE_NAMES = new Set(['float32', 'float64', 'float16', 'bfloat16', 'int64', 'int32', 'int16', 'int8', 'uint8', 'bool']);
function isDtypeName(s: string): s is Dtype {
  return DTYPE_NAMES.has(s);
}

/** Accepts both x.view(2, 3) and x.view([2, 3]). */
function flatArgs(args: number[] | [number[]]): number[] {
  return Array.isArray(args[0]) ? (args[0] as number[]) : (args as number[]);
}

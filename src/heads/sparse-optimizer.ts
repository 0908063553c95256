/**
 * Optimizers for the Partial FC shard that touch only the sampled rows (native/src/heads/partial_fc/optim.cc).
 * On those rows the update is torch.optim's on the full matrix:
 *   SGD    d = g + weightDecay·w;  buf = momentum·buf + d;  w −= lr·buf
 *          (dampening 0, no Nesterov: arcface_torch's setting; a zero buffer then equals torch's
 *          first-step buf = d, so no "first time" flag is needed)
 *   AdamW  w ·= 1 − lr·weightDecay;  m, v moving averages of g, g²;  w −= lr/(1−β1ᵗ) · m/(√v/√(1−β2ᵗ) + eps)
 * Rows that were not sampled, and their state, stay untouched: weight decay and momentum act on a
 * row when it is sampled, as in the Partial FC paper, not on every row every step.
 *
 * AdamW counts steps per row (int32, 4 bytes per centre): t is the number of updates that row has
 * had, so its bias correction is right for a centre sampled rarely, where one shard-wide count
 * would treat its first update as its thousandth.
 *
 * State is stored in the shard's dtype (16-bit storage halves it too); math runs in float32.
 */
import * as torch from '../torch/index.js';
import type { Tensor } from '../torch/index.js';
import type { PartialFcKernelHandle } from '../torch/native.js';
import { shardTensor } from './shard-memory.js';

export interface SparseSGDOptions {
  type: 'sgd';
  lr: number;
  momentum?: number;
  weightDecay?: number;
}

export interface SparseAdamWOptions {
  type: 'adamw';
  lr: number;
  betas?: [number, number];
  eps?: number;
  weightDecay?: number;
}

export type SparseOptimizerOptions = SparseSGDOptions | SparseAdamWOptions;

export interface SparseOptimizer {
  /** the learning rate of the next step (a schedule sets it, or step(lr) does) */
  lr: number;
  /** state tensors by their torch.optim names (momentum_buffer; exp_avg, exp_avg_sq, step) */
  readonly state: ReadonlyMap<string, Tensor>;
  /** Applies the gradient the kernel's backward left, to the sampled rows. */
  step(kernel: PartialFcKernelHandle): void;
  dispose(): void;
}

const zeros = (shape: number[], dtype: torch.Dtype, device: string) => shardTensor(shape, dtype, device).zero_();

class SparseSGD implements SparseOptimizer {
  lr: number;
  readonly momentum: number;
  readonly weightDecay: number;
  readonly state = new Map<string, Tensor>();

  constructor(o: SparseSGDOptions, shape: number[], dtype: torch.Dtype, device: string) {
    this.lr = o.lr;
    this.momentum = o.momentum ?? 0;
    this.weightDecay = o.weightDecay ?? 0;
    check('momentum', this.momentum, 0, Infinity);
    check('weightDecay', this.weightDecay, 0, Infinity);
    if (this.momentum !== 0) this.state.set('momentum_buffer', zeros(shape, dtype, device));
  }

  step(kernel: PartialFcKernelHandle): void {
    check('lr', this.lr, 0, Infinity);
    kernel.sgdStep(this.state.get('momentum_buffer'), { lr: this.lr, momentum: this.momentum, weightDecay: this.weightDecay });
  }

  dispose(): void {
    for (const t of this.state.values()) t.dispose();
  }
}

class SparseAdamW implements SparseOptimizer {
  lr: number;
  readonly betas: [number, number];
  readonly eps: number;
  readonly weightDecay: number;
  readonly state = new Map<string, Tensor>();

  constructor(o: SparseAdamWOptions, shape: number[], dtype: torch.Dtype, device: string) {
    this.lr = o.lr;
    this.betas = o.betas ?? [0.9, 0.999];
    this.eps = o.eps ?? 1e-8;
    this.weightDecay = o.weightDecay ?? 1e-2;
    this.betas.forEach((b, i) => {
      if (!(b >= 0 && b < 1)) throw new RangeError(`PartialFC optimizer: betas[${i}] must be in [0, 1), got ${b}`);
    });
    check('eps', this.eps, 0, Infinity);
    check('weightDecay', this.weightDecay, 0, Infinity);
    this.state.set('exp_avg', zeros(shape, dtype, device));
    this.state.set('exp_avg_sq', zeros(shape, dtype, device));
    this.state.set('step', zeros([shape[0]], 'int32', device));
  }

  step(kernel: PartialFcKernelHandle): void {
    check('lr', this.lr, 0, Infinity);
    const [beta1, beta2] = this.betas;
    kernel.adamwStep(this.state.get('exp_avg'), this.state.get('exp_avg_sq'), this.state.get('step'), {
      lr: this.lr,
      beta1,
      beta2,
      eps: this.eps,
      weightDecay: this.weightDecay,
    });
  }

  dispose(): void {
    for (const t of this.state.values()) t.dispose();
  }
}

function check(name: string, value: number, min: number, max: number): void {
  if (!(value >= min && value <= max && !Number.isNaN(value))) {
    throw new RangeError(`PartialFC optimizer: ${name} must be in [${min}, ${max === Infinity ? '∞' : max}], got ${value}`);
  }
}

/** The optimizer for a shard of `shape` stored as `dtype` on `device`, with zeroed state there. */
export function createSparseOptimizer(o: SparseOptimizerOptions, shape: number[], dtype: torch.Dtype, device = 'cpu'): SparseOptimizer {
  if (o.type === 'sgd') return new SparseSGD(o, shape, dtype, device);
  if (o.type === 'adamw') return new SparseAdamW(o, shape, dtype, device);
  throw new TypeError(`PartialFC optimizer: type must be 'sgd' or 'adamw', got '${(o as { type: unknown }).type}'`);
}

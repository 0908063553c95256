/**
 * Batch normalisation (torch.nn.BatchNorm1d / BatchNorm2d), with PyTorch's state: running_mean,
 * running_var and num_batches_tracked (int64) buffers, updated in training exactly as PyTorch
 * does (the running statistics in place by ATen's batch_norm, unbiased variance).
 *
 * With `syncStatistics` set (torch.nn.SyncBatchNorm's job, see distributed/sync-batchnorm.ts) the
 * training statistics are those of the whole global batch: the sums over every process's batch.
 */
import { batchNorm, cat, full, noGrad, ones, tensor, zeros, type Tensor } from '../torch/index.js';

/** A differentiable sum over processes (ProcessGroup.allReduceSumWithGrad). */
export type SumOverProcesses = (t: Tensor) => Tensor;
import { Module } from './module.js';

export interface BatchNormOptions {
  eps?: number;
  /** weight of the new batch statistics in the running ones (default 0.1); null: cumulative average */
  momentum?: number | null;
  /** learned per-channel weight (ones) and bias (zeros); default true */
  affine?: boolean;
  /** keep running statistics for eval (default true); false: batch statistics in eval too */
  trackRunningStats?: boolean;
}

/** The shared part of BatchNorm1d and BatchNorm2d (PyTorch's _BatchNorm), for instanceof checks. */
export abstract class BatchNorm extends Module {
  readonly eps: number;
  readonly momentum: number | null;
  readonly weight: Tensor | undefined;
  readonly bias: Tensor | undefined;
  readonly runningMean: Tensor | undefined;
  readonly runningVar: Tensor | undefined;
  readonly numBatchesTracked: Tensor | undefined;
  /** set: training statistics over all processes' batches (SyncBatchNorm) */
  syncStatistics: SumOverProcesses | undefined;

  constructor(readonly numFeatures: number, { eps = 1e-5, momentum = 0.1, affine = true, trackRunningStats = true }: BatchNormOptions = {}) {
    super();
    this.eps = eps;
    this.momentum = momentum;
    if (affine) {
      this.weight = this.registerParameter('weight', ones([numFeatures]));
      this.bias = this.registerParameter('bias', zeros([numFeatures]));
    }
    if (trackRunningStats) {
      this.runningMean = this.registerBuffer('running_mean', zeros([numFeatures]));
      this.runningVar = this.registerBuffer('running_var', ones([numFeatures]));
      this.numBatchesTracked = this.registerBuffer('num_batches_tracked', tensor(0, { dtype: 'int64' }));
    }
  }

  /** Rank check of the input: [N, C] or [N, C, L] for 1d, [N, C, H, W] for 2d. */
  protected abstract checkInputDim(x: Tensor): void;

  forward(x: Tensor): Tensor {
    this.checkInputDim(x);
    // Eval without running statistics normalises with the batch's own.
    const useBatchStats = this.training || this.runningMean === undefined;
    // synced: one value per channel here is fine when other processes bring more
    if (useBatchStats && !(this.training && this.syncStatistics)) checkBatchSize(x);
    let factor = this.momentum ?? 0;
    if (this.training && this.numBatchesTracked) {
      this.numBatchesTracked.add_(1);
      if (this.momentum === null) factor = 1 / this.numBatchesTracked.item();
    }
    if (this.training && this.syncStatistics) return this.syncedForward(x, this.syncStatistics, factor);
    return batchNorm(x, this.runningMean, this.runningVar, {
      weight: this.weight,
      bias: this.bias,
      training: useBatchStats,
      momentum: factor,
      eps: this.eps,
    });
  }

  /**
   * Training forward with the global batch's statistics, in float32 whatever x's dtype: the mean
   * from the all-reduced sums (and counts: the last batch may be short on some process), then the
   * biased variance from the all-reduced squared deviations — two passes, as accurate as ATen's own;
   * gradients flow back through both all-reduces. The running variance is unbiased (n − 1), as ATen's.
   */
  private syncedForward(x: Tensor, sumOverProcesses: SumOverProcesses, factor: number): Tensor {
    const c = x.shape[1];
    const dims = [0, ...Array.from({ length: x.ndim - 2 }, (_, i) => i + 2)];
    const shape = [1, c, ...Array<number>(x.ndim - 2).fill(1)];
    const x32 = x.float();
    // the count stays a tensor: reading it would stop a CUDA stream at every layer
    const sums = sumOverProcesses(cat([x32.sum(dims), full([1], x.numel / c, { device: x.device })]));
    const count = sums.narrow(0, c, 1);
    const mean = sums.narrow(0, 0, c).div(count);
    const centred = x32.sub(mean.view(shape));
    const variance = sumOverProcesses(centred.square().sum(dims)).div(count);
    let scale = variance.add(this.eps).rsqrt();
    if (this.weight) scale = scale.mul(this.weight);
    let y = centred.mul(scale.view(shape));
    if (this.bias) y = y.add(this.bias.view(shape));
    if (this.runningMean && this.runningVar) {
      noGrad(() => {
        this.runningMean!.mul_(1 - factor).add_(mean.detach().mul(factor));
        this.runningVar!.mul_(1 - factor).add_(variance.detach().mul(count).div(count.sub(1)).mul(factor));
      });
    }
    return y.dtype === x.dtype ? y : y.to(x.dtype);
  }
}

// Training statistics need more than one value per channel (the unbiased variance divides by n − 1).
function checkBatchSize(x: Tensor): void {
  const [n, , ...rest] = x.shape;
  if (rest.reduce((a, b) => a * b, n) === 1) throw new Error(`Expected more than 1 value per channel when training, got input size [${x.shape.join(', ')}]`);
}

/** Batch norm over [N, C] or [N, C, L] inputs (statistics per channel C). */
export class BatchNorm1d extends BatchNorm {
  protected checkInputDim(x: Tensor): void {
    if (x.ndim !== 2 && x.ndim !== 3) throw new Error(`expected 2D or 3D input (got ${x.ndim}D input)`);
  }
}

/** Batch norm over [N, C, H, W] inputs (statistics per channel C). */
export class BatchNorm2d extends BatchNorm {
  protected checkInputDim(x: Tensor): void {
    if (x.ndim !== 4) throw new Error(`expected 4D input (got ${x.ndim}D input)`);
  }
}

/**
 * Stochastic depth (timm's DropPath, which arcface_torch's ViT uses): in training each sample's
 * residual branch is dropped with probability p, and kept ones are scaled by 1/(1−p).
 */
import { aten, empty, tidy, type Tensor } from '../torch/index.js';
import { Module } from '../nn/index.js';

const bernoulli = aten('bernoulli.p');

export class DropPath extends Module {
  constructor(readonly p = 0) {
    super();
    if (p < 0 || p > 1) throw new RangeError(`drop path probability has to be between 0 and 1, but got ${p}`);
  }

  /**
   * The factors of one training call, shape [B, 1, …]: 0 or 1/(1−p), drawn as timm draws them
   * (bernoulli(1−p), then divided); undefined when nothing is dropped (eval, or p = 0). Drawing
   * them apart from forward lets a recomputation (activation checkpointing) reuse them.
   */
  sample(x: Tensor): Tensor | undefined {
    if (!this.training || this.p === 0) return undefined;
    const keep = 1 - this.p;
    const shape = [x.shape[0], ...x.shape.slice(1).map(() => 1)];
    return tidy(() => {
      const factors: Tensor = bernoulli(empty(shape, { dtype: x.dtype, device: x.device }), keep);
      return keep > 0 ? factors.div_(keep) : factors;
    });
  }

  /** x · factors; without factors, draws its own in training (the identity in eval). */
  forward(x: Tensor, factors?: Tensor): Tensor {
    if (factors) return x.mul(factors);
    return tidy(() => {
      const own = this.sample(x);
      return own ? x.mul(own) : x;
    });
  }
}

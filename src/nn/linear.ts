/** Fully connected layer (torch.nn.Linear) and the pass-through Identity. */
import { empty, linear, type Tensor } from '../torch/index.js';
import { Module } from './module.js';
import { calculateFanInAndFanOut, kaimingUniform_, uniform_ } from './init.js';

/** y = x·Wᵀ + b over the last dimension; weight [outFeatures, inFeatures]. */
export class Linear extends Module {
  readonly weight: Tensor;
  readonly bias: Tensor | undefined;

  constructor(readonly inFeatures: number, readonly outFeatures: number, { bias = true }: { bias?: boolean } = {}) {
    super();
    this.weight = this.registerParameter('weight', empty([outFeatures, inFeatures]));
    this.bias = bias ? this.registerParameter('bias', empty([outFeatures])) : undefined;
    this.resetParameters();
  }

  /** PyTorch's default: kaiming_uniform_(a=√5) weight, bias U(±1/√fan_in). */
  resetParameters(): void {
    kaimingUniform_(this.weight, { a: Math.sqrt(5) });
    if (this.bias) {
      const { fanIn } = calculateFanInAndFanOut(this.weight);
      const bound = fanIn > 0 ? 1 / Math.sqrt(fanIn) : 0;
      uniform_(this.bias, -bound, bound);
    }
  }

  forward(x: Tensor): Tensor {
    return linear(x, this.weight, this.bias);
  }
}

/** Returns its input unchanged (the same Tensor object). */
export class Identity extends Module {
  forward(x: Tensor): Tensor {
    return x;
  }
}

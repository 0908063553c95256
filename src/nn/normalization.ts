/** Layer normalisation (torch.nn.LayerNorm). */
import { layerNorm, ones, zeros, type Tensor } from '../torch/index.js';
import { Module } from './module.js';

export interface LayerNormOptions {
  eps?: number;
  /** learned per-element weight (ones) and bias (zeros); default true */
  elementwiseAffine?: boolean;
}

/** Normalises over the trailing dims `normalizedShape` of each sample. */
export class LayerNorm extends Module {
  readonly normalizedShape: number[];
  readonly eps: number;
  readonly weight: Tensor | undefined;
  readonly bias: Tensor | undefined;

  constructor(normalizedShape: number | number[], { eps = 1e-5, elementwiseAffine = true }: LayerNormOptions = {}) {
    super();
    this.normalizedShape = typeof normalizedShape === 'number' ? [normalizedShape] : [...normalizedShape];
    this.eps = eps;
    if (elementwiseAffine) {
      this.weight = this.registerParameter('weight', ones(this.normalizedShape));
      this.bias = this.registerParameter('bias', zeros(this.normalizedShape));
    }
  }

  forward(x: Tensor): Tensor {
    return layerNorm(x, this.normalizedShape, this.weight, this.bias, this.eps);
  }
}

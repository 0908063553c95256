/** Dropout layer (torch.nn.Dropout). */
import { dropout, type Tensor } from '../torch/index.js';
import { Module } from './module.js';

/** In training, zeroes each element with probability p and scales the rest by 1/(1−p); in eval, the identity. */
export class Dropout extends Module {
  constructor(readonly p = 0.5) {
    super();
    if (p < 0 || p > 1) throw new RangeError(`dropout probability has to be between 0 and 1, but got ${p}`);
  }

  forward(x: Tensor): Tensor {
    return dropout(x, this.p, this.training);
  }
}

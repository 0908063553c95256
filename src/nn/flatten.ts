/** Flatten layer (torch.nn.Flatten): merges dims startDim..endDim, by default all but the batch dim. */
import { flatten, type Tensor } from '../torch/index.js';
import { Module } from './module.js';

export class Flatten extends Module {
  constructor(readonly startDim = 1, readonly endDim = -1) {
    super();
  }

  forward(x: Tensor): Tensor {
    return flatten(x, this.startDim, this.endDim);
  }
}

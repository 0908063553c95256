/** Activation layers: PReLU (learned slopes) and the parameter-free ReLU, ReLU6, Sigmoid. */
import { full, prelu, relu, relu6, sigmoid, type Tensor } from '../torch/index.js';
import { Module } from './module.js';

/**
 * max(0, x) + a·min(0, x) with a learned slope `a` per channel (dim 1), or one shared slope
 * when numParameters is 1 (torch.nn.PReLU).
 */
export class PReLU extends Module {
  readonly weight: Tensor;

  constructor(readonly numParameters = 1, init = 0.25) {
    super();
    this.weight = this.registerParameter('weight', full([numParameters], init));
  }

  forward(x: Tensor): Tensor {
    return prelu(x, this.weight);
  }
}

export class ReLU extends Module {
  forward(x: Tensor): Tensor {
    return relu(x);
  }
}

/** min(max(0, x), 6) */
export class ReLU6 extends Module {
  forward(x: Tensor): Tensor {
    return relu6(x);
  }
}

export class Sigmoid extends Module {
  forward(x: Tensor): Tensor {
    return sigmoid(x);
  }
}

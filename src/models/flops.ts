/**
 * Multiply-accumulates and parameters of a model, counted the way arcface_torch's flops.py counts
 * them (ptflops' per-module rules: conv, linear, batch norm ×2 when affine, PReLU/ReLU, pooling;
 * residual additions are not counted). arcface_torch reports these MACs as "GFLOPs".
 */
import { noGrad, tidy, zeros, type Tensor } from '../torch/index.js';
import { Module, Conv2d, Linear, BatchNorm, PReLU, ReLU, ReLU6 } from '../nn/index.js';

export interface Complexity {
  /** multiply-accumulates of one forward pass on one input */
  macs: number;
  params: number;
  trainableParams: number;
}

function macsOf(m: Module, input: Tensor, output: Tensor): number {
  const numel = (shape: number[]) => shape.reduce((a, b) => a * b, 1);
  if (m instanceof Conv2d) {
    const [n, outC, h, w] = output.shape;
    const positions = n * h * w;
    const perPosition = m.kernelSize[0] * m.kernelSize[1] * m.inChannels * (m.outChannels / m.groups);
    return perPosition * positions + (m.bias ? outC * positions : 0);
  }
  if (m instanceof Linear) return numel(input.shape) * m.outFeatures + (m.bias ? m.outFeatures : 0);
  if (m instanceof BatchNorm) return numel(input.shape) * (m.weight ? 2 : 1);
  if (m instanceof PReLU || m instanceof ReLU || m instanceof ReLU6) return numel(output.shape);
  return 0;
}

/** Counts by running one eval-mode forward pass on a zero input of `inputShape` (batch 1). */
export function countComplexity(model: Module, inputShape: number[] = [1, 3, 112, 112]): Complexity {
  let macs = 0;
  const leaves = model.modules().filter((m) => m.children().length === 0);
  const patched = leaves.map((m) => {
    const original = m.forward;
    m.forward = (x: Tensor, ...rest: unknown[]) => {
      const y = original.call(m, x, ...rest);
      macs += macsOf(m, x, y);
      return y;
    };
    return m;
  });
  const wasTraining = model.training;
  try {
    model.eval();
    noGrad(() => tidy(() => model.forward(zeros(inputShape))));
  } finally {
    for (const m of patched) delete (m as { forward?: unknown }).forward;
    model.train(wasTraining);
  }
  const params = model.parameters();
  const count = (ps: Tensor[]) => ps.reduce((a, p) => a + p.numel, 0);
  return { macs, params: count(params), trainableParams: count(params.filter((p) => p.requiresGrad)) };
}

/**
 * Weight initialisation, as torch.nn.init: every function fills its tensor in place under
 * noGrad (so parameters keep their identity and no graph is recorded) and returns it. The
 * bounds and standard deviations are computed exactly as PyTorch computes them, so with the
 * same seed the same draws come out.
 */
import { noGrad, truncNormal, type Tensor } from '../torch/index.js';

export type Nonlinearity =
  | 'linear' | 'conv1d' | 'conv2d' | 'conv3d' | 'conv_transpose1d' | 'conv_transpose2d' | 'conv_transpose3d'
  | 'sigmoid' | 'tanh' | 'relu' | 'leaky_relu' | 'selu';
export type FanMode = 'fan_in' | 'fan_out';

const LINEAR_GAIN = new Set(['linear', 'conv1d', 'conv2d', 'conv3d', 'conv_transpose1d', 'conv_transpose2d', 'conv_transpose3d', 'sigmoid']);

/** The recommended gain for a nonlinearity (torch.nn.init.calculate_gain); `param` is leaky_relu's slope (default 0.01). */
export function calculateGain(nonlinearity: Nonlinearity, param?: number): number {
  if (LINEAR_GAIN.has(nonlinearity)) return 1;
  switch (nonlinearity) {
    case 'tanh': return 5.0 / 3;
    case 'relu': return Math.sqrt(2.0);
    case 'leaky_relu': {
      const slope = param ?? 0.01;
      return Math.sqrt(2.0 / (1 + slope ** 2));
    }
    case 'selu': return 3.0 / 4;
  }
  throw new Error(`Unsupported nonlinearity ${nonlinearity}`);
}

/** Fan-in and fan-out of a weight [out, in, ...kernel]: in·kernel and out·kernel elements. */
export function calculateFanInAndFanOut(tensor: Tensor): { fanIn: number; fanOut: number } {
  const shape = tensor.shape;
  if (shape.length < 2) throw new Error('Fan in and fan out can not be computed for tensor with fewer than 2 dimensions');
  const receptiveField = shape.slice(2).reduce((a, b) => a * b, 1);
  return { fanIn: shape[1] * receptiveField, fanOut: shape[0] * receptiveField };
}

const fill = (tensor: Tensor, fn: (t: Tensor) => void): Tensor => noGrad(() => {
  fn(tensor);
  return tensor;
});

export const uniform_ = (tensor: Tensor, a = 0, b = 1): Tensor => fill(tensor, (t) => t.uniform_(a, b));
export const normal_ = (tensor: Tensor, mean = 0, std = 1): Tensor => fill(tensor, (t) => t.normal_(mean, std));
export const constant_ = (tensor: Tensor, value: number): Tensor => fill(tensor, (t) => t.fill_(value));
export const zeros_ = (tensor: Tensor): Tensor => fill(tensor, (t) => t.zero_());
export const ones_ = (tensor: Tensor): Tensor => fill(tensor, (t) => t.fill_(1));

/** Normal(mean, std) restricted to [a, b] (torch.nn.init.trunc_normal_). */
export const truncNormal_ = (tensor: Tensor, mean = 0, std = 1, a = -2, b = 2): Tensor =>
  fill(tensor, (t) => truncNormal(t, mean, std, a, b));

export interface KaimingOptions {
  /** negative slope of the leaky_relu that follows (default 0) */
  a?: number;
  /** preserve the variance of the forward pass (fan_in, default) or of the backward pass (fan_out) */
  mode?: FanMode;
  nonlinearity?: Nonlinearity;
}

function kaimingStd(tensor: Tensor, { a = 0, mode = 'fan_in', nonlinearity = 'leaky_relu' }: KaimingOptions): number {
  const { fanIn, fanOut } = calculateFanInAndFanOut(tensor);
  return calculateGain(nonlinearity, a) / Math.sqrt(mode === 'fan_in' ? fanIn : fanOut);
}

/** He et al. uniform: U(−bound, bound) with bound = gain·√(3 / fan) (torch.nn.init.kaiming_uniform_). */
export function kaimingUniform_(tensor: Tensor, options: KaimingOptions = {}): Tensor {
  if (tensor.numel === 0) return tensor;
  const bound = Math.sqrt(3.0) * kaimingStd(tensor, options);
  return uniform_(tensor, -bound, bound);
}

/** He et al. normal: N(0, gain² / fan) (torch.nn.init.kaiming_normal_). */
export function kaimingNormal_(tensor: Tensor, options: KaimingOptions = {}): Tensor {
  if (tensor.numel === 0) return tensor;
  return normal_(tensor, 0, kaimingStd(tensor, options));
}

const xavierStd = (tensor: Tensor, gain: number): number => {
  const { fanIn, fanOut } = calculateFanInAndFanOut(tensor);
  return gain * Math.sqrt(2.0 / (fanIn + fanOut));
};

/** Glorot uniform: U(−a, a) with a = gain·√(6 / (fan_in + fan_out)) (torch.nn.init.xavier_uniform_). */
export function xavierUniform_(tensor: Tensor, gain = 1): Tensor {
  const bound = Math.sqrt(3.0) * xavierStd(tensor, gain);
  return uniform_(tensor, -bound, bound);
}

/** Glorot normal: N(0, gain² · 2 / (fan_in + fan_out)) (torch.nn.init.xavier_normal_). */
export function xavierNormal_(tensor: Tensor, gain = 1): Tensor {
  return normal_(tensor, 0, xavierStd(tensor, gain));
}

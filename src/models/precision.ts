/**
 * Mixed precision of a backbone's body, as arcface_torch runs it: the convolutional body under
 * autocast, the embedding head (Linear + BatchNorm1d) in float32.
 */
import { autocast, type Tensor } from '../torch/index.js';

export type BodyPrecision = 'float32' | 'float16' | 'bfloat16';

export interface BackboneOptions {
  /** size of the embedding (arcface_torch's num_features), default 512 */
  embeddingSize?: number;
  /** dropout before the embedding layer (iresnet only), default 0 */
  dropout?: number;
  /** autocast float16 around the body (CUDA), as arcface_torch's `fp16` */
  fp16?: boolean;
  /** autocast bfloat16 around the body (CPU or CUDA) */
  bf16?: boolean;
  /** run the convolutions on channels-last (NHWC) activations */
  channelsLast?: boolean;
}

export function bodyPrecision(o: BackboneOptions): BodyPrecision {
  if (o.fp16 && o.bf16) throw new Error('backbone options: choose one of fp16 and bf16');
  return o.fp16 ? 'float16' : o.bf16 ? 'bfloat16' : 'float32';
}

/** Runs the body under the chosen autocast, on the input's device; returns float32. */
export function runBody(precision: BodyPrecision, x: Tensor, body: () => Tensor): Tensor {
  if (precision === 'float32') return body();
  const deviceType = x.device.startsWith('cuda') ? 'cuda' : 'cpu';
  if (deviceType === 'cpu' && precision === 'float16') {
    throw new Error('fp16 autocast needs a CUDA device; on the CPU use bf16');
  }
  return autocast({ deviceType, dtype: precision }, body);
}

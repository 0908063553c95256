/** Label checks for the classification heads: a bad label is an error naming it and its place. */
import * as torch from '../torch/index.js';
import type { Tensor } from '../torch/index.js';

/**
 * Labels [B] or [B, 1] (any integer dtype, or floats holding integers) as int64 [B]; throws on a
 * label that is not an integer or not in [0, numClasses). The result is a new tensor.
 */
export function validateLabels(labels: Tensor, numClasses: number, batchSize: number): Tensor {
  const shape = labels.shape;
  if (!(shape.length === 1 || (shape.length === 2 && shape[1] === 1)) || shape[0] !== batchSize) {
    throw new RangeError(`labels must have shape [${batchSize}] (one per embedding), got [${shape.join(', ')}]`);
  }
  if (labels.dtype === 'bool') throw new TypeError('labels must be integers, got a bool tensor');
  const values = labels.data();
  for (let i = 0; i < values.length; i++) {
    const v = Number(values[i]);
    if (!Number.isInteger(v)) throw new RangeError(`label ${v} at position ${i} is not an integer`);
    if (v < 0 || v >= numClasses) throw new RangeError(`label ${v} at position ${i} is out of range [0, ${numClasses})`);
  }
  return torch.tidy(() => labels.reshape([batchSize]).to('int64').contiguous());
}

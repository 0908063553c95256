/** Gradient clipping by total norm (torch.nn.utils.clip_grad_norm_), in one native call. */
import { native } from '../torch/native.js';
import { Tensor } from '../torch/tensor.js';

/**
 * Scales the gradients of `params` in place so that their joint `normType`-norm (the norm of the
 * per-gradient norms) is at most `maxNorm`: each is multiplied by min(1, maxNorm / (total + 1e-6)).
 * Parameters without a gradient are skipped. Returns the total norm before clipping as a 0-d tensor
 * (0 if no gradients), as PyTorch does: on a GPU nothing waits for the device until a caller reads
 * it (`.item()`); callers that don't need the number dispose it.
 */
export function clipGradNorm(params: Tensor | Iterable<Tensor>, maxNorm: number, normType: number | 'inf' = 2): Tensor {
  const list = params instanceof Tensor ? [params] : [...params];
  return native.clipGradNorm(list, maxNorm, normType === 'inf' ? Infinity : normType);
}

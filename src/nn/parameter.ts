/**
 * Parameters: what torch.nn.Parameter is here. A parameter is a plain leaf Tensor with
 * requiresGrad set, taken out of every open scope so that it lives as long as its module.
 * Optimizers hold the Tensor objects themselves, so a parameter's value is changed in place
 * (nn.init, loadStateDict), never by putting a new Tensor in its place.
 */
import { keep, type Tensor } from '../torch/index.js';

/** A module's trainable tensor (a leaf Tensor with requiresGrad; the module owns and disposes it). */
export type Parameter = Tensor;

/**
 * Makes `data` a parameter: sets requiresGrad and keeps it out of open scopes. Takes ownership of
 * `data` itself (no copy), so it must be a leaf: a freshly created tensor, not the result of an
 * op recorded by autograd.
 */
export function parameter(data: Tensor, requiresGrad = true): Parameter {
  if (!data.isLeaf) {
    throw new TypeError('parameter(): data must be a leaf tensor (create it under noGrad or detach it first)');
  }
  data.requiresGrad = requiresGrad;
  return keep(data);
}

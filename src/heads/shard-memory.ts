/** Memory for the Partial FC shard and its optimizer state. */
import * as torch from '../torch/index.js';
import type { Tensor } from '../torch/index.js';
import { native } from '../torch/native.js';

/**
 * An uninitialised tensor (kept out of open scopes) for a shard or its optimizer state. On the CPU on
 * transparent huge pages where the kernel allows them: first touch of 4 KiB pages is slow on VMs
 * (zero-filling 2 GB took 6–7 s here, 2.3–3 s on 2 MiB pages), and a step reads scattered rows of
 * these tensors. On a GPU, from its caching allocator.
 */
export function shardTensor(shape: number[], dtype: torch.Dtype, device = 'cpu'): Tensor {
  const t = torch.keep(torch.empty(shape, { dtype, device }));
  if (device === 'cpu') native.adviseHugePages(t);
  return t;
}

/** Memory for the Partial FC shard and its optimizer state. */
import * as torch from '../torch/index.js';
import type { Tensor } from '../torch/index.js';
import { native } from '../torch/native.js';

/**
 * An uninitialised tensor (kept out of open scopes) on transparent huge pages where the kernel
 * allows them: first touch of 4 KiB pages is slow on VMs (zero-filling 2 GB took 6–7 s here, 2.3–3 s
 * on 2 MiB pages), and a step reads scattered rows of these tensors.
 */
export function hugePageTensor(shape: number[], dtype: torch.Dtype): Tensor {
  const t = torch.keep(torch.empty(shape, { dtype }));
  native.adviseHugePages(t);
  return t;
}

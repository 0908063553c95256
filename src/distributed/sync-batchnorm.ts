/**
 * SyncBatchNorm (torch.nn.SyncBatchNorm.convert_sync_batchnorm's job): every BatchNorm of a module
 * normalises with the statistics of the whole global batch, summed over the group's processes,
 * instead of its own process's batch. Costs two small all-reduces per layer in forward and two in
 * backward; makes training independent of how the global batch is dealt out to processes (elastic
 * resume continues like the uninterrupted run). A world of one keeps ATen's own batch_norm.
 */
import { BatchNorm, type Module } from '../nn/index.js';
import type { ProcessGroup } from './process-group.js';

/** Turns every BatchNorm in `module` into a synchronised one over `group`; returns how many. */
export function convertSyncBatchNorm(module: Module, group: ProcessGroup): number {
  const layers = module.modules().filter((m): m is BatchNorm => m instanceof BatchNorm);
  for (const bn of layers) bn.syncStatistics = group.worldSize > 1 ? (t) => group.allReduceSumWithGrad(t) : undefined;
  return layers.length;
}

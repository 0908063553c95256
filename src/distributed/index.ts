/** Distributed training: process groups (c10d), data parallelism, the worker launcher. */
export { ProcessGroup, initProcessGroup, distEnv, ncclVersion, type Backend, type DistEnv, type ProcessGroupOptions, type ReduceOp } from './process-group.js';
export { DistributedDataParallel, type DataParallelOptions } from './data-parallel.js';
export { launch, parseLaunchArgs, type LaunchOptions } from './launcher.js';
export { convertSyncBatchNorm } from './sync-batchnorm.js';

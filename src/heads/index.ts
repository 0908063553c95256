/** Classification heads: margin softmax losses and Partial FC. */
export { CombinedMarginLoss, arcface, cosface, type CombinedMarginOptions } from './margin.js';
export { PartialFC, type PartialFCOptions, type CentreStorage, type LogitsMode, type PartialFCImplementation, type LoadStateDictOptions } from './partial-fc.js';
export { type SparseOptimizer, type SparseOptimizerOptions, type SparseSGDOptions, type SparseAdamWOptions } from './sparse-optimizer.js';
export { classShard, singleProcess, type ShardGroup, type ClassShard } from './shard-group.js';
export { validateLabels } from './labels.js';
export { shardGroupOf } from './process-group-shards.js';

/**
 * Resuming a checkpoint set on another world size: the Partial FC centres (and their optimizer
 * state) are cut by class id, as classShard splits them (contiguous ranges, as arcface_torch), so
 * new rank r reads the rows of its range from each old shard that holds some of them. Everything
 * else (backbone, its optimizer, scheduler, scaler, generators, loader position) is the same on
 * every rank under DDP and comes from old rank 0's file; the loader keeps its batch index, which is
 * the global sample count over the global batch (the same global batch: checked by the caller).
 */
import * as torch from '../torch/index.js';
import type { Tensor } from '../torch/index.js';
import { classShard } from '../heads/shard-group.js';
import { checkpointFile, tensorsIn, type Resharded } from './checkpoint.js';

export interface ShardedSet {
  worldSize: number;
  numClasses: number;
}

/**
 * Rows [start, start + count) of the whole class-centre matrix and of each optimizer state, by key,
 * gathered from the set's files in `dir` (new tensors: the caller disposes them).
 */
export function headRows(dir: string, set: ShardedSet, start: number, count: number): Map<string, Tensor> {
  const pieces = new Map<string, Tensor[]>();
  try {
    for (let old = 0; old < set.worldSize; old++) {
      const shard = classShard(set.numClasses, old, set.worldSize);
      const from = Math.max(start, shard.classStart);
      const to = Math.min(start + count, shard.classStart + shard.numLocal);
      if (from >= to) continue;
      const file = checkpointFile(dir, old);
      const loaded = torch.load(file);
      try {
        const head = loaded instanceof Map ? loaded.get('state_dict_softmax_fc') : undefined;
        if (!(head instanceof Map)) throw new Error(`resume: ${file}: missing 'state_dict_softmax_fc'`);
        for (const [key, t] of head as Map<string, Tensor>) {
          if (t.shape[0] !== shard.numLocal) throw new Error(`resume: ${file}: '${key}' has ${t.shape[0]} rows, rank ${old} of ${set.worldSize} holds ${shard.numLocal} classes`);
          const list = pieces.get(key) ?? [];
          list.push(torch.tidy(() => t.narrow(0, from - shard.classStart, to - from).clone()));
          pieces.set(key, list);
        }
      } finally {
        torch.dispose(tensorsIn(loaded));
      }
    }
    return new Map([...pieces].map(([key, list]) => [key, torch.cat(list)]));
  } finally {
    for (const list of pieces.values()) torch.dispose(list);
  }
}

/** This rank's head state and place, from a set written by another number of processes. */
export function reshard(dir: string, set: ShardedSet, rank: number, worldSize: number): Resharded {
  const { classStart, numLocal } = classShard(set.numClasses, rank, worldSize);
  return { head: headRows(dir, set, classStart, numLocal), rank, worldSize };
}

/**
 * How Partial FC splits the class centres over ranks, and what it needs from the process group.
 * One process uses `singleProcess` (every collective is the identity); the multi-process head
 * passes a c10d-backed ShardGroup and nothing else in the head changes.
 */
import type { Tensor } from '../torch/index.js';

export interface ShardGroup {
  readonly rank: number;
  readonly worldSize: number;
  /**
   * Every rank's tensor concatenated along dim 0 (equal shapes on all ranks). For embeddings it
   * must carry gradient like arcface_torch's AllGather: backward returns this rank's slice of the
   * gradient summed over ranks, times worldSize (so DDP's averaging of the backbone comes out as a sum).
   */
  allGather(t: Tensor): Tensor;
  /** In place: element-wise MAX or SUM over the ranks. */
  allReduce(t: Tensor, op: 'max' | 'sum'): void;
}

/** World size 1: the gathered batch is the local batch, reductions change nothing. */
export const singleProcess: ShardGroup = {
  rank: 0,
  worldSize: 1,
  allGather: (t) => t,
  allReduce: () => {},
};

export interface ClassShard {
  /** centres on this rank */
  numLocal: number;
  /** global id of its first centre */
  classStart: number;
}

/** arcface_torch's split: the first numClasses % worldSize ranks hold one centre more. */
export function classShard(numClasses: number, rank: number, worldSize: number): ClassShard {
  const base = Math.floor(numClasses / worldSize), extra = numClasses % worldSize;
  return { numLocal: base + (rank < extra ? 1 : 0), classStart: base * rank + Math.min(rank, extra) };
}

/** Partial FC over a c10d process group: the ShardGroup that the multi-process head needs. */
import type { ProcessGroup } from '../distributed/index.js';
import type { ShardGroup } from './shard-group.js';

export function shardGroupOf(pg: ProcessGroup): ShardGroup {
  return {
    rank: pg.rank,
    worldSize: pg.worldSize,
    allGather: (t) => pg.allGatherWithGrad(t),
    allReduce: (t, op) => pg.allReduce(t, op),
  };
}

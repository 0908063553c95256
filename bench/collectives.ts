/**
 * All-reduce bandwidth over Gloo on this machine (JSON lines): 1–64 MB float32 buffers, world
 * size 2 (or --world N), processes on 127.0.0.1 started by this script.
 *   node dist/bench/collectives.js [--world 2] [--reps 10]
 * busGBps = size × 2(n−1)/n ÷ time, the traffic each rank moves in a ring all-reduce.
 */
import { fileURLToPath } from 'node:url';
import * as torch from '../src/torch/index.js';
import { initProcessGroup } from '../src/distributed/index.js';
import { emit, round, summarize, timeMs, argNumber, runRanks } from './harness.js';

const reps = argNumber('reps', 10);

if (process.env.RANK !== undefined) {
  const pg = initProcessGroup();
  for (const mb of [1, 4, 16, 64]) {
    const t = torch.ones([(mb * 2 ** 20) / 4]);
    pg.allReduce(t); // warm-up: connections and buffers
    const ms: number[] = [];
    for (let i = 0; i < reps; i++) {
      pg.barrier();
      ms.push(timeMs(() => pg.allReduce(t)));
    }
    const s = summarize(ms);
    const n = pg.worldSize;
    if (pg.rank === 0) {
      emit({ bench: 'allreduce_gloo', worldSize: n, mb, ...s, algGBps: round(mb / 1024 / (s.medianMs / 1000)), busGBps: round(((mb / 1024) * 2 * (n - 1)) / n / (s.medianMs / 1000)) });
    }
    t.dispose();
  }
  pg.destroy();
} else {
  await runRanks(fileURLToPath(import.meta.url), argNumber('world', 2));
}

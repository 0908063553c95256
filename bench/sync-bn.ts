/**
 * SyncBatchNorm's cost (JSON lines): one training step (forward, backward, gradient all-reduce) of a
 * backbone under DDP on world 2 (or --world N) ranks on 127.0.0.1, with each process's own BatchNorm
 * statistics, with the global batch's (convertSyncBatchNorm), and — to tell the synced forward's
 * arithmetic from its collectives — the synced forward with a sum over processes that is the
 * identity (each process's own statistics again, no all-reduce), interleaved.
 *   node dist/bench/sync-bn.js [--network mbf] [--batch 16] [--reps 6] [--world 2]
 * Each rank gets cores / world intra-op threads, as under `arcface launch`, unless OMP_NUM_THREADS is set.
 */
import { fileURLToPath } from 'node:url';
import * as torch from '../src/torch/index.js';
import { BatchNorm } from '../src/nn/index.js';
import { initProcessGroup, convertSyncBatchNorm, DistributedDataParallel } from '../src/distributed/index.js';
import { getModel } from '../src/models/index.js';
import { emit, round, summarize, timeMs, argNumber, argValue, runRanks } from './harness.js';

const network = argValue('network', 'mbf');
const batch = argNumber('batch', 16);
const reps = argNumber('reps', 6);

if (process.env.RANK !== undefined) {
  const pg = initProcessGroup();
  const model = getModel(network, {});
  model.train();
  const batchNorms = model.modules().filter((m): m is BatchNorm => m instanceof BatchNorm);
  const ddp = new DistributedDataParallel(model, pg, { bucketCapMb: 16, compression: 'float16' });
  const x = torch.keep(torch.randn([batch, 3, 112, 112]));
  const variants: Record<string, () => void> = {
    per_process: () => batchNorms.forEach((bn) => (bn.syncStatistics = undefined)),
    sync_bn: () => convertSyncBatchNorm(model, pg),
    synced_formula_without_collectives: () => batchNorms.forEach((bn) => (bn.syncStatistics = (t) => t)),
  };
  const times: Record<string, number[]> = Object.fromEntries(Object.keys(variants).map((name) => [name, []]));
  for (let r = 0; r < reps + 1; r++) {
    for (const [name, setUp] of Object.entries(variants)) {
      setUp();
      model.zeroGrad();
      pg.barrier();
      const ms = timeMs(() => {
        torch.tidy(() => ddp.forward(x).square().mean().backward());
        ddp.syncGradients();
      });
      if (r > 0) times[name].push(ms);  // round 0: warm-up
    }
  }
  if (pg.rank === 0) {
    for (const [name, t] of Object.entries(times)) {
      emit({ bench: 'sync_bn_step', case: name, network, batch, worldSize: pg.worldSize, threads: torch.getNumThreads(), batchNormLayers: batchNorms.length, ...summarize(t) });
    }
    const median = (name: string) => summarize(times[name]).medianMs;
    emit({
      bench: 'sync_bn_ratio', network,
      syncOverPerProcess: round(median('sync_bn') / median('per_process')),
      formulaOverPerProcess: round(median('synced_formula_without_collectives') / median('per_process')),
    });
  }
  ddp.dispose();
  x.dispose();
  model.dispose();
  pg.destroy();
} else {
  await runRanks(fileURLToPath(import.meta.url), argNumber('world', 2));
}

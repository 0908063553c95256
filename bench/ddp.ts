/**
 * DistributedDataParallel's gradient all-reduce overlapped with backward vs after it (JSON lines):
 * one backbone, world size 2 (or --world N) on 127.0.0.1, the two variants interleaved. Timed per
 * step: backward + syncGradients (the forward is not), and within it the wait in syncGradients.
 *   node dist/bench/ddp.js [--network r18] [--batch 8] [--reps 6] [--world 2] [--compression float16] [--bucket-mb 16]
 * Each rank gets cores / world intra-op threads, as under `arcface launch`, unless OMP_NUM_THREADS is set.
 */
import { fileURLToPath } from 'node:url';
import * as torch from '../src/torch/index.js';
import { initProcessGroup, DistributedDataParallel } from '../src/distributed/index.js';
import { getModel } from '../src/models/index.js';
import { emit, round, summarize, timeMs, argNumber, argValue, runRanks } from './harness.js';

const network = argValue('network', 'r18');
const batch = argNumber('batch', 8);
const reps = argNumber('reps', 6);
const compression = argValue('compression', 'float16') as 'none' | 'float16' | 'bfloat16';
const bucketCapMb = argNumber('bucket-mb', 16);

if (process.env.RANK !== undefined) {
  const pg = initProcessGroup();
  const model = getModel(network, {});
  model.train();
  const variants = {
    overlapped: new DistributedDataParallel(model, pg, { bucketCapMb, compression }),
    after_backward: new DistributedDataParallel(model, pg, { bucketCapMb, compression, overlap: false }),
  };
  const x = torch.keep(torch.randn([batch, 3, 112, 112]));
  const times: Record<string, { step: number[]; sync: number[]; launched: number[] }> = {};
  for (const name of Object.keys(variants)) times[name] = { step: [], sync: [], launched: [] };
  for (let r = 0; r < reps + 1; r++) {
    for (const [name, ddp] of Object.entries(variants)) {
      model.zeroGrad();
      const loss = torch.keep(torch.tidy(() => ddp.forward(x).square().mean()));
      pg.barrier(); // both ranks start backward together
      let launched = 0, sync = 0;
      const step = timeMs(() => {
        loss.backward();
        launched = ddp.bucketsInFlight;
        sync = timeMs(() => ddp.syncGradients());
      });
      loss.dispose();
      if (r === 0) continue; // warm-up
      times[name].step.push(step);
      times[name].sync.push(sync);
      times[name].launched.push(launched);
    }
  }
  if (pg.rank === 0) {
    const overlapped = summarize(times.overlapped.step), after = summarize(times.after_backward.step);
    for (const [name, t] of Object.entries(times)) {
      emit({
        bench: 'ddp_backward_sync', case: name, network, batch, worldSize: pg.worldSize, threads: torch.getNumThreads(), compression, bucketCapMb,
        buckets: variants.overlapped.buckets.length, launchedDuringBackward: Math.max(...t.launched),
        ...summarize(t.step), syncWaitMs: summarize(t.sync).medianMs,
      });
    }
    emit({ bench: 'ddp_overlap_ratio', network, afterBackwardOverOverlapped: round(after.medianMs / overlapped.medianMs) });
  }
  Object.values(variants).forEach((ddp) => ddp.dispose());
  x.dispose();
  model.dispose();
  pg.destroy();
} else {
  await runRanks(fileURLToPath(import.meta.url), argNumber('world', 2));
}

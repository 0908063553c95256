/**
 * Worker process for test/distributed.test.ts: started with the torchrun environment, runs one scenario
 * and prints one JSON line with what it saw.
 *   node dist/test/distributed-worker.js collectives | train <steps> [compression] | pfc <steps> [sampleRate] | die-after <n> <rank> | stall <rank>
 *     | grads <compression> <microSteps> | die-in-backward <rank> | sync-bn <n0,n1,…> <steps> [unsynced]
 * PG_OPTIONS: JSON of ProcessGroupOptions for initProcessGroup (backend, hostGroup); a group that cannot
 * start prints {initError} and exits 4. collectives reads PG_DEVICE (default cpu): where its tensors live.
 * pfc reads PFC_CLASSES (default 12), PFC_IMPLEMENTATION ('fused' or 'ops') and PFC_EXPORT (a path to exportWeight to).
 */
import * as torch from '../src/torch/index.js';
import * as nn from '../src/nn/index.js';
import { SGD } from '../src/optim/index.js';
import { initProcessGroup, convertSyncBatchNorm, DistributedDataParallel, type ProcessGroup } from '../src/distributed/index.js';
import { PartialFC, arcface, type PartialFCImplementation } from '../src/heads/index.js';
import { shardGroupOf } from '../src/heads/process-group-shards.js';

const [scenario, ...args] = process.argv.slice(2);
let pg: ProcessGroup;
try {
  pg = initProcessGroup(JSON.parse(process.env.PG_OPTIONS ?? '{}'));
} catch (error) {
  console.log(JSON.stringify({ initError: (error as Error).message }));
  process.exit(4);
}
const { rank, worldSize } = pg;
const out = (record: object) => console.log(JSON.stringify({ rank, worldSize, ...record }));

async function collectives() {
  const device = (process.env.PG_DEVICE ?? 'cpu') as torch.Device;
  const on = (data: number[] | number[][]) => torch.tensor(data, { device });
  const sum = on([rank + 1, 10 * (rank + 1)]);
  pg.allReduce(sum, 'sum');
  const max = on([rank, -rank]);
  pg.allReduce(max, 'max');
  const avg = on([rank * 2]);
  await pg.allReduceAsync(avg, 'avg');
  const fromLast = on([rank * 100, 7]);
  pg.broadcast(fromLast, worldSize - 1);
  const gathered = (await pg.allGatherAsync(on([[rank, rank * rank]]))).map((t) => t.toArray());
  const scattered = pg.reduceScatter(torch.arange(0, 2 * worldSize, 1, { dtype: 'float32' }).add(rank).to(device));
  pg.barrier();
  await pg.barrierAsync();
  // which c10d group carried them, and which carries a host scalar (a CPU tensor)
  const backends = { tensors: pg.backendFor(sum), hostScalar: pg.backendFor(torch.tensor([0])) };
  out({ sum: sum.toArray(), max: max.toArray(), avg: avg.toArray(), broadcast: fromLast.toArray(), gathered, scattered: scattered.toArray(), backends });
}

/** The same global batch of 8 split over the ranks; no BatchNorm, so the split changes nothing. */
function train(steps: number, compression: 'none' | 'float16') {
  torch.manualSeed(1234 + rank); // different initial weights per rank: DDP must broadcast rank 0's
  const model = new nn.Sequential(new nn.Conv2d(3, 8, 3, { padding: 1 }), new nn.PReLU(8), new nn.Flatten(), new nn.Linear(8 * 8 * 8, 5));
  const ddp = new DistributedDataParallel(model, pg, { bucketCapMb: 0.01, compression });
  const optimizer = new SGD(model.parameters(), { lr: 0.1, momentum: 0.9, weightDecay: 5e-4 });
  torch.manualSeed(99);
  const x = torch.keep(torch.randn([8, 3, 8, 8]));
  const y = torch.keep(torch.randint(0, 5, [8]));
  const per = 8 / worldSize;
  const losses: number[] = [];
  for (let step = 0; step < steps; step++) {
    const loss = torch.tidy(() => {
      const l = torch.crossEntropy(ddp.forward(x.narrow(0, rank * per, per)), y.narrow(0, rank * per, per));
      optimizer.zeroGrad();
      l.backward();
      ddp.syncGradients();
      optimizer.step();
      const global = l.detach().clone();
      pg.allReduce(global, 'avg');
      return global.item();
    });
    losses.push(loss);
  }
  const params = torch.tidy(() => model.parameters().map((p) => Array.from(p.data() as Float32Array)));
  out({ losses, buckets: ddp.buckets.length, params });
}

/**
 * Conv → PReLU → Linear (its 64 KiB weight is big enough for the caching allocator to count), and a
 * Linear that the forward never uses (registered first: it lands in the last bucket).
 */
class WithUnused extends nn.Module {
  readonly unused = this.registerModule('unused', new nn.Linear(4, 3));
  readonly body = this.registerModule('body', new nn.Sequential(new nn.Conv2d(3, 8, 3, { padding: 1 }), new nn.PReLU(8), new nn.Flatten(), new nn.Linear(8 * 8 * 8, 32)));
  forward(x: torch.Tensor): torch.Tensor {
    return this.body.forward(x);
  }
}

const flatGrads = (model: nn.Module) => torch.tidy(() => model.parameters().map((p) => (p.grad ? Array.from(p.grad.data() as Float32Array) : null)));

/**
 * One step's gradients, each rank on its own data, `microSteps` backward passes accumulated:
 * overlapped DDP (micro-steps under noSync), DDP with overlap off, and the reference: each rank's
 * local gradients all-gathered and averaged here (compressed as the wire does, summed in rank order).
 */
function grads(compression: 'none' | 'float16' | 'bfloat16', microSteps: number) {
  const live = () => ({ tensors: torch.liveTensors(), bytes: torch.cpuCacheStats().liveBytes ?? 0 });
  const before = live();
  torch.manualSeed(1234 + rank);
  const model = new WithUnused();
  torch.manualSeed(50 + rank);
  const xs = Array.from({ length: microSteps }, () => torch.keep(torch.randn([2, 3, 8, 8])));
  const ys = Array.from({ length: microSteps }, () => torch.keep(torch.randint(0, 5, [2])));
  const loss = (forward: (x: torch.Tensor) => torch.Tensor, i: number) => torch.tidy(() => torch.crossEntropy(forward(xs[i]), ys[i]).backward());

  const overlapped = new DistributedDataParallel(model, pg, { bucketCapMb: 0.001, compression }); // broadcasts rank 0's weights
  const buckets = overlapped.buckets.length;
  model.zeroGrad();
  for (let i = 0; i < microSteps; i++) loss((x) => model.forward(x), i);
  // per parameter: the mean, and the largest local gradient element of any rank (the rounding's scale)
  const reference: number[][] = [], scales: number[] = [];
  torch.tidy(() => {
    for (const p of model.parameters()) {
      const local = p.grad ?? torch.zerosLike(p);
      const wire = compression === 'none' ? local : local.div(worldSize).to(compression);
      const all = pg.allGather(wire);
      const sum = all.slice(1).reduce((acc, g) => acc.add(g), all[0]);
      reference.push(Array.from((compression === 'none' ? sum.div(worldSize) : sum.float()).data() as Float32Array));
      scales.push(Math.max(...pg.allGather(local.abs().max().reshape([1])).map((m) => m.item())));
    }
  });

  model.zeroGrad();
  const inFlight: number[] = [];
  for (let i = 0; i < microSteps; i++) {
    const forward = (x: torch.Tensor) => overlapped.forward(x);
    if (i < microSteps - 1) overlapped.noSync(() => loss(forward, i));
    else loss(forward, i);
    inFlight.push(overlapped.bucketsInFlight); // launched during the backward that just returned
  }
  overlapped.syncGradients();
  inFlight.push(overlapped.bucketsInFlight);
  const overlap = flatGrads(model);

  // Misuse is an error, on every rank alike: a forward before the previous backward was synced, and
  // a second backward over a graph whose buckets are already on the wire.
  const misuse: string[] = [];
  torch.tidy(() => {
    const l = torch.crossEntropy(overlapped.forward(xs[0]), ys[0]);
    l.backward({ retainGraph: true });
    try {
      overlapped.forward(xs[0]);
    } catch (error) {
      misuse.push((error as Error).message);
    }
    l.backward();
    try {
      overlapped.syncGradients();
    } catch (error) {
      misuse.push((error as Error).message);
    }
  });
  overlapped.dispose();

  const plain = new DistributedDataParallel(model, pg, { bucketCapMb: 0.001, compression, overlap: false });
  model.zeroGrad();
  for (let i = 0; i < microSteps; i++) loss((x) => plain.forward(x), i);
  const afterBackward = plain.bucketsInFlight;
  plain.syncGradients();
  const sync = flatGrads(model);
  plain.dispose();
  model.dispose();
  torch.dispose([...xs, ...ys]);
  const after = live(); // the reducers held nothing back: no tensor, no byte
  out({ buckets, inFlight, afterBackward, overlap, sync, reference, scales, misuse, leaked: { tensors: after.tensors - before.tensors, bytes: after.bytes - before.bytes } });
}

/** Two steps of overlapped DDP; at the second, `victim` dies after its forward while the others' backward launches the buckets. */
function dieInBackward(victim: number) {
  const model = new WithUnused();
  const ddp = new DistributedDataParallel(model, pg, { bucketCapMb: 0.001 });
  const x = torch.keep(torch.randn([2, 3, 8, 8]));
  for (let step = 0; ; step++) {
    const l = torch.keep(torch.tidy(() => ddp.forward(x).square().mean()));
    if (step === 1 && rank === victim) process.kill(process.pid, 'SIGKILL');
    l.backward();
    const inFlight = ddp.bucketsInFlight;
    const started = Date.now();
    try {
      ddp.syncGradients();
    } catch (error) {
      out({ error: (error as Error).message, afterMs: Date.now() - started, step, inFlight });
      process.exit(3);
    }
    l.dispose();
  }
}

/**
 * Backbone (data parallel) → Partial FC (class centres sharded over the ranks) → ArcFace loss, on
 * the same global batch of 8 for any world size; the centres start from one seeded matrix.
 */
function trainPartialFc(steps: number, sampleRate: number) {
  torch.manualSeed(1234 + rank);
  const numClasses = Number(process.env.PFC_CLASSES ?? 12), embeddingSize = 16;
  const backbone = new nn.Sequential(new nn.Conv2d(3, 4, 3, { padding: 1 }), new nn.PReLU(4), new nn.Flatten(), new nn.Linear(4 * 8 * 8, embeddingSize));
  const ddp = new DistributedDataParallel(backbone, pg);
  const pfc = new PartialFC({
    marginLoss: arcface({ s: 16, m: 0.3 }), embeddingSize, numClasses, sampleRate,
    optimizer: { type: 'sgd', lr: 0.1, momentum: 0.9, weightDecay: 5e-4 }, group: shardGroupOf(pg),
    implementation: (process.env.PFC_IMPLEMENTATION ?? 'fused') as PartialFCImplementation,
  });
  torch.manualSeed(7);
  const allCentres = torch.keep(torch.randn([numClasses, embeddingSize]).mul(0.01));
  torch.noGrad(() => pfc.weight.copy_(allCentres.narrow(0, pfc.classStart, pfc.numLocal)));
  const optimizer = new SGD(backbone.parameters(), { lr: 0.1, momentum: 0.9, weightDecay: 5e-4 });
  const x = torch.keep(torch.randn([8, 3, 8, 8]));
  // every class of each rank's shard appears among the 8 labels' positives when sampleRate < 1
  const y = torch.keep(torch.tensor([0, 7, 3, 10, 5, 1, 11, 6], { dtype: 'int64' }));
  const per = 8 / worldSize;
  const losses: number[] = [], samples: number[][] = [];
  for (let step = 0; step < steps; step++) {
    losses.push(
      torch.tidy(() => {
        const loss = pfc.forward(ddp.forward(x.narrow(0, rank * per, per)), y.narrow(0, rank * per, per));
        samples.push(Array.from(pfc.sampledIndex().data() as BigInt64Array, Number));
        optimizer.zeroGrad();
        loss.backward();
        ddp.syncGradients();
        optimizer.step();
        pfc.step(0.1);
        return loss.item();
      }),
    );
  }
  const params = torch.tidy(() => backbone.parameters().map((p) => Array.from(p.data() as Float32Array)));
  const centres = torch.tidy(() => Array.from(pfc.weight.float().data() as Float32Array));
  // the gathered export (a collective) holds every rank's shard in class order
  const exportPath = process.env.PFC_EXPORT;
  if (exportPath) pfc.exportWeight(exportPath);
  out({ losses, params, centres, samples, classStart: pfc.classStart, numLocal: pfc.numLocal });
}

/**
 * SyncBatchNorm under overlapped DDP: one global batch of Σ split samples, rank r taking split[r]
 * of them (unequal splits), a model with BatchNorm2d and BatchNorm1d trained `steps` SGD steps on
 * the global mean of a squared error (each rank's loss weighted by worldSize / N, so that DDP's
 * average is the global mean's gradient). Reports the first step's output and input gradient of
 * this rank's rows, and after training the parameters and the BN running statistics.
 */
function syncBn(split: number[], steps: number, sync: boolean) {
  torch.manualSeed(5);
  const model = new nn.Sequential(
    new nn.Conv2d(3, 4, 3, { padding: 1 }), new nn.BatchNorm2d(4), new nn.PReLU(4),
    new nn.Flatten(), new nn.Linear(4 * 5 * 5, 6), new nn.BatchNorm1d(6),
  );
  const synced = sync ? convertSyncBatchNorm(model, pg) : 0;
  const ddp = new DistributedDataParallel(model, pg, { bucketCapMb: 0.001 });
  const optimizer = new SGD(model.parameters(), { lr: 0.1, momentum: 0.9 });
  const total = split.reduce((a, b) => a + b, 0);
  const start = split.slice(0, rank).reduce((a, b) => a + b, 0);
  torch.manualSeed(77);
  const x = torch.keep(torch.randn([total, 3, 5, 5]).narrow(0, start, split[rank]).clone().requiresGrad_(true));
  const target = torch.keep(torch.randn([total, 6]).narrow(0, start, split[rank]).clone());
  let first: { output: number[]; inputGrad: number[] } | undefined;
  for (let step = 0; step < steps; step++) {
    torch.tidy(() => {
      const y = ddp.forward(x);
      const loss = y.sub(target).square().sum().mul(worldSize / total);
      optimizer.zeroGrad();
      x.grad = undefined;
      loss.backward();
      ddp.syncGradients();
      if (!first) first = { output: Array.from(y.detach().data() as Float32Array), inputGrad: Array.from(x.grad!.data() as Float32Array) };
      optimizer.step();
    });
  }
  const params = torch.tidy(() => model.parameters().map((p) => Array.from(p.data() as Float32Array)));
  const running = torch.tidy(() => model.buffers().filter((b) => b.dtype === 'float32').map((b) => Array.from(b.data() as Float32Array)));
  out({ synced, ...first, params, running });
}

async function main() {
  if (scenario === 'collectives') await collectives();
  else if (scenario === 'train') train(Number(args[0]), (args[1] ?? 'none') as 'none' | 'float16');
  else if (scenario === 'pfc') trainPartialFc(Number(args[0]), Number(args[1] ?? 1));
  else if (scenario === 'grads') grads(args[0] as 'none' | 'float16' | 'bfloat16', Number(args[1]));
  else if (scenario === 'die-in-backward') dieInBackward(Number(args[0]));
  else if (scenario === 'sync-bn') syncBn(args[0].split(',').map(Number), Number(args[1]), args[2] !== 'unsynced');
  else if (scenario === 'die-after' || scenario === 'stall') {
    const [n, victim] = args.map(Number);
    const t = torch.ones([1000]);
    for (let i = 0; ; i++) {
      if (rank === victim && i === n) {
        if (scenario === 'die-after') process.kill(process.pid, 'SIGKILL');
        setInterval(() => {}, 1000); // stall: alive, heartbeating, never entering the collective
        return;
      }
      const started = Date.now();
      try {
        pg.allReduce(t);
      } catch (error) {
        out({ error: (error as Error).message, afterMs: Date.now() - started });
        process.exit(3);
      }
    }
  }
  pg.destroy();
}

await main();

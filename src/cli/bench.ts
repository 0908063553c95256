/**
 * `arcface bench pfc`: Partial FC training steps (forward, backward, sparse update) on random
 * embeddings and labels, at a chosen class count and sample rate. Prints the median step time,
 * throughput, peak resident memory and the memory the head added per class.
 *
 *   arcface bench pfc --num-classes 1000000 --sample-rate 0.1 --batch-size 128 --embedding-size 512 --steps 20 --json
 *
 * Bytes per class: (peak RSS − baseline) ÷ classes: the shard, its optimizer state and the
 * per-step buffers. The baseline is taken after one step of a 1000-class head (then freed, with the
 * allocator's cache): libtorch's and oneDNN's first-use costs (code pages, threads, JIT kernels,
 * ~17 MB here) come once per process, as with any earlier training step, not per class.
 * bytes_per_class_cold counts them too (baseline before any tensor op).
 */
import { readFileSync } from 'node:fs';
import * as torch from '../torch/index.js';
import { PartialFC, arcface, type CentreStorage, type LogitsMode, type PartialFCImplementation } from '../heads/index.js';
import { usage } from './help.js';

interface PfcBenchOptions {
  numClasses: number;
  sampleRate: number;
  batchSize: number;
  embeddingSize: number;
  steps: number;
  warmup: number;
  storage: CentreStorage;
  optimizer: 'sgd' | 'adamw';
  logits: LogitsMode;
  implementation?: PartialFCImplementation;
  device: string;
  tileRows?: number;
  json: boolean;
}

const USAGE = usage('bench', 'pfc');

export async function bench(args: string[]): Promise<number> {
  const [what, ...rest] = args;
  if (what === 'train') return (await import('./bench-train.js')).benchTrain(rest);
  if (what !== 'pfc') {
    console.error(`arcface bench: unknown benchmark '${what ?? ''}' (available: pfc, train)\n${USAGE}`);
    return 2;
  }
  benchPfc(parse(rest));
  return 0;
}

function parse(args: string[]): PfcBenchOptions {
  const o: PfcBenchOptions = {
    numClasses: 100_000, sampleRate: 0.1, batchSize: 128, embeddingSize: 512, steps: 10, warmup: 2,
    storage: 'float32', optimizer: 'sgd', logits: 'keep', device: 'cpu', json: false,
  };
  const integer = (flag: string, v: string, min: number) => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < min) throw new Error(`${flag} needs an integer ≥ ${min}, got '${v}'\n${USAGE}`);
    return n;
  };
  for (let i = 0; i < args.length; i++) {
    const flag = args[i], value = args[i + 1] ?? '';
    switch (flag) {
      case '--json': o.json = true; continue;
      case '--num-classes': o.numClasses = integer(flag, value, 1); break;
      case '--batch-size': o.batchSize = integer(flag, value, 1); break;
      case '--embedding-size': o.embeddingSize = integer(flag, value, 1); break;
      case '--steps': o.steps = integer(flag, value, 1); break;
      case '--tile-rows': o.tileRows = integer(flag, value, 1); break;
      case '--warmup': o.warmup = integer(flag, value, 0); break;
      case '--sample-rate':
        o.sampleRate = Number(value);
        if (!(o.sampleRate > 0 && o.sampleRate <= 1)) throw new Error(`--sample-rate needs a number in (0, 1], got '${value}'`);
        break;
      case '--storage':
        if (!['float32', 'bfloat16', 'float16'].includes(value)) throw new Error(`--storage: float32, bfloat16 or float16, got '${value}'`);
        o.storage = value as CentreStorage;
        break;
      case '--optimizer':
        if (value !== 'sgd' && value !== 'adamw') throw new Error(`--optimizer: sgd or adamw, got '${value}'`);
        o.optimizer = value;
        break;
      case '--logits':
        if (value !== 'keep' && value !== 'recompute') throw new Error(`--logits: keep or recompute, got '${value}'`);
        o.logits = value;
        break;
      case '--implementation':
        if (value !== 'fused' && value !== 'ops') throw new Error(`--implementation: fused or ops, got '${value}'`);
        o.implementation = value;
        break;
      case '--device':
        o.device = torch.resolveDevice(value, '--device');
        break;
      default:
        throw new Error(`unknown option '${flag}'\n${USAGE}`);
    }
    i++;
  }
  return o;
}

/** kB fields of /proc/self/status (VmRSS: now, VmHWM: peak), in bytes. */
function memory(field: 'VmRSS' | 'VmHWM'): number {
  const match = readFileSync('/proc/self/status', 'utf8').match(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm'));
  return match ? Number(match[1]) * 1024 : process.resourceUsage().maxRSS * 1024;
}

function makeHead(o: PfcBenchOptions, numClasses: number): PartialFC {
  return new PartialFC({
    marginLoss: arcface(),
    embeddingSize: o.embeddingSize,
    numClasses,
    sampleRate: o.sampleRate,
    storage: o.storage,
    logits: o.logits,
    implementation: o.implementation,
    device: o.device,
    tileRows: o.tileRows,
    optimizer: o.optimizer === 'sgd' ? { type: 'sgd', lr: 0.1, momentum: 0.9, weightDecay: 5e-4 } : { type: 'adamw', lr: 1e-3 },
  });
}

/** Runs `steps` training steps on random data; returns the time of each after the first `warmup`. */
function train(pfc: PartialFC, o: PfcBenchOptions, warmup: number, steps: number): number[] {
  const times: number[] = [];
  for (let step = 0; step < warmup + steps; step++) {
    torch.tidy(() => {
      const embeddings = torch.randn([o.batchSize, o.embeddingSize], { device: o.device }).requiresGrad_();
      const labels = torch.randint(0, pfc.numClasses, [o.batchSize]);  // on the host, as the trainer's
      torch.synchronize(o.device);
      const start = performance.now();
      pfc.forward(embeddings, labels).backward();
      pfc.step();
      torch.synchronize(o.device);  // a GPU's step is done when its queue is
      if (step >= warmup) times.push(performance.now() - start);
    });
  }
  return times;
}

function benchPfc(o: PfcBenchOptions): void {
  torch.manualSeed(0);
  const rssCold = memory('VmRSS');
  const small = makeHead(o, Math.min(1000, o.numClasses));
  train(small, o, 1, 0);
  small.dispose();
  torch.emptyCpuCache();
  const rssBefore = memory('VmRSS');
  torch.deviceMemory(o.device, { resetPeak: true });
  const deviceBefore = torch.deviceMemory(o.device)?.allocated ?? 0;
  const t0 = performance.now();
  const pfc = makeHead(o, o.numClasses);
  const initS = (performance.now() - t0) / 1000;
  let times: number[];
  const implementation = pfc.implementation;
  try {
    times = train(pfc, o, o.warmup, o.steps);
  } finally {
    pfc.dispose();
  }
  const onDevice = torch.deviceMemory(o.device);
  const peak = memory('VmHWM');
  const sorted = [...times].sort((a, b) => a - b);
  const median = sorted[Math.floor((sorted.length - 1) / 2)];
  const result = {
    bench: 'pfc',
    num_classes: o.numClasses,
    sample_rate: o.sampleRate,
    batch_size: o.batchSize,
    embedding_size: o.embeddingSize,
    storage: o.storage,
    optimizer: o.optimizer,
    logits: o.logits,
    implementation,
    device: o.device,
    tile_rows: pfc.tileRows,
    threads: torch.getNumThreads(),
    steps: o.steps,
    step_ms: round(median),
    step_ms_min: round(sorted[0]),
    samples_per_s: round((o.batchSize * 1000) / median),
    peak_rss_mb: round(peak / 2 ** 20),
    bytes_per_class: round1((peak - rssBefore) / o.numClasses),
    bytes_per_class_cold: round1((peak - rssCold) / o.numClasses),
    init_s: round(initS),
    // on a GPU: the caching allocator's peak over the run, and per class
    ...(onDevice ? { peak_device_mb: round(onDevice.peakAllocated / 2 ** 20), device_bytes_per_class: round1((onDevice.peakAllocated - deviceBefore) / o.numClasses) } : {}),
  };
  if (o.json) {
    console.log(JSON.stringify(result));
  } else {
    console.log(
      `pfc: ${o.numClasses} classes × ${o.embeddingSize} (${o.storage}, logits ${o.logits}, ${implementation}, ${o.device}), r=${o.sampleRate}, batch ${o.batchSize}: ` +
        `${result.step_ms} ms/step, ${result.samples_per_s} samples/s, peak RSS ${result.peak_rss_mb} MB, ${result.bytes_per_class} B/class`,
    );
  }
}

const round = (x: number): number => Number(x.toPrecision(4));
const round1 = (x: number): number => Math.round(x * 10) / 10;  // bytes per class: 4099.6 is not 4100

/**
 * `arcface bench train`: the trainer's real step (data loader, backbone, Partial FC, optimizers) on
 * the synthetic set. Prints one JSON line: samples/s over all ranks, the median step time, and the
 * peak resident memory (the maximum over ranks).
 *
 *   arcface bench train --network r18 --batch-size 32 --num-classes 10000 --sample-rate 1 --steps 20 --nproc-per-node 2 --json
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { packagePath } from '../package.js';
import * as torch from '../torch/index.js';
import { distEnv, initProcessGroup } from '../distributed/index.js';
import { launch } from '../distributed/launcher.js';
import { countComplexity, getModel } from '../models/index.js';
import { resolveConfig } from '../train/config.js';
import { train } from '../train/trainer.js';
import { intOption, parseOptions, UsageError } from './args.js';
import { usage } from './help.js';

const USAGE = usage('bench', 'train');

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

export async function benchTrain(args: string[]): Promise<number> {
  const o = parseOptions(args, {
    values: ['network', 'batch-size', 'num-classes', 'sample-rate', 'steps', 'warmup', 'threads', 'nproc-per-node', 'result-file', 'device'],
    flags: ['bf16', 'fp16', 'channels-last', 'json'],
  }, 'arcface bench train');
  if (!o.has('network')) throw new UsageError(USAGE);
  const nproc = intOption(o, 'nproc-per-node', 1);
  if (nproc > 1 && !distEnv()) {
    // Workers write their result to a file: the launcher prefixes their output with the rank.
    const resultFile = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'arcface-bench-')), 'result.json');
    const forwarded = args.filter((a, i) => a !== '--nproc-per-node' && args[i - 1] !== '--nproc-per-node');
    const arcface = packagePath('bin', 'arcface.js');
    const port = 20000 + Math.floor(Math.random() * 20000);
    const code = await launch({ nprocPerNode: nproc, nnodes: 1, nodeRank: 0, masterAddr: '127.0.0.1', masterPort: port, command: [process.execPath, arcface, 'bench', 'train', ...forwarded, '--result-file', resultFile] });
    if (code === 0) print(JSON.parse(fs.readFileSync(resultFile, 'utf8')), o.has('json'));
    fs.rmSync(path.dirname(resultFile), { recursive: true, force: true });
    return code;
  }

  const network = String(o.get('network'));
  const batchSize = intOption(o, 'batch-size', 32);
  const steps = intOption(o, 'steps', 20);
  const warmup = intOption(o, 'warmup', 3, 0);
  if (o.has('threads')) torch.setNumThreads(intOption(o, 'threads', 1));
  const sampleRate = Number(o.get('sample-rate') ?? 1);
  const group = initProcessGroup();
  const output = fs.mkdtempSync(path.join(os.tmpdir(), 'arcface-bench-train-'));
  const config = resolveConfig({
    network,
    rec: 'synthetic',
    numClasses: intOption(o, 'num-classes', 10000),
    sampleRate,
    batchSize,
    numImage: (steps + warmup) * batchSize * group.worldSize,
    numEpoch: 1,
    bf16: o.has('bf16'),
    fp16: o.has('fp16'),
    channelsLast: o.has('channels-last'),
    device: String(o.get('device') ?? 'cpu'),
    frequent: 1e9,
    verbose: 1e9,
    output,
  }, 'arcface bench train');
  const times: number[] = [];
  try {
    await train(config, { group, echo: false, onStep: (step, ms) => step > warmup && times.push(ms) });
  } finally {
    fs.rmSync(output, { recursive: true, force: true });
  }
  // every rank's step time and peak memory; rank 0 reports the slowest and the largest
  const device = torch.resolveDevice(config.device, '--device');
  const stats = torch.tensor([median(times), process.resourceUsage().maxRSS / 1024, (torch.deviceMemory(device)?.peakAllocated ?? 0) / 2 ** 20]);
  if (group.worldSize > 1) group.allReduce(stats, 'max');
  const [stepMs, peakRssMb, peakDeviceMb] = Array.from(stats.data() as Float32Array);
  stats.dispose();
  const gmacs = countComplexity(getModel(network, { embeddingSize: config.embeddingSize }), [1, 3, 112, 112]).macs / 1e9;
  const samplesPerS = (batchSize * group.worldSize * 1000) / stepMs;
  const result = {
    bench: 'train', network, batch_size: batchSize, world_size: group.worldSize, num_classes: config.numClasses, sample_rate: sampleRate,
    precision: config.bf16 ? 'bf16' : config.fp16 ? (device === 'cpu' ? 'fp16 (bf16 on the CPU)' : 'fp16') : 'fp32', channels_last: config.channelsLast,
    device, threads: torch.getNumThreads(), steps: times.length,
    samples_per_s: round(samplesPerS), step_ms: round(stepMs), peak_rss_mb: round(peakRssMb),
    ...(device === 'cpu' ? {} : { peak_device_mb: round(peakDeviceMb) }),
    // a training step ≈ 3× the forward's FLOPs (2 per multiply-accumulate), per process
    backbone_gflops_per_s: round((samplesPerS / group.worldSize) * gmacs * 2 * 3),
  };
  if (group.rank === 0) {
    const file = o.get('result-file');
    if (typeof file === 'string') fs.writeFileSync(file, JSON.stringify(result));
    else print(result, o.has('json'));
  }
  group.destroy();
  return 0;
}

const round = (x: number) => Math.round(x * 100) / 100;

function print(result: Record<string, unknown>, json: boolean): void {
  if (json) console.log(JSON.stringify(result));
  else console.log(Object.entries(result).map(([k, v]) => `${k}: ${v}`).join('\n'));
}

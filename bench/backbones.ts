/**
 * Backbone throughput (JSON lines): forward and forward+backward samples/s at batch 32, float32 vs
 * bf16 autocast; CNNs also with channels-last off/on, ViTs also with activation checkpointing
 * (training only: eval does not checkpoint). Variants are interleaved.
 *   node --expose-gc dist/bench/backbones.js [--quick] [--networks r18,mbf,vit_t] [--batch 32]
 * Achieved GFLOP/s counts 2 FLOPs per multiply-accumulate; a training step is 3× the forward (the
 * ViT MACs leave out the attention matmuls, as arcface_torch's flops.py; checkpointing recomputes
 * the blocks, which the GFLOP/s figure does not count). ViT training rows include their random
 * patch masking (vit_t, vit_s: 129 of 144 patches go through the blocks). `heldMB`: memory the
 * caching allocator hands out after the training forward, before backward (the saved activations).
 */
import * as torch from '../src/torch/index.js';
import { getModel, countComplexity, backwardCheckpoints, vitModels, type Backbone } from '../src/models/index.js';
import { emit, interleave, round, argValue, argNumber } from './harness.js';

const quick = process.argv.includes('--quick');
const networks = argValue('networks', 'mbf,r18,r50,vit_t,vit_s').split(',');
const batch = argNumber('batch', quick ? 8 : 32);
const reps = quick ? 2 : 3;
const gc = (globalThis as { gc?: () => void }).gc ?? (() => {});

interface Variant {
  name: string;
  bf16: boolean;
  channelsLast?: boolean;
  usingCheckpoint?: boolean;
}
const cnnVariants: Variant[] = [
  { name: 'float32', bf16: false, channelsLast: false },
  { name: 'float32_channels_last', bf16: false, channelsLast: true },
  { name: 'bf16', bf16: true, channelsLast: false },
  { name: 'bf16_channels_last', bf16: true, channelsLast: true },
];
const vitVariants: Variant[] = [
  { name: 'float32', bf16: false, usingCheckpoint: false },
  { name: 'bf16', bf16: true, usingCheckpoint: false },
  { name: 'float32_checkpoint', bf16: false, usingCheckpoint: true },
  { name: 'bf16_checkpoint', bf16: true, usingCheckpoint: true },
];

const build = (network: string, v: Variant): Backbone =>
  network in vitModels
    ? vitModels[network]({ bf16: v.bf16, usingCheckpoint: v.usingCheckpoint })
    : getModel(network, { bf16: v.bf16, channelsLast: v.channelsLast });

/** Bytes the caching allocator hands out after one training forward, before its backward. */
function heldAfterForward(m: Backbone, x: torch.Tensor): number {
  return torch.tidy(() => {
    const before = torch.cpuCacheStats().liveBytes ?? 0;
    const y = m.forward(x);
    const held = (torch.cpuCacheStats().liveBytes ?? 0) - before;
    y.square().mean().backward();
    backwardCheckpoints(m);
    m.zeroGrad();
    return held;
  });
}

emit({ bench: 'env', threads: torch.getNumThreads(), torch: torch.runtimeInfo().torchVersion, batch });
for (const network of networks) {
  const all = network in vitModels ? vitVariants : cnnVariants;
  const models = all.map((v) => build(network, v));
  const macs = countComplexity(models[0]).macs;
  const x = torch.keep(torch.randn([batch, 3, 112, 112]));
  const forward = (m: Backbone) => () => torch.noGrad(() => torch.tidy(() => m.forward(x))) && undefined;
  const train = (m: Backbone) => () => {
    torch.tidy(() => m.forward(x).square().mean().backward());
    backwardCheckpoints(m);
    m.zeroGrad();
  };
  for (const [mode, make, flopsPerSample] of [
    ['forward', forward, 2 * macs],
    ['forward_backward', train, 6 * macs],
  ] as const) {
    // eval never checkpoints: those variants would repeat the plain ones
    const variants = all.filter((v) => mode === 'forward_backward' || !v.usingCheckpoint);
    models.forEach((m) => (mode === 'forward' ? m.eval() : m.train()));
    gc();
    const timings = interleave(Object.fromEntries(variants.map((v) => [v.name, make(models[all.indexOf(v)])])), reps, 1);
    for (const v of variants) {
      const t = timings[v.name];
      const samplesPerS = batch / (t.medianMs / 1000);
      const held = mode === 'forward_backward' && torch.cpuCacheStats().enabled ? { heldMB: round(heldAfterForward(models[all.indexOf(v)], x) / 2 ** 20) } : {};
      emit({
        bench: 'backbone', network, mode, case: v.name, batch, stepMs: t.medianMs, spread: t.spread,
        samplesPerS: round(samplesPerS), gflops: round((samplesPerS * flopsPerSample) / 1e9),
        speedupVsFloat32: round(timings.float32.medianMs / t.medianMs), ...held,
      });
    }
  }
  x.dispose();
  models.forEach((m) => m.dispose());
}

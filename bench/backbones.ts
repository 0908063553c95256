/**
 * Backbone throughput (JSON lines): forward and forward+backward samples/s for r18, r50 and mbf
 * at batch 32, float32 vs bf16 autocast, channels-last off/on, variants interleaved.
 *   node --expose-gc dist/bench/backbones.js [--quick] [--networks r18,mbf] [--batch 32]
 * Achieved GFLOP/s counts 2 FLOPs per multiply-accumulate; a training step is 3× the forward.
 */
import * as torch from '../src/torch/index.js';
import { getModel, countComplexity, type Backbone } from '../src/models/index.js';
import { emit, interleave, round, argValue, argNumber } from './harness.js';

const quick = process.argv.includes('--quick');
const networks = argValue('networks', 'mbf,r18,r50').split(',');
const batch = argNumber('batch', quick ? 8 : 32);
const reps = quick ? 2 : 3;
const gc = (globalThis as { gc?: () => void }).gc ?? (() => {});

const variants = [
  { name: 'float32', bf16: false, channelsLast: false },
  { name: 'float32_channels_last', bf16: false, channelsLast: true },
  { name: 'bf16', bf16: true, channelsLast: false },
  { name: 'bf16_channels_last', bf16: true, channelsLast: true },
];

emit({ bench: 'env', threads: torch.getNumThreads(), torch: torch.runtimeInfo().torchVersion, batch });
for (const network of networks) {
  const models = variants.map((v) => getModel(network, { bf16: v.bf16, channelsLast: v.channelsLast }));
  const macs = countComplexity(models[0]).macs;
  const x = torch.keep(torch.randn([batch, 3, 112, 112]));
  const forward = (m: Backbone) => () => torch.noGrad(() => torch.tidy(() => m.forward(x))) && undefined;
  const train = (m: Backbone) => () => {
    torch.tidy(() => m.forward(x).square().mean().backward());
    m.zeroGrad();
  };
  for (const [mode, make, flopsPerSample] of [
    ['forward', forward, 2 * macs],
    ['forward_backward', train, 6 * macs],
  ] as const) {
    models.forEach((m) => (mode === 'forward' ? m.eval() : m.train()));
    gc();
    const timings = interleave(Object.fromEntries(variants.map((v, i) => [v.name, make(models[i])])), reps, 1);
    for (const v of variants) {
      const t = timings[v.name];
      const samplesPerS = batch / (t.medianMs / 1000);
      emit({
        bench: 'backbone', network, mode, case: v.name, batch, stepMs: t.medianMs, spread: t.spread,
        samplesPerS: round(samplesPerS), gflops: round((samplesPerS * flopsPerSample) / 1e9),
        speedupVsFloat32: round(timings.float32.medianMs / t.medianMs),
      });
    }
  }
  x.dispose();
  models.forEach((m) => m.dispose());
}

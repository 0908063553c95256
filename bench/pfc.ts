/**
 * Partial FC step time at sample rate 0.1 against 1.0 on one shard, interleaved (A B A B …) so
 * the machine's noise hits both alike; JSON lines with each median and spread, and the ratio.
 * Each case also counts the GEMM work (3 products of 2·B·S·D) to give an effective GFLOP/s.
 *   node dist/bench/pfc.js [--num-classes 1000000] [--reps 8] [--storage float32]
 * (`arcface bench pfc` measures one configuration with its memory.)
 */
import * as torch from '../src/torch/index.js';
import { PartialFC, arcface, type CentreStorage } from '../src/heads/index.js';
import { emit, interleave, round, argValue, argNumber } from './harness.js';

const numClasses = argNumber('num-classes', 1000000);
const reps = argNumber('reps', 8);
const storage = argValue('storage', 'float32') as CentreStorage;
const batch = 128, dim = 512;

const heads = new Map<string, PartialFC>();
for (const rate of [0.1, 1.0]) {
  heads.set(`r=${rate}`, new PartialFC({
    marginLoss: arcface(), embeddingSize: dim, numClasses, sampleRate: rate, storage,
    optimizer: { type: 'sgd', lr: 0.1, momentum: 0.9, weightDecay: 5e-4 },
  }));
}
const step = (pfc: PartialFC) => () =>
  torch.tidy(() => {
    pfc.forward(torch.randn([batch, dim]).requiresGrad_(), torch.randint(0, numClasses, [batch])).backward();
    pfc.step();
  });
const times = interleave(Object.fromEntries([...heads].map(([name, pfc]) => [name, step(pfc)])), reps, 2);
for (const [name, t] of Object.entries(times)) {
  const sampled = heads.get(name)!.numSample;
  emit({ bench: 'pfc_step', case: name, num_classes: numClasses, storage, batch, ...t, gemm_gflops: round((3 * 2 * batch * sampled * dim) / (t.medianMs / 1000) / 1e9) });
}
emit({ bench: 'pfc_step', case: 'speedup_r0.1_over_r1.0', num_classes: numClasses, ratio: round(times['r=1'].medianMs / times['r=0.1'].medianMs) });
for (const pfc of heads.values()) pfc.dispose();

/**
 * Partial FC step time on one shard, cases interleaved (A B A B …) so the machine's noise hits
 * them alike; JSON lines with each median and spread, and the ratio of the two.
 *   --compare logits (default): logits 'keep' against 'recompute' at sample rate 0.1, with the
 *     bytes per class each head holds: shard + optimizer state + the kernel's buffers, counted
 *     (two heads share one process, so RSS cannot tell them apart; `arcface bench pfc` measures RSS)
 *   --compare sample-rate: r = 0.1 against 1.0
 *   --compare implementation: the fused CPU kernel against implementation 'ops' (libtorch ops, the
 *     CUDA path) at r = 0.1, logits from --logits (default keep)
 * Each case also counts the GEMM work of a step without recomputation (3 products of 2·B·S·D) to
 * give a useful GFLOP/s.
 *   node dist/bench/pfc.js [--compare logits|sample-rate|implementation] [--num-classes 1000000] [--reps 8] [--storage float32] [--logits keep]
 */
import * as torch from '../src/torch/index.js';
import { PartialFC, arcface, type CentreStorage, type LogitsMode, type PartialFCImplementation } from '../src/heads/index.js';
import { emit, interleave, round, argValue, argNumber } from './harness.js';

const compare = argValue('compare', 'logits');
const numClasses = argNumber('num-classes', 1000000);
const reps = argNumber('reps', 8);
const storage = argValue('storage', 'float32') as CentreStorage;
const batch = 128, dim = 512;

const logitsMode = argValue('logits', 'keep') as LogitsMode;
const cases: Record<string, { sampleRate: number; logits: LogitsMode; implementation?: PartialFCImplementation }> =
  compare === 'sample-rate'
    ? { 'r=0.1': { sampleRate: 0.1, logits: 'keep' }, 'r=1': { sampleRate: 1, logits: 'keep' } }
    : compare === 'implementation'
      ? { fused: { sampleRate: 0.1, logits: logitsMode, implementation: 'fused' }, ops: { sampleRate: 0.1, logits: logitsMode, implementation: 'ops' } }
      : { keep: { sampleRate: 0.1, logits: 'keep' }, recompute: { sampleRate: 0.1, logits: 'recompute' } };
const heads = new Map<string, PartialFC>();
for (const [name, c] of Object.entries(cases)) {
  heads.set(name, new PartialFC({
    marginLoss: arcface(), embeddingSize: dim, numClasses, storage, ...c,
    optimizer: { type: 'sgd', lr: 0.1, momentum: 0.9, weightDecay: 5e-4 },
  }));
}
const step = (pfc: PartialFC) => () =>
  torch.tidy(() => {
    pfc.forward(torch.randn([batch, dim]).requiresGrad_(), torch.randint(0, numClasses, [batch])).backward();
    pfc.step();
  });
const held = (pfc: PartialFC) =>
  torch.tidy(() => [...pfc.stateDict().values()].reduce((sum, t) => sum + t.storageKey().nbytes, 0)) + pfc.bufferBytes();
const times = interleave(Object.fromEntries([...heads].map(([name, pfc]) => [name, step(pfc)])), reps, 2);
for (const [name, t] of Object.entries(times)) {
  const pfc = heads.get(name)!;
  emit({
    bench: 'pfc_step', case: name, num_classes: numClasses, storage, batch, sample_rate: pfc.sampleRate, logits: pfc.logits, implementation: pfc.implementation, ...t,
    gemm_gflops: round((3 * 2 * batch * pfc.numSample * dim) / (t.medianMs / 1000) / 1e9),
    bytes_per_class: round(held(pfc) / numClasses),
  });
}
const [a, b] = Object.keys(cases);
emit({ bench: 'pfc_step', case: `${b}_over_${a}`, num_classes: numClasses, storage, ratio: round(times[b].medianMs / times[a].medianMs), ratio_min: round(times[b].minMs / times[a].minMs) });
for (const pfc of heads.values()) pfc.dispose();

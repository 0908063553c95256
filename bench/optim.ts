/**
 * The optimizer step over a backbone's parameter list (JSON lines): the multi-tensor step (`foreach: true`,
 * torch.optim's _multi_tensor_*) against the per-parameter loop (`foreach: false`), interleaved, for SGD
 * as arcface_torch runs it (momentum 0.9, weight decay 5e-4) and AdamW; then GradScaler's unscale and
 * clipGradNorm over the same gradients (one native call each, no value read back but the found-inf flag),
 * beside the per-parameter unscale loop they replaced (one isfinite().all().item() per gradient).
 *   node dist/bench/optim.js [--network r50] [--reps 20]
 */
import * as torch from '../src/torch/index.js';
import { native } from '../src/torch/native.js';
import { getModel } from '../src/models/index.js';
import { AdamW, SGD, clipGradNorm, type Optimizer } from '../src/optim/index.js';
import { emit, interleave, round, argValue, argNumber } from './harness.js';

const network = argValue('network', 'r50');
const reps = argNumber('reps', 20);

const model = getModel(network);
const params = model.parameters();
// The parameters hold their gradients; the JS handles made here are freed by tidy.
torch.tidy(() => params.forEach((p) => (p.grad = torch.randnLike(p).mul(1e-3))));
const numel = params.reduce((n, p) => n + p.numel, 0);
emit({ bench: 'env', threads: torch.getNumThreads(), torch: torch.runtimeInfo().torchVersion, network, tensors: params.length, numel });

// Both optimizers update the same parameters (each with its own state): timing only.
const optimizers: Record<string, (foreach: boolean) => Optimizer> = {
  sgd: (foreach) => new SGD(params, { lr: 0.1, momentum: 0.9, weightDecay: 5e-4, foreach }),
  adamw: (foreach) => new AdamW(params, { lr: 1e-3, weightDecay: 0.1, foreach }),
};
for (const [name, make] of Object.entries(optimizers)) {
  const perParameter = make(false), foreach = make(true);
  const t = interleave({ perParameter: () => torch.tidy(() => perParameter.step()), foreach: () => torch.tidy(() => foreach.step()) }, reps);
  for (const [variant, timing] of Object.entries(t)) emit({ bench: 'optimizer_step', optimizer: name, case: variant, network, ...timing });
  emit({ bench: 'optimizer_step', optimizer: name, case: 'ratio_per_parameter_over_foreach', ratio: round(t.perParameter.medianMs / t.foreach.medianMs) });
  perParameter.dispose();
  foreach.dispose();
}

// inv_scale 1 and a large max norm leave the gradients as they are: the passes are timed, not their effect.
// unscalePerParameterItem is the loop unscaleGrads replaced: multiply, then isfinite().all().item() per gradient.
const t = interleave(
  {
    unscale: () => native.unscaleGrads(params, 1).dispose(),
    unscalePerParameterItem: () =>
      torch.tidy(() => {
        for (const p of params) {
          const g = p.grad!;
          g.mul_(1);
          torch.isfinite(g).all().item();
        }
      }),
    clipGradNorm: () => clipGradNorm(params, 1e9).dispose(),
  },
  reps,
);
for (const [variant, timing] of Object.entries(t)) emit({ bench: 'grad_pass', case: variant, network, ...timing });
model.dispose();

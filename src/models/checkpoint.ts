/**
 * Activation checkpointing: torch.utils.checkpoint's trade of compute for memory, for a chain of
 * segments (a transformer's blocks).
 *
 * libtorch's autograd cannot call back into JS, so no autograd node can recompute a segment when
 * backward reaches it. The backward is split in two instead:
 *
 *   forward     the segments run under noGrad, keeping only each one's input; the chain's output
 *               becomes a fresh leaf that requires grad, so the caller's graph ends there.
 *   backward    `loss.backward()` leaves the gradient on that leaf; then `backwardCheckpoints(model)`
 *               carries it back: for each segment, last first, recompute it with grad from its kept
 *               input, backward with the incoming gradient (parameters accumulate theirs) and take
 *               the input's gradient; finally backward into the graph before the chain.
 *
 *   const loss = head.forward(backbone.forward(images), labels);
 *   loss.backward();
 *   backwardCheckpoints(backbone);   // a no-op for models without checkpointed chains
 *
 * Segments must be deterministic given their input: randomness (drop-path factors) is drawn
 * before the chain and captured by the segment. The autocast state of the forward is restored for
 * the recomputation.
 */
import { autocast, enableGrad, keep, noGrad, tidy, dispose, type Dtype, type Tensor } from '../torch/index.js';
import { native } from '../torch/native.js';
import type { Module } from '../nn/index.js';

export interface Segment {
  /** the computation: deterministic given x */
  run: (x: Tensor) => Tensor;
  /**
   * the module whose buffers (BatchNorm running statistics) a recomputation leaves as they were,
   * so they move once per step as without checkpointing (torch.utils.checkpoint moves them twice)
   */
  module?: Module;
}

type AutocastState = ReturnType<typeof native.autocastState>;

interface Pending {
  /** a handle of the chain's input, with the graph that produced it */
  input: Tensor;
  /** each segment's input, without graph */
  inputs: Tensor[];
  segments: Segment[];
  /** stands for the chain's output in the caller's graph */
  leaf: Tensor;
  owned: Tensor[];
  autocast: AutocastState;
}

export class CheckpointedChain {
  private pending: Pending[] = [];

  /**
   * Runs `segments` on x without recording their graphs; returns their output, differentiable up
   * to this chain (backward() carries the gradient further). Takes ownership of `owned` (tensors
   * the segments capture) until then.
   */
  run(x: Tensor, segments: Segment[], owned: Tensor[] = []): Tensor {
    const input = keep(x.view(x.shape));
    const inputs: Tensor[] = [];
    let y = keep(input.detach());
    noGrad(() => {
      for (const segment of segments) {
        inputs.push(y);
        const current = y;
        y = keep(tidy(() => segment.run(current)));
      }
    });
    const leaf = y.requiresGrad_(true);
    this.pending.push({ input, inputs, segments, leaf, owned: owned.map((t) => keep(t)), autocast: native.autocastState() });
    return leaf.view(leaf.shape);
  }

  /** Forwards waiting for backward(). */
  get size(): number {
    return this.pending.length;
  }

  /**
   * Carries the gradients that reached the outputs of the pending forwards back through their
   * segments and on, then frees them; a forward whose output got no gradient is just freed.
   */
  backward(): void {
    const pending = this.pending.reverse();
    this.pending = [];
    try {
      for (const p of pending) carry(p);
    } finally {
      for (const p of pending) dispose(p.input, p.inputs, p.leaf, p.owned);
    }
  }

  /** Frees the pending forwards without backward. */
  clear(): void {
    for (const p of this.pending) dispose(p.input, p.inputs, p.leaf, p.owned);
    this.pending = [];
  }
}

function carry(p: Pending): void {
  let grad: Tensor | undefined = p.leaf.grad;
  for (let i = p.segments.length - 1; i >= 0 && grad; i--) {
    const incoming: Tensor = grad;
    try {
      grad = tidy(() =>
        withAutocast(p.autocast, () =>
          enableGrad(() => {
            const { run, module } = p.segments[i];
            const buffers = module?.buffers() ?? [];
            const before = noGrad(() => buffers.map((b) => b.clone()));
            const x = p.inputs[i].detach().requiresGrad_(true);
            const y = run(x);
            if (y.requiresGrad) y.backward({ gradient: incoming });
            // after backward: BatchNorm's backward checks its saved running statistics' versions
            noGrad(() => buffers.forEach((b, j) => b.copy_(before[j])));
            return x.grad;
          }),
        ),
      );
    } finally {
      incoming.dispose();
    }
  }
  if (grad && p.input.requiresGrad) p.input.backward({ gradient: grad });
  grad?.dispose();
}

function withAutocast<T>(state: AutocastState, fn: () => T): T {
  return autocast({ deviceType: 'cpu', dtype: state.cpuDtype as Dtype, enabled: state.cpu }, () =>
    autocast({ deviceType: 'cuda', dtype: state.cudaDtype as Dtype, enabled: state.cuda }, fn),
  );
}

/** Runs the backward of every checkpointed chain in `model` (after loss.backward()); see above. */
export function backwardCheckpoints(model: Module): void {
  for (const m of model.modules()) {
    const chain = (m as { checkpoints?: unknown }).checkpoints;
    if (chain instanceof CheckpointedChain) chain.backward();
  }
}

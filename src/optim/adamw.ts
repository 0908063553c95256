/**
 * AdamW (torch.optim.AdamW): Adam with decoupled weight decay, one fused native call per group.
 *   p *= 1 − lr·weightDecay;  m = β1·m + (1 − β1)·g;  v = β2·v + (1 − β2)·g²
 *   p -= lr/(1 − β1^t) · m / (√v/√(1 − β2^t) + eps)
 * t counts the steps of each parameter (a step without its gradient does not count), as in PyTorch.
 * `foreach` as in PyTorch (see SGD): multi-tensor kernels (_multi_tensor_adamw) or per-parameter ops,
 * by default the former when no parameter is on the CPU; the same numbers either way.
 */
import { native } from '../torch/native.js';
import { Tensor } from '../torch/tensor.js';
import { keep } from '../torch/scope.js';
import { zerosLike } from '../torch/creation.js';
import { Optimizer, hasGrad, stepNumber, useForeach, checkForeach, type ParamGroup, type Params, type StateValue } from './optimizer.js';

export interface AdamWOptions {
  lr: number;
  betas: [number, number];
  eps: number;
  weightDecay: number;
  foreach: boolean | null;
}

export interface AdamWState {
  step: number;
  expAvg: Tensor;
  expAvgSq: Tensor;
}

export class AdamW extends Optimizer<AdamWOptions, AdamWState> {
  protected override readonly unsupportedFlags = ['maximize', 'amsgrad'];

  constructor(params: Params<AdamWOptions>, options: Partial<AdamWOptions> = {}) {
    super(params, { lr: 1e-3, betas: [0.9, 0.999], eps: 1e-8, weightDecay: 1e-2, foreach: null, ...options });
  }

  step(): void {
    for (const group of this.paramGroups) {
      const params = group.params.filter(hasGrad);
      if (params.length === 0) continue;
      const states = params.map((p) => this.stateOf(p));
      for (const s of states) s.step += 1;
      native.adamwStep(
        params,
        states.map((s) => s.expAvg),
        states.map((s) => s.expAvgSq),
        states.map((s) => s.step),
        {
          lr: group.lr,
          beta1: group.betas[0],
          beta2: group.betas[1],
          eps: group.eps,
          weightDecay: group.weightDecay,
          foreach: useForeach(group.foreach, params),
        },
      );
    }
  }

  protected checkGroup(g: ParamGroup<AdamWOptions>): void {
    if (!(g.lr >= 0)) throw new RangeError(`Invalid learning rate: ${g.lr}`);
    if (!(g.eps >= 0)) throw new RangeError(`Invalid epsilon value: ${g.eps}`);
    g.betas.forEach((beta, i) => {
      if (!(beta >= 0 && beta < 1)) throw new RangeError(`Invalid beta parameter at index ${i}: ${beta}`);
    });
    if (!(g.weightDecay >= 0)) throw new RangeError(`Invalid weight_decay value: ${g.weightDecay}`);
    checkForeach(g.foreach);
  }

  protected packState(s: AdamWState): Record<string, StateValue> {
    return { step: s.step, exp_avg: s.expAvg, exp_avg_sq: s.expAvgSq };
  }

  protected unpackState(saved: Record<string, StateValue>, param: Tensor): AdamWState {
    const { exp_avg: expAvg, exp_avg_sq: expAvgSq } = saved;
    if (!(expAvg instanceof Tensor && expAvgSq instanceof Tensor)) throw new Error('loadStateDict: AdamW state needs exp_avg and exp_avg_sq');
    return { step: stepNumber(saved.step), expAvg: this.copyState(expAvg, param), expAvgSq: this.copyState(expAvgSq, param) };
  }

  /** State is created at a parameter's first step: zeros shaped (and laid out) like it. */
  private stateOf(p: Tensor): AdamWState {
    let s = this.state.get(p);
    if (s === undefined) this.state.set(p, (s = { step: 0, expAvg: keep(zerosLike(p)), expAvgSq: keep(zerosLike(p)) }));
    return s;
  }
}

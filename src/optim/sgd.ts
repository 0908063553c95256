/**
 * SGD with momentum (torch.optim.SGD): each group is updated by one native call.
 *   d_p = g + weightDecay·p;  buf = momentum·buf + (1 − dampening)·d_p  (buf = d_p the first time);
 *   p -= lr · (nesterov ? d_p + momentum·buf : buf)
 * `foreach` as in PyTorch: true runs the update as multi-tensor kernels over the group's parameters
 * (per device and dtype; _multi_tensor_sgd), false a loop of per-parameter ops (_single_tensor_sgd),
 * null (default) the former when no parameter is on the CPU. Both give the same numbers.
 */
import { native } from '../torch/native.js';
import { Tensor } from '../torch/tensor.js';
import { keep } from '../torch/scope.js';
import { Optimizer, hasGrad, useForeach, checkForeach, type ParamGroup, type Params, type StateValue } from './optimizer.js';

export interface SGDOptions {
  lr: number;
  momentum: number;
  dampening: number;
  weightDecay: number;
  nesterov: boolean;
  foreach: boolean | null;
}

export interface SGDState {
  /** undefined while momentum is 0 (PyTorch keeps None) */
  momentumBuffer?: Tensor;
}

export class SGD extends Optimizer<SGDOptions, SGDState> {
  constructor(params: Params<SGDOptions>, options: Partial<SGDOptions> & { lr: number }) {
    super(params, { momentum: 0, dampening: 0, weightDecay: 0, nesterov: false, foreach: null, ...options });
  }

  step(): void {
    for (const group of this.paramGroups) {
      const params = group.params.filter(hasGrad);
      if (params.length === 0) continue;
      const states = params.map((p) => this.stateOf(p));
      const created = native.sgdStep(
        params,
        states.map((s) => s.momentumBuffer),
        {
          lr: group.lr,
          momentum: group.momentum,
          dampening: group.dampening,
          weightDecay: group.weightDecay,
          nesterov: group.nesterov,
          foreach: useForeach(group.foreach, params),
        },
      );
      created.forEach((buf: Tensor | undefined, i) => {
        if (buf !== undefined) states[i].momentumBuffer = keep(buf);
      });
    }
  }

  protected checkGroup(g: ParamGroup<SGDOptions>): void {
    if (!(g.lr >= 0)) throw new RangeError(`Invalid learning rate: ${g.lr}`);
    if (!(g.momentum >= 0)) throw new RangeError(`Invalid momentum value: ${g.momentum}`);
    if (!(g.weightDecay >= 0)) throw new RangeError(`Invalid weight_decay value: ${g.weightDecay}`);
    if (g.nesterov && (g.momentum <= 0 || g.dampening !== 0)) throw new RangeError('Nesterov momentum requires a momentum and zero dampening');
    checkForeach(g.foreach);
  }

  protected packState(s: SGDState): Record<string, StateValue> {
    return { momentum_buffer: s.momentumBuffer ?? null };
  }

  protected unpackState(saved: Record<string, StateValue>, param: Tensor): SGDState {
    const buf = saved.momentum_buffer;
    return { momentumBuffer: buf instanceof Tensor ? this.copyState(buf, param) : undefined };
  }

  private stateOf(p: Tensor): SGDState {
    let s = this.state.get(p);
    if (s === undefined) this.state.set(p, (s = {}));
    return s;
  }
}

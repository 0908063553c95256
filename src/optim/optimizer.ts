/**
 * Optimizer base (torch.optim.Optimizer): parameter groups with per-group hyper-parameters, lazily
 * created per-parameter state, and state dicts in PyTorch's layout so checkpoints interoperate.
 */
import { Tensor } from '../torch/tensor.js';
import { keep } from '../torch/scope.js';
import { isFloatingDtype } from '../torch/dtype.js';

/** Hyper-parameters every optimizer has. */
export interface BaseHyperParams {
  lr: number;
}

/** A parameter group: its parameters and its own copy of every hyper-parameter. */
export type ParamGroup<H extends BaseHyperParams = BaseHyperParams> = H & {
  params: Tensor[];
  /** the lr an LR scheduler started from (PyTorch's `initial_lr`) */
  initialLr?: number;
};

/** A group as given to a constructor: options left out take the constructor's. */
export type ParamGroupInput<H extends BaseHyperParams = BaseHyperParams> = { params: Tensor[] } & Partial<H>;

/** Parameters, or parameter groups. */
export type Params<H extends BaseHyperParams = BaseHyperParams> = Tensor[] | ParamGroupInput<H>[];

export type StateValue = Tensor | number | null;

/**
 * torch.optim's state_dict layout: `state` maps a parameter's index (counted over all groups in order)
 * to its state, `param_groups` holds the hyper-parameters (snake_case) and the indices of its params.
 */
export interface OptimizerStateDict {
  state: Map<number, Record<string, StateValue>>;
  param_groups: ({ params: number[] } & Record<string, unknown>)[];
}

/** A state dict as a torch.load reader may give it: `state` a plain object keyed by index. */
export interface LoadedOptimizerStateDict {
  state: Record<string, Record<string, StateValue>>;
  param_groups: OptimizerStateDict['param_groups'];
}

const toSnake = (key: string): string => key.replace(/[A-Z]/g, (c) => '_' + c.toLowerCase());
const toCamel = (key: string): string => key.replace(/_([a-z])/g, (_, c: string) => c.toUpperCase());

/** Whether p has a gradient (reading p.grad makes a handle, which is freed at once). */
export function hasGrad(p: Tensor): boolean {
  const g = p.grad;
  if (g === undefined) return false;
  g.dispose();
  return true;
}

export abstract class Optimizer<H extends BaseHyperParams = BaseHyperParams, S extends object = object> {
  readonly paramGroups: ParamGroup<H>[] = [];
  /** Per-parameter state, created by step() for parameters that had a gradient. */
  readonly state = new Map<Tensor, S>();
  /** Boolean options of PyTorch this class does not implement: loading them set to true fails. */
  protected readonly unsupportedFlags: readonly string[] = ['maximize'];

  protected constructor(
    params: Params<H>,
    readonly defaults: H,
  ) {
    if (!Array.isArray(params) || params.length === 0) throw new Error('optimizer got an empty parameter list');
    const groups = params[0] instanceof Tensor ? [{ params: params as Tensor[] } as ParamGroupInput<H>] : (params as ParamGroupInput<H>[]);
    for (const group of groups) this.addParamGroup(group);
  }

  /** Applies one update to every parameter that has a gradient. */
  abstract step(): void;

  /** Throws if a group's hyper-parameters are invalid (PyTorch's ValueError checks). */
  protected abstract checkGroup(group: ParamGroup<H>): void;
  /** A parameter's state in state-dict form (the live tensors, not copies). */
  protected abstract packState(state: S): Record<string, StateValue>;
  /** State from a state dict entry; tensors must be copied into tensors this optimizer owns. */
  protected abstract unpackState(saved: Record<string, StateValue>, param: Tensor): S;

  addParamGroup(input: ParamGroupInput<H>): void {
    const params = input.params;
    if (!Array.isArray(params) || params.some((p) => !(p instanceof Tensor))) {
      throw new TypeError('optimizer params must be an array of Tensors or of {params: Tensor[], ...} groups');
    }
    if (params.some((p) => !p.isLeaf)) throw new Error("can't optimize a non-leaf Tensor");
    const seen = new Set(this.paramGroups.flatMap((g) => g.params));
    if (params.some((p, i) => seen.has(p) || params.indexOf(p) !== i)) {
      throw new Error('some parameters appear in more than one parameter group');
    }
    const values: Record<string, unknown> = { ...(this.defaults as object) };
    for (const [key, value] of Object.entries(input)) if (value !== undefined) values[key] = value;
    const group = { ...values, params: [...params] } as unknown as ParamGroup<H>;
    this.checkGroup(group);
    this.paramGroups.push(group);
  }

  /** Sets every gradient to undefined (zero_grad(set_to_none=True)). */
  zeroGrad(): void {
    for (const group of this.paramGroups) for (const p of group.params) p.grad = undefined;
  }

  /** PyTorch's state_dict(). The state tensors are the optimizer's own: serialize, don't dispose them. */
  stateDict(): OptimizerStateDict {
    const index = new Map<Tensor, number>();
    const paramGroups = this.paramGroups.map((group) => {
      const packed: Record<string, unknown> = {};
      for (const [key, value] of Object.entries(group)) {
        if (key !== 'params' && value !== undefined) packed[toSnake(key)] = Array.isArray(value) ? [...value] : value;
      }
      const ids = group.params.map((p) => {
        index.set(p, index.size);
        return index.size - 1;
      });
      return { ...packed, params: ids };
    });
    const state = new Map<number, Record<string, StateValue>>();
    for (const [p, i] of index) {
      const s = this.state.get(p);
      if (s !== undefined) state.set(i, this.packState(s));
    }
    return { state, param_groups: paramGroups };
  }

  /**
   * PyTorch's load_state_dict(): groups must match in number and size; hyper-parameters are taken from
   * the dict, state tensors are copied (cast to each parameter's dtype). `state` may be a Map or a
   * plain object keyed by index; extra PyTorch options set to their defaults (differentiable, …) are ignored.
   */
  loadStateDict(stateDict: OptimizerStateDict | LoadedOptimizerStateDict): void {
    const saved = stateDict.param_groups;
    if (saved.length !== this.paramGroups.length) throw new Error('loaded state dict has a different number of parameter groups');
    if (saved.some((g, i) => g.params.length !== this.paramGroups[i].params.length)) {
      throw new Error("loaded state dict contains a parameter group that doesn't match the size of optimizer's group");
    }
    const byIndex = new Map<number, Tensor>();
    saved.forEach((g, i) => g.params.forEach((id, j) => byIndex.set(Number(id), this.paramGroups[i].params[j])));

    const known = new Set([...Object.keys(this.defaults), 'initialLr']);
    const groups = saved.map((g) => {
      const values: Record<string, unknown> = {};
      for (const [key, value] of Object.entries(g)) {
        const name = toCamel(key);
        if (known.has(name)) values[name] = Array.isArray(value) ? [...value] : value;
        else if (this.unsupportedFlags.includes(name) && value) throw new Error(`loadStateDict: option ${key}=${String(value)} is not supported`);
      }
      return values;
    });
    groups.forEach((values, i) => this.checkGroup({ ...this.paramGroups[i], ...values }));

    const entries = stateDict.state instanceof Map ? [...stateDict.state] : Object.entries(stateDict.state);
    const state = new Map<Tensor, S>();
    try {
      for (const [id, value] of entries) {
        const param = byIndex.get(Number(id));
        if (param === undefined) throw new Error(`loadStateDict: state for parameter ${id}, which no group holds`);
        state.set(param, this.unpackState(value, param));
      }
    } catch (error) {
      disposeStates(state.values());
      throw error;
    }

    disposeStates(this.state.values());
    this.state.clear();
    for (const [p, s] of state) this.state.set(p, s);
    groups.forEach((values, i) => Object.assign(this.paramGroups[i], values));
  }

  /** Frees the state tensors (the parameters stay). */
  dispose(): void {
    disposeStates(this.state.values());
    this.state.clear();
  }

  /** An owned copy of a saved state tensor, cast like PyTorch's load_state_dict casts it. */
  protected copyState(value: Tensor, param: Tensor): Tensor {
    let copy = value.clone();
    const cast = (next: Tensor) => {
      copy.dispose();
      copy = next;
    };
    if (isFloatingDtype(param.dtype) && copy.dtype !== param.dtype) cast(copy.to(param.dtype));
    if (copy.device !== param.device) cast(copy.to(param.device));
    return keep(copy);
  }
}

function disposeStates(states: Iterable<object>): void {
  for (const s of states) for (const v of Object.values(s)) if (v instanceof Tensor) v.dispose();
}

/**
 * Whether a group's update runs as multi-tensor (`_foreach_*`) kernels. `foreach: null` is torch.optim's
 * default: multi-tensor when no parameter is on the CPU (CUDA), else the fused per-parameter loop.
 */
export function useForeach(foreach: boolean | null | undefined, params: Tensor[]): boolean {
  return foreach ?? params.every((p) => p.device !== 'cpu');
}

/** The check of a group's `foreach` (part of each optimizer's checkGroup). */
export function checkForeach(foreach: unknown): void {
  if (foreach != null && typeof foreach !== 'boolean') throw new TypeError(`Invalid foreach value: ${String(foreach)} (true, false or null)`);
}

/** A saved step count: a number, or a one-element tensor as PyTorch ≥ 1.12 stores it. */
export function stepNumber(value: StateValue): number {
  if (value instanceof Tensor) return value.item();
  if (typeof value !== 'number') throw new Error('loadStateDict: state entry has no step count');
  return value;
}

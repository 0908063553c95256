/**
 * Learning-rate schedules (torch.optim.lr_scheduler). A scheduler writes each group's lr on every
 * step(); construction already takes the first step (lastEpoch 0), as PyTorch's _LRScheduler does.
 */
import type { Optimizer } from './optimizer.js';

/** PyTorch's scheduler state_dict: every attribute but the optimizer (snake_case, as saved there). */
export interface LRSchedulerStateDict {
  base_lrs: number[];
  last_epoch: number;
  _step_count: number;
  _last_lr: number[];
  [key: string]: unknown;
}

/** torch.optim.lr_scheduler._LRScheduler: the bookkeeping; subclasses give getLr(). */
export abstract class LRScheduler {
  /** each group's lr when the schedule began (kept in the groups as initialLr) */
  baseLrs: number[];
  lastEpoch = -1;
  protected stepCount = 0;
  private lastLr: number[] = [];

  constructor(readonly optimizer: Optimizer) {
    for (const group of optimizer.paramGroups) group.initialLr ??= group.lr;
    this.baseLrs = optimizer.paramGroups.map((g) => g.initialLr!);
    this.step();
  }

  /** The lrs for lastEpoch (called by step() after it advances lastEpoch). */
  protected abstract getLr(): number[];

  /** Advances the schedule by one and writes the new lrs into the optimizer's groups. */
  step(): void {
    this.stepCount += 1;
    this.lastEpoch += 1;
    const lrs = this.getLr();
    this.optimizer.paramGroups.forEach((group, i) => (group.lr = lrs[i]));
    this.lastLr = this.optimizer.paramGroups.map((g) => g.lr);
  }

  /** The lrs the last step() set (get_last_lr()). */
  getLastLr(): number[] {
    return [...this.lastLr];
  }

  stateDict(): LRSchedulerStateDict {
    return {
      base_lrs: [...this.baseLrs],
      last_epoch: this.lastEpoch,
      verbose: false,
      _step_count: this.stepCount,
      _get_lr_called_within_step: false,
      _last_lr: [...this.lastLr],
    };
  }

  /** Restores the schedule position; the optimizer's lrs come from its own state dict. */
  loadStateDict(state: LRSchedulerStateDict): void {
    this.baseLrs = [...state.base_lrs];
    this.lastEpoch = state.last_epoch;
    this.stepCount = state._step_count;
    this.lastLr = [...state._last_lr];
  }
}

export interface PolynomialLRWarmupOptions {
  warmupIters: number;
  totalIters: number;
  power?: number;
}

/**
 * arcface_torch's PolynomialLRWarmup (recognition/arcface_torch/lr_scheduler.py): lr rises linearly
 * to the base lr over warmupIters, then decays as (1 − (t − warmup)/(total − warmup))^power to 0 at
 * totalIters and stays there. The decay is applied as a ratio of consecutive values to the current
 * group lr (chainable, like PyTorch's own schedulers), so the arithmetic matches the original exactly.
 * arcface_torch steps it once per iteration, after the optimizer step.
 */
export class PolynomialLRWarmup extends LRScheduler {
  warmupIters: number;
  totalIters: number;
  power: number;

  constructor(optimizer: Optimizer, { warmupIters, totalIters, power = 1.0 }: PolynomialLRWarmupOptions) {
    // The first step (lastEpoch 0) keeps the groups' lrs and does not read the fields set below.
    super(optimizer);
    this.warmupIters = warmupIters;
    this.totalIters = totalIters;
    this.power = power;
  }

  protected getLr(): number[] {
    const groups = this.optimizer.paramGroups;
    if (this.lastEpoch === 0 || this.lastEpoch > this.totalIters) return groups.map((g) => g.lr);
    if (this.lastEpoch <= this.warmupIters) return this.baseLrs.map((base) => (base * this.lastEpoch) / this.warmupIters);
    const [l, w, t] = [this.lastEpoch, this.warmupIters, this.totalIters];
    const decayFactor = ((1.0 - (l - w) / (t - w)) / (1.0 - (l - 1 - w) / (t - w))) ** this.power;
    return groups.map((g) => g.lr * decayFactor);
  }

  override stateDict(): LRSchedulerStateDict {
    return { ...super.stateDict(), total_iters: this.totalIters, power: this.power, warmup_iters: this.warmupIters };
  }

  override loadStateDict(state: LRSchedulerStateDict): void {
    super.loadStateDict(state);
    this.totalIters = state.total_iters as number;
    this.power = state.power as number;
    this.warmupIters = state.warmup_iters as number;
  }
}

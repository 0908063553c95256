/**
 * Dynamic loss scaling for float16 training (torch.cuda.amp.GradScaler). Per iteration:
 *   scaler.scale(loss).backward(); [scaler.unscale_(opt); clipGradNorm(...)]; scaler.step(opt); scaler.update();
 * step() skips the optimizer when an unscaled gradient holds inf/NaN; update() then multiplies the scale
 * by backoffFactor, and after growthInterval clean iterations in a row by growthFactor. As in PyTorch
 * the scale is a float32 value.
 * unscale_ is one fused pass over the gradients per device and dtype that leaves its inf/NaN flag on the
 * device; step() reads it: one host sync per optimizer and iteration (torch.cuda.amp.GradScaler's too).
 */
import { native } from '../torch/native.js';
import { Tensor } from '../torch/tensor.js';
import { keep } from '../torch/scope.js';
import type { Optimizer } from './optimizer.js';

export interface GradScalerOptions {
  initScale?: number;
  growthFactor?: number;
  backoffFactor?: number;
  growthInterval?: number;
  enabled?: boolean;
}

/** PyTorch's GradScaler.state_dict() layout. */
export interface GradScalerStateDict {
  scale: number;
  growth_factor: number;
  backoff_factor: number;
  growth_interval: number;
  _growth_tracker: number;
}

type Stage = 'unscaled' | 'stepped';

/** One optimizer's iteration: its stage, and its found-inf flag (a tensor until step() or update() reads it). */
interface OptimizerRecord {
  stage: Stage;
  foundInf: Tensor | boolean;
}

function readFoundInf(record: OptimizerRecord): boolean {
  if (record.foundInf instanceof Tensor) {
    const flag = record.foundInf;
    record.foundInf = flag.item() !== 0;
    flag.dispose();
  }
  return record.foundInf;
}

export class GradScaler {
  private scaleValue: number;
  private growthTracker = 0;
  private growthFactor: number;
  private backoffFactor: number;
  private growthInterval: number;
  private readonly enabled: boolean;
  /** What happened to each optimizer since the last update(): its stage and whether it saw inf/NaN. */
  private perOptimizer = new Map<Optimizer, OptimizerRecord>();

  constructor({ initScale = 65536, growthFactor = 2, backoffFactor = 0.5, growthInterval = 2000, enabled = true }: GradScalerOptions = {}) {
    if (!(growthFactor > 1)) throw new RangeError('The growth factor must be > 1.0.');
    if (!(backoffFactor < 1)) throw new RangeError('The backoff factor must be < 1.0.');
    this.scaleValue = Math.fround(initScale);
    this.growthFactor = growthFactor;
    this.backoffFactor = backoffFactor;
    this.growthInterval = growthInterval;
    this.enabled = enabled;
  }

  /** loss × scale, as a new tensor (the loss times 1 when disabled, so the caller owns the result alike). */
  scale(loss: Tensor): Tensor {
    return loss.mul(this.enabled ? this.scaleValue : 1);
  }

  /** Divides the optimizer's gradients by the scale and records whether any is inf/NaN. Once per step. */
  unscale_(optimizer: Optimizer): void {
    if (!this.enabled) return;
    const stage = this.perOptimizer.get(optimizer)?.stage;
    if (stage === 'unscaled') throw new Error('unscale_() has already been called on this optimizer since the last update().');
    if (stage === 'stepped') throw new Error('unscale_() is being called after step().');
    const params = optimizer.paramGroups.flatMap((g) => g.params);
    // PyTorch: inv_scale = scale.double().reciprocal().float()
    const foundInf: Tensor = keep(native.unscaleGrads(params, Math.fround(1 / this.scaleValue)));
    this.perOptimizer.set(optimizer, { stage: 'unscaled', foundInf });
  }

  /** Unscales (unless done already) and runs optimizer.step() unless inf/NaN was found. Returns whether it stepped. */
  step(optimizer: Optimizer): boolean {
    if (!this.enabled) {
      optimizer.step();
      return true;
    }
    if (this.perOptimizer.get(optimizer)?.stage === 'stepped') throw new Error('step() has already been called since the last update().');
    if (!this.perOptimizer.has(optimizer)) this.unscale_(optimizer);
    const record = this.perOptimizer.get(optimizer)!;
    const foundInf = readFoundInf(record);
    if (!foundInf) optimizer.step();
    record.stage = 'stepped';
    return !foundInf;
  }

  /** Adjusts the scale from this iteration's inf checks (or sets it to `newScale`), then starts a new iteration. */
  update(newScale?: number): void {
    if (!this.enabled) return;
    const records = [...this.perOptimizer.values()];
    if (newScale !== undefined) {
      for (const r of records) if (r.foundInf instanceof Tensor) r.foundInf.dispose();
      this.scaleValue = Math.fround(newScale);
    } else {
      if (records.length === 0) throw new Error('No inf checks were recorded prior to update.');
      const foundInf = records.map(readFoundInf).some((f) => f);
      // _amp_update_scale_ (aten/src/ATen/native/cuda/AmpKernels.cu), in float32
      if (foundInf) {
        this.scaleValue = Math.fround(this.scaleValue * this.backoffFactor);
        this.growthTracker = 0;
      } else if (this.growthTracker + 1 === this.growthInterval) {
        const grown = Math.fround(this.scaleValue * this.growthFactor);
        if (Number.isFinite(grown)) this.scaleValue = grown;
        this.growthTracker = 0;
      } else {
        this.growthTracker += 1;
      }
    }
    this.perOptimizer = new Map();
  }

  /** The current scale, or 1 when disabled. */
  getScale(): number {
    return this.enabled ? this.scaleValue : 1;
  }

  /** Clean iterations since the scale last changed. */
  getGrowthTracker(): number {
    return this.enabled ? this.growthTracker : 0;
  }

  isEnabled(): boolean {
    return this.enabled;
  }

  /** PyTorch's layout; empty when disabled, as there. */
  stateDict(): GradScalerStateDict | Record<string, never> {
    if (!this.enabled) return {};
    return {
      scale: this.scaleValue,
      growth_factor: this.growthFactor,
      backoff_factor: this.backoffFactor,
      growth_interval: this.growthInterval,
      _growth_tracker: this.growthTracker,
    };
  }

  loadStateDict(state: GradScalerStateDict | Record<string, never>): void {
    if (!this.enabled) return;
    if (!('scale' in state)) {
      throw new Error('The source state dict is empty, possibly because it was saved from a disabled instance of GradScaler.');
    }
    this.scaleValue = Math.fround(state.scale);
    this.growthFactor = state.growth_factor;
    this.backoffFactor = state.backoff_factor;
    this.growthInterval = state.growth_interval;
    this.growthTracker = state._growth_tracker;
  }
}

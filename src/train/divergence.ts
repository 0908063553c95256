/**
 * Divergence checks after each optimizer step, which stop a run instead of letting it save
 * poisoned weights: inf/NaN in the weights (the backbone, or this rank's Partial FC shard), or a
 * GradScaler scale below `gradScaleFloor` for `gradScaleFloorSteps` consecutive steps (a scaler that
 * skips every step: arcface_torch runs on with a scale collapsing to 0). Each check is local; the
 * trainer carries the flags in its once-per-step stop all-reduce, so every rank stops at the same
 * step and the message names what went wrong where.
 */
import * as torch from '../torch/index.js';

export interface DivergenceFlags {
  /** the backbone's weights hold inf/NaN (replicated: the same on every rank) */
  backbone: boolean;
  /** this rank's Partial FC shard holds inf/NaN */
  head: boolean;
  /** the scale has been below the floor for the configured number of steps */
  scale: boolean;
}

/**
 * Whether each group of tensors is free of inf/NaN: a max and a min per tensor (both propagate NaN),
 * queued without waiting, and one read of the host for all groups.
 */
export function finiteGroups(groups: torch.Tensor[][]): boolean[] {
  return torch.tidy(() => {
    const extremes = groups.map((tensors) => {
      const ends = tensors.filter((t) => t.numel > 0).flatMap((t) => [t.max(), t.min()]).map((x) => x.to('float32'));
      return ends.length === 0 ? torch.ones([1]) : torch.stack(ends).to('cpu');
    });
    const flags = torch.stack(extremes.map((e) => torch.isfinite(e).all()));
    return Array.from(flags.data() as Uint8Array, (f) => f !== 0);
  });
}

export class DivergenceWatch {
  private lowSteps = 0;

  constructor(private readonly floor: number, private readonly steps: number) {}

  /** After an optimizer step; `scale` undefined without a GradScaler. */
  check(backbone: torch.Tensor[], head: torch.Tensor[], scale: number | undefined): DivergenceFlags {
    const [backboneFinite, headFinite] = finiteGroups([backbone, head]);
    this.lowSteps = scale !== undefined && scale < this.floor ? this.lowSteps + 1 : 0;
    return { backbone: !backboneFinite, head: !headFinite, scale: this.lowSteps >= this.steps };
  }

  /** The stop message, from every rank's flags (`headRanks`: the ranks whose shard went non-finite). */
  message(step: number, flags: { backbone: boolean; headRanks: number[]; scale: boolean }, scale: number, output: string): string {
    const what = [
      flags.backbone && 'the backbone weights hold inf/NaN',
      flags.headRanks.length > 0 && `the Partial FC shard of rank ${flags.headRanks.join(', ')} holds inf/NaN`,
      flags.scale && `the fp16 grad scale has been below gradScaleFloor ${this.floor} for ${this.steps} consecutive steps (now ${scale})`,
    ].filter(Boolean);
    return `step ${step}: the run diverged: ${what.join('; ')}; stopped without saving (model.pt and the last checkpoint in ${output} are untouched)`;
  }
}

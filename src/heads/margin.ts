/**
 * Margin-based softmax logits (arcface_torch's losses.py): CombinedMarginLoss and the ArcFace /
 * CosFace presets. `forward` is the plain tensor-op version (autograd, any float dtype); Partial FC
 * passes `params` to its fused kernel, which computes the same thing.
 *
 * Exactly as arcface_torch:
 * - ArcFace (m1 = 1, m3 = 0): target logit cos(acos(x) + m2). The acos/cos run under no_grad, so the
 *   gradient passes through the margin as if it were the identity (scaled by s).
 * - CosFace (m3 > 0): target logit x − m3. m1 and m2 are then not used (arcface_torch takes this
 *   branch whenever m3 > 0); any other combination is rejected, as arcface_torch raises.
 * - Inter-class filtering (threshold > 0): non-target logits above the threshold become 0 and pass
 *   no gradient.
 * - Logits are then scaled by s. Rows labelled −1 (their centre is on another shard) get no margin.
 */
import * as torch from '../torch/index.js';
import type { Tensor } from '../torch/index.js';
import type { MarginParams } from '../torch/native.js';

export interface CombinedMarginOptions {
  s: number;
  m1: number;
  m2: number;
  m3: number;
  interclassFilteringThreshold?: number;
}

const _acos = torch.aten('acos_'), _cos = torch.aten('cos_');
const _scatterValue = torch.aten('scatter_.value');

export class CombinedMarginLoss {
  readonly s: number;
  readonly m1: number;
  readonly m2: number;
  readonly m3: number;
  readonly interclassFilteringThreshold: number;

  constructor({ s, m1, m2, m3, interclassFilteringThreshold = 0 }: CombinedMarginOptions) {
    for (const [key, v] of Object.entries({ s, m1, m2, m3, interclassFilteringThreshold })) {
      if (!Number.isFinite(v)) throw new RangeError(`CombinedMarginLoss: ${key} must be a finite number, got ${v}`);
    }
    if (!(m1 === 1 && m3 === 0) && !(m3 > 0)) {
      throw new RangeError(
        `CombinedMarginLoss: unsupported margins m1=${m1}, m2=${m2}, m3=${m3} (ArcFace needs m1 = 1 and m3 = 0, CosFace m3 > 0)`,
      );
    }
    this.s = s;
    this.m1 = m1;
    this.m2 = m2;
    this.m3 = m3;
    this.interclassFilteringThreshold = interclassFilteringThreshold;
  }

  get kind(): 'arcface' | 'cosface' {
    return this.m1 === 1 && this.m3 === 0 ? 'arcface' : 'cosface';
  }

  /** The parameters of the fused kernel. */
  get params(): MarginParams {
    return { s: this.s, m1: this.m1, m2: this.m2, m3: this.m3, filter: this.interclassFilteringThreshold };
  }

  /**
   * Final logits from cosines [N, C] (already clamped to [−1, 1]) and labels [N] (int64, −1: no
   * target in these columns). The input is not modified.
   */
  forward(logits: Tensor, labels: Tensor): Tensor {
    return torch.tidy(() => {
      const flat = labels.reshape([-1]);
      const rows = torch.nonzero(torch.ne(flat, -1)).reshape([-1]);
      const cols = torch.index(flat, [rows]);
      if (this.interclassFilteringThreshold > 0) {
        const keep = torch.noGrad(() => {
          const dirty = torch.gt(logits, this.interclassFilteringThreshold).to(logits.dtype);
          const mask = torch.ones([rows.shape[0], logits.shape[1]], { dtype: logits.dtype });
          _scatterValue(mask, 1, cols.reshape([-1, 1]), 0).dispose();
          torch.inplace.indexPut(dirty, [rows], torch.index(dirty, [rows]).mul(mask));
          return torch.rsub(dirty, 1);
        });
        logits = keep.mul(logits);
      }
      if (this.kind === 'arcface') {
        // in place under no_grad, on a copy that autograd sees as the identity (as arcface_torch)
        const out = logits.clone();
        torch.noGrad(() => {
          const target = torch.index(out, [rows, cols]);
          _acos(target).dispose();
          _acos(out).dispose();
          torch.inplace.indexPut(out, [rows, cols], target.add(this.m2));
          _cos(out).dispose();
        });
        return out.mul(this.s);
      }
      const target = torch.index(logits, [rows, cols]).sub(this.m3);
      return torch.indexPut(logits, [rows, cols], target).mul(this.s);
    });
  }
}

/** ArcFace (additive angular margin): CombinedMarginLoss(s, 1, m, 0). */
export const arcface = ({ s = 64, m = 0.5 }: { s?: number; m?: number } = {}): CombinedMarginLoss =>
  new CombinedMarginLoss({ s, m1: 1, m2: m, m3: 0 });

/** CosFace (additive cosine margin): CombinedMarginLoss(s, 1, 0, m). */
export const cosface = ({ s = 64, m = 0.4 }: { s?: number; m?: number } = {}): CombinedMarginLoss =>
  new CombinedMarginLoss({ s, m1: 1, m2: 0, m3: m });

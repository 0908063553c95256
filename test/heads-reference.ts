/**
 * Independent references for the head tests: the plain dense margin softmax in float64 through
 * tensor ops and autograd, and the chi-square tail probability for the sampling test.
 */
import * as torch from '../src/torch/index.js';
import type { Tensor } from '../src/torch/index.js';
import type { CombinedMarginLoss } from '../src/heads/index.js';

export interface DenseResult {
  /** final logits [B, S] */
  logits: number[];
  /** DistCrossEntropy's value: −mean log max(p_target, 1e-30) */
  loss: number;
  gradEmbeddings: number[];
  /** ∂loss/∂(centres used) [S, D] */
  gradWeight: number[];
}

/**
 * normalise → linear → clamp → margin → softmax cross-entropy over the centres `index` (all when
 * absent), labels remapped into that subset, in float64. The gradient comes from crossEntropy,
 * whose backward is DistCrossEntropy's (p − onehot)/B; the loss value also applies
 * DistCrossEntropy's 1e-30 floor on p_target (which it leaves out of the gradient).
 */
export function denseReference(embeddings: Tensor, weight: Tensor, labels: number[], margin: CombinedMarginLoss, index?: number[]): DenseResult {
  return torch.tidy(() => {
    const e = embeddings.double().detach().requiresGrad_();
    const w = weight.double().detach().requiresGrad_();
    const rows = index ?? Array.from({ length: weight.shape[0] }, (_, i) => i);
    const used = torch.indexSelect(w, 0, torch.tensor(rows, { dtype: 'int64' }));
    const target = torch.tensor(labels.map((l) => rows.indexOf(l)), { dtype: 'int64' });
    const cosines = torch.linear(torch.normalize(e), torch.normalize(used)).clamp(-1, 1);
    const logits = margin.forward(cosines, target);
    torch.crossEntropy(logits, target).backward();
    const pTarget = torch.gather(torch.softmax(logits.detach(), 1), 1, target.reshape([-1, 1]));
    const loss = pTarget.clamp(1e-30).log().mean().neg().item();
    const gradW = torch.indexSelect(w.grad!, 0, torch.tensor(rows, { dtype: 'int64' }));
    return {
      logits: Array.from(logits.data() as Float64Array),
      loss,
      gradEmbeddings: Array.from(e.grad!.data() as Float64Array),
      gradWeight: Array.from(gradW.data() as Float64Array),
    };
  });
}

/** max |a − b| / max |b|: agreement relative to the size of the values. */
export function relativeError(actual: ArrayLike<number>, expected: ArrayLike<number>): number {
  if (actual.length !== expected.length) throw new Error(`relativeError: ${actual.length} vs ${expected.length} values`);
  let err = 0, scale = 0;
  for (let i = 0; i < expected.length; i++) {
    err = Math.max(err, Math.abs(actual[i] - expected[i]));
    scale = Math.max(scale, Math.abs(expected[i]));
  }
  return err / (scale || 1);
}

/** P(X ≥ x) for X ~ χ²(k): the regularised upper incomplete gamma Q(k/2, x/2). */
export function chiSquareSurvival(x: number, k: number): number {
  const a = k / 2, z = x / 2;
  if (z <= 0) return 1;
  const logPrefix = a * Math.log(z) - z - logGamma(a);
  if (z < a + 1) {
    // series for the lower function P
    let term = 1 / a, sum = term;
    for (let n = 1; n < 1000 && Math.abs(term) > 1e-16 * sum; n++) {
      term *= z / (a + n);
      sum += term;
    }
    return 1 - sum * Math.exp(logPrefix);
  }
  // continued fraction for Q (Lentz)
  let b = z + 1 - a, c = 1e300, d = 1 / b, h = d;
  for (let n = 1; n < 1000; n++) {
    const an = -n * (n - a);
    b += 2;
    d = an * d + b;
    d = Math.abs(d) < 1e-300 ? 1e-300 : d;
    c = b + an / c;
    c = Math.abs(c) < 1e-300 ? 1e-300 : c;
    d = 1 / d;
    const delta = d * c;
    h *= delta;
    if (Math.abs(delta - 1) < 1e-16) break;
  }
  return h * Math.exp(logPrefix);
}

/** ln Γ(x) for x > 0 (Lanczos, g = 7). */
function logGamma(x: number): number {
  const g = [0.99999999999980993, 676.5203681218851, -1259.1392167224028, 771.32342877765313, -176.61502916214059,
    12.507343278686905, -0.13857109526572012, 9.9843695780195716e-6, 1.5056327351493116e-7];
  if (x < 0.5) return Math.log(Math.PI / Math.sin(Math.PI * x)) - logGamma(1 - x);
  x -= 1;
  let a = g[0];
  const t = x + 7.5;
  for (let i = 1; i < 9; i++) a += g[i] / (x + i);
  return 0.5 * Math.log(2 * Math.PI) + (x + 0.5) * Math.log(t) - t + Math.log(a);
}

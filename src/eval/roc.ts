/**
 * ROC curve and TAR@FAR as arcface_torch's eval_ijbc.py reports them: sklearn.metrics.roc_curve
 * (drop_intermediate=True), then for each target FAR the curve point whose FPR is nearest to it.
 */

export interface RocCurve {
  /** false positive rates, non-decreasing, starting at 0 */
  fpr: Float64Array;
  /** true positive rates (TAR) at the same points */
  tpr: Float64Array;
  /** score threshold of each point (accept score ≥ threshold); the first is +∞ (sklearn ≥ 1.3) */
  thresholds: Float64Array;
}

/** The FARs eval_ijbc.py tabulates (10⁻⁶ … 10⁻¹). */
export const IJB_FARS = [1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1];

/**
 * sklearn.metrics.roc_curve(labels, scores): one point per distinct score (highest first), minus
 * the points collinear with their neighbours when `dropIntermediate` (sklearn's default).
 */
export function rocCurve(labels: ArrayLike<number | boolean>, scores: ArrayLike<number>, { dropIntermediate = true } = {}): RocCurve {
  const n = scores.length;
  if (labels.length !== n) throw new Error(`roc: ${labels.length} labels for ${n} scores`);
  for (let i = 0; i < n; i++) {
    if (!Number.isFinite(scores[i])) throw new Error(`roc: score ${i} is ${scores[i]} (scores must be finite)`);
    const l = Number(labels[i]);
    if (l !== 0 && l !== 1) throw new Error(`roc: label ${i} is ${labels[i]} (labels must be 0 or 1)`);
  }
  const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => scores[b] - scores[a]);

  // cumulative counts at the last sample of each run of equal scores
  let fps: number[] = [], tps: number[] = [], thresholds: number[] = [];
  let tp = 0;
  order.forEach((index, rank) => {
    tp += Number(labels[index]);
    if (rank === n - 1 || scores[order[rank + 1]] !== scores[index]) {
      tps.push(tp);
      fps.push(rank + 1 - tp);
      thresholds.push(scores[index]);
    }
  });
  if (tp === 0 || tp === n) throw new Error(`roc: needs both positive and negative pairs (${tp} of ${n} are positive)`);

  if (dropIntermediate && fps.length > 2) {
    // keep the ends and every corner (a non-zero second difference of either count)
    const keep = fps.map((_, i) => i === 0 || i === fps.length - 1 || fps[i - 1] - 2 * fps[i] + fps[i + 1] !== 0 || tps[i - 1] - 2 * tps[i] + tps[i + 1] !== 0);
    [fps, tps, thresholds] = [fps, tps, thresholds].map((v) => v.filter((_, i) => keep[i]));
  }
  const negatives = fps[fps.length - 1], positives = tps[tps.length - 1];
  return {
    fpr: Float64Array.from([0, ...fps], (v) => v / negatives),
    tpr: Float64Array.from([0, ...tps], (v) => v / positives),
    thresholds: Float64Array.from([Infinity, ...thresholds]),
  };
}

/**
 * TAR at each FAR as eval_ijbc.py reads it off the curve: the point whose FPR is nearest to the
 * target; among equally near points, the one latest on the curve (its highest TAR). With few
 * negative pairs the nearest FPR can be far from the target: see `fpr` in the result.
 */
export function tarAtFar(roc: RocCurve, fars: number[] = IJB_FARS): { far: number; tar: number; fpr: number }[] {
  return fars.map((far) => {
    let best = roc.fpr.length - 1;
    // eval_ijbc.py reverses the curve and takes the first minimum of |fpr − far|
    for (let i = roc.fpr.length - 1; i >= 0; i--) if (Math.abs(roc.fpr[i] - far) < Math.abs(roc.fpr[best] - far)) best = i;
    return { far, tar: roc.tpr[best], fpr: roc.fpr[best] };
  });
}

/** Area under the curve by the trapezoidal rule (sklearn.metrics.auc). */
export function rocAuc({ fpr, tpr }: RocCurve): number {
  let area = 0;
  for (let i = 1; i < fpr.length; i++) area += ((fpr[i] - fpr[i - 1]) * (tpr[i] + tpr[i - 1])) / 2;
  return area;
}

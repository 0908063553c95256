/**
 * Face verification accuracy as insightface's eval/verification.py computes it (LFW, CFP-FP,
 * AgeDB-30 protocol): pairs of embeddings, squared L2 distance of the normalised embeddings,
 * 10-fold cross-validation where each fold's threshold (0 … 4 step 0.01) is the one with the best
 * accuracy on the other 9 folds; and VAL at FAR = 1e-3 (thresholds 0 … 4 step 0.001).
 */

/** sklearn KFold(n_splits, shuffle=False): contiguous folds, the first n % k one element larger. */
export function kFoldSplits(n: number, k: number): { train: number[]; test: number[] }[] {
  if (n < k) throw new Error(`verification: ${n} pairs cannot be split into ${k} folds`);
  const out: { train: number[]; test: number[] }[] = [];
  let start = 0;
  for (let fold = 0; fold < k; fold++) {
    const size = Math.floor(n / k) + (fold < n % k ? 1 : 0);
    const test = Array.from({ length: size }, (_, i) => start + i);
    const train = [...Array.from({ length: start }, (_, i) => i), ...Array.from({ length: n - start - size }, (_, i) => start + size + i)];
    out.push({ train, test });
    start += size;
  }
  return out;
}

interface Counts {
  tp: number;
  fp: number;
  tn: number;
  fn: number;
}

function confusion(threshold: number, dist: ArrayLike<number>, issame: readonly boolean[], subset: number[]): Counts {
  const c = { tp: 0, fp: 0, tn: 0, fn: 0 };
  for (const i of subset) {
    const predicted = dist[i] < threshold;
    if (predicted) issame[i] ? c.tp++ : c.fp++;
    else issame[i] ? c.fn++ : c.tn++;
  }
  return c;
}

export function calculateAccuracy(threshold: number, dist: ArrayLike<number>, issame: readonly boolean[], subset: number[]) {
  const { tp, fp, tn, fn } = confusion(threshold, dist, issame, subset);
  return {
    tpr: tp + fn === 0 ? 0 : tp / (tp + fn),
    fpr: fp + tn === 0 ? 0 : fp / (fp + tn),
    accuracy: (tp + tn) / subset.length,
  };
}

export const range = (start: number, end: number, step: number): number[] =>
  Array.from({ length: Math.ceil((end - start) / step - 1e-9) }, (_, i) => start + i * step);

/** Per-fold accuracy at the threshold chosen on the other folds; mean TPR/FPR per threshold. */
export function calculateRoc(thresholds: number[], dist: ArrayLike<number>, issame: readonly boolean[], folds = 10) {
  const splits = kFoldSplits(issame.length, folds);
  const tpr = new Array(thresholds.length).fill(0), fpr = new Array(thresholds.length).fill(0);
  const accuracy: number[] = [];
  const bestThresholds: number[] = [];
  for (const { train, test } of splits) {
    let best = 0;
    let bestAcc = -1;
    thresholds.forEach((t, i) => {
      const acc = calculateAccuracy(t, dist, issame, train).accuracy;
      if (acc > bestAcc) [best, bestAcc] = [i, acc]; // first maximum, as np.argmax
      const r = calculateAccuracy(t, dist, issame, test);
      tpr[i] += r.tpr / folds;
      fpr[i] += r.fpr / folds;
    });
    bestThresholds.push(thresholds[best]);
    accuracy.push(calculateAccuracy(thresholds[best], dist, issame, test).accuracy);
  }
  return { tpr, fpr, accuracy, bestThresholds };
}

function valFar(threshold: number, dist: ArrayLike<number>, issame: readonly boolean[], subset: number[]) {
  const { tp, fp } = confusion(threshold, dist, issame, subset);
  const nSame = subset.filter((i) => issame[i]).length;
  const nDiff = subset.length - nSame;
  return { val: tp / nSame, far: fp / nDiff };
}

/** VAL (TAR) at `farTarget`, the threshold found per fold by linear interpolation of FAR on the training folds. */
export function calculateVal(thresholds: number[], dist: ArrayLike<number>, issame: readonly boolean[], farTarget: number, folds = 10) {
  const val: number[] = [], far: number[] = [];
  for (const { train, test } of kFoldSplits(issame.length, folds)) {
    const farTrain = thresholds.map((t) => valFar(t, dist, issame, train).far);
    let threshold = 0;
    if (Math.max(...farTrain) >= farTarget) threshold = interpolate(farTrain, thresholds, farTarget);
    const r = valFar(threshold, dist, issame, test);
    val.push(r.val);
    far.push(r.far);
  }
  return { val: mean(val), valStd: std(val), far: mean(far) };
}

/** scipy interp1d(x, y, kind='slinear')(x0) for non-decreasing x: the first segment containing x0. */
function interpolate(x: number[], y: number[], x0: number): number {
  for (let i = 0; i < x.length - 1; i++) {
    if (x[i] <= x0 && x0 <= x[i + 1]) return x[i + 1] === x[i] ? y[i] : y[i] + ((x0 - x[i]) * (y[i + 1] - y[i])) / (x[i + 1] - x[i]);
  }
  return y[x.length - 1];
}

export const mean = (v: number[]) => v.reduce((a, b) => a + b, 0) / v.length;
/** Population standard deviation (np.std). */
export const std = (v: number[]) => Math.sqrt(mean(v.map((x) => (x - mean(v)) ** 2)));

export interface VerificationResult {
  /** per-fold accuracies */
  accuracy: number[];
  accMean: number;
  accStd: number;
  val: number;
  valStd: number;
  far: number;
}

/**
 * `dist[i]`: squared L2 distance of pair i's normalised embeddings; `issame[i]`: whether the pair is
 * one identity. As verification.py's evaluate().
 */
export function evaluatePairs(dist: ArrayLike<number>, issame: readonly boolean[], folds = 10): VerificationResult {
  const { accuracy } = calculateRoc(range(0, 4, 0.01), dist, issame, folds);
  const { val, valStd, far } = calculateVal(range(0, 4, 0.001), dist, issame, 1e-3, folds);
  return { accuracy, accMean: mean(accuracy), accStd: std(accuracy), val, valStd, far };
}

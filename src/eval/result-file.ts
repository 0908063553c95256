/**
 * `arcface eval … --out result.json`: what the dashboard shows of an evaluation (docs/dashboard.md),
 * written atomically so a dashboard reading beside a model never sees half a file.
 */
import { writeFileAtomic } from '../torch/serialization/torch-file.js';
import type { RocCurve } from './roc.js';

export interface EvalResultFile {
  kind: 'verification' | 'ijb' | 'roc';
  model?: string;
  /** per-set 10-fold flip accuracy (verification) */
  accuracies?: Record<string, number>;
  /** TAR at each FAR, keyed by the FAR as printed */
  tarAtFar?: Record<string, number>;
  auc?: number;
  /** ROC points (at most ~1000, evenly picked) */
  roc?: { far: number[]; tar: number[] };
}

/** At most `max` ROC points, the first and last kept. */
export function rocPoints(curve: RocCurve, max = 1000): { far: number[]; tar: number[] } {
  const n = curve.fpr.length;
  const stride = Math.max(1, Math.ceil(n / max));
  const far: number[] = [], tar: number[] = [];
  for (let i = 0; i < n; i += stride) { far.push(curve.fpr[i]); tar.push(curve.tpr[i]); }
  if (n > 0 && (n - 1) % stride !== 0) { far.push(curve.fpr[n - 1]); tar.push(curve.tpr[n - 1]); }
  return { far, tar };
}

export function tarTable(rows: { far: number; tar: number }[]): Record<string, number> {
  return Object.fromEntries(rows.map((r) => [String(r.far), r.tar]));
}

export function writeEvalResult(file: string, result: EvalResultFile): void {
  const bytes = new TextEncoder().encode(`${JSON.stringify(result, null, 1)}\n`);
  writeFileAtomic(file, (sink) => sink(bytes));
}

/** Writes `result` where `--out` says, if it was given (the `arcface eval` commands' option). */
export function writeEvalResultIfAsked(options: Map<string, string | true>, result: EvalResultFile): void {
  const out = options.get('out');
  if (typeof out === 'string') writeEvalResult(out, result);
}

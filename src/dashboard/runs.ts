/**
 * Run discovery for `arcface dashboard`: a run folder is one holding metrics.jsonl or training.log
 * (what TrainingLog writes). Reads only; never writes or locks a run's files.
 */
import fs from 'node:fs';
import path from 'node:path';

export type RunState = 'running' | 'finished' | 'stopped';

export interface RunSummary {
  id: string;
  name: string;
  state: RunState;
  step: number;
  totalStep?: number;
  loss?: number;
  bestAccuracy: Record<string, number>;
}

/** A run counts as running while its logs changed in the last RUNNING_WINDOW_MS. */
export const RUNNING_WINDOW_MS = 120_000;

function isRunFolder(dir: string): boolean {
  return fs.existsSync(path.join(dir, 'metrics.jsonl')) || fs.existsSync(path.join(dir, 'training.log'));
}

/** Run folders under the given roots (the roots themselves and their sub-folders, 2 levels deep). */
export function discoverRuns(roots: string[]): Map<string, string> {
  const runs = new Map<string, string>();
  const visit = (dir: string, id: string, depth: number) => {
    if (isRunFolder(dir)) runs.set(id, dir);
    if (depth === 0) return;
    let entries: fs.Dirent[];
    try { entries = fs.readdirSync(dir, { withFileTypes: true }); } catch { return; }
    // symlinked folders are not followed: only the folders given are served
    for (const e of entries) if (e.isDirectory()) visit(path.join(dir, e.name), id ? `${id}/${e.name}` : e.name, depth - 1);
  };
  roots.forEach((root, i) => visit(path.resolve(root), roots.length > 1 ? `${i}` : '', 2));
  if (runs.has('')) { runs.set('.', runs.get('')!); runs.delete(''); }
  return runs;
}

export function readMetrics(dir: string): Record<string, unknown>[] {
  const text = readRunFile(dir, 'metrics.jsonl') ?? '';
  const records: Record<string, unknown>[] = [];
  for (const line of text.split('\n')) {
    if (!line.trim()) continue;
    try { records.push(JSON.parse(line)); } catch { /* a line being written */ }
  }
  return records;
}

/** The resolved config as the trainer logs it: ": key   <json>" lines of training.log. */
export function readConfig(dir: string): Record<string, unknown> {
  const config: Record<string, unknown> = {};
  const text = readRunFile(dir, 'training.log') ?? '';
  for (const line of text.split('\n')) {
    const m = /-: (\w+) +(.*)$/.exec(line);
    if (!m) continue;
    try { config[m[1]] = JSON.parse(m[2]); } catch { config[m[1]] = m[2]; }
  }
  return config;
}

/** Reads a run's file unless it is a symlink (which could point out of the run folder). */
export function readRunFile(dir: string, name: string): string | undefined {
  const file = path.join(dir, name);
  try {
    if (fs.lstatSync(file).isSymbolicLink()) return undefined;
    return fs.readFileSync(file, 'utf8');
  } catch { return undefined; }
}

function mtime(file: string): number {
  try { return fs.statSync(file).mtimeMs; } catch { return 0; }
}

/**
 * State from files only: finished when model.pt is at least as new as metrics.jsonl and the last
 * step reached totalStep; running when the logs changed within RUNNING_WINDOW_MS; stopped otherwise.
 */
export function runState(dir: string, step: number, totalStep: number | undefined, now = Date.now()): RunState {
  const logs = Math.max(mtime(path.join(dir, 'metrics.jsonl')), mtime(path.join(dir, 'training.log')));
  const model = mtime(path.join(dir, 'model.pt'));
  if (model > 0 && model >= logs - 1000 && totalStep !== undefined && step >= totalStep) return 'finished';
  if (now - logs < RUNNING_WINDOW_MS) return 'running';
  return 'stopped';
}

export function summarize(id: string, dir: string): RunSummary {
  const metrics = readMetrics(dir);
  const config = readConfig(dir);
  const train = metrics.filter((r) => r.type === 'train');
  const last = train[train.length - 1];
  const step = Number(last?.step ?? 0);
  const totalStep = typeof config.totalStep === 'string' ? Number.parseInt(config.totalStep, 10) : typeof config.totalStep === 'number' ? config.totalStep : undefined;
  const bestAccuracy: Record<string, number> = {};
  for (const r of metrics) {
    if (r.type !== 'verification') continue;
    const name = String(r.name);
    bestAccuracy[name] = Math.max(bestAccuracy[name] ?? 0, Number(r.accuracyFlip));
  }
  const name = typeof config.output === 'string' ? path.basename(config.output) : path.basename(dir);
  return { id, name, state: runState(dir, step, totalStep), step, totalStep, loss: last ? Number(last.loss) : undefined, bestAccuracy };
}

/** `arcface eval --out` results beside the model: <run>/eval*.json (documented in docs/dashboard.md). */
export function readEvaluations(dir: string): Record<string, unknown>[] {
  let names: string[] = [];
  try { names = fs.readdirSync(dir).filter((n) => /^eval.*\.json$/.test(n)); } catch { return []; }
  const out: Record<string, unknown>[] = [];
  for (const n of names.sort()) {
    try { out.push({ file: n, ...JSON.parse(readRunFile(dir, n) ?? '') }); } catch { /* partial or a symlink */ }
  }
  return out;
}

/**
 * Run discovery for `arcface dashboard`: a run folder is one holding metrics.jsonl or training.log
 * (what TrainingLog writes). Reads only; never writes or locks a run's files.
 */
import fs from 'node:fs';
import path from 'node:path';
import { GrowingFile } from './growing-file.js';

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

/**
 * Run folders under the given roots (the roots themselves and their sub-folders, 2 levels deep), by
 * id: the path under the root (the root's own name when the root is itself a run); with several
 * roots, each root's name comes first.
 */
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
  const names = new Set<string>();
  for (const root of roots) {
    const dir = path.resolve(root);
    let name = path.basename(dir) || 'root';
    for (let i = 2; names.has(name); i++) name = `${path.basename(dir)}~${i}`;
    names.add(name);
    if (roots.length > 1 || isRunFolder(dir)) visit(dir, name, 2);
    else visit(dir, '', 2);
  }
  return runs;
}

/** How often the folders given are walked again for new runs. */
const DISCOVERY_MS = 2000;

/**
 * The runs under the folders given, each read incrementally: metrics.jsonl's records and
 * training.log's config lines are parsed once, as they are appended, however many pages ask.
 */
export class RunIndex {
  private runs = new Map<string, RunFolder>();
  private walkedAt = -Infinity;

  constructor(private readonly roots: string[]) {}

  /** The runs, each brought up to date with its files. */
  all(): Map<string, RunFolder> {
    if (Date.now() - this.walkedAt >= DISCOVERY_MS) {
      const found = new Map<string, RunFolder>();
      for (const [id, dir] of discoverRuns(this.roots)) {
        const known = this.runs.get(id);
        found.set(id, known?.dir === dir ? known : new RunFolder(dir));
      }
      this.runs = found;
      this.walkedAt = Date.now();
    }
    for (const run of this.runs.values()) run.refresh();
    return this.runs;
  }

  get(id: string): RunFolder | undefined {
    return this.all().get(id);
  }
}

/** One run folder's logs as read so far. */
export class RunFolder {
  metrics: Record<string, unknown>[] = [];
  config: Record<string, unknown> = {};
  /** counts the times the logs were cut back (a resume) and read from the start again */
  generation = 0;
  private readonly metricsFile: GrowingFile;
  private readonly logFile: GrowingFile;

  constructor(readonly dir: string) {
    this.metricsFile = new GrowingFile(path.join(dir, 'metrics.jsonl'));
    this.logFile = new GrowingFile(path.join(dir, 'training.log'));
  }

  refresh(): void {
    const metrics = this.metricsFile.read();
    if (metrics.restarted) {
      this.metrics = [];
      this.generation++;
    }
    for (const line of metrics.lines) {
      if (!line.trim()) continue;
      try { this.metrics.push(JSON.parse(line)); } catch { /* not a record: skipped, as the trainer never writes one */ }
    }
    const log = this.logFile.read();
    if (log.restarted) this.config = {};
    for (const line of log.lines) {
      // the resolved config as the trainer logs it: ": key   <json>" lines
      const m = /-: (\w+) +(.*)$/.exec(line);
      if (!m) continue;
      try { this.config[m[1]] = JSON.parse(m[2]); } catch { this.config[m[1]] = m[2]; }
    }
  }
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

export function summarize(id: string, run: RunFolder): RunSummary {
  const { metrics, config, dir } = run;
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

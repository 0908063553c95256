/**
 * Fault campaign for checkpoint sets (not part of the test suite):
 *
 *   nice -n 19 node dist/bench/fault-campaign.js [--runs 50] [--seed 1] [--out results.jsonl]
 *
 * Each run trains a tiny 2-process job (`arcface train --nproc-per-node 2`, mbf, 16 identities,
 * 4 steps of a global batch of 16, a checkpoint set after every step) and
 * kills it with SIGKILL once or twice at random moments: the whole process group at a random time, or
 * one worker, or everything the moment a checkpoint file or manifest is being written (a .tmp-
 * file appears under checkpoints/); three kills in four come after the run's first complete set. After each kill the job is started again with resume=true (or
 * afresh when no set was complete yet). Checked: every resume exits 0 from a complete set, the
 * final model.pt equals an uninterrupted run's byte for byte, and metrics.jsonl has each step once.
 * One JSON line per run, then a summary line.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { generateIdentities } from '../src/data/index.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const arcface = path.join(root, 'bin', 'arcface.js');
const args = process.argv.slice(2);
const option = (name: string, fallback: string) => (args.includes(`--${name}`) ? args[args.indexOf(`--${name}`) + 1] : fallback);
const runs = Number(option('runs', '50'));
let seed = Number(option('seed', '1'));
const results = option('out', '');
// a small deterministic generator (mulberry32), so a campaign can be replayed with its seed
const random = () => {
  seed = (seed + 0x6d2b79f5) | 0;
  let t = seed;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
};

const work = fs.mkdtempSync(path.join(os.tmpdir(), 'arcface-faults-'));
const data = path.join(work, 'data');
generateIdentities({ out: data, seed: 5, identities: 16, imagesPerIdentity: 4, heldOutIdentities: 20, pairs: 20, quality: 90 });
let port = 26000 + (process.pid % 3000);

function configFile(name: string): string {
  const config = {
    network: 'mbf', embeddingSize: 32, rec: data, numClasses: 16, numImage: 64, numEpoch: 1, batchSize: 8, sampleRate: 1,
    lr: 0.05, frequent: 1, verbose: 1000, valTargets: [], saveAllStates: true, checkpointSteps: 1, gradientAcc: 1, numWorkers: 1,
    output: path.join(work, name),
  };
  const file = path.join(work, `${name}.ts`);
  fs.writeFileSync(file, `export default ${JSON.stringify(config)};\n`);
  return file;
}

const env = { ...process.env, ARCFACE_NUM_THREADS: '1', OMP_NUM_THREADS: '1', OPENBLAS_NUM_THREADS: '1' };
const start = (file: string, resume: boolean): ChildProcess =>
  spawn(process.execPath, [arcface, 'train', file, '--nproc-per-node', '2', '--master-port', String(port++), ...(resume ? ['--set', 'resume=true'] : [])], {
    cwd: root, env, detached: true, stdio: ['ignore', 'ignore', 'pipe'],
  });
const exited = (child: ChildProcess) => new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const completeSets = (output: string) => {
  const sets = path.join(output, 'checkpoints');
  try {
    return fs.readdirSync(sets).filter((s) => fs.existsSync(path.join(sets, s, 'manifest.json')));
  } catch {
    return [];  // none yet, or a set pruned while listed
  }
};
const hasCompleteSet = (output: string) => completeSets(output).length > 0;
/** A temporary file of a checkpoint or manifest is being written, in a set not among `except`. */
const writingCheckpoint = (output: string, except: Set<string>) => {
  const sets = path.join(output, 'checkpoints');
  try {
    return fs.readdirSync(sets).some((s) => !except.has(s) && fs.readdirSync(path.join(sets, s)).some((f) => f.includes('.tmp-')));
  } catch {
    return false;
  }
};

/**
 * Kills the job once, in one of three ways; resolves with how, or undefined when it ended first.
 * Three kills in four wait for the run's first complete set (a resume then has something to take),
 * the others may come before it (a fresh start); the time is random over the typical length of
 * that part of the run.
 */
async function killSometime(child: ChildProcess, output: string, typicalMs: number, done: () => boolean): Promise<string | undefined> {
  const mode = random() < 1 / 3 ? 'in a checkpoint write' : random() < 0.5 ? 'at a random time' : 'one worker at a random time';
  const afterSet = random() < 0.75;
  while (afterSet && !done() && !hasCompleteSet(output)) await sleep(5);
  const firstSets = new Set(afterSet ? completeSets(output) : []);
  // after the first set only the training steps are left (start-up and model building are most of a short run)
  const span = afterSet ? typicalMs * 0.25 : typicalMs;
  const deadline = Date.now() + (mode === 'in a checkpoint write' ? span * 1.5 : 200 + random() * span);
  const label = `${mode}${afterSet ? ' (after a set)' : ''}`;
  while (!done()) {
    const due = mode === 'in a checkpoint write' ? writingCheckpoint(output, firstSets) || Date.now() > deadline : Date.now() > deadline;
    if (due) {
      if (mode === 'one worker at a random time') {
        const workers = spawnSync('pgrep', ['-P', String(child.pid)], { encoding: 'utf8' }).stdout.trim().split('\n').filter(Boolean).map(Number);
        if (workers.length === 0) return undefined;
        process.kill(workers[Math.floor(random() * workers.length)], 'SIGKILL');
        // the launcher stops the other worker; whatever is left goes too
        await sleep(2000);
      }
      try {
        process.kill(-child.pid!, 'SIGKILL');
      } catch {
        // already gone
      }
      return label;
    }
    await sleep(mode === 'in a checkpoint write' ? 2 : 20);
  }
  return undefined;
}

// the uninterrupted run
const t0 = Date.now();
const reference = spawnSync(process.execPath, [arcface, 'train', configFile('reference'), '--nproc-per-node', '2', '--master-port', String(port++)], { cwd: root, env, encoding: 'utf8' });
if (reference.status !== 0) throw new Error(`the uninterrupted run failed: ${reference.stderr}`);
const typicalMs = Date.now() - t0;
const referenceModel = fs.readFileSync(path.join(work, 'reference', 'model.pt'));
const out = (line: object) => {
  console.log(JSON.stringify(line));
  if (results) fs.appendFileSync(results, `${JSON.stringify(line)}\n`);
};
out({ reference: true, ms: typicalMs });

const total = { runs: 0, kills: 0, killsInCheckpointWrite: 0, resumes: 0, failedResumes: 0, freshRestarts: 0, modelMismatches: 0, logMismatches: 0 };
for (let run = 0; run < runs; run++) {
  const name = `run-${run}`;
  const file = configFile(name);
  const output = path.join(work, name);
  const kills = 1 + Math.floor(random() * 2);
  const record = { run, kills: [] as string[], resumes: 0, failedResumes: [] as string[], freshRestarts: 0, modelEqual: false, logSteps: '' };
  let resume = false;
  for (let attempt = 0; ; attempt++) {
    const child = start(file, resume);
    let stderr = '';
    child.stderr!.on('data', (d) => (stderr += d));
    let ended = false;
    const exit = exited(child).then((code) => ((ended = true), code));
    const how = attempt < kills ? await killSometime(child, output, typicalMs, () => ended) : undefined;
    const code = await exit;
    if (how) {
      record.kills.push(how);
    } else if (code !== 0) {
      // a run that ended by itself with an error: a resume (or a start) that failed
      record.failedResumes.push(stderr.trim().split('\n').slice(-2).join(' | '));
      break;
    } else {
      break;
    }
    // the next start: a resume when a set is complete, else from scratch
    resume = hasCompleteSet(output);
    if (resume) record.resumes++;
    else {
      record.freshRestarts++;
      fs.rmSync(output, { recursive: true, force: true });
    }
  }
  const model = path.join(output, 'model.pt');
  record.modelEqual = fs.existsSync(model) && fs.readFileSync(model).equals(referenceModel);
  const steps = fs.readFileSync(path.join(output, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l).step);
  record.logSteps = steps.join(',');
  out(record);
  total.runs++;
  total.kills += record.kills.length;
  total.killsInCheckpointWrite += record.kills.filter((k) => k.startsWith('in a checkpoint write')).length;
  total.resumes += record.resumes;
  total.failedResumes += record.failedResumes.length;
  total.freshRestarts += record.freshRestarts;
  total.modelMismatches += record.modelEqual ? 0 : 1;
  total.logMismatches += record.logSteps === '1,2,3,4' ? 0 : 1;
  fs.rmSync(output, { recursive: true, force: true });
}
out({ summary: true, ...total, minutes: (Date.now() - t0) / 60000 });
fs.rmSync(work, { recursive: true, force: true });

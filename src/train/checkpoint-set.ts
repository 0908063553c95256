/**
 * Checkpoint sets: the ranks' files of one step, made one unit by a manifest.
 *
 *   <output>/checkpoints/step_<N>/checkpoint_gpu_<rank>.pt   every rank's state (./checkpoint.ts)
 *   <output>/checkpoints/step_<N>/manifest.json              written by rank 0 after all of them
 *
 * Saving: every rank writes its file (temporary name, fsync, rename, fsync of the folder), hashing
 * it (sha256) as it writes, and all-gathers the digests (this is the barrier); then rank 0 writes the manifest
 * the same durable way (step, epoch, world size, each file's size and sha256, the logs' lengths)
 * and only then deletes all but this set and the previous complete one. A set without a manifest,
 * or whose files differ from it, was interrupted or damaged.
 *
 * Resuming: rank 0 offers the sets newest first; every rank checks its share of each set's files
 * against the manifest and the verdicts are all-reduced, so all ranks take the same set (and each
 * rank hashes only ~1/worldSize of it). Assumption: `output` is one folder every rank sees (one
 * node, or a shared filesystem), as the manifest is rank 0's and the files are checked by
 * other ranks than their writers.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import * as torch from '../torch/index.js';
import { writeFileAtomic } from '../torch/serialization/torch-file.js';
import type { ProcessGroup } from '../distributed/index.js';
import { checkpointFile, loadTrainingState, saveTrainingState, type Position, type TrainingParts } from './checkpoint.js';
import { reshard } from './reshard.js';

export const setsDir = (output: string) => path.join(output, 'checkpoints');
export const setDir = (output: string, step: number) => path.join(setsDir(output), `step_${step}`);
const MANIFEST = 'manifest.json';
const FORMAT = 'arcface-ts checkpoint set 1';

export interface ShardEntry {
  name: string;
  bytes: number;
  sha256: string;
}

export interface Manifest {
  format: string;
  step: number;
  epoch: number;
  worldSize: number;
  numClasses: number;
  /** samples per optimizer micro-step over all ranks (batchSize × worldSize) */
  globalBatch: number;
  files: ShardEntry[];
  /** byte lengths of rank 0's logs at this step: a resume cuts them back to these */
  logs: Record<string, number>;
}

/** What a set must agree with to be resumed from. */
export interface RunShape {
  worldSize: number;
  numClasses: number;
  globalBatch: number;
}

/** Size and sha256 of a file, read in 1 MiB pieces. */
export function digest(file: string): { bytes: number; sha256: string } {
  const hash = crypto.createHash('sha256');
  const fd = fs.openSync(file, 'r');
  const buffer = Buffer.allocUnsafe(1 << 20);
  let bytes = 0;
  try {
    for (let n; (n = fs.readSync(fd, buffer, 0, buffer.length, null)) > 0; bytes += n) hash.update(buffer.subarray(0, n));
  } finally {
    fs.closeSync(fd);
  }
  return { bytes, sha256: hash.digest('hex') };
}

/** Every rank's (bytes, sha256), in rank order: 8 bytes of size and 32 of hash per rank, all-gathered. */
function gatherDigests(group: ProcessGroup, own: { bytes: number; sha256: string }): { bytes: number; sha256: string }[] {
  const packed = Buffer.alloc(40);
  packed.writeBigUInt64LE(BigInt(own.bytes), 0);
  Buffer.from(own.sha256, 'hex').copy(packed, 8);
  return torch.tidy(() =>
    group.allGather(torch.tensor(new Uint8Array(packed))).map((t) => {
      const b = Buffer.from(t.toBuffer());
      return { bytes: Number(b.readBigUInt64LE(0)), sha256: b.subarray(8, 40).toString('hex') };
    }),
  );
}

/** The step_<N> folders under checkpoints/, newest first. */
function listSets(output: string): number[] {
  const dir = setsDir(output);
  if (!fs.existsSync(dir)) return [];
  return fs
    .readdirSync(dir)
    .map((name) => /^step_(\d+)$/.exec(name))
    .filter((m): m is RegExpExecArray => m !== null)
    .map((m) => Number(m[1]))
    .sort((a, b) => b - a);
}

/** Whether any set (complete or not) was started in `output`. */
export const hasCheckpointSets = (output: string): boolean => listSets(output).length > 0;

function readManifest(dir: string): Manifest {
  const file = path.join(dir, MANIFEST);
  if (!fs.existsSync(file)) throw new Error('no manifest (its writing was interrupted)');
  let m: Manifest;
  try {
    m = JSON.parse(fs.readFileSync(file, 'utf8')) as Manifest;
  } catch (error) {
    throw new Error(`manifest.json is unreadable: ${(error as Error).message}`);
  }
  if (m.format !== FORMAT || !Array.isArray(m.files) || m.files.length !== m.worldSize) throw new Error(`manifest.json is not a ${FORMAT} manifest`);
  return m;
}

/**
 * Saves this rank's part of the set of `position.globalStep`; collective (every rank calls it at the
 * same step). `logs`: rank 0's log lengths. Returns the set's folder.
 */
export function saveCheckpointSet(
  output: string,
  group: ProcessGroup,
  parts: TrainingParts,
  position: Position,
  shape: Omit<RunShape, 'worldSize'>,
  logs: Record<string, number> = {},
): string {
  const dir = setDir(output, position.globalStep);
  fs.mkdirSync(dir, { recursive: true });
  // a set of this step from an earlier life of the run stops counting before its files change
  if (group.rank === 0) fs.rmSync(path.join(dir, MANIFEST), { force: true });
  const digests = gatherDigests(group, saveTrainingState(checkpointFile(dir, group.rank), parts, position));
  if (group.rank !== 0) return dir;
  const manifest = {
    step: position.globalStep,
    epoch: position.epoch,
    worldSize: group.worldSize,
    ...shape,
    files: digests.map((d, rank) => ({ name: path.basename(checkpointFile(dir, rank)), ...d })),
    logs,
  };
  writeManifest(dir, manifest);
  pruneSets(output, position.globalStep);
  return dir;
}

/** The manifest that completes the set in `dir` (after all its files are durable). */
export function writeManifest(dir: string, fields: Omit<Manifest, 'format'>): void {
  const text = `${JSON.stringify({ format: FORMAT, ...fields }, null, 1)}\n`;
  writeFileAtomic(path.join(dir, MANIFEST), (sink) => sink(Buffer.from(text)));
}

/** Keeps the set of `step` and the newest complete one before it; the others (older, or stale ones past `step`) go. */
function pruneSets(output: string, step: number): void {
  const previous = listSets(output).find((s) => s < step && fs.existsSync(path.join(setDir(output, s), MANIFEST)));
  for (const s of listSets(output)) if (s !== step && s !== previous) fs.rmSync(setDir(output, s), { recursive: true, force: true });
}

/** What can be wrong with one file of a set: 0 nothing (codes travel between ranks). */
const FILE_PROBLEMS = ['', 'is missing', 'has another size than the manifest says', "has another sha256 than the manifest's"] as const;

function checkFile(dir: string, entry: ShardEntry): number {
  const file = path.join(dir, entry.name);
  if (!fs.existsSync(file)) return 1;
  if (fs.statSync(file).size !== entry.bytes) return 2;
  return digest(file).sha256 === entry.sha256 ? 0 : 3;
}

/** MAX over ranks of each value. */
function maxOverRanks(group: ProcessGroup, values: number[]): number[] {
  return torch.tidy(() => {
    const t = torch.tensor(Float64Array.from(values));
    group.allReduce(t, 'max');
    return Array.from(t.data() as Float64Array);
  });
}

export interface CompleteSet {
  manifest: Manifest;
  dir: string;
  /** the newer sets passed over, each with why */
  skipped: string[];
}

/**
 * The newest set whose files all ranks verify against its manifest; collective (a world of one
 * checks every file itself). Throws naming every set tried when none is whole.
 */
export function findCompleteSet(output: string, group: ProcessGroup): CompleteSet {
  const { rank, worldSize } = group;
  const offered = rank === 0 ? listSets(output) : [];
  const skipped: string[] = [];
  for (let i = 0; ; i++) {
    // rank 0 names the candidate (−1: none left); every rank checks its share of its files
    const step = torch.tidy(() => {
      const t = torch.tensor(new Float64Array([offered[i] ?? -1]));
      group.broadcast(t, 0);
      return t.item();
    });
    if (step < 0) break;
    const dir = setDir(output, step);
    let manifest: Manifest | undefined;
    let problem: string | undefined;
    try {
      manifest = readManifest(dir);
      if (manifest.step !== step) throw new Error(`manifest.json is for step ${manifest.step}`);
    } catch (error) {
      problem = (error as Error).message;
    }
    // each file's problem code (checked by rank f mod worldSize), and one for the manifest: MAX over ranks
    const files = manifest?.files ?? [];
    const [n] = maxOverRanks(group, [files.length]);
    const codes = maxOverRanks(group, [
      ...Array.from({ length: n }, (_, f) => (f % worldSize === rank && files[f] ? checkFile(dir, files[f]) : 0)),
      problem || n !== files.length ? 1 : 0,  // ranks that read different manifests (no shared folder) count too
    ]);
    const bad = codes.slice(0, n).flatMap((code, f) => (code > 0 ? [`${files[f]?.name ?? `file ${f}`} ${FILE_PROBLEMS[code]}`] : []));
    if (codes[n] > 0) bad.unshift(problem ?? 'its manifest differs between ranks (is the output folder shared?)');
    if (bad.length > 0) {
      skipped.push(`${path.relative(output, dir)}: ${bad.join('; ')}`);
      continue;
    }
    return { manifest: manifest!, dir, skipped };
  }
  throw new Error(`resume: no complete checkpoint set in ${setsDir(output)}${skipped.length ? `: ${skipped.join(' | ')}` : ' (none was saved: checkpointSteps or saveAllStates)'}`);
}

export interface ResumedSet extends CompleteSet {
  position: Position;
}

/**
 * Restores every part from the newest complete set (findCompleteSet); collective. A set of another
 * world size is re-sharded (./reshard.ts) when the global batch is the same.
 */
export function loadCheckpointSet(output: string, group: ProcessGroup, parts: TrainingParts, shape: RunShape): ResumedSet {
  const { rank, worldSize } = group;
  const found = findCompleteSet(output, group);
  const { manifest: m, dir } = found;
  if (m.numClasses !== shape.numClasses) throw new Error(`resume: ${dir} was written for ${m.numClasses} classes, this run has ${shape.numClasses}`);
  // the loader's position is a count of global batches: another global batch would start elsewhere
  if (m.globalBatch !== shape.globalBatch) {
    throw new Error(
      `resume: ${dir} was written with a global batch of ${m.globalBatch} (batchSize × ${m.worldSize} processes); ` +
        `to continue its sample stream on ${worldSize} processes batchSize must be ${m.globalBatch / worldSize} (this run's global batch is ${shape.globalBatch})`,
    );
  }
  const position =
    m.worldSize === worldSize ? loadTrainingState(checkpointFile(dir, rank), parts) : loadTrainingState(checkpointFile(dir, 0), parts, reshard(dir, m, rank, worldSize));
  return { ...found, position };
}

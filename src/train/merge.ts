/**
 * `arcface checkpoint merge`: a checkpoint set of N processes as one process's set (the whole
 * training state in one checkpoint_gpu_0.pt, under <out>/checkpoints/step_<N>/ with its manifest)
 * and the whole class-centre matrix as softmax_fc.pt ({weight: [numClasses, D]}, a PyTorch file).
 * Resuming from the merged set on any number of processes re-shards it (./reshard.ts): that is the
 * split.
 */
import fs from 'node:fs';
import path from 'node:path';
import * as torch from '../torch/index.js';
import { initProcessGroup } from '../distributed/index.js';
import { checkpointFile, tensorsIn } from './checkpoint.js';
import { digest, findCompleteSet, setDir, writeManifest } from './checkpoint-set.js';
import { headRows } from './reshard.js';

export interface MergeResult {
  /** the set merged from, and what was passed over to reach it */
  from: string;
  skipped: string[];
  step: number;
  worldSize: number;
  /** the merged set's state file and the class-centre file */
  checkpoint: string;
  centres: string;
}

export function mergeCheckpointSet(output: string, out: string): MergeResult {
  const group = initProcessGroup({ worldSize: 1 });
  const { manifest, dir, skipped } = findCompleteSet(output, group);
  const head = headRows(dir, manifest, 0, manifest.numClasses);
  const state = torch.load(checkpointFile(dir, 0));
  try {
    if (!(state instanceof Map) || !(state.get('state_loader') instanceof Map)) throw new Error(`${checkpointFile(dir, 0)}: not a checkpoint (expected a dict with 'state_loader')`);
    // the loader's batch index is per global batch: as rank 0 of 1 it continues the same stream
    const loader = state.get('state_loader') as Map<string, unknown>;
    loader.set('rank', 0).set('worldSize', 1);
    state.set('state_dict_softmax_fc', head);
    const merged = setDir(out, manifest.step);
    fs.mkdirSync(merged, { recursive: true });
    const checkpoint = checkpointFile(merged, 0);
    torch.save(state, checkpoint);
    const centres = path.join(out, 'softmax_fc.pt');
    torch.save(new Map([['weight', head.get('weight')!]]), centres);
    // logs: {} — the merged folder has no logs of its own to cut back
    writeManifest(merged, { ...manifest, worldSize: 1, files: [{ name: path.basename(checkpoint), ...digest(checkpoint) }], logs: {} });
    return { from: dir, skipped, step: manifest.step, worldSize: manifest.worldSize, checkpoint, centres };
  } finally {
    torch.dispose([...head.values(), ...tensorsIn(state)]);
  }
}

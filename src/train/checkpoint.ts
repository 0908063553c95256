/**
 * Checkpoints, as arcface_torch writes them: `model.pt` (the backbone's state dict, rank 0) and,
 * per rank, `checkpoint_gpu_<rank>.pt` with the keys of train_v2.py (epoch, global_step,
 * state_dict_backbone, state_dict_softmax_fc, state_optimizer, state_lr_scheduler) plus what an
 * exact resume needs besides: the GradScaler, the loader's position and the random generators (the
 * CPU's; the GPU's too when the run trains on one: `cuda_rng_state`).
 * Every file is written to a temporary name, fsynced and renamed (torch.save), so a crash leaves
 * the previous checkpoint whole; ./checkpoint-set.ts makes the ranks' files one set.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import * as torch from '../torch/index.js';
import type { Tensor } from '../torch/index.js';
import type { Module } from '../nn/index.js';
import type { Optimizer, OptimizerStateDict, LRScheduler, GradScaler, GradScalerStateDict, LRSchedulerStateDict } from '../optim/index.js';
import type { PartialFC } from '../heads/index.js';
import type { DataLoader, LoaderState } from '../data/index.js';

/** What a training run is made of, for saving and restoring. */
export interface TrainingParts {
  backbone: Module;
  head: PartialFC;
  optimizer: Optimizer;
  scheduler: LRScheduler;
  scaler: GradScaler;
  loader: DataLoader;
  /** where the run trains: a CUDA device's generator is saved and restored too */
  device: string;
}

export interface Position {
  epoch: number;
  globalStep: number;
}

/** arcface_torch's name of rank `rank`'s file, in `dir` (a checkpoint set's folder). */
export const checkpointFile = (dir: string, rank: number) => path.join(dir, `checkpoint_gpu_${rank}.pt`);
export const modelFile = (output: string) => path.join(output, 'model.pt');

export function saveModel(output: string, backbone: Module): string {
  const file = modelFile(output);
  torch.tidy(() => torch.save(backbone.stateDict(), file));
  return file;
}

/** Writes rank's training state to `file`; returns its size and sha256, hashed as it was written. */
export function saveTrainingState(file: string, parts: TrainingParts, position: Position): { bytes: number; sha256: string } {
  const hash = crypto.createHash('sha256');
  let bytes = 0;
  const onChunk = (chunk: Uint8Array) => {
    hash.update(chunk);
    bytes += chunk.length;
  };
  torch.tidy(() =>
    torch.save(
      {
        epoch: position.epoch,
        global_step: position.globalStep,
        state_dict_backbone: parts.backbone.stateDict(),
        state_dict_softmax_fc: parts.head.stateDict(),
        state_optimizer: parts.optimizer.stateDict(),
        state_lr_scheduler: parts.scheduler.stateDict(),
        state_grad_scaler: parts.scaler.stateDict(),
        state_loader: parts.loader.state(),
        rng_state: torch.getRngState(),
        ...(parts.device === 'cpu' ? {} : { cuda_rng_state: torch.getRngState(parts.device) }),
      },
      file,
      { onChunk },
    ),
  );
  return { bytes, sha256: hash.digest('hex') };
}

/** Every tensor in a torch.load result (to dispose). */
export function tensorsIn(value: unknown, out: Tensor[] = []): Tensor[] {
  if (value instanceof torch.Tensor) out.push(value);
  else if (value instanceof Map) value.forEach((v) => tensorsIn(v, out));
  else if (Array.isArray(value)) value.forEach((v) => tensorsIn(v, out));
  return out;
}

/** Plain objects for the Maps torch.load returns for Python dicts (nested), tensors kept. */
function plain(value: unknown): unknown {
  if (value instanceof Map) return Object.fromEntries([...value].map(([k, v]) => [String(k), plain(v)]));
  if (Array.isArray(value)) return value.map(plain);
  return value;
}

/**
 * What a resume on another world size puts in place of the file's own (./reshard.ts): the Partial
 * FC rows of this rank's class range, gathered from the old shards, and this rank's place (the
 * loader keeps its position: the same global batch index).
 */
export interface Resharded {
  head: ReadonlyMap<string, Tensor>;
  rank: number;
  worldSize: number;
}

/** Restores every part from a checkpoint file (the head and loader from `resharded` when given); returns where the run was. */
export function loadTrainingState(file: string, parts: TrainingParts, resharded?: Resharded): Position {
  if (!fs.existsSync(file)) throw new Error(`resume: ${file} not found`);
  const loaded = torch.load(file);
  const tensors = tensorsIn(loaded);
  try {
    if (!(loaded instanceof Map)) throw new Error('not a checkpoint (expected a dict)');
    const need = (key: string) => {
      if (!loaded.has(key)) throw new Error(`missing '${key}'`);
      return loaded.get(key);
    };
    const saved = plain(need('state_loader')) as LoaderState;
    const loaderState = resharded ? { ...saved, rank: resharded.rank, worldSize: resharded.worldSize } : saved;
    if (loaderState.worldSize !== parts.loader.state().worldSize) {
      throw new Error(`written by a run of ${loaderState.worldSize} processes, this one has ${parts.loader.state().worldSize}`);
    }
    parts.backbone.loadStateDict(need('state_dict_backbone') as Map<string, Tensor>);
    parts.head.loadStateDict(resharded?.head ?? (need('state_dict_softmax_fc') as Map<string, Tensor>));
    parts.optimizer.loadStateDict(plain(need('state_optimizer')) as OptimizerStateDict);
    parts.scheduler.loadStateDict(plain(need('state_lr_scheduler')) as LRSchedulerStateDict);
    parts.scaler.loadStateDict(plain(need('state_grad_scaler')) as GradScalerStateDict);
    parts.loader.loadState(loaderState);
    torch.setRngState(need('rng_state') as Tensor);
    // A run resumed on a GPU restores that GPU's generator (dropout, drop path); a checkpoint of a CPU
    // run has none, and its GPU generator stays as seeded.
    if (parts.device !== 'cpu' && loaded.has('cuda_rng_state')) torch.setRngState(loaded.get('cuda_rng_state') as Tensor, parts.device);
    return { epoch: Number(need('epoch')), globalStep: Number(need('global_step')) };
  } catch (error) {
    throw new Error(`resume: ${file}: ${(error as Error).message}`);
  } finally {
    torch.dispose(tensors);
    if (resharded) torch.dispose([...resharded.head.values()]);
  }
}

/**
 * torch.utils.data.DistributedSampler: each epoch, one permutation (seeded with seed + epoch, the
 * same on every rank) is padded to a multiple of the world size (or cut, with dropLast), and
 * rank r takes every worldSize-th sample starting at r. arcface_torch uses it with seed 2048.
 */
import { randperm } from './randperm.js';

export interface DistributedSamplerOptions {
  /** number of processes (default 1) */
  worldSize?: number;
  /** this process (default 0) */
  rank?: number;
  /** shuffle each epoch (default true) */
  shuffle?: boolean;
  /** the permutation seed, shared by all ranks (default 0, as PyTorch; arcface_torch passes 2048) */
  seed?: number;
  /** cut the tail instead of padding with repeated samples (default false) */
  dropLast?: boolean;
}

export class DistributedSampler {
  readonly worldSize: number;
  readonly rank: number;
  readonly shuffle: boolean;
  readonly seed: number;
  readonly dropLast: boolean;
  /** samples this rank sees per epoch */
  readonly numSamples: number;
  readonly totalSize: number;
  epoch = 0;

  constructor(readonly datasetLength: number, options: DistributedSamplerOptions = {}) {
    this.worldSize = options.worldSize ?? 1;
    this.rank = options.rank ?? 0;
    this.shuffle = options.shuffle ?? true;
    this.seed = options.seed ?? 0;
    this.dropLast = options.dropLast ?? false;
    if (!Number.isInteger(this.worldSize) || this.worldSize < 1) throw new RangeError(`worldSize must be a positive integer, got ${this.worldSize}`);
    if (!Number.isInteger(this.rank) || this.rank < 0 || this.rank >= this.worldSize) {
      throw new RangeError(`rank must be in [0, ${this.worldSize}), got ${this.rank}`);
    }
    if (!Number.isSafeInteger(this.seed) || this.seed < 0) throw new RangeError(`seed must be a non-negative integer, got ${this.seed}`);
    const n = datasetLength;
    this.numSamples = this.dropLast && n % this.worldSize !== 0 ? Math.ceil((n - this.worldSize) / this.worldSize) : Math.ceil(n / this.worldSize);
    this.totalSize = this.numSamples * this.worldSize;
  }

  /** set_epoch: the next indices() reshuffles with seed + epoch */
  setEpoch(epoch: number): void {
    this.epoch = epoch;
  }

  /** This rank's dataset indices for the current epoch, in order. */
  indices(): Int32Array {
    const n = this.datasetLength;
    const all = this.shuffle ? randperm(n, this.seed + this.epoch) : Int32Array.from({ length: n }, (_, i) => i);
    const out = new Int32Array(this.numSamples);
    // position p of the padded list is all[p mod n]: padding repeats from the start, as PyTorch
    for (let i = 0, p = this.rank; i < this.numSamples; i++, p += this.worldSize) out[i] = all[p % n];
    return out;
  }
}

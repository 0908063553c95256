/**
 * arcface_torch's SyntheticDataset, for speed runs without disk or decoding in the way: one random
 * 112×112 image (uniform in [0, 255), as np.random.randint(0, 255)) for every sample, label 1.
 */
import type { FaceDataset } from './dataset.js';
import type { ImageSource } from './decode.js';
import { MT19937 } from './randperm.js';

export interface SyntheticOptions {
  /** samples per epoch (default 1,000,000) */
  length?: number;
  /** default 1 */
  label?: number;
  /** labels are checked against this (default label + 1) */
  numClasses?: number;
  seed?: number;
  size?: number;
}

export class SyntheticDataset implements FaceDataset {
  readonly length: number;
  readonly numClasses: number;
  readonly label: number;
  readonly size: number;
  /** the image, height × width × 3 */
  readonly pixels: Uint8Array;

  constructor(options: SyntheticOptions = {}) {
    this.length = options.length ?? 1_000_000;
    this.label = options.label ?? 1;
    this.numClasses = options.numClasses ?? this.label + 1;
    this.size = options.size ?? 112;
    const rng = new MT19937(options.seed ?? 0);
    this.pixels = Uint8Array.from({ length: this.size * this.size * 3 }, () => rng.next() % 255);
  }

  source(indices: ArrayLike<number>): { source: ImageSource; labels: Float64Array } {
    const buffers = Array.from({ length: indices.length }, () => this.pixels);
    return { source: { rgb: { buffers, width: this.size, height: this.size } }, labels: new Float64Array(indices.length).fill(this.label) };
  }

  describe(index: number): { file: string; record: number } {
    return { file: 'synthetic', record: index };
  }
}

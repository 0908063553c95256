/**
 * The training data loader: arcface_torch's DistributedSampler + DataLoader(drop_last=True) +
 * BackgroundGenerator, with decoding in native threads.
 *
 *   const loader = new DataLoader(new MXFaceDataset('ms1m-retinaface-t1'), { batchSize: 128, rank, worldSize });
 *   for (let epoch = start; epoch < numEpoch; epoch++) {
 *     loader.setEpoch(epoch);
 *     for await (const { images, labels } of loader) { … images.dispose(); labels.dispose(); }
 *   }
 *
 * Up to `prefetch` batches are decoding while the caller trains; each is one native job, so they
 * progress even while a synchronous training step holds the JS thread. A batch depends only on
 * (seed, epoch, rank, worldSize, its position): a run resumed from `state()` sees the same data.
 */
import { tensor } from '../torch/creation.js';
import { keep } from '../torch/scope.js';
import type { Tensor } from '../torch/tensor.js';
import type { FaceDataset } from './dataset.js';
import { ImageDecoder, type AugmentOptions, type DecodedBatch } from './decode.js';
import { DataError } from './errors.js';
import { DistributedSampler } from './sampler.js';

export interface DataLoaderOptions {
  batchSize: number;
  /** this process and the number of processes (default 0 of 1) */
  rank?: number;
  worldSize?: number;
  /** shuffle seed (the same on every rank) and augmentation seed (default 2048, arcface_torch's) */
  seed?: number;
  shuffle?: boolean;
  /** drop the last incomplete batch (default true, as arcface_torch) */
  dropLast?: boolean;
  /** batches decoded ahead (default 2) */
  prefetch?: number;
  /** decoding threads (default 2, arcface_torch's num_workers) */
  threads?: number;
  /** default: horizontal flip with probability 0.5 */
  augment?: AugmentOptions;
  /** float32 normalised (default) or uint8 */
  dtype?: 'float32' | 'uint8';
  /** image size (default 112 × 112) */
  width?: number;
  height?: number;
  /** resize images of another size (default true, with one warning); false makes them errors */
  resize?: boolean;
  pinMemory?: boolean;
  /** labels must lie in [0, numClasses) (default: the dataset's numClasses) */
  numClasses?: number;
  /** a bad record is skipped with a warning instead of stopping (its slot gets the next good sample) */
  skipCorrupt?: boolean;
  /** with skipCorrupt: the most records this loader may skip over the run (default 1000); one more stops it */
  maxSkipped?: number;
  /** image files larger than this are bad records (default 64 MiB, DEFAULT_MAX_IMAGE_BYTES) */
  maxImageBytes?: number;
  /** where warnings go (default console.warn) */
  onWarning?: (message: string) => void;
}

/** Skipped records a run tolerates by default: a few bad ones are noise, thousands mean a broken pack. */
export const DEFAULT_MAX_SKIPPED = 1000;

export interface Batch {
  /** batchSize × 3 × H × W (dispose it) */
  images: Tensor;
  /** int64 [batchSize] (dispose it) */
  labels: Tensor;
  /** the dataset indices in the batch */
  indices: Int32Array;
  epoch: number;
  /** position of the batch in the epoch */
  step: number;
}

/** Where a loader is: enough to resume (saved in checkpoints). */
export interface LoaderState {
  /** the epoch to run next (or being run) */
  epoch: number;
  /** batches of that epoch already handed out */
  batch: number;
  seed: number;
  rank: number;
  worldSize: number;
  /** corrupt records skipped so far */
  skipped: number;
}

export class DataLoader implements AsyncIterable<Batch> {
  readonly sampler: DistributedSampler;
  readonly batchSize: number;
  /** corrupt records skipped so far (with skipCorrupt) */
  skipped = 0;
  private readonly options: DataLoaderOptions;
  private readonly decoder: ImageDecoder;
  private readonly numClasses: number | undefined;
  private order: Int32Array | undefined;
  private position = 0;
  private resume: { epoch: number; batch: number } | undefined;
  private readonly inflight: Array<{ step: number; batch: Promise<Batch> }> = [];
  private warnedResize = false;

  constructor(readonly dataset: FaceDataset, options: DataLoaderOptions) {
    if (!Number.isInteger(options.batchSize) || options.batchSize < 1) throw new RangeError(`batchSize must be a positive integer, got ${options.batchSize}`);
    this.options = options;
    this.batchSize = options.batchSize;
    this.sampler = new DistributedSampler(dataset.length, {
      rank: options.rank,
      worldSize: options.worldSize,
      seed: options.seed ?? 2048,
      shuffle: options.shuffle ?? true,
    });
    this.numClasses = options.numClasses ?? dataset.numClasses;
    this.decoder = new ImageDecoder({ threads: options.threads ?? 2 });
  }

  /** batches per epoch on this rank */
  get length(): number {
    const n = this.sampler.numSamples;
    return this.options.dropLast ?? true ? Math.floor(n / this.batchSize) : Math.ceil(n / this.batchSize);
  }

  get epoch(): number {
    return this.sampler.epoch;
  }

  /** Starts an epoch: from its first batch, or from where a just loaded state left it. */
  setEpoch(epoch: number): void {
    this.discardInflight();
    this.sampler.setEpoch(epoch);
    this.order = undefined;
    this.position = this.resume?.epoch === epoch ? this.resume.batch : 0;
    this.resume = undefined;
  }

  state(): LoaderState {
    const done = this.position >= this.length;
    return {
      epoch: done ? this.epoch + 1 : this.epoch,
      batch: done ? 0 : this.position,
      seed: this.sampler.seed,
      rank: this.sampler.rank,
      worldSize: this.sampler.worldSize,
      skipped: this.skipped,
    };
  }

  /** Resumes from state(): the next setEpoch(state.epoch) continues at state.batch. */
  loadState(state: LoaderState): void {
    const s = this.sampler;
    if (state.seed !== s.seed || state.rank !== s.rank || state.worldSize !== s.worldSize) {
      throw new Error(
        `loader state is for seed ${state.seed}, rank ${state.rank} of ${state.worldSize}; this loader has seed ${s.seed}, rank ${s.rank} of ${s.worldSize}`,
      );
    }
    this.skipped = state.skipped;
    this.setEpoch(state.epoch);
    this.position = state.batch;
    this.resume = { epoch: state.epoch, batch: state.batch }; // so that the training loop's setEpoch(epoch) keeps it
  }

  /** The next batch of the epoch, or undefined at its end. */
  async next(): Promise<Batch | undefined> {
    this.resume = undefined;
    this.fill();
    const head = this.inflight.shift();
    if (!head) return undefined;
    this.position = head.step + 1;
    this.fill();
    return head.batch;
  }

  async *[Symbol.asyncIterator](): AsyncIterator<Batch> {
    for (;;) {
      const batch = await this.next();
      if (!batch) return;
      yield batch;
    }
  }

  /** Waits for the batches in flight, frees them and the decoding threads. */
  async close(): Promise<void> {
    await this.discardInflight();
    this.decoder.close();
  }

  /** Keeps `prefetch` batches in flight after the current position. */
  private fill(): void {
    this.order ??= this.sampler.indices();
    const depth = Math.max(1, this.options.prefetch ?? 2);
    let step = this.inflight.length > 0 ? this.inflight[this.inflight.length - 1].step + 1 : this.position;
    while (this.inflight.length < depth && step < this.length) {
      const batch = this.load(step);
      batch.catch(() => {}); // surfaces when awaited; never an unhandled rejection meanwhile
      this.inflight.push({ step, batch });
      step++;
    }
  }

  private discardInflight(): Promise<void> {
    const pending = this.inflight.splice(0);
    return Promise.all(pending.map(({ batch }) => batch.then((b) => (b.images.dispose(), b.labels.dispose()), () => {}))).then(() => {});
  }

  private async load(step: number): Promise<Batch> {
    const order = this.order!;
    const epoch = this.epoch;
    const indices = order.subarray(step * this.batchSize, Math.min((step + 1) * this.batchSize, order.length)).slice();
    const decoded = await this.decode(indices, epoch);
    try {
      const labels = await this.repair(decoded, indices, epoch);
      // made in a promise continuation, where the caller may have a scope open: the caller owns it
      const labelTensor = keep(tensor(BigInt64Array.from(labels, (l) => BigInt(l)), { dtype: 'int64' }));
      return { images: decoded.images, labels: labelTensor, indices, epoch, step };
    } catch (error) {
      decoded.images.dispose();
      throw error;
    }
  }

  private decode(indices: ArrayLike<number>, epoch: number): Promise<DecodedBatch & { datasetLabels?: Float64Array }> {
    const o = this.options;
    const { source, labels } = this.dataset.source(indices);
    return this.decoder
      .decode(source, indices, {
        epoch,
        seed: this.sampler.seed,
        width: o.width,
        height: o.height,
        resize: o.resize,
        dtype: o.dtype,
        pinMemory: o.pinMemory,
        maxImageBytes: o.maxImageBytes,
        augment: o.augment ?? { flip: 0.5 },
      })
      .then((batch) => ({ ...batch, datasetLabels: labels }));
  }

  /** Checks every sample; bad ones fail the batch, or with skipCorrupt are replaced. */
  private async repair(batch: DecodedBatch & { datasetLabels?: Float64Array }, indices: Int32Array, epoch: number): Promise<Float64Array> {
    const labels = batch.datasetLabels ?? batch.labels ?? new Float64Array(indices.length);
    this.noteResized(batch.resized);
    for (let slot = 0; slot < indices.length; slot++) {
      let problem = batch.errors[slot] ?? this.labelProblem(labels[slot]);
      let index = indices[slot];
      while (problem !== null) {
        const where = this.dataset.describe(index);
        if (!this.options.skipCorrupt) throw new DataError(where.file, where.record, problem);
        this.skipped++;
        const cap = this.options.maxSkipped ?? DEFAULT_MAX_SKIPPED;
        if (this.skipped > cap) {
          throw new DataError(where.file, where.record, `${problem} — ${this.skipped} corrupt records met, over the cap of ${cap} (maxSkipped); stopped`);
        }
        this.warn(`${new DataError(where.file, where.record, problem).message} — skipped (${this.skipped} so far)`);
        if (this.skipped >= this.dataset.length) throw new DataError(where.file, undefined, 'no readable sample left');
        index = (index + 1) % this.dataset.length;
        const replacement = await this.decode([index], epoch);
        const label = (replacement.datasetLabels ?? replacement.labels ?? new Float64Array(1))[0];
        problem = replacement.errors[0] ?? this.labelProblem(label);
        if (problem === null) {
          this.noteResized(replacement.resized);
          const view = batch.images.narrow(0, slot, 1);
          view.copy_(replacement.images);
          view.dispose();
          labels[slot] = label;
          indices[slot] = index;
        }
        replacement.images.dispose();
      }
    }
    return labels;
  }

  private labelProblem(label: number): string | null {
    if (!Number.isInteger(label) || label < 0) return `label ${label} is not a class index`;
    if (this.numClasses !== undefined && label >= this.numClasses) return `label ${label} is outside [0, ${this.numClasses})`;
    return null;
  }

  private noteResized(count: number): void {
    if (count > 0 && !this.warnedResize) {
      this.warnedResize = true;
      const { width = 112, height = 112 } = this.options;
      this.warn(`images that are not ${width}×${height} are resized to it (set resize: false to refuse them)`);
    }
  }

  private warn(message: string): void {
    (this.options.onWarning ?? console.warn)(message);
  }
}

/**
 * Partial FC (arcface_torch's PartialFC_V2, https://arxiv.org/abs/2203.15565): the class-centre
 * matrix sharded over ranks; each step uses every positive centre of the (global) batch plus
 * uniformly sampled negatives, floor(sampleRate · numLocal) in all.
 *
 *   const pfc = new PartialFC({ marginLoss: arcface(), embeddingSize: 512, numClasses: 1e6,
 *                               sampleRate: 0.1, optimizer: { type: 'sgd', lr: 0.1, momentum: 0.9, weightDecay: 5e-4 } });
 *   const loss = pfc.forward(embeddings, labels);
 *   loss.backward();      // ∂loss/∂embeddings reaches the backbone
 *   pfc.step(lr);         // sparse update of the sampled centres
 *
 * Unlike arcface_torch the shard is not an autograd Parameter: its gradient never exists as a
 * dense tensor. The kernel (native/src/heads/partial_fc/kernel.h) keeps the sampled softmax of the last
 * forward; backward() turns it into ∂loss/∂embeddings, and step() into the sampled centres'
 * gradient, tile by tile, updating only those rows and their optimizer state
 * (./sparse-optimizer.ts). With `logits: 'recompute'` it keeps only per-row statistics instead of
 * that B × S buffer and recomputes each tile (bit-identical results, two more GEMMs per tile).
 * So each forward needs its backward, then step() — or accumulateGrad() to sum the sampled rows'
 * gradients over micro-batches (a sparse accumulator: memory grows with the distinct rows
 * sampled) until step() applies the sum. With 16-bit storage the softmax values are 16-bit too
 * (the loss is computed before rounding; the gradient sees p to 8 or 11 bits).
 *
 * `implementation: 'ops'` swaps the kernel for ./partial-fc-ops.ts: the same phases written from
 * libtorch tensor ops (the implementation for CUDA shards), held equal to the kernel on the CPU.
 *
 * Multi-process: forward() calls the ShardGroup between the kernel's phases (./shard-group.ts):
 * all-gather of embeddings and labels, all-reduce MAX of the row max, all-reduce SUM of the
 * softmax denominators and target probabilities. With one process these are identities.
 */
import * as torch from '../torch/index.js';
import type { Tensor } from '../torch/index.js';
import { native, type PartialFcKernelHandle } from '../torch/native.js';
import type { CombinedMarginLoss } from './margin.js';
import { shardTensor } from './shard-memory.js';
import { OpsKernel } from './partial-fc-ops.js';
import { validateLabels } from './labels.js';
import { classShard, singleProcess, type ShardGroup } from './shard-group.js';
import { createSparseOptimizer, type SparseOptimizer, type SparseOptimizerOptions } from './sparse-optimizer.js';

/** dtype of the shard and its optimizer state; math is float32 (float64 for float64 storage). */
export type CentreStorage = 'float32' | 'bfloat16' | 'float16' | 'float64';

export interface PartialFCOptions {
  marginLoss: CombinedMarginLoss;
  embeddingSize: number;
  numClasses: number;
  /** share of this shard's centres in each step (positives always in); 1 = all (default), 0 = the positives only (as arcface_torch) */
  sampleRate?: number;
  storage?: CentreStorage;
  optimizer: SparseOptimizerOptions;
  /** this process's place; taken from `group` when given */
  rank?: number;
  worldSize?: number;
  /** the process group for worldSize > 1 */
  group?: ShardGroup;
  /** sampled centres per GEMM tile (default 4096): per-step buffers are tileRows × embeddingSize */
  tileRows?: number;
  /**
   * 'keep' (default): forward keeps exp(logits) of the batch × sampled centres (B·S values in the
   * storage dtype: B·r·4 bytes per class in float32) for backward and step; 'recompute': keeps
   * [B] statistics and recomputes each tile's logits in backward and in step — the same results
   * bit for bit, without that buffer, for more compute per step.
   */
  logits?: LogitsMode;
  /**
   * 'fused' (default): the fused CPU kernel (native/src/heads/partial_fc); 'ops': the same
   * contract written from libtorch tensor ops (./partial-fc-ops.ts), which runs on any device
   * libtorch does — the implementation for CUDA shards. On the CPU both give the same sample and,
   * up to float32 rounding, the same losses, gradients and updates (docs/partial-fc.md).
   */
  implementation?: PartialFCImplementation;
  /**
   * Where the shard, its optimizer state and the step's buffers live (default 'cpu'; 'cuda' is
   * cuda:LOCAL_RANK). Off the CPU the implementation is 'ops' (the default there; 'fused' is an error).
   */
  device?: string;
}

export type LogitsMode = 'keep' | 'recompute';
export type PartialFCImplementation = 'fused' | 'ops';

export interface LoadStateDictOptions {
  strict?: boolean;
}

const STORAGES: readonly CentreStorage[] = ['float32', 'bfloat16', 'float16', 'float64'];
const LOGITS_MODES: readonly LogitsMode[] = ['keep', 'recompute'];
const IMPLEMENTATIONS: readonly PartialFCImplementation[] = ['fused', 'ops'];
// A shard stored in another dtype is initialised in float32 slices, not through a float32 copy;
// the slice stays in the allocator's cache afterwards, so it is kept small (2 MiB at D = 512).
const INIT_ROWS = 1024;

export class PartialFC {
  readonly marginLoss: CombinedMarginLoss;
  readonly embeddingSize: number;
  readonly numClasses: number;
  readonly sampleRate: number;
  readonly storage: CentreStorage;
  readonly logits: LogitsMode;
  readonly implementation: PartialFCImplementation;
  readonly tileRows: number;
  readonly rank: number;
  readonly worldSize: number;
  /** centres on this rank, and the global id of the first */
  readonly numLocal: number;
  readonly classStart: number;
  /** centres per step when the positives fit: floor(sampleRate · numLocal) */
  readonly numSample: number;
  /** this rank's class centres [numLocal, embeddingSize], N(0, 0.01) at start as arcface_torch */
  readonly weight: Tensor;
  readonly optimizer: SparseOptimizer;
  private readonly group?: ShardGroup;
  private readonly kernel: PartialFcKernelHandle;

  constructor(o: PartialFCOptions) {
    const { embeddingSize, numClasses, sampleRate = 1, storage = 'float32', logits = 'keep' } = o;
    positiveInteger('embeddingSize', embeddingSize);
    positiveInteger('numClasses', numClasses);
    if (!(sampleRate >= 0 && sampleRate <= 1)) throw new RangeError(`PartialFC: sampleRate must be in [0, 1], got ${sampleRate}`);
    if (!STORAGES.includes(storage)) throw new RangeError(`PartialFC: storage must be one of ${STORAGES.join(', ')}, got '${storage}'`);
    if (!LOGITS_MODES.includes(logits)) throw new RangeError(`PartialFC: logits must be one of ${LOGITS_MODES.join(', ')}, got '${logits}'`);
    const device = torch.resolveDevice(o.device ?? 'cpu', 'PartialFC');
    const implementation = o.implementation ?? (device === 'cpu' ? 'fused' : 'ops');
    if (!IMPLEMENTATIONS.includes(implementation)) {
      throw new RangeError(`PartialFC: implementation must be one of ${IMPLEMENTATIONS.join(', ')}, got '${implementation}'`);
    }
    if (implementation === 'fused' && device !== 'cpu') {
      throw new RangeError(`PartialFC: the fused kernel runs on the CPU; a shard on ${device} needs implementation 'ops' (the default there)`);
    }
    this.group = o.group ?? ((o.worldSize ?? 1) === 1 ? singleProcess : undefined);
    this.rank = o.group?.rank ?? o.rank ?? 0;
    this.worldSize = o.group?.worldSize ?? o.worldSize ?? 1;
    if (o.group && ((o.rank ?? o.group.rank) !== o.group.rank || (o.worldSize ?? o.group.worldSize) !== o.group.worldSize)) {
      throw new RangeError(`PartialFC: rank/worldSize ${o.rank}/${o.worldSize} disagree with the group's ${o.group.rank}/${o.group.worldSize}`);
    }
    positiveInteger('worldSize', this.worldSize);
    if (!(Number.isInteger(this.rank) && this.rank >= 0 && this.rank < this.worldSize)) {
      throw new RangeError(`PartialFC: rank must be an integer in [0, ${this.worldSize}), got ${this.rank}`);
    }
    const { numLocal, classStart } = classShard(numClasses, this.rank, this.worldSize);
    if (numLocal === 0) throw new RangeError(`PartialFC: ${numClasses} classes leave rank ${this.rank} of ${this.worldSize} without centres`);
    this.marginLoss = o.marginLoss;
    this.embeddingSize = embeddingSize;
    this.numClasses = numClasses;
    this.sampleRate = sampleRate;
    this.storage = storage;
    this.logits = logits;
    this.implementation = implementation;
    this.numLocal = numLocal;
    this.classStart = classStart;
    this.numSample = Math.floor(sampleRate * numLocal);  // Python's int(sample_rate * num_local)
    this.tileRows = o.tileRows ?? 4096;
    positiveInteger('tileRows', this.tileRows);
    this.weight = initWeight(numLocal, embeddingSize, storage, device);
    try {
      this.optimizer = createSparseOptimizer(o.optimizer, [numLocal, embeddingSize], storage, device);
    } catch (error) {
      this.weight.dispose();  // a bad optimizer option must not leave the shard behind
      throw error;
    }
    const kernelOptions = { embeddingSize, dtype: storage === 'float64' ? 'float64' : 'float32', tileRows: this.tileRows, logits } as const;
    this.kernel = implementation === 'ops' ? new OpsKernel(kernelOptions) : new native.PartialFcKernel(kernelOptions);
  }

  /**
   * The margin softmax loss of this rank's batch: embeddings [B, embeddingSize] (float32, or
   * bfloat16 from autocast), labels [B] or [B, 1] (global class ids, integers). The loss is the
   * same on every rank; its backward gives ∂loss/∂embeddings.
   */
  forward(embeddings: Tensor, labels: Tensor): Tensor {
    const shape = embeddings.shape;
    if (shape.length !== 2 || shape[1] !== this.embeddingSize || shape[0] === 0) {
      throw new RangeError(`PartialFC: embeddings must have shape [B, ${this.embeddingSize}], got [${shape.join(', ')}]`);
    }
    if (!torch.isFloatingDtype(embeddings.dtype)) throw new TypeError(`PartialFC: embeddings must be floating point, got ${embeddings.dtype}`);
    if (this.implementation === 'fused' && (embeddings.device !== 'cpu' || this.weight.device !== 'cpu')) {
      // the fused kernel reads host memory through data pointers: a device tensor would crash it
      throw new TypeError(`PartialFC: the fused kernel runs on CPU tensors, got embeddings on ${embeddings.device} (use implementation: 'ops' for ${embeddings.device} tensors)`);
    }
    const group = this.group;
    if (!group) throw new Error(`PartialFC: worldSize ${this.worldSize} needs a process group (the 'group' option)`);
    return torch.tidy(() => {
      const localLabels = validateLabels(labels, this.numClasses, shape[0]);
      const allEmbeddings = group.allGather(embeddings);
      const allLabels = group.allGather(localLabels);
      this.kernel.sample(allLabels, this.classStart, this.numLocal, this.numSample);
      const rowMax = this.kernel.logits(allEmbeddings, this.weight, this.marginLoss.params);
      group.allReduce(rowMax, 'max');  // softmax over all shards: global row max …
      const sums = this.kernel.expSums(rowMax);
      group.allReduce(sums, 'sum');  // … then global denominators and target probabilities
      return this.kernel.loss(allEmbeddings, sums);
    });
  }

  /**
   * Gradient accumulation: after a micro-batch's backward, keeps its centres' gradients (summed
   * per row with earlier micro-batches) so the next forward can run; step() applies the sum.
   * Returns the number of distinct rows accumulated.
   */
  accumulateGrad(): number {
    return this.kernel.accumulate();
  }

  /** Drops the pending centre gradient, accumulated or not (a step the GradScaler skipped). */
  discardGrad(): void {
    this.kernel.discardGrad();
  }

  /** Multiplies the pending centre gradient (a GradScaler's 1/scale before step()). */
  scaleGrad(factor: number): void {
    this.kernel.scaleGrad(factor);
  }

  /**
   * Updates the centres sampled by the last forward (after its backward), or those accumulated
   * by accumulateGrad() plus the last backward's; `lr` sets the optimizer's lr first.
   */
  step(lr?: number): void {
    if (lr !== undefined) this.optimizer.lr = lr;
    this.optimizer.step(this.kernel);
  }

  /** Rows of this shard used by the last forward (int64, sorted). */
  sampledIndex(): Tensor {
    return this.kernel.sampledIndex();
  }

  /** Each label of the last (gathered) batch as a column of the sample; −1 where its centre is on another rank. */
  sampledLabels(): Tensor {
    return this.kernel.targets();
  }

  /** ∂loss/∂(sampled rows) [S, embeddingSize] of the last backward, in sampledIndex() order: what step() applies. */
  sampledGrad(): Tensor {
    return this.kernel.rowGrads();
  }

  /** Bytes of the kernel's buffers kept from step to step (beyond the shard and its optimizer state). */
  bufferBytes(): number {
    return this.kernel.bufferBytes();
  }

  /** `weight` and the optimizer state (`optimizer.momentum_buffer`, …), as detached views. */
  stateDict(): Map<string, Tensor> {
    const out = new Map<string, Tensor>([['weight', this.weight.detach()]]);
    for (const [name, t] of this.optimizer.state) out.set(`optimizer.${name}`, t.detach());
    return out;
  }

  /**
   * Copies values in place (dtypes convert, so a float32 checkpoint loads into 16-bit storage).
   * strict (default): every key must be present and known. Non-strict: absent entries keep their
   * values (e.g. arcface_torch's `softmax_fc_gpu_0.pt`, which holds only `weight`).
   */
  loadStateDict(state: ReadonlyMap<string, Tensor>, { strict = true }: LoadStateDictOptions = {}): void {
    const own = this.stateDict();
    try {
      const missing = [...own.keys()].filter((k) => !state.has(k));
      const unexpected = [...state.keys()].filter((k) => !own.has(k));
      const errors: string[] = [];
      if (strict && missing.length > 0) errors.push(`missing key(s): ${missing.join(', ')}`);
      if (strict && unexpected.length > 0) errors.push(`unexpected key(s): ${unexpected.join(', ')}`);
      for (const [key, target] of own) {
        const source = state.get(key);
        if (source && source.shape.join() !== target.shape.join()) {
          errors.push(`${key}: shape [${source.shape.join(', ')}] in the state dict, [${target.shape.join(', ')}] here`);
        }
      }
      if (errors.length > 0) throw new Error(`PartialFC.loadStateDict: ${errors.join('; ')}`);
      torch.noGrad(() => {
        for (const [key, target] of own) {
          const source = state.get(key);
          if (source) target.copy_(source);
        }
      });
    } finally {
      torch.dispose(own);
    }
  }

  /**
   * Writes the class-centre matrix [numClasses, embeddingSize] as a PyTorch file (an OrderedDict
   * {weight}, like arcface_torch's softmax_fc checkpoint) in the storage dtype, or `dtype`.
   */
  exportWeight(path: string, { dtype }: { dtype?: torch.Dtype } = {}): void {
    torch.tidy(() => {
      const full = this.worldSize === 1 ? this.weight.detach() : this.gatherWeight();
      // Every rank takes part in the gather; rank 0 writes the file.
      if (this.rank === 0) torch.save(new Map([['weight', dtype ? full.to(dtype) : full]]), path);
    });
  }

  /**
   * All ranks' shards in class order (a collective: every rank must call it). Shards differ by at
   * most one row, so each is padded to the largest for the equal-shape all-gather, then trimmed.
   */
  private gatherWeight(): Tensor {
    const group = this.group!;
    const rows = Math.ceil(this.numClasses / this.worldSize);
    // float32 on the wire: Gloo in libtorch 1.13 has no bfloat16 all-gather
    const padded = torch.zeros([rows, this.embeddingSize], { dtype: this.weight.dtype === 'float64' ? 'float64' : 'float32', device: this.weight.device });
    padded.narrow(0, 0, this.numLocal).copy_(this.weight);
    const all = group.allGather(padded);
    const shards = Array.from({ length: this.worldSize }, (_, r) => all.narrow(0, r * rows, classShard(this.numClasses, r, this.worldSize).numLocal));
    return torch.cat(shards).to(this.weight.dtype);
  }


  dispose(): void {
    this.kernel.dispose();
    this.weight.dispose();
    this.optimizer.dispose();
  }
}

function positiveInteger(name: string, v: number): void {
  if (!(Number.isInteger(v) && v > 0)) throw new RangeError(`PartialFC: ${name} must be a positive integer, got ${v}`);
}

/**
 * torch.normal(0, 0.01, (rows, dim)) in float32 from the CPU generator, stored as `dtype` on `device`
 * (arcface_torch draws on the CPU and moves the module): the same values on every device and storage.
 */
function initWeight(rows: number, dim: number, dtype: CentreStorage, device: string): Tensor {
  const weight = shardTensor([rows, dim], dtype, device);
  torch.noGrad(() => {
    if (dtype === 'float32' && device === 'cpu') {
      weight.normal_(0, 0.01);
      return;
    }
    // Slices of INIT_ROWS × dim (a multiple of 16) draw the same sequence as one normal_ over the whole
    for (let r = 0; r < rows; r += INIT_ROWS) {
      torch.tidy(() => {
        const slice = weight.narrow(0, r, Math.min(INIT_ROWS, rows - r));
        slice.copy_(torch.empty(slice.shape).normal_(0, 0.01));
      });
    }
  });
  return weight;
}

/**
 * Loads the libtorch addon (native/). Thread counts are set here, before libtorch and OpenBLAS
 * start: both read their thread settings once, when they are loaded.
 */
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { existsSync } from 'node:fs';

// Intra-op threads: ARCFACE_NUM_THREADS, else OMP_NUM_THREADS as PyTorch reads it (the launcher
// sets it to share the cores among workers), else every core; set before libtorch and BLAS load.
// When this process chose the count itself it says so (ARCFACE_THREADS_CHOSEN), so that a launcher
// started from here (`arcface train --nproc-per-node N`) still shares the cores out among its workers.
const threads = process.env.ARCFACE_NUM_THREADS ?? process.env.OMP_NUM_THREADS ?? String(os.availableParallelism());
if (process.env.OMP_NUM_THREADS === undefined) process.env.ARCFACE_THREADS_CHOSEN = '1';
process.env.OMP_NUM_THREADS ??= threads;
process.env.OPENBLAS_NUM_THREADS ??= threads;

/** The JS object behind every Tensor; its methods are implemented in native/src/core/tensor_wrap.cc. */
export declare class TensorBase {
  dispose(): void;
  readonly isDisposed: boolean;
  readonly shape: number[];
  readonly dtype: string;
  readonly device: string;
  readonly numel: number;
  readonly ndim: number;
  requiresGrad: boolean;
  get grad(): any;
  set grad(value: any);
  readonly isLeaf: boolean;
  strides(): number[];
  storageOffset(): number;
  storageKey(): { key: string; nbytes: number };
  isContiguous(memoryFormat?: 'contiguous' | 'channels_last'): boolean;
  toBuffer(): ArrayBuffer;
  sameTensor(other: TensorBase): boolean;
}

export interface RuntimeInfo {
  torchVersion: string;
  numThreads: number;
  numInteropThreads: number;
  parallelInfo: string;
  config: string;
  blasLibrary: string;
  openblasConfig?: string;
  openblasThreads?: number;
  cudaAvailable: boolean;
  cudaBuild: boolean;
  glooAvailable: boolean;
  mkldnnAvailable: boolean;
}

export interface AutocastState {
  cpu: boolean;
  cpuDtype: string;
  cuda: boolean;
  cudaDtype: string;
}

/** `arcface doctor`'s CUDA facts (native/src/core/runtime.cc); free memory makes a context on each device. */
export type CudaInfo =
  | { built: false }
  | {
      built: true;
      runtimeVersion: string;
      /** null: no driver */
      driverVersion: string | null;
      devices: { index: number; name: string; computeCapability: string; totalMemory: number; freeMemory: number }[];
      /** why no device is visible (cudart's words) */
      error?: string;
    };

/**
 * c10d (native/src/distributed/process_group.cc): TCPStore rendezvous, ProcessGroupGloo, and in the CUDA
 * build ProcessGroupNCCL. Collectives run in place, on the backend of their tensor's device.
 */
export interface NativeDist {
  init(options: {
    rank: number; worldSize: number; masterAddr: string; masterPort: number; timeoutMs: number; heartbeatMs: number;
    backend: string; hostGroup: boolean; ifname?: string; agentStore?: boolean; storePrefix?: string;
  }): number;
  destroy(group: number): void;
  /** throws why `backend` cannot run here (unknown name, no CUDA build, no CUDA device) */
  checkBackend(backend: string): void;
  /** the c10d group that carries `tensor`'s collectives */
  backendFor(group: number, tensor: unknown): { backend: 'gloo' | 'nccl'; storePrefix: string };
  /** the NCCL library loaded; undefined in a build without CUDA */
  ncclVersion(): string | undefined;
  allReduce(group: number, tensor: unknown, op: string, async: boolean): Promise<void> | undefined;
  broadcast(group: number, tensor: unknown, root: number, async: boolean): Promise<void> | undefined;
  allGather(group: number, outputs: unknown[], input: unknown, async: boolean): Promise<void> | undefined;
  barrier(group: number, async: boolean): Promise<void> | undefined;
  /** all-gather along dim 0 whose backward hands each rank its slice of the summed gradient × worldSize */
  allGatherWithGrad(group: number, tensor: unknown): any;
  allReduceSumWithGrad(group: number, tensor: unknown): any;
  /** DDP's reducer (native/src/distributed/reducer.cc): all-reduces gradient buckets from hooks as backward produces them */
  reducerCreate(group: number, buckets: unknown[][], compression: string): number;
  /** before a forward: sync = its backward launches each bucket's all-reduce once its gradients have landed */
  reducerPrepare(reducer: number, sync: boolean): void;
  /** after backward: all-reduces the buckets not launched yet, waits for all, writes the means into .grad */
  reducerFinish(reducer: number): void;
  reducerInFlight(reducer: number): number;
  reducerDestroy(reducer: number): void;
}

export interface NativeAddon {
  dist: NativeDist;
  TensorBase: typeof TensorBase;
  setTensorClass(cls: new () => TensorBase): void;
  fromBuffer(data: ArrayBufferView, dtype: string, shape: number[]): any;
  op(name: string, overload: string): number;
  call(id: number, ...args: unknown[]): any;
  opSchema(id: number): string;
  isGradEnabled(): boolean;
  setGradEnabled(enabled: boolean): void;
  autocastState(): AutocastState;
  setAutocast(state: AutocastState): void;
  autocastEnter(): number;
  autocastExit(): void;
  sgdStep(params: unknown[], momentumBuffers: unknown[], options: object): any[];
  adamwStep(params: unknown[], expAvgs: unknown[], expAvgSqs: unknown[], steps: number[], options: object): void;
  /** the total norm, a 0-d tensor */
  clipGradNorm(params: unknown[], maxNorm: number, normType: number): any;
  /** found-inf, a 0-d float32 tensor (nonzero: some gradient held inf/NaN) */
  unscaleGrads(params: unknown[], invScale: number): any;
  setNumThreads(n: number): void;
  getNumThreads(): number;
  manualSeed(seed: number): void;
  getRngState(device?: string): any;
  setRngState(state: unknown, device?: string): void;
  checkDevice(device: string, where?: string): string;
  cudaDeviceCount(): number;
  setData(tensor: unknown, data: unknown): void;
  synchronize(device?: string): void;
  deviceMemory(device: string, resetPeak?: boolean): DeviceMemory | undefined;
  info(): RuntimeInfo;
  cudaInfo(): CudaInfo;
  /** JS tensors not yet disposed (or collected) */
  liveTensors(): number;
  emptyCpuCache(): void;
  cpuCacheStats(): CpuCacheStats;
  PartialFcKernel: new (options: PartialFcKernelOptions) => PartialFcKernelHandle;
  /** madvise(MADV_HUGEPAGE) on a tensor's memory, before it is first touched; true if taken */
  adviseHugePages(tensor: unknown): boolean;
  /** data pipeline (native/src/data/binding.cc; src/data/decode.ts wraps it) */
  ImageDecoder: new (options: { threads: number }) => ImageDecoderHandle;
  decodeImage(bytes: Uint8Array): { width: number; height: number; pixels: Uint8Array };
  encodeJpeg(pixels: Uint8Array, width: number, height: number, quality: number): Uint8Array;
  resizeImage(pixels: Uint8Array, width: number, height: number, outWidth: number, outHeight: number): Uint8Array;
  renderFaces(options: { seed: number; identities: Float64Array; images: Float64Array; quality: number; threads: number }): Uint8Array[];
}

/** One batch for ImageDecoderHandle.decode: exactly one image source, one key per sample. */
export interface DecodeJobSpec {
  rec?: { path: string; offsets: Float64Array };
  files?: string[];
  encoded?: Uint8Array[];
  rgb?: { buffers: Uint8Array[]; width: number; height: number };
  keys: Float64Array;
  seed?: number;
  epoch?: number;
  width?: number;
  height?: number;
  resize?: boolean;
  dtype?: 'float32' | 'uint8';
  pinMemory?: boolean;
  maxImageBytes?: number;
  flip?: number;
  dali?: boolean;
  resizeProb?: number;
  blurProb?: number;
  hsvProb?: number;
  grayProb?: number;
}

export interface DecodeJobResult {
  images: any;
  /** the IRHeader labels, for rec sources */
  labels?: Float64Array;
  /** per sample: why it failed (its slot is zero), or null */
  errors: (string | null)[];
  /** width, height of each image before resizing (0, 0 where it failed) */
  sizes: Int32Array;
  resized: number;
}

export interface ImageDecoderHandle {
  decode(job: DecodeJobSpec): Promise<DecodeJobResult>;
  close(): void;
  readonly threads: number;
}

export interface PartialFcKernelOptions {
  embeddingSize: number;
  /** math dtype: float32, or float64 (with float64 class centres) */
  dtype: 'float32' | 'float64';
  /** sampled rows per tile: one GEMM each, buffers of tileRows × embeddingSize */
  tileRows: number;
  /** 'keep' (default): the B × S softmax buffer from forward to step; 'recompute': per-tile again */
  logits?: 'keep' | 'recompute';
}

/** CombinedMarginLoss's parameters; filter is the inter-class filtering threshold (0: off). */
export interface MarginParams {
  s: number;
  m1: number;
  m2: number;
  m3: number;
  filter: number;
}

/**
 * The Partial FC kernel of one head (native/src/heads/partial_fc/kernel.h): the phases of a step, called in
 * order; a multi-process head all-reduces between logits/expSums (MAX) and expSums/loss (SUM).
 */
export interface PartialFcKernelHandle {
  /** labels: global int64 [B]; returns the number of sampled rows */
  sample(labels: unknown, classStart: number, numLocal: number, numSample: number): number;
  /** → this shard's row max of the final logits [B] */
  logits(embeddings: unknown, weight: unknown, margin: MarginParams): any;
  /** global row max [B] → [B, 2]: Σ exp(x − M) and exp(x_target − M) (0 where the target is elsewhere) */
  expSums(rowMax: unknown): any;
  /** global sums [B, 2] → the loss, whose backward reaches the embeddings */
  loss(embeddings: unknown, sums: unknown): any;
  /** after backward: ∂loss/∂(sampled rows) [S, D] */
  rowGrads(): any;
  /** after backward: adds its row gradients to the accumulator and ends the step; → accumulated rows */
  accumulate(): number;
  /** drops the pending gradient (accumulated and last backward) */
  discardGrad(): void;
  /** multiplies the pending gradient (accumulated and last backward), e.g. by 1/loss scale */
  scaleGrad(factor: number): void;
  /** the steps apply the accumulated rows if any (the last backward folded in), else the last backward's */
  sgdStep(momentumBuffer: unknown, options: { lr: number; momentum: number; weightDecay: number }): void;
  adamwStep(expAvg: unknown, expAvgSq: unknown, steps: unknown, options: { lr: number; beta1: number; beta2: number; eps: number; weightDecay: number }): void;
  /** rows of the shard in the current sample (int64 [S], sorted) */
  sampledIndex(): any;
  /** each label's column in the sample, −1 where its centre is not in this shard */
  targets(): any;
  /** bytes of the buffers kept from step to step (softmax, tiles, sample index, accumulator) */
  bufferBytes(): number;
  dispose(): void;
}

/** A GPU caching allocator's counters, in bytes. */
export interface DeviceMemory {
  allocated: number;
  peakAllocated: number;
  reserved: number;
}

/** The caching CPU allocator's counters (native/src/core/cpu_allocator.cc). */
export interface CpuCacheStats {
  /** false when ARCFACE_CPU_CACHE=0 (the other fields are then absent) */
  enabled: boolean;
  cachedBytes: number;
  liveBytes: number;
  hits: number;
  misses: number;
  limitBytes: number;
}

function addonPath(): string {
  // ARCFACE_ADDON: exactly this build (e.g. another libtorch variant's, scripts/test-variants.sh).
  const chosen = process.env.ARCFACE_ADDON;
  if (chosen) {
    if (!existsSync(chosen)) throw new Error(`ARCFACE_ADDON=${chosen}: no such file (the native addon to load)`);
    return path.resolve(chosen);
  }
  const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
  // src/torch/native.ts is compiled to dist/src/torch/native.js: the repo root is one more level up.
  for (const base of [root, path.resolve(root, '..')]) {
    const file = path.join(base, 'native', 'build', 'Release', 'arcface_native.node');
    if (existsSync(file)) return file;
  }
  throw new Error('arcface-ts native addon is not built: run `npm run setup` (or `npm run build:native`)');
}

export const native: NativeAddon = createRequire(import.meta.url)(addonPath());
native.setNumThreads(Number(threads));

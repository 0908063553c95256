/**
 * Data parallelism for a module (torch.nn.parallel.DistributedDataParallel's job): parameters and
 * buffers broadcast from rank 0 at the start, buffers again before each training forward (BN
 * running statistics, as DDP's broadcast_buffers), and the gradients averaged over ranks in buckets
 * of `bucketCapMb`, optionally compressed to float16/bfloat16 on the wire (arcface_torch's
 * fp16_compress_hook: divide by the world size, cast, all-reduce, cast back).
 *
 * The all-reduce overlaps backward, as DDP's Reducer: after a forward through `forward()`, hooks
 * in native/src/distributed/reducer.cc launch each bucket's all-reduce as soon as its last
 * gradient has landed; `syncGradients()` then waits for them (and all-reduces what backward did not
 * reach). Micro-steps of gradient accumulation run their forward under `noSync()`.
 */
import { tidy, cat, type Tensor } from '../torch/index.js';
import { native } from '../torch/native.js';
import type { Module } from '../nn/index.js';
import type { ProcessGroup } from './process-group.js';
import { ELEMENT_SIZE } from '../torch/serialization/records.js';

export interface DataParallelOptions {
  /** bucket size for gradient all-reduce, MB (DDP's default 25) */
  bucketCapMb?: number;
  /** dtype of gradients on the wire */
  compression?: 'none' | 'float16' | 'bfloat16';
  /** broadcast buffers from rank 0 before each training forward (default true) */
  broadcastBuffers?: boolean;
  /** launch each bucket's all-reduce during backward, as its gradients land (default true); false: all after backward */
  overlap?: boolean;
}

/** Tensors grouped so that each group is one flat buffer of one dtype on the wire. */
function groupsByDtype(tensors: Tensor[]): Tensor[][] {
  const byDtype = new Map<string, Tensor[]>();
  for (const t of tensors) byDtype.set(t.dtype, [...(byDtype.get(t.dtype) ?? []), t]);
  return [...byDtype.values()];
}

/** Flattens `tensors` into one buffer, runs `collective` on it, and copies the result back. */
function coalesced(tensors: Tensor[], collective: (flat: Tensor) => void): void {
  tidy(() => {
    const flat = cat(tensors.map((t) => t.detach().reshape(-1)));
    collective(flat);
    let offset = 0;
    for (const t of tensors) {
      t.detach().copy_(flat.narrow(0, offset, t.numel).view(t.shape));
      offset += t.numel;
    }
  });
}

export class DistributedDataParallel<M extends Module> {
  readonly buckets: Tensor[][];
  private readonly broadcastBuffers: boolean;
  private readonly overlap: boolean;
  /** the native reducer (hooks on the parameters' gradient accumulators); none in a world of one */
  private readonly reducer: number | undefined;
  private syncing = true;
  private disposed = false;

  constructor(readonly module: M, readonly group: ProcessGroup, options: DataParallelOptions = {}) {
    this.broadcastBuffers = options.broadcastBuffers ?? true;
    this.overlap = options.overlap ?? true;
    const capBytes = (options.bucketCapMb ?? 25) * 2 ** 20;
    // Gradients become ready from the last layer backwards: buckets follow that order.
    const params = module.parameters().filter((p) => p.requiresGrad).reverse();
    this.buckets = [];
    for (const same of groupsByDtype(params)) {
      let bucket: Tensor[] = [];
      let bytes = 0;
      for (const p of same) {
        const size = p.numel * ELEMENT_SIZE[p.dtype];
        if (bucket.length > 0 && bytes + size > capBytes) {
          this.buckets.push(bucket);
          bucket = [];
          bytes = 0;
        }
        bucket.push(p);
        bytes += size;
      }
      if (bucket.length > 0) this.buckets.push(bucket);
    }
    this.broadcastState(module.parameters());
    this.broadcastState(module.buffers());
    if (group.worldSize > 1) this.reducer = native.dist.reducerCreate(group.nativeId(), this.buckets, options.compression ?? 'none');
  }

  private broadcastState(tensors: Tensor[]): void {
    if (this.group.worldSize === 1 || tensors.length === 0) return;
    for (const same of groupsByDtype(tensors)) coalesced(same, (flat) => this.group.broadcast(flat, 0));
  }

  private get reducerId(): number | undefined {
    if (this.disposed) throw new Error('DistributedDataParallel was disposed');
    return this.reducer;
  }

  /**
   * The wrapped module's forward, after taking rank 0's buffers when training. Outside `noSync()`
   * (and with `overlap`) the backward of its result all-reduces the gradients as they land.
   */
  forward(...inputs: unknown[]): ReturnType<M['forward']> {
    const reducer = this.reducerId;
    if (reducer !== undefined) native.dist.reducerPrepare(reducer, this.overlap && this.syncing);
    if (this.module.training && this.broadcastBuffers) this.broadcastState(this.module.buffers());
    return this.module.forward(...inputs);
  }

  /**
   * torch DDP's no_sync(): the backward of forwards run inside `fn` only accumulates local
   * gradients (gradient accumulation's micro-steps); a later backward outside it, and then
   * `syncGradients()`, averages the sum.
   */
  noSync<T>(fn: () => T): T {
    const before = this.syncing;
    this.syncing = false;
    try {
      return fn();
    } finally {
      this.syncing = before;
    }
  }

  /**
   * After backward: every gradient becomes the mean over ranks (missing gradients count as zeros).
   * Waits for the buckets launched during backward and all-reduces the rest now. A failed
   * collective throws, naming the rank that caused it.
   */
  syncGradients(): void {
    const reducer = this.reducerId;
    if (reducer !== undefined) native.dist.reducerFinish(reducer);
  }

  /** Buckets whose all-reduce is under way (launched during backward), not yet taken by syncGradients(). */
  get bucketsInFlight(): number {
    const reducer = this.reducerId;
    return reducer === undefined ? 0 : native.dist.reducerInFlight(reducer);
  }

  /** Removes the gradient hooks (and lets go of the parameters). */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    if (this.reducer !== undefined) native.dist.reducerDestroy(this.reducer);
  }
}

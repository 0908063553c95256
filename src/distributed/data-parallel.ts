/**
 * Data parallelism for a module (torch.nn.parallel.DistributedDataParallel's job): parameters and
 * buffers broadcast from rank 0 at the start, buffers again before each training forward (BN
 * running statistics, as DDP's broadcast_buffers), and after backward the gradients averaged over
 * ranks in buckets of `bucketCapMb`, optionally compressed to float16/bfloat16 on the wire
 * (arcface_torch's fp16_compress_hook: divide by the world size, cast, all-reduce, cast back).
 */
import { tidy, cat, zeros, type Tensor, type Dtype } from '../torch/index.js';
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
  private readonly compression: DataParallelOptions['compression'];
  private readonly broadcastBuffers: boolean;

  constructor(readonly module: M, readonly group: ProcessGroup, options: DataParallelOptions = {}) {
    this.compression = options.compression ?? 'none';
    this.broadcastBuffers = options.broadcastBuffers ?? true;
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
  }

  private broadcastState(tensors: Tensor[]): void {
    if (this.group.worldSize === 1 || tensors.length === 0) return;
    for (const same of groupsByDtype(tensors)) coalesced(same, (flat) => this.group.broadcast(flat, 0));
  }

  /** The wrapped module's forward, after taking rank 0's buffers when training. */
  forward(...inputs: unknown[]): ReturnType<M['forward']> {
    if (this.module.training && this.broadcastBuffers) this.broadcastState(this.module.buffers());
    return this.module.forward(...inputs);
  }

  /** After backward: every gradient becomes the mean over ranks (missing gradients count as zeros). */
  syncGradients(): void {
    if (this.group.worldSize === 1) return;
    const world = this.group.worldSize;
    for (const bucket of this.buckets) {
      tidy(() => {
        const grads = bucket.map((p) => p.grad ?? zeros(p.shape, { dtype: p.dtype as Dtype }));
        const flat = cat(grads.map((g) => g.reshape(-1)));
        if (this.compression === 'none') {
          this.group.allReduce(flat, 'avg');
        } else {
          const wire = flat.div(world).to(this.compression as Dtype);
          this.group.allReduce(wire, 'sum');
          flat.copy_(wire);
        }
        let offset = 0;
        bucket.forEach((p, i) => {
          const mean = flat.narrow(0, offset, p.numel).view(p.shape);
          if (p.grad) grads[i].copy_(mean);
          else p.grad = mean.clone();
          offset += p.numel;
        });
      });
    }
  }
}

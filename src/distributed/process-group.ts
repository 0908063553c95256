/**
 * Process groups over c10d, set up from the torchrun environment contract: MASTER_ADDR, MASTER_PORT,
 * RANK, WORLD_SIZE (LOCAL_RANK, LOCAL_WORLD_SIZE for placement). Without that environment, a world
 * of one: every collective is the identity. Under torchrun's agent (TORCHELASTIC_USE_AGENT_STORE=True)
 * the agent hosts the store on MASTER_PORT: every rank connects as a client and works under the key
 * prefix /worker/attempt_<TORCHELASTIC_RESTART_COUNT>, as torch.distributed's env:// rendezvous does,
 * so that the workers of a restarted attempt do not meet the keys of the attempt that died.
 *
 * Backends, as torch.distributed's: 'gloo' carries CPU and CUDA tensors; 'nccl' (the CUDA build)
 * carries CUDA tensors, with a side Gloo group over the same store for the CPU ones (host scalars:
 * stop flags, logged losses). Each collective goes to the backend of its tensor's device.
 *
 * Collectives modify their tensors in place. The plain forms wait on the JS thread; the `…Async`
 * forms return promises that settle off it (the backend runs the transfer on its own threads either
 * way; on NCCL both forms wait until the collective is done on the GPU). A collective that fails — a
 * peer died, or nothing arrived within the timeout — throws an Error naming the operation, this rank,
 * and the ranks that stopped sending heartbeats or never entered it.
 */
import { native } from '../torch/native.js';
import { tidy, narrow, emptyLike, type Tensor } from '../torch/index.js';

export type ReduceOp = 'sum' | 'max' | 'min' | 'product' | 'avg';
export type Backend = 'gloo' | 'nccl';

export interface ProcessGroupOptions {
  rank: number;
  worldSize: number;
  masterAddr: string;
  masterPort: number;
  /** how long a collective (and the rendezvous) may wait for peers; default 300 s (5 min) */
  timeoutMs?: number;
  /** heartbeat period; a rank silent for 3 periods is named as stopped in errors (default 1 s) */
  heartbeatMs?: number;
  /** network interface for gloo (GLOO_SOCKET_IFNAME), e.g. when hosts have several */
  ifname?: string;
  /**
   * 'gloo' (default): Gloo for every tensor, CPU or CUDA. 'nccl': NCCL for CUDA tensors (needs the CUDA
   * build and a visible GPU; its watchdog times collectives out after timeoutMs).
   */
  backend?: Backend;
  /**
   * A side Gloo group over the same store (prefix host_pg/) for CPU tensors. Default: true with 'nccl',
   * false with 'gloo' (its one group carries both). 'nccl' without it is NCCL only: a CPU tensor is an
   * error. 'gloo' with it: the layout of 'nccl' with Gloo standing in for the device backend.
   */
  hostGroup?: boolean;
  /** the store is hosted by the launcher (torchrun's agent): rank 0 connects as a client too */
  agentStore?: boolean;
  /** every key of this group lives under this prefix of the store (torchrun: /worker/attempt_<n>) */
  storePrefix?: string;
}

/** The torchrun variables of this process. */
export interface DistEnv {
  rank: number;
  worldSize: number;
  localRank: number;
  localWorldSize: number;
  masterAddr: string;
  masterPort: number;
  /** torchrun's agent hosts the store (TORCHELASTIC_USE_AGENT_STORE=True) */
  agentStore: boolean;
  /** TORCHELASTIC_RESTART_COUNT: how many times torchrun has restarted the workers (undefined: not torchrun) */
  restartCount: number | undefined;
}

/** Reads the launcher's environment; undefined when this process was not launched as a worker. */
export function distEnv(env: NodeJS.ProcessEnv = process.env): DistEnv | undefined {
  if (env.WORLD_SIZE === undefined && env.RANK === undefined) return undefined;
  const int = (key: string, fallback?: number): number => {
    const raw = env[key];
    if (raw === undefined) {
      if (fallback !== undefined) return fallback;
      throw new Error(`distributed environment: ${key} is not set (need MASTER_ADDR, MASTER_PORT, RANK, WORLD_SIZE)`);
    }
    const n = Number(raw);
    if (!Number.isInteger(n) || n < 0) throw new Error(`distributed environment: ${key}=${raw} is not a non-negative integer`);
    return n;
  };
  const worldSize = int('WORLD_SIZE');
  const rank = int('RANK');
  if (rank >= worldSize) throw new Error(`distributed environment: RANK=${rank} is not below WORLD_SIZE=${worldSize}`);
  const agentStore = env.TORCHELASTIC_USE_AGENT_STORE === 'True';  // the spelling torchrun writes, and that env:// tests
  const restartCount = env.TORCHELASTIC_RESTART_COUNT === undefined ? undefined : int('TORCHELASTIC_RESTART_COUNT');
  if (agentStore && restartCount === undefined) throw new Error('distributed environment: TORCHELASTIC_USE_AGENT_STORE=True needs TORCHELASTIC_RESTART_COUNT');
  return {
    rank,
    worldSize,
    localRank: int('LOCAL_RANK', rank),
    localWorldSize: int('LOCAL_WORLD_SIZE', worldSize),
    masterAddr: env.MASTER_ADDR ?? '127.0.0.1',
    masterPort: int('MASTER_PORT', 29500),
    agentStore,
    restartCount,
  };
}

export class ProcessGroup {
  private destroyed = false;

  private constructor(
    readonly rank: number,
    readonly worldSize: number,
    readonly backend: Backend,
    private readonly id: number | undefined,
  ) {}

  /**
   * A group over the given rendezvous; a world of one needs no peers and no network (but its backend
   * must be able to run here, as with more ranks).
   */
  static create(o: ProcessGroupOptions): ProcessGroup {
    const backend = o.backend ?? 'gloo';
    if (o.worldSize === 1) {
      native.dist.checkBackend(backend);
      return new ProcessGroup(0, 1, backend, undefined);
    }
    const id = native.dist.init({
      rank: o.rank,
      worldSize: o.worldSize,
      masterAddr: o.masterAddr,
      masterPort: o.masterPort,
      timeoutMs: o.timeoutMs ?? 300_000,
      heartbeatMs: o.heartbeatMs ?? 1000,
      backend,
      hostGroup: o.hostGroup ?? backend === 'nccl',
      agentStore: o.agentStore ?? false,
      storePrefix: o.storePrefix ?? '',
      ...(o.ifname ? { ifname: o.ifname } : {}),
    });
    return new ProcessGroup(o.rank, o.worldSize, backend, id);
  }

  /**
   * The c10d group that carries `t`'s collectives: its backend and its prefix in the rendezvous store
   * (default_pg: the group of device tensors; host_pg: the side Gloo group). A world of one has none.
   */
  backendFor(t: Tensor): { backend: Backend; storePrefix: string } | undefined {
    return this.id === undefined ? undefined : native.dist.backendFor(this.group(), t);
  }

  private group(): number {
    if (this.destroyed) throw new Error('process group was destroyed');
    return this.id!;
  }

  /** The native group's id, for native parts that run collectives themselves (DDP's reducer). */
  nativeId(): number {
    if (this.id === undefined) throw new Error('a world of one has no native process group');
    return this.group();
  }

  /** In place: every rank ends with the reduction of all ranks' tensors ('avg' = sum / worldSize). */
  allReduce(t: Tensor, op: ReduceOp = 'sum'): void {
    if (this.id === undefined) return;
    native.dist.allReduce(this.group(), t, op === 'avg' ? 'sum' : op, false);
    if (op === 'avg') t.div_(this.worldSize);
  }

  async allReduceAsync(t: Tensor, op: ReduceOp = 'sum'): Promise<void> {
    if (this.id === undefined) return;
    await native.dist.allReduce(this.group(), t, op === 'avg' ? 'sum' : op, true);
    if (op === 'avg') t.div_(this.worldSize);
  }

  /** In place: every rank gets root's tensor. */
  broadcast(t: Tensor, root = 0): void {
    if (this.id !== undefined) native.dist.broadcast(this.group(), t, root, false);
  }

  async broadcastAsync(t: Tensor, root = 0): Promise<void> {
    if (this.id !== undefined) await native.dist.broadcast(this.group(), t, root, true);
  }

  /** Each rank's `t`, in rank order (new tensors, same shape as t). */
  allGather(t: Tensor): Tensor[] {
    if (this.id === undefined) return [t.clone()];
    const outputs = Array.from({ length: this.worldSize }, () => emptyLike(t));
    native.dist.allGather(this.group(), outputs, t.contiguous(), false);
    return outputs;
  }

  async allGatherAsync(t: Tensor): Promise<Tensor[]> {
    if (this.id === undefined) return [t.clone()];
    const outputs = Array.from({ length: this.worldSize }, () => emptyLike(t));
    await native.dist.allGather(this.group(), outputs, t.contiguous(), true);
    return outputs;
  }

  /**
   * Every rank's `t` concatenated along dim 0, differentiable: the backward gives this rank the
   * gradient of its slice summed over ranks, times worldSize (arcface_torch's AllGather for
   * Partial FC, which DDP's gradient averaging turns back into the sum). World of one: `t` itself.
   */
  allGatherWithGrad(t: Tensor): Tensor {
    if (this.id === undefined) return t;
    return native.dist.allGatherWithGrad(this.group(), t);
  }

  /**
   * The sum of all ranks' `t` (a new tensor), differentiable: the backward all-reduces the
   * gradients (SyncBatchNorm's statistics). World of one: `t` itself.
   */
  allReduceSumWithGrad(t: Tensor): Tensor {
    if (this.id === undefined) return t;
    return native.dist.allReduceSumWithGrad(this.group(), t);
  }

  /**
   * The reduction of all ranks' `t` (first dim divisible by worldSize), of which this rank keeps
   * its slice. Gloo has no reduce-scatter: this is an all-reduce and a narrow, the same bytes
   * twice over; fine for the small tensors that use it.
   */
  reduceScatter(t: Tensor, op: ReduceOp = 'sum'): Tensor {
    const n = t.shape[0];
    if (n % this.worldSize !== 0) throw new Error(`reduceScatter: first dimension ${n} is not divisible by world size ${this.worldSize}`);
    return tidy(() => {
      const reduced = t.clone();
      this.allReduce(reduced, op);
      const size = n / this.worldSize;
      return narrow(reduced, 0, this.rank * size, size).contiguous();
    });
  }

  barrier(): void {
    if (this.id !== undefined) native.dist.barrier(this.group(), false);
  }

  async barrierAsync(): Promise<void> {
    if (this.id !== undefined) await native.dist.barrier(this.group(), true);
  }

  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    if (this.id !== undefined) native.dist.destroy(this.id);
  }
}

/** The version of the NCCL library the addon loaded; undefined in a build without CUDA. */
export const ncclVersion = (): string | undefined => native.dist.ncclVersion();

/**
 * The default group of this process: from the torchrun environment, or a world of one. Env
 * overrides: ARCFACE_DIST_TIMEOUT_MS, GLOO_SOCKET_IFNAME.
 */
export function initProcessGroup(overrides: Partial<ProcessGroupOptions> = {}): ProcessGroup {
  const env = distEnv();
  if (!env && !overrides.worldSize) return ProcessGroup.create({ rank: 0, worldSize: 1, masterAddr: '127.0.0.1', masterPort: 0 });
  const timeout = process.env.ARCFACE_DIST_TIMEOUT_MS;
  return ProcessGroup.create({
    rank: env?.rank ?? 0,
    worldSize: env?.worldSize ?? 1,
    masterAddr: env?.masterAddr ?? '127.0.0.1',
    masterPort: env?.masterPort ?? 29500,
    ...(env?.agentStore ? { agentStore: true, storePrefix: `/worker/attempt_${env.restartCount}` } : {}),
    ...(timeout ? { timeoutMs: Number(timeout) } : {}),
    ...(process.env.GLOO_SOCKET_IFNAME ? { ifname: process.env.GLOO_SOCKET_IFNAME } : {}),
    ...overrides,
  });
}


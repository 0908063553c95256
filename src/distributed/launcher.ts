/**
 * Starts the workers of one node with the torchrun environment contract, like
 * `torchrun --nproc-per-node N --nnodes M --node-rank R --master-addr A --master-port P -- cmd`:
 * each worker gets MASTER_ADDR, MASTER_PORT, RANK, LOCAL_RANK, WORLD_SIZE, LOCAL_WORLD_SIZE,
 * GROUP_RANK, and OMP_NUM_THREADS (unless set: the cores shared out); its output lines are
 * prefixed with its rank; SIGINT/SIGTERM are forwarded; when one
 * worker fails the others are stopped and the launcher exits with the failing worker's status.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import os from 'node:os';
import readline from 'node:readline';

export interface LaunchOptions {
  nprocPerNode: number;
  nnodes: number;
  nodeRank: number;
  masterAddr: string;
  masterPort: number;
  /** the worker command and its arguments */
  command: string[];
  /** grace period between SIGTERM and SIGKILL when stopping workers (ms) */
  killGraceMs?: number;
}

const FLAGS: Record<string, keyof Omit<LaunchOptions, 'command' | 'killGraceMs'>> = {
  'nproc-per-node': 'nprocPerNode',
  nnodes: 'nnodes',
  'node-rank': 'nodeRank',
  'master-addr': 'masterAddr',
  'master-port': 'masterPort',
};

/**
 * Parses launcher flags (`--nproc-per-node 2`, `--nproc_per_node=2`, …) up to `--` or the first
 * non-flag word; what follows is the worker command. Returns the options and the rest.
 */
export function parseLaunchArgs(args: string[]): { options: Omit<LaunchOptions, 'command'>; rest: string[] } {
  const options = { nprocPerNode: 1, nnodes: 1, nodeRank: 0, masterAddr: '127.0.0.1', masterPort: 29500 };
  let i = 0;
  for (; i < args.length; i++) {
    const arg = args[i];
    if (arg === '--') {
      i++;
      break;
    }
    if (!arg.startsWith('--')) break;
    const [rawName, inline] = arg.slice(2).split('=', 2);
    const key = FLAGS[rawName.replace(/_/g, '-')];
    if (!key) break;
    const value = inline ?? args[++i];
    if (value === undefined) throw new Error(`--${rawName} needs a value`);
    if (key === 'masterAddr') options.masterAddr = value;
    else {
      const n = Number(value);
      if (!Number.isInteger(n) || n < 0) throw new Error(`--${rawName} needs a non-negative integer, got ${value}`);
      options[key] = n;
    }
  }
  if (options.nprocPerNode < 1 || options.nnodes < 1) throw new Error('--nproc-per-node and --nnodes must be at least 1');
  if (options.nodeRank >= options.nnodes) throw new Error(`--node-rank ${options.nodeRank} must be below --nnodes ${options.nnodes}`);
  return { options, rest: args.slice(i) };
}

/**
 * The thread variables of one of `workers` workers on this machine. As torchrun, keep them from
 * oversubscribing the cores: unless the user set OMP_NUM_THREADS (not the engine of this process:
 * ARCFACE_THREADS_CHOSEN), each gets its share of the cores, for OpenMP and BLAS alike (torchrun
 * gives 1; a CPU worker needs its share).
 */
export function workerThreadEnv(workers: number): NodeJS.ProcessEnv {
  const userSet = process.env.OMP_NUM_THREADS !== undefined && process.env.ARCFACE_THREADS_CHOSEN === undefined;
  const share = String(Math.max(1, Math.floor(os.availableParallelism() / workers)));
  return userSet ? { OMP_NUM_THREADS: process.env.OMP_NUM_THREADS } : { OMP_NUM_THREADS: share, OPENBLAS_NUM_THREADS: share, ARCFACE_THREADS_CHOSEN: undefined };
}

/** Runs the workers to completion; resolves with the launcher's exit code. */
export function launch(o: LaunchOptions): Promise<number> {
  if (o.command.length === 0) throw new Error('launch: no worker command given');
  const worldSize = o.nprocPerNode * o.nnodes;
  const workers: { rank: number; child: ChildProcess }[] = [];
  let stopping = false;
  let firstFailure: { rank: number; code: number; reason: string } | undefined;

  // Only children that started: before its 'error' event, a child whose spawn failed still has a handle
  // with pid 0, and Node's kill() then signals pid 0 — this launcher's whole process group (its caller too).
  const stopAll = (signal: NodeJS.Signals) => {
    for (const { child } of workers) {
      if (child.pid !== undefined && child.exitCode === null && child.signalCode === null) child.kill(signal);
    }
  };
  const stopWorkers = () => {
    if (stopping) return;
    stopping = true;
    stopAll('SIGTERM');
    setTimeout(() => stopAll('SIGKILL'), o.killGraceMs ?? 10_000).unref();
  };
  const forward = (signal: NodeJS.Signals) => () => {
    stopAll(signal);
    stopping = true;
  };
  const onSigint = forward('SIGINT'), onSigterm = forward('SIGTERM');
  process.on('SIGINT', onSigint);
  process.on('SIGTERM', onSigterm);

  const threadEnv = workerThreadEnv(o.nprocPerNode);

  return new Promise((resolve) => {
    let running = o.nprocPerNode;
    for (let localRank = 0; localRank < o.nprocPerNode; localRank++) {
      const rank = o.nodeRank * o.nprocPerNode + localRank;
      const child = spawn(o.command[0], o.command.slice(1), {
        stdio: ['inherit', 'pipe', 'pipe'],
        env: {
          ...process.env,
          MASTER_ADDR: o.masterAddr,
          MASTER_PORT: String(o.masterPort),
          RANK: String(rank),
          LOCAL_RANK: String(localRank),
          WORLD_SIZE: String(worldSize),
          LOCAL_WORLD_SIZE: String(o.nprocPerNode),
          GROUP_RANK: String(o.nodeRank),
          ...threadEnv,
        },
      });
      for (const [stream, out] of [[child.stdout!, process.stdout], [child.stderr!, process.stderr]] as const) {
        readline.createInterface({ input: stream }).on('line', (line) => out.write(`[rank ${rank}] ${line}\n`));
      }
      // Node may emit 'exit' after 'error', or not (a command that cannot start emits only 'error'):
      // each worker is counted out once, so the promise always settles.
      let countedOut = false;
      const workerEnded = (failure: { code: number; reason: string } | undefined) => {
        if (countedOut) return;
        countedOut = true;
        running--;
        if (failure && !stopping) {
          firstFailure ??= { rank, ...failure };
          stopWorkers();
        }
        if (running === 0) {
          process.off('SIGINT', onSigint);
          process.off('SIGTERM', onSigterm);
          if (firstFailure) {
            process.stderr.write(`arcface launch: worker rank ${firstFailure.rank} ${firstFailure.reason}; stopped the other workers\n`);
            resolve(firstFailure.code || 1);
          } else {
            resolve(stopping ? 130 : 0);
          }
        }
      };
      child.on('error', (error) => {
        if (child.pid === undefined) workerEnded({ code: 1, reason: `could not start '${o.command[0]}': ${error.message}` });
        else {
          firstFailure ??= { rank, code: 1, reason: `failed: ${error.message}` };
          stopWorkers();
        }
      });
      child.on('exit', (code, signal) => {
        const failed = signal !== null || code !== 0;
        workerEnded(failed ? { code: code ?? 128 + (signal ? osSignal(signal) : 0), reason: signal ? `killed by ${signal}` : `exited with code ${code}` } : undefined);
      });
      workers.push({ rank, child });
    }
  });
}

function osSignal(signal: NodeJS.Signals): number {
  const numbers: Partial<Record<NodeJS.Signals, number>> = { SIGINT: 2, SIGKILL: 9, SIGTERM: 15, SIGSEGV: 11, SIGABRT: 6 };
  return numbers[signal] ?? 1;
}

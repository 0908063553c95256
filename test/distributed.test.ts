/**
 * Distributed training with real processes on 127.0.0.1: collectives, data-parallel equivalence
 * across world sizes, the launcher, and failures (a killed or stalled rank is named, nobody hangs).
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { spawn, spawnSync, execSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import * as torch from '../src/torch/index.js';
import { ProcessGroup, type Backend } from '../src/distributed/index.js';
import { native } from '../src/torch/native.js';
import { repoRoot } from './helpers.js';

const worker = path.join(repoRoot, 'dist', 'test', 'distributed-worker.js');
const arcface = path.join(repoRoot, 'bin', 'arcface.js');
let nextPort = 29700 + (process.pid % 200) * 10;

interface Run {
  code: number | null;
  records: Record<string, any>[];
  stderr: string;
  stdout: string;
  ms: number;
}

function collect(command: string[], env: NodeJS.ProcessEnv, timeoutMs: number): Promise<Run & { pid: number }> {
  const started = Date.now();
  return new Promise((resolve) => {
    const child = spawn(command[0], command.slice(1), { env: { ...process.env, ...env }, cwd: repoRoot });
    let stdout = '', stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('exit', (code) => {
      clearTimeout(timer);
      const records = stdout
        .split('\n')
        .map((line) => line.replace(/^\[rank \d+\] /, ''))
        .filter((line) => line.startsWith('{'))
        .map((line) => JSON.parse(line));
      resolve({ code, records, stderr, stdout, ms: Date.now() - started, pid: child.pid! });
    });
  });
}

/** Starts `worldSize` workers directly (the torchrun contract by hand). */
async function runWorkers(worldSize: number, args: string[], env: NodeJS.ProcessEnv = {}, timeoutMs = 60_000): Promise<Run[]> {
  const port = nextPort++;
  return Promise.all(
    Array.from({ length: worldSize }, (_, rank) =>
      collect([process.execPath, worker, ...args], { MASTER_ADDR: '127.0.0.1', MASTER_PORT: String(port), RANK: String(rank), WORLD_SIZE: String(worldSize), ...env }, timeoutMs),
    ),
  );
}

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

/** The collectives scenario's results on 3 ranks, worked out by hand; → each rank's record. */
function assertCollectives(runs: Run[]): Record<string, any>[] {
  for (const run of runs) assert.equal(run.code, 0, run.stderr);
  for (const { records: [r] } of runs) {
    assert.deepEqual(r.sum, [6, 60]);
    assert.deepEqual(r.max, [2, 0]);
    assert.deepEqual(r.avg, [2]);
    assert.deepEqual(r.broadcast, [200, 7]);
    assert.deepEqual(r.gathered, [[[0, 0]], [[1, 1]], [[2, 4]]]);
    // sum over ranks of arange(6) + rank = 3·arange(6) + 3; rank r keeps elements [2r, 2r+2)
    assert.deepEqual(r.scattered, [0, 1].map((i) => 3 * (2 * r.rank + i) + 3));
  }
  return runs.map((run) => run.records[0]);
}

const gloo = { backend: 'gloo', storePrefix: 'default_pg' };
const sideGloo = { backend: 'gloo', storePrefix: 'host_pg' };

describe('collectives (world size 3)', () => {
  test('allReduce sum/max/avg, broadcast, allGather, reduceScatter, barrier', async () => {
    for (const r of assertCollectives(await runWorkers(3, ['collectives']))) assert.deepEqual(r.backends, { tensors: gloo, hostScalar: gloo });
  });

  // The layout of backend 'nccl' (device tensors on one group, CPU tensors on a side Gloo group over the
  // same store, another prefix) with Gloo standing in for NCCL: both groups rendezvous and the CPU
  // tensors — here all of them — go to the side one.
  test('a side Gloo group for CPU tensors (hostGroup), Gloo standing in for the device backend: the same results', async () => {
    const runs = await runWorkers(3, ['collectives'], { PG_OPTIONS: JSON.stringify({ hostGroup: true }) });
    for (const r of assertCollectives(runs)) assert.deepEqual(r.backends, { tensors: sideGloo, hostScalar: sideGloo });
  });
});

// On a machine with a GPU (none of the CPU machines here): one GPU holds 3 Gloo ranks, or an NCCL world of one.
describe('CUDA tensors', { skip: torch.runtimeInfo().cudaAvailable ? false : 'no CUDA device here' }, () => {
  test('Gloo carries CUDA tensors over 3 processes on one GPU; CPU tensors go to the side group', async () => {
    const runs = await runWorkers(3, ['collectives'], { PG_DEVICE: 'cuda:0', PG_OPTIONS: JSON.stringify({ hostGroup: true }) });
    for (const r of assertCollectives(runs)) assert.deepEqual(r.backends, { tensors: gloo, hostScalar: sideGloo });
  });

  // A world of one has no native group in ProcessGroup: the addon's own, to run NCCL at all on one GPU.
  test("backend 'nccl' (world of one): CUDA tensors on NCCL, CPU ones on the side Gloo group; NCCL only refuses a CPU tensor by name", () => {
    const init = (hostGroup: boolean) =>
      native.dist.init({ rank: 0, worldSize: 1, masterAddr: '127.0.0.1', masterPort: nextPort++, timeoutMs: 20_000, heartbeatMs: 1000, backend: 'nccl', hostGroup });
    torch.tidy(() => {
      const mixed = init(true);
      const onGpu = torch.tensor([1, 2], { device: 'cuda:0' }), onCpu = torch.tensor([3]);
      assert.deepEqual(native.dist.backendFor(mixed, onGpu), { backend: 'nccl', storePrefix: 'default_pg' });
      assert.deepEqual(native.dist.backendFor(mixed, onCpu), sideGloo);
      native.dist.allReduce(mixed, onGpu, 'sum', false);
      native.dist.allReduce(mixed, onCpu, 'max', false);
      assert.deepEqual([onGpu.toArray(), onCpu.toArray()], [[1, 2], [3]]);
      native.dist.barrier(mixed, false);
      native.dist.destroy(mixed);
      const ncclOnly = init(false);
      assert.throws(() => native.dist.allReduce(ncclOnly, onCpu, 'sum', false), /allReduce: the tensor is on cpu, but this process group is NCCL only \(hostGroup: false\)/);
      native.dist.destroy(ncclOnly);
    });
  });
});

describe("backend 'nccl' where it cannot run", () => {
  const { cudaBuild, cudaAvailable } = torch.runtimeInfo();
  const why = cudaBuild
    ? /^process group backend 'nccl' is not available: the addon is built with CUDA, but no CUDA device is visible here \(no GPU, or no driver\)$/
    : /^process group backend 'nccl' is not available: the addon is built without CUDA \(rebuild it with ARCFACE_TORCH_DIR=<a CUDA PyTorch's torch\/ folder> ARCFACE_CUDA=1 bash scripts\/setup\.sh\)$/;

  test('every rank fails at once with the reason, in one line (world sizes 2 and 1)', { skip: cudaAvailable ? 'a CUDA device is here' : false }, async () => {
    const options = { PG_OPTIONS: JSON.stringify({ backend: 'nccl' }) };
    for (const runs of [await runWorkers(2, ['collectives'], options), await runWorkers(1, ['collectives'], options)]) {
      for (const run of runs) {
        assert.equal(run.code, 4, run.stdout + run.stderr);
        assert.match(run.records[0].initError, why);
        assert.ok(run.ms < 20_000, `failed after ${run.ms} ms: nobody waited for the rendezvous`);
      }
    }
  });

  test('an unknown backend is named', () => {
    const create = (backend: string) => ProcessGroup.create({ rank: 0, worldSize: 1, masterAddr: '127.0.0.1', masterPort: 0, backend: backend as Backend });
    assert.throws(() => create('mpi'), /process group: unknown backend 'mpi' \(gloo, nccl\)/);
    assert.equal(create('gloo').backend, 'gloo');
  });
});

describe('data parallel', () => {
  const steps = 5;
  const trainAt = async (worldSize: number, compression = 'none') => {
    const runs = await runWorkers(worldSize, ['train', String(steps), compression]);
    for (const run of runs) assert.equal(run.code, 0, run.stderr);
    return runs.map((r) => r.records[0]);
  };

  test('the same global batch gives the same losses and parameters with 1, 2 and 4 processes', async () => {
    const [one] = await trainAt(1);
    for (const worldSize of [2, 4]) {
      const ranks = await trainAt(worldSize);
      for (const r of ranks) {
        // Ranks agree exactly: they all apply the same averaged gradients to the same broadcast weights.
        assert.deepEqual(r.params, ranks[0].params);
        // Against one process, only the order of float32 sums differs (per-rank means, then the mean
        // of those): 1e-5 relative covers that rounding after 5 steps of SGD with momentum.
        r.losses.forEach((loss: number, i: number) => assert.ok(Math.abs(loss - one.losses[i]) <= 1e-5 * Math.abs(one.losses[i]), `step ${i}: ${loss} vs ${one.losses[i]}`));
        r.params.forEach((p: number[], i: number) =>
          p.forEach((v, j) => assert.ok(Math.abs(v - one.params[i][j]) <= 1e-5 * (1 + Math.abs(one.params[i][j])), `param ${i}[${j}] ${v} vs ${one.params[i][j]}`)),
        );
      }
      assert.ok(ranks[0].buckets > 1, 'a small bucket cap splits the gradients into several buckets');
    }
    assert.ok(one.losses.at(-1) < one.losses[0], 'the loss falls');
  });

  test('float16 gradient compression stays close to uncompressed training', async () => {
    const [plain] = await trainAt(2);
    const [compressed] = await trainAt(2, 'float16');
    compressed.losses.forEach((loss: number, i: number) => assert.ok(Math.abs(loss - plain.losses[i]) <= 1e-2 * Math.abs(plain.losses[i])));
  });
});

describe('SyncBatchNorm (convertSyncBatchNorm)', () => {
  // Conv → BN2d → PReLU → Linear → BN1d under overlapped DDP, one global batch of 8 dealt out
  // unevenly; the reference is one process normalising the whole batch with ATen's batch_norm
  const syncBnAt = async (split: number[], mode = 'synced') => {
    const runs = await runWorkers(split.length, ['sync-bn', split.join(','), '3', mode]);
    for (const run of runs) assert.equal(run.code, 0, run.stderr);
    return runs.map((r) => r.records[0]);
  };
  const worst = (a: number[], b: number[]) => Math.max(...a.map((v, i) => Math.abs(v - b[i]) / (1e-3 + Math.abs(b[i]))));

  test('the statistics of the global batch: output, input gradient, 3 steps of training and running statistics as one process over the whole batch', async () => {
    const [one] = await syncBnAt([8], 'unsynced');
    for (const split of [[3, 5], [1, 2, 3, 2]]) {
      const ranks = await syncBnAt(split);
      assert.equal(ranks[0].synced, 2);
      // float32 sums in another order (per rank, then across ranks; mean then squared deviations): 1e-4 relative
      assert.ok(worst(ranks.flatMap((r) => r.output), one.output) < 1e-4, `output, split ${split}`);
      // each rank's loss is weighted by worldSize (for DDP's average): the input, not averaged, keeps the factor
      const inputGrad = ranks.flatMap((r) => r.inputGrad.map((g: number) => g / split.length));
      assert.ok(worst(inputGrad, one.inputGrad) < 1e-4, `input gradient, split ${split}: ${worst(inputGrad, one.inputGrad)}`);
      // after 3 steps the conv weight (before a BN: its gradient is a difference of large terms) is
      // at 1.2e-4–1.7e-4; the synced formula alone in one process (sum over processes = identity)
      // against ATen's batch_norm measured 1.4e-4 there, so this is float32 rounding: 1e-3
      for (const r of ranks) {
        r.params.forEach((p: number[], i: number) => assert.ok(worst(p, one.params[i]) < 1e-3, `rank ${r.rank} param ${i}, split ${split}: ${worst(p, one.params[i])}`));
        r.running.forEach((b: number[], i: number) => assert.ok(worst(b, one.running[i]) < 1e-4, `rank ${r.rank} running statistics ${i}, split ${split}`));
      }
    }
    // without it each process normalises its own rows: far from the whole batch's statistics
    const unsynced = await syncBnAt([3, 5], 'unsynced');
    assert.ok(worst(unsynced.flatMap((r) => r.output), one.output) > 1e-2);
  });
});

describe('gradient all-reduce overlapped with backward', () => {
  const glooHasBfloat16 = !torch.runtimeInfo().torchVersion.startsWith('1.');
  // 3 buckets (cap 0.001 MB): [linear bias], [linear weight], [PReLU, conv, the unused Linear].
  const cases: [number, string, number][] = [[2, 'none', 1], [3, 'none', 1], [2, 'float16', 1], [2, 'bfloat16', 1], [2, 'none', 3], [3, 'float16', 2]];
  for (const [worldSize, compression, microSteps] of cases) {
    test(`${worldSize} ranks, compression ${compression}, ${microSteps} backward pass${microSteps > 1 ? 'es (noSync)' : ''}: the mean of every rank's gradients`, async () => {
      const runs = await runWorkers(worldSize, ['grads', compression, String(microSteps)]);
      if (compression === 'bfloat16' && !glooHasBfloat16) {
        for (const run of runs) assert.match(run.stderr, /compression 'bfloat16' needs a libtorch 2\.x build \(the Gloo of libtorch 1\.13\.\d has no bfloat16 all-reduce\); use 'float16'/);
        return;
      }
      for (const run of runs) assert.equal(run.code, 0, run.stderr);
      const ranks = runs.map((r) => r.records[0]);
      for (const r of ranks) {
        assert.equal(r.buckets, 3);
        // noSync micro-steps launch nothing; the last backward launches the two buckets whose gradients
        // all landed (the third holds the unused Linear); syncGradients takes them all
        assert.deepEqual(r.inFlight, [...Array(microSteps - 1).fill(0), 2, 0]);
        assert.equal(r.afterBackward, 0, 'overlap: false launches nothing during backward');
        // The same reduction on the wire whether launched from the hooks or after backward: bit for bit.
        assert.deepEqual(r.overlap, r.sync);
        assert.deepEqual(r.overlap, ranks[0].overlap, 'every rank ends with the same gradients');
        // the unused Linear (registered first) has no local gradient anywhere: its mean is zeros
        for (const p of r.overlap.slice(0, 2)) assert.ok(p.every((v: number) => v === 0));
        assert.ok(r.overlap.slice(2).every((p: number[]) => p.some((v) => v !== 0)));
        // Two ranks: a + b is one rounding in any order, so the reference agrees bit for bit.
        // Three: the ring sums in another order than rank order; each of the two roundings is
        // within half an ulp of a partial sum, at most 3 × the largest local gradient element
        // (float32: 2⁻²⁴ → 1e-6 of it; on the float16 wire, of summands ÷ 3, 2⁻¹¹ → 2e-3).
        if (worldSize === 2) {
          assert.deepEqual(r.overlap, r.reference);
        } else {
          const tolerance = compression === 'none' ? 1e-6 : 2e-3;
          r.overlap.forEach((p: number[], i: number) =>
            p.forEach((v, j) => assert.ok(Math.abs(v - r.reference[i][j]) <= tolerance * r.scales[i], `param ${i}[${j}] ${v} vs ${r.reference[i][j]} (scale ${r.scales[i]})`)),
          );
        }
        assert.match(r.misuse[0], /the gradients of the previous backward were not synced; call syncGradients\(\)/);
        assert.match(r.misuse[1], /parameter \d+ \(in bucket order\) got a second gradient after its bucket's all-reduce had started/);
        assert.deepEqual(r.leaked, { tensors: 0, bytes: 0 }, 'disposed DDPs and model leave no tensor behind');
      }
    });
  }
});

describe('model-parallel Partial FC', () => {
  const runPfc = async (worldSize: number, sampleRate: number, env: NodeJS.ProcessEnv = {}) => {
    const runs = await runWorkers(worldSize, ['pfc', '4', String(sampleRate)], env);
    for (const run of runs) assert.equal(run.code, 0, run.stderr);
    return runs.map((r) => r.records[0]).sort((a, b) => a.rank - b.rank);
  };
  // sampleRate 0.5: the batch's 8 positives exceed every shard's sample size, so each shard keeps
  // exactly its positives and the sampled set is the same for every world size.
  for (const sampleRate of [1, 0.5]) {
    test(`sharded centres over 2 and 4 processes train like one process (sampleRate ${sampleRate})`, async () => {
      const [one] = await runPfc(1, sampleRate);
      for (const worldSize of [2, 4]) {
        const ranks = await runPfc(worldSize, sampleRate);
        // the loss is the same on every rank, and equals one process's up to float32 summation order
        for (const r of ranks) {
          assert.deepEqual(r.losses, ranks[0].losses);
          r.losses.forEach((loss: number, i: number) => assert.ok(Math.abs(loss - one.losses[i]) <= 1e-5 * Math.abs(one.losses[i]), `world ${worldSize} step ${i}: ${loss} vs ${one.losses[i]}`));
          r.params.forEach((p: number[], i: number) => p.forEach((v, j) => assert.ok(Math.abs(v - one.params[i][j]) <= 1e-5 * (1 + Math.abs(one.params[i][j])))));
        }
        // each rank's shard equals the matching rows of the single process's centres
        const gathered = ranks.flatMap((r) => r.centres);
        assert.equal(gathered.length, one.centres.length);
        gathered.forEach((v: number, i: number) => assert.ok(Math.abs(v - one.centres[i]) <= 1e-5 * (1 + Math.abs(one.centres[i])), `centre element ${i}`));
      }
      assert.ok(one.losses.at(-1) < one.losses[0]);
    });
  }
});

test("implementation 'ops' over 2 processes: the same samples as the fused kernel, and the same training up to float32 rounding", async () => {
  // 40 classes, 20 per rank, sampleRate 0.5: rank 0 holds all 8 positives and draws 2 negatives,
  // rank 1 draws 10 negatives, so both ranks really sample (from generators seeded alike)
  const env = { PFC_CLASSES: '40' };
  const run = async (implementation: string) => {
    const runs = await runWorkers(2, ['pfc', '4', '0.5'], { ...env, PFC_IMPLEMENTATION: implementation });
    for (const r of runs) assert.equal(r.code, 0, r.stderr);
    return runs.map((r) => r.records[0]).sort((a, b) => a.rank - b.rank);
  };
  const fused = await run('fused');
  const ops = await run('ops');
  // Cosines agree to a float32 rounding or two (GEMM order, norms: heads-partial-fc-ops.test.ts),
  // s = 16 here, and 4 steps of SGD with momentum compound that: 5e-6 relative (seen: 7.4e-7).
  const close = (a: number, b: number) => Math.abs(a - b) <= 5e-6 * (1 + Math.abs(b));
  for (const [i, r] of ops.entries()) {
    const f = fused[i];
    assert.deepEqual(r.samples, f.samples, `rank ${r.rank}: the same sampled rows at every step`);
    assert.equal(r.samples[0].length, 10);
    r.losses.forEach((loss: number, s: number) => assert.ok(close(loss, f.losses[s]), `rank ${r.rank} step ${s}: loss ${loss} vs ${f.losses[s]}`));
    r.params.forEach((p: number[], k: number) => p.forEach((v, j) => assert.ok(close(v, f.params[k][j]), `rank ${r.rank} param ${k}[${j}] ${v} vs ${f.params[k][j]}`)));
    r.centres.forEach((v: number, j: number) => assert.ok(close(v, f.centres[j]), `rank ${r.rank} centre element ${j}: ${v} vs ${f.centres[j]}`));
  }
  assert.notDeepEqual(ops[0].samples[0], ops[0].samples[1], 'the sample changes from step to step');
});

test('exportWeight gathers unequal shards of 4 processes (14 classes: 4, 4, 3, 3) into one PyTorch file', async () => {
  const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'pfc-export-')), 'centres.pt');
  const runs = await runWorkers(4, ['pfc', '2', '1'], { PFC_EXPORT: file, PFC_CLASSES: '14' });
  for (const run of runs) assert.equal(run.code, 0, run.stderr);
  const ranks = runs.map((r) => r.records[0]).sort((a, b) => a.rank - b.rank);
  const weight = torch.loadStateDict(file).get('weight')!;
  assert.deepEqual(weight.shape, [14, 16]);
  assert.deepEqual(ranks.map((r) => r.numLocal), [4, 4, 3, 3]);
  assert.deepEqual(Array.from(weight.data() as Float32Array), ranks.flatMap((r) => r.centres));
  weight.dispose();
  fs.rmSync(path.dirname(file), { recursive: true, force: true });
});

describe('two machines', () => {
  // Two network namespaces joined by a veth pair stand in for two hosts; each runs `arcface launch`
  // with 2 workers, rendezvous over the veth addresses.
  const canMakeNamespaces = (() => {
    if (process.getuid?.() !== 0) return 'needs root for ip netns';
    try {
      execSync('ip netns add arcface_probe && ip netns del arcface_probe', { stdio: 'ignore' });
      return true;
    } catch {
      return 'ip netns is not available here';
    }
  })();

  test('arcface launch --nnodes 2 over a veth pair trains like one process', { skip: canMakeNamespaces === true ? false : canMakeNamespaces }, async () => {
    const tag = String(process.pid % 10000);
    const ns = [`afa${tag}`, `afb${tag}`], veth = [`va${tag}`, `vb${tag}`], addr = ['10.77.0.1', '10.77.0.2'];
    const sh = (cmd: string) => execSync(cmd, { stdio: 'pipe' });
    try {
      for (const n of ns) sh(`ip netns add ${n} && ip -n ${n} link set lo up`);
      sh(`ip link add ${veth[0]} netns ${ns[0]} type veth peer name ${veth[1]} netns ${ns[1]}`);
      ns.forEach((n, i) => sh(`ip -n ${n} addr add ${addr[i]}/24 dev ${veth[i]} && ip -n ${n} link set ${veth[i]} up`));
      const port = String(nextPort++);
      const nodes = await Promise.all(
        ns.map((n, node) =>
          collect(
            ['ip', 'netns', 'exec', n, process.execPath, arcface, 'launch', '--nnodes', '2', '--node-rank', String(node), '--nproc-per-node', '2',
              '--master-addr', addr[0], '--master-port', port, '--', 'node', worker, 'train', '5'],
            { GLOO_SOCKET_IFNAME: veth[node] },
            120_000,
          ),
        ),
      );
      for (const node of nodes) assert.equal(node.code, 0, node.stdout + node.stderr);
      const records = nodes.flatMap((n) => n.records);
      assert.deepEqual(records.map((r) => r.rank).sort(), [0, 1, 2, 3]);
      for (const r of records) assert.deepEqual(r.losses, records[0].losses);
      const [one] = (await runWorkers(1, ['train', '5'])).map((r) => r.records[0]);
      records[0].losses.forEach((loss: number, i: number) => assert.ok(Math.abs(loss - one.losses[i]) <= 1e-5 * Math.abs(one.losses[i])));
    } finally {
      for (const n of ns) execSync(`ip netns del ${n} 2>/dev/null || true`);
    }
  });
});

describe('failures', () => {
  test('a rank killed with SIGKILL is named by the others, which exit non-zero at once', async () => {
    const runs = await runWorkers(3, ['die-after', '20', '1'], { ARCFACE_DIST_TIMEOUT_MS: '20000' });
    assert.equal(runs[1].code, null, 'rank 1 was killed');
    for (const r of [0, 2]) {
      assert.equal(runs[r].code, 3, runs[r].stderr);
      const [record] = runs[r].records;
      assert.match(record.error, /allReduce failed on rank \d of 3: rank 1 is gone/);
      assert.ok(record.afterMs < 10_000, `noticed after ${record.afterMs} ms`);
    }
  });

  test('a rank killed while the others are in backward is named by them at syncGradients, which fails at once', async () => {
    const runs = await runWorkers(3, ['die-in-backward', '1'], { ARCFACE_DIST_TIMEOUT_MS: '20000' });
    assert.equal(runs[1].code, null, 'rank 1 was killed');
    for (const r of [0, 2]) {
      assert.equal(runs[r].code, 3, runs[r].stderr);
      const [record] = runs[r].records;
      assert.equal(record.step, 1);
      assert.equal(record.inFlight, 2, 'backward returned with two buckets on the wire');
      assert.match(record.error, /allReduce failed on rank \d of 3: rank 1 is gone/);
      assert.ok(record.afterMs < 10_000, `noticed after ${record.afterMs} ms`);
    }
  });

  test('a stalled rank is named after the timeout (one Gloo group, and the side Gloo group of hostGroup)', async () => {
    for (const options of [{}, { hostGroup: true }]) {
      const runs = await runWorkers(3, ['stall', '5', '2'], { ARCFACE_DIST_TIMEOUT_MS: '2000', PG_OPTIONS: JSON.stringify(options) }, 30_000);
      for (const r of [0, 1]) {
        assert.equal(runs[r].code, 3, runs[r].stderr);
        const [record] = runs[r].records;
        assert.match(record.error, /rank 2 has not entered it \(it is at collective 5, this rank at 6\)/);
        assert.ok(record.afterMs >= 2000 && record.afterMs < 15_000, `failed after ${record.afterMs} ms`);
      }
      assert.equal(runs[2].code, null, 'the stalled rank was left running until the test killed it');
    }
  });

  test('arcface launch stops every worker when one dies and names it', async () => {
    const port = nextPort++;
    const run = await collect(
      [process.execPath, arcface, 'launch', '--nproc-per-node', '3', '--master-port', String(port), '--', 'node', worker, 'die-after', '20', '1'],
      { ARCFACE_DIST_TIMEOUT_MS: '20000' },
      60_000,
    );
    assert.equal(run.code, 137);
    assert.match(run.stderr, /arcface launch: worker rank 1 killed by SIGKILL; stopped the other workers/);
    assert.ok(run.ms < 30_000);
    await new Promise((r) => setTimeout(r, 200));
    // this checkout's workers only: another checkout's test run may have its own
    const leftovers = execSync(`pgrep -f "${worker.replace(/\./g, '[.]')} die-after" || true`, { encoding: 'utf8' }).trim();
    assert.equal(leftovers, '', 'no worker is left behind');
    assert.ok(!alive(run.pid));
  });

  test('the launcher shares the cores out (OMP and BLAS) unless the user set OMP_NUM_THREADS — also when the engine is loaded', () => {
    const share = String(Math.max(1, Math.floor(os.availableParallelism() / 2)));
    const printThreads = `console.log(process.env.OMP_NUM_THREADS + ' ' + process.env.OPENBLAS_NUM_THREADS + ' ' + (process.env.ARCFACE_THREADS_CHOSEN ?? '-'))`;
    // a launcher in a process whose engine chose the thread count itself, as `arcface train --nproc-per-node 2` is
    const script = `
      await import(${JSON.stringify(path.join(repoRoot, 'dist', 'src', 'torch', 'index.js'))});
      const { launch } = await import(${JSON.stringify(path.join(repoRoot, 'dist', 'src', 'distributed', 'launcher.js'))});
      process.exitCode = await launch({ nprocPerNode: 2, nnodes: 1, nodeRank: 0, masterAddr: '127.0.0.1', masterPort: 29500, command: [process.execPath, '-e', ${JSON.stringify(printThreads)}] });`;
    const env = { ...process.env };
    for (const k of ['OMP_NUM_THREADS', 'OPENBLAS_NUM_THREADS', 'ARCFACE_NUM_THREADS', 'ARCFACE_THREADS_CHOSEN']) delete env[k];
    const engine = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', env });
    assert.equal(engine.status, 0, engine.stderr);
    assert.deepEqual(engine.stdout.trim().split('\n').map((l) => l.replace(/^\[rank \d\] /, '')), [`${share} ${share} -`, `${share} ${share} -`]);
    // a user's OMP_NUM_THREADS goes to every worker as it is
    const user = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', env: { ...env, OMP_NUM_THREADS: '3' } });
    assert.equal(user.status, 0, user.stderr);
    assert.deepEqual(user.stdout.trim().split('\n').map((l) => l.replace(/^\[rank \d\] /, '').split(' ')[0]), ['3', '3']);
  });

  test('launch flags: torchrun spellings, bad values are clear errors', async () => {
    const { parseLaunchArgs } = await import('../src/distributed/launcher.js');
    assert.deepEqual(parseLaunchArgs(['--nproc_per_node=2', '--nnodes', '2', '--node_rank=1', '--master-addr', '10.0.0.1', '--', 'x']), {
      options: { nprocPerNode: 2, nnodes: 2, nodeRank: 1, masterAddr: '10.0.0.1', masterPort: 29500 },
      rest: ['x'],
    });
    assert.throws(() => parseLaunchArgs(['--nproc-per-node', 'two']), /--nproc-per-node needs a non-negative integer, got two/);
    assert.throws(() => parseLaunchArgs(['--nnodes', '2', '--node-rank', '2', 'x']), /--node-rank 2 must be below --nnodes 2/);
  });
});

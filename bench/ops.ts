/**
 * Engine micro-benchmarks (JSON lines): per-op call overhead, 1024² matmul GFLOP/s, conv2d
 * forward+backward, float32 vs bfloat16 autocast, and the allocator setting for large buffers.
 *   node dist/bench/ops.js [--quick]
 */
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import * as torch from '../src/torch/index.js';
import { emit, interleave, round, timeMs, summarize } from './harness.js';

const quick = process.argv.includes('--quick');
const reps = quick ? 3 : 10;

function callOverhead(): void {
  const a = torch.ones([1]);
  const n = quick ? 20_000 : 200_000;
  const variants = {
    add_then_dispose: () => {
      for (let i = 0; i < n; i++) torch.add(a, a).dispose();
    },
    add_in_tidy: () => {
      torch.tidy(() => {
        for (let i = 0; i < n; i++) torch.add(a, a);
      });
    },
    inplace_add: () => {
      for (let i = 0; i < n; i++) a.add_(0);
    },
  };
  for (const [name, t] of Object.entries(interleave(variants, reps))) {
    emit({ bench: 'call_overhead', case: name, usPerOp: round((t.medianMs * 1000) / n), spread: t.spread });
  }
  a.dispose();
}

function flopsRecord(bench: string, name: string, t: ReturnType<typeof summarize>, flops: number) {
  emit({ bench, case: name, ...t, gflops: round(flops / (t.medianMs / 1000) / 1e9) });
}

function matmul(): void {
  const n = 1024;
  const a = torch.randn([n, n]), b = torch.randn([n, n]);
  const flops = 2 * n ** 3;
  const t = interleave(
    {
      float32: () => torch.matmul(a, b).dispose(),
      bf16_autocast: () => torch.autocast({ deviceType: 'cpu' }, () => torch.matmul(a, b)).dispose(),
    },
    reps * 2,
  );
  flopsRecord('matmul_1024', 'float32', t.float32, flops);
  flopsRecord('matmul_1024', 'bf16_autocast', t.bf16_autocast, flops);
  emit({ bench: 'matmul_1024', case: 'ratio_bf16_over_fp32', ratio: round(t.float32.medianMs / t.bf16_autocast.medianMs) });
  torch.dispose(a, b);
}

function conv(): void {
  const [n, c, h, w] = quick ? [8, 64, 56, 56] : [32, 64, 56, 56];
  // Both gradients, as in a backbone's training step: forward + grad-input + grad-weight = 3 × forward FLOPs.
  const x = torch.randn([n, c, h, w], { requiresGrad: true });
  const weight = torch.randn([64, c, 3, 3], { requiresGrad: true });
  const forwardFlops = 2 * n * 64 * h * w * c * 9;
  const fwdBwd = (bf16: boolean, channelsLast: boolean) => () =>
    torch.tidy(() => {
      const input = channelsLast ? x.contiguous('channels_last') : x.clone();
      const y = torch.autocast({ deviceType: 'cpu', enabled: bf16 }, () => torch.conv2d(input, weight, undefined, { padding: 1 }));
      y.float().sum().backward();
      weight.grad = undefined;
      x.grad = undefined;
    });
  const t = interleave(
    {
      float32: fwdBwd(false, false),
      float32_channels_last: fwdBwd(false, true),
      bf16_autocast: fwdBwd(true, false),
    },
    quick ? 2 : 5,
    1,
  );
  for (const [name, timing] of Object.entries(t)) {
    flopsRecord(`conv2d_${n}x${c}x${h}x${w}_3x3_fwd_bwd`, name, timing, 3 * forwardFlops);
  }
  torch.dispose(x, weight);
}

/** Cloning a 205 MB tensor, with and without the caching CPU allocator (each in its own process). */
function largeAlloc(): void {
  if (process.argv.includes('--child-alloc')) {
    const big = torch.randn([205 * 1024 * 1024 / 4]);
    const ms: number[] = [];
    for (let i = 0; i < reps; i++) ms.push(timeMs(() => big.clone().dispose()));
    console.log(JSON.stringify(summarize(ms)));
    return;
  }
  for (const cache of ['1', '0']) {
    const child = spawnSync(process.execPath, [fileURLToPath(import.meta.url), '--child-alloc', ...(quick ? ['--quick'] : [])], {
      env: { ...process.env, ARCFACE_CPU_CACHE: cache },
      encoding: 'utf8',
    });
    if (child.status !== 0) throw new Error(child.stderr);
    emit({ bench: 'clone_205MB', case: cache === '1' ? 'caching_allocator' : 'glibc_malloc', ...JSON.parse(child.stdout.trim()) });
  }
}

if (process.argv.includes('--child-alloc')) {
  largeAlloc();
} else {
  emit({ bench: 'env', threads: torch.getNumThreads(), blas: torch.runtimeInfo().blasLibrary, torch: torch.runtimeInfo().torchVersion });
  // Collect the call-overhead loops' garbage first: its finalizers would otherwise run inside later timings.
  const gc = (globalThis as { gc?: () => void }).gc ?? (() => {});
  callOverhead();
  gc();
  matmul();
  gc();
  conv();
  largeAlloc();
}

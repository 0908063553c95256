/**
 * Whether this CPU runs bfloat16 convolutions and matmuls fast. libtorch hands them to oneDNN only
 * where oneDNN has bfloat16 kernels — x86 with AVX-512 BW, VL and DQ (the check libtorch makes:
 * mkldnn_bf16_device_check), or Arm with BF16 — and otherwise runs its reference kernels: on an
 * AVX2-only AMD EPYC (Zen 3) a 3×3 convolution step was 24× slower in bfloat16 than in float32
 * (PyTorch 1.13 itself, docs/performance.md). The trainer and the default job decide on it.
 */
import fs from 'node:fs';

/** The CPU's feature flags as /proc/cpuinfo lists them (x86 'flags', Arm 'Features'); undefined without them. */
export function cpuFlags(cpuinfo: string | undefined): Set<string> | undefined {
  if (cpuinfo === undefined) return undefined;
  const line = /^(?:flags|Features)\s*:(.*)$/m.exec(cpuinfo);
  return line ? new Set(line[1].trim().split(/\s+/)) : undefined;
}

/** true where oneDNN has bfloat16 kernels for a CPU with these flags; true when there are none to read (no guess against). */
export function hasBf16Kernels(flags: Set<string> | undefined): boolean {
  if (flags === undefined) return true;
  return ['avx512bw', 'avx512vl', 'avx512dq'].every((f) => flags.has(f)) || flags.has('bf16');
}

let thisCpu: boolean | undefined;

/** hasBf16Kernels of this machine's CPU (read once). */
export function cpuHasBf16Kernels(): boolean {
  if (thisCpu === undefined) {
    let cpuinfo: string | undefined;
    try {
      cpuinfo = fs.readFileSync('/proc/cpuinfo', 'utf8');
    } catch {
      cpuinfo = undefined;
    }
    thisCpu = hasBf16Kernels(cpuFlags(cpuinfo));
  }
  return thisCpu;
}

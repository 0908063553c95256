/**
 * Which CPUs get bfloat16 autocast (src/torch/cpu.ts): libtorch takes oneDNN's bfloat16 kernels only
 * with AVX-512 BW/VL/DQ (or Arm BF16). The flag lines are the /proc/cpuinfo of the machines this
 * project runs on (shortened to the flags that matter plus neighbours).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import * as torch from '../src/torch/index.js';

const cpuinfo = (flags: string, key = 'flags') => `processor\t: 0\nvendor_id\t: X\n${key}\t\t: ${flags}\nbugs\t\t: none\n`;
// AMD EPYC Zen 3 (family 25 model 1): AVX2, no AVX-512
const zen3 = 'fpu sse sse2 ssse3 fma sse4_1 sse4_2 avx f16c avx2 bmi2 sha_ni vaes vpclmulqdq rdpid fsrm';
// AMD EPYC Zen 5 (family 26) and Intel Sapphire Rapids: AVX-512 with BF16 (AMX on the Intel)
const zen5 = 'fpu sse2 avx avx2 avx512f avx512dq avx512ifma avx512cd avx512bw avx512vl avx512_bf16 avx512vbmi';
const spr = 'fpu sse2 avx avx2 avx512f avx512dq avx512cd avx512bw avx512vl avx512_bf16 amx_bf16 amx_tile amx_int8';

test('bfloat16 kernels: AVX-512 BW/VL/DQ or Arm BF16, not AVX2 alone; unreadable flags do not vote against', () => {
  const has = (flags: string, key?: string) => torch.hasBf16Kernels(torch.cpuFlags(cpuinfo(flags, key)));
  assert.equal(has(zen3), false);
  assert.equal(has(zen5), true);
  assert.equal(has(spr), true);
  // AVX-512F without BW (Knights Landing) has no oneDNN bfloat16 path either
  assert.equal(has('avx2 avx512f avx512cd avx512er avx512pf'), false);
  assert.equal(has('fp asimd sve bf16 i8mm', 'Features'), true);
  assert.equal(has('fp asimd', 'Features'), false);
  assert.equal(torch.cpuFlags(undefined), undefined);
  assert.equal(torch.cpuFlags('processor\t: 0\n'), undefined);
  assert.equal(torch.hasBf16Kernels(undefined), true);
  // this machine: what its own flags say
  assert.equal(torch.cpuHasBf16Kernels(), torch.hasBf16Kernels(torch.cpuFlags(fs.readFileSync('/proc/cpuinfo', 'utf8'))));
});

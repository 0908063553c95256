/**
 * Partial FC's sampling of class centres (PartialFC_V2.sample) in TypeScript, for the ops
 * implementation (./partial-fc-ops.ts): the same rule and the same random draws as the fused
 * kernel's sampler (native/src/heads/partial_fc/sampler.cc), so both pick the same rows after the
 * same torch.manualSeed.
 *
 * Every positive centre of the batch that lives in this shard is kept; the other places go to
 * negatives drawn uniformly without replacement by Knuth's selection sampling (Algorithm S) in one
 * ordered pass; the result is sorted by row. The stream is the addon's xoshiro256** (core/rng.h),
 * seeded with one 64-bit draw from libtorch's default CPU generator — taken only when there is a
 * choice to make (not when every row is in, nor when the positives fill the sample), as the kernel does.
 *
 * It runs on the host (labels are [B]; the result is a [S] index): one uniform draw per row of
 * the shard visited, about 2 ms per 100k rows here. No class-sized array is allocated.
 */
import * as torch from '../torch/index.js';
import type { Tensor } from '../torch/index.js';

export interface CentreSample {
  /** rows of the shard in the sample, sorted; null when every row is in (row = position) */
  index: Int32Array | null;
  numSampled: number;
  /** each label's column in the sample, −1 where its centre is on another shard */
  targets: Int32Array;
}

/**
 * labels: global class ids (int64 [B], validated); keeps the positives in
 * [classStart, classStart + numLocal) and uniform negatives, numSample in all (all rows when
 * numSample ≥ numLocal; only the positives when they are more).
 */
export function sampleCentres(labels: Tensor, classStart: number, numLocal: number, numSample: number): CentreSample {
  if (labels.ndim !== 1 || labels.dtype !== 'int64') throw new TypeError('Partial FC: labels must be int64 [B]');
  if (!(numLocal > 0 && numSample >= 0)) throw new RangeError('Partial FC: bad shard size');
  if (numLocal > 2 ** 31 - 1) {
    throw new RangeError(`Partial FC: shards of more than 2^31 − 1 rows are not supported (the sample's rows are int32), got ${numLocal}`);
  }
  const host = labels.device === 'cpu' ? labels : torch.keep(labels.to('cpu'));
  let values: BigInt64Array;
  try {
    values = host.data() as BigInt64Array;
  } finally {
    if (host !== labels) host.dispose();
  }
  const rows = Array.from(values, (l) => Number(l) - classStart);
  // torch.unique(labels[index_positive], sorted=True), as rows of this shard
  const positives = [...new Set(rows.filter((r) => r >= 0 && r < numLocal))].sort((a, b) => a - b);

  let index: Int32Array | null = null;
  let numSampled: number;
  if (numSample >= numLocal) {
    numSampled = numLocal;
  } else if (numSample < positives.length) {  // positives do not fit: take just them, as arcface_torch
    index = Int32Array.from(positives);
    numSampled = positives.length;
  } else {
    index = selectRows(positives, numLocal, numSample);
    numSampled = numSample;
  }
  const targets = Int32Array.from(rows, (r) => (r < 0 || r >= numLocal ? -1 : index ? lowerBound(index, r) : r));
  return { index, numSampled, targets };
}

/** Rows 0..numLocal−1 in order: positives always, each other row with probability need / pool (Algorithm S). */
function selectRows(positives: number[], numLocal: number, numSample: number): Int32Array {
  const out = new Int32Array(numSample);
  const rng = new Xoshiro256(seedFromTorch());
  let need = numSample - positives.length, pool = numLocal - positives.length;
  let p = 0, n = 0;
  for (let row = 0; row < numLocal; ++row) {
    if (p < positives.length && positives[p] === row) {
      out[n++] = row;
      ++p;
      continue;
    }
    if (need > 0 && pool * rng.uniform() < need) {
      out[n++] = row;
      --need;
    }
    --pool;
    if (need === 0) {  // only positives left to take
      for (; p < positives.length; ++p) out[n++] = positives[p];
      break;
    }
  }
  if (n !== numSample) throw new Error(`Partial FC: sampled ${n} rows instead of ${numSample}`);
  return out;
}

function lowerBound(sorted: Int32Array, value: number): number {
  let lo = 0, hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (sorted[mid] < value) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

const _random = torch.aten('random_.from');
const INT64_MIN = -(2 ** 63);

/**
 * One 64-bit draw from libtorch's default CPU generator (what the kernel's SeedFromTorch takes):
 * random_ over the full int64 range hands out random64() unchanged.
 */
export function seedFromTorch(): bigint {
  return torch.tidy(() => {
    const t = torch.empty([1], { dtype: 'int64' });
    _random(t, INT64_MIN, undefined).dispose();
    return BigInt.asUintN(64, (t.data() as BigInt64Array)[0]);
  });
}

const MASK64 = (1n << 64n) - 1n;

/** splitmix64 step (core/rng.h): advances the state, returns the next output. */
function splitMix64(state: { s: bigint }): bigint {
  state.s = (state.s + 0x9e3779b97f4a7c15n) & MASK64;
  let z = state.s;
  z = ((z ^ (z >> 30n)) * 0xbf58476d1ce4e5b9n) & MASK64;
  z = ((z ^ (z >> 27n)) * 0x94d049bb133111ebn) & MASK64;
  return z ^ (z >> 31n);
}

/**
 * The addon's xoshiro256** (core/rng.h) in 32-bit halves (BigInt only for seeding): the same
 * stream, bit for bit. Halves are kept as int32 (V8's small integers, no boxing) and the loop is
 * written out without temporaries: it runs once per row of the shard.
 */
export class Xoshiro256 {
  // [h0, l0, h1, l1, h2, l2, h3, l3]: state words s0..s3 as high/low halves; [8], [9]: the last output
  private readonly s = new Int32Array(10);

  constructor(seed: bigint) {
    const state = { s: BigInt.asUintN(64, seed) };
    for (let k = 0; k < 4; k++) {
      const v = splitMix64(state);
      this.s[2 * k] = Number(BigInt.asIntN(32, v >> 32n));
      this.s[2 * k + 1] = Number(BigInt.asIntN(32, v));
    }
  }

  /** Advances the stream; the output goes to s[8] (high), s[9] (low). */
  private advance(): void {
    const s = this.s;
    const h1 = s[2], l1 = s[3];
    // result = rotl(s1 · 5, 7) · 9, with x·5 = (x << 2) + x and x·9 = (x << 3) + x (carry by unsigned compare)
    let lo = ((l1 << 2) + l1) | 0;
    let hi = (((h1 << 2) | (l1 >>> 30)) + h1 + ((lo >>> 0) < (l1 >>> 0) ? 1 : 0)) | 0;
    const rh = (hi << 7) | (lo >>> 25), rl = (lo << 7) | (hi >>> 25);
    lo = ((rl << 3) + rl) | 0;
    hi = (((rh << 3) | (rl >>> 29)) + rh + ((lo >>> 0) < (rl >>> 0) ? 1 : 0)) | 0;
    s[8] = hi;
    s[9] = lo;
    // t = s1 << 17; s2 ^= s0; s3 ^= s1; s1 ^= s2; s0 ^= s3; s2 ^= t; s3 = rotl(s3, 45)
    const th = (h1 << 17) | (l1 >>> 15), tl = l1 << 17;
    const h2 = s[4] ^ s[0], l2 = s[5] ^ s[1];
    const h3 = s[6] ^ h1, l3 = s[7] ^ l1;
    s[2] = h1 ^ h2;
    s[3] = l1 ^ l2;
    s[0] ^= h3;
    s[1] ^= l3;
    s[4] = h2 ^ th;
    s[5] = l2 ^ tl;
    // rotl by 45: swap the halves, then rotl by 13
    s[6] = (l3 << 13) | (h3 >>> 19);
    s[7] = (h3 << 13) | (l3 >>> 19);
  }

  /** The next 64-bit output as a BigInt (for tests). */
  next(): bigint {
    this.advance();
    return (BigInt(this.s[8] >>> 0) << 32n) | BigInt(this.s[9] >>> 0);
  }

  /** Uniform in [0, 1): the top 53 bits of the next output × 2⁻⁵³, as Rng::Uniform. */
  uniform(): number {
    this.advance();
    return ((this.s[8] >>> 0) * 2097152 + (this.s[9] >>> 11)) * 1.1102230246251565e-16;
  }
}

/**
 * torch.randperm(n, generator=torch.Generator().manual_seed(seed)) on the CPU, bit for bit:
 * libtorch's CPU generator is a 32-bit Mersenne Twister (mt19937 seeded with the low 32 bits of
 * the seed) and randperm a Fisher–Yates pass that swaps i with i + random() % (n − i).
 * So a DistributedSampler here visits samples in the order PyTorch's would.
 */
export class MT19937 {
  private readonly state = new Uint32Array(624);
  private index = 624;

  constructor(seed: number) {
    const s = this.state;
    s[0] = seed >>> 0;
    for (let i = 1; i < 624; i++) {
      const prev = s[i - 1] ^ (s[i - 1] >>> 30);
      // 1812433253 · prev + i, modulo 2^32, without losing bits to float64
      s[i] = (Math.imul(1812433253, prev) + i) >>> 0;
    }
  }

  /** the next 32-bit output */
  next(): number {
    if (this.index >= 624) this.twist();
    let y = this.state[this.index++];
    y ^= y >>> 11;
    y ^= (y << 7) & 0x9d2c5680;
    y ^= (y << 15) & 0xefc60000;
    y ^= y >>> 18;
    return y >>> 0;
  }

  private twist(): void {
    const s = this.state;
    for (let i = 0; i < 624; i++) {
      const y = (s[i] & 0x80000000) | (s[(i + 1) % 624] & 0x7fffffff);
      s[i] = s[(i + 397) % 624] ^ (y >>> 1) ^ (y & 1 ? 0x9908b0df : 0);
    }
    this.index = 0;
  }
}

/** torch.randperm(n) under a generator seeded with `seed` (non-negative integer). */
export function randperm(n: number, seed: number): Int32Array {
  const perm = new Int32Array(n);
  for (let i = 0; i < n; i++) perm[i] = i;
  const rng = new MT19937(seed % 2 ** 32);
  for (let i = 0; i < n - 1; i++) {
    const z = i + (rng.next() % (n - i));
    const t = perm[i];
    perm[i] = perm[z];
    perm[z] = t;
  }
  return perm;
}

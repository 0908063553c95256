/**
 * softmax(q·kᵀ/√d)·v through libtorch's scaled-dot-product attention where the linked libtorch
 * has it, the plain matmul–softmax–matmul otherwise; one probe on first use picks the path.
 *
 *   libtorch ≥ 2.0   aten::scaled_dot_product_attention (fused kernels where the device has them)
 *   libtorch 1.13    aten::_scaled_dot_product_attention (returns the weights too; on the CPU it
 *                    runs the same math composite as the plain path, so no speed or memory change)
 *
 * The probe also checks the fused result against the plain one on a small input, so a libtorch
 * whose operator means something else falls back instead of giving wrong embeddings.
 */
import { aten, arange, matmul, softmax, tidy, type Tensor } from '../torch/index.js';

export type AttentionBackend = 'scaled_dot_product_attention' | '_scaled_dot_product_attention' | 'matmul_softmax';

/** q, k, v: [..., tokens, headDim] → [..., tokens, headDim]. */
export function plainAttention(q: Tensor, k: Tensor, v: Tensor): Tensor {
  return tidy(() => matmul(softmax(matmul(q, k.transpose(-2, -1)).mul(q.shape[q.ndim - 1] ** -0.5), -1), v));
}

const candidates: [AttentionBackend, () => (q: Tensor, k: Tensor, v: Tensor) => Tensor][] = [
  ['scaled_dot_product_attention', () => {
    const op = aten('scaled_dot_product_attention');
    return (q, k, v) => op(q, k, v);
  }],
  ['_scaled_dot_product_attention', () => {
    const op = aten('_scaled_dot_product_attention');
    return (q, k, v) => tidy(() => op(q, k, v)[0]);
  }],
];

let chosen: { backend: AttentionBackend; run: (q: Tensor, k: Tensor, v: Tensor) => Tensor } | undefined;

function probe(): NonNullable<typeof chosen> {
  for (const [backend, make] of candidates) {
    try {
      const run = make();
      const agrees = tidy(() => {
        // fixed values: the probe must not draw from the global generator
        const [q, k, v] = [0.7, 1.3, 2.1].map((f) => arange(0, 120, 1, { dtype: 'float32' }).mul(f).sin().reshape([2, 3, 5, 4]));
        return run(q, k, v).sub(plainAttention(q, k, v)).abs().max().item() < 1e-5;
      });
      if (agrees) return { backend, run };
    } catch {
      // not in this libtorch: try the next
    }
  }
  return { backend: 'matmul_softmax', run: plainAttention };
}

/** The path scaledDotProductAttention takes in this process. */
export function attentionBackend(): AttentionBackend {
  chosen ??= probe();
  return chosen.backend;
}

/** softmax(q·kᵀ/√headDim)·v for q, k, v of shape [..., tokens, headDim]. */
export function scaledDotProductAttention(q: Tensor, k: Tensor, v: Tensor): Tensor {
  chosen ??= probe();
  return chosen.run(q, k, v);
}

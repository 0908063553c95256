/**
 * Numeric checks for the tensor tests. gradcheck compares the gradients that backward() accumulates
 * into every input with requiresGrad against central finite differences, all in float64.
 *
 * The output is reduced to a scalar with fixed pseudo-random weights (L = Σ w·f(x)), so one backward
 * pass gives wᵀJ, which is compared entry by entry with wᵀ(f(x + εeᵢ) − f(x − εeᵢ))/2ε.
 */
import assert from 'node:assert/strict';
import * as torch from '../src/torch/index.js';
import type { Tensor } from '../src/torch/index.js';

export interface GradcheckOptions {
  eps?: number;
  rtol?: number;
  atol?: number;
}

/** Asserts |actual − expected| ≤ atol + rtol·|expected| elementwise (flat, any numeric array-likes). */
export function assertClose(
  actual: ArrayLike<number> | Tensor | number,
  expected: ArrayLike<number> | Tensor | number,
  { rtol = 1e-5, atol = 1e-6 }: { rtol?: number; atol?: number } = {},
): void {
  const flat = (v: ArrayLike<number> | Tensor | number): number[] =>
    typeof v === 'number' ? [v] : v instanceof torch.Tensor ? Array.from(v.data() as ArrayLike<number>, Number) : Array.from(v, Number);
  const a = flat(actual), e = flat(expected);
  assert.equal(a.length, e.length, `assertClose: ${a.length} elements vs ${e.length} expected`);
  for (let i = 0; i < a.length; i++) {
    const ok = Object.is(a[i], e[i]) || Math.abs(a[i] - e[i]) <= atol + rtol * Math.abs(e[i]);
    assert.ok(ok, `assertClose: element ${i}: ${a[i]} vs expected ${e[i]}`);
  }
}

/** Deterministic weights in ±[0.5, 1.5), so no output element is ignored or dominant. */
function projectionWeights(n: number, seed: number): Float64Array {
  let s = seed >>> 0;
  const next = () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
  return Float64Array.from({ length: n }, () => (next() < 0.5 ? -1 : 1) * (0.5 + next()));
}

/**
 * Asserts that backward() of fn(...inputs) matches central differences for each float64 input
 * that requires grad. Inputs that do not require grad (indices, masks, constants) pass through.
 */
export function gradcheck(fn: (...inputs: Tensor[]) => Tensor, inputs: Tensor[], options: GradcheckOptions = {}): void {
  const { eps = 1e-6, rtol = 1e-6, atol = 1e-8 } = options;
  const checked = inputs.filter((x) => x.requiresGrad);
  assert.ok(checked.length > 0, 'gradcheck: no input requires grad');
  for (const x of checked) assert.equal(x.dtype, 'float64', 'gradcheck: inputs that require grad must be float64');

  torch.tidy(() => {
    const out = fn(...inputs);
    assert.equal(out.dtype, 'float64', 'gradcheck: fn must return a float64 tensor');
    const weights = projectionWeights(out.numel, 12345);
    for (const x of checked) x.grad = undefined;
    torch.sum(torch.mul(out, torch.tensor(weights, { dtype: 'float64', shape: out.shape }))).backward();

    checked.forEach((x, k) => {
      const grad = x.grad;
      const analytic = grad === undefined ? new Float64Array(x.numel) : (grad.data() as Float64Array);
      if (grad !== undefined) assert.deepEqual(grad.shape, x.shape, `gradcheck: grad of input ${k} has the wrong shape`);
      const values = x.data() as Float64Array;
      const outputAt = (i: number, delta: number) =>
        torch.tidy(() => {
          const moved = Float64Array.from(values);
          moved[i] += delta;
          const args = inputs.map((input) => (input === x ? torch.tensor(moved, { dtype: 'float64', shape: x.shape }) : input));
          return torch.noGrad(() => fn(...args).data() as Float64Array);
        });
      for (let i = 0; i < values.length; i++) {
        // Differences per output element first: outputs that x[i] does not touch cancel exactly,
        // so large unrelated outputs add no rounding error.
        const plus = outputAt(i, eps), minus = outputAt(i, -eps);
        let numeric = 0;
        for (let j = 0; j < plus.length; j++) numeric += (weights[j] * (plus[j] - minus[j])) / (2 * eps);
        const error = Math.abs(analytic[i] - numeric);
        assert.ok(
          error <= atol + rtol * Math.abs(numeric),
          `gradcheck: input ${k} element ${i}: analytic ${analytic[i]} vs numeric ${numeric} (error ${error.toExponential(2)})`,
        );
      }
      x.grad = undefined;
    });
  });
}

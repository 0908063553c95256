/**
 * Deterministic backbone weights and inputs: the formula of test/fixtures/backbone_weights.py,
 * computed in float64 and rounded to float32, so PyTorch and arcface-ts build the same weights
 * without sharing a random generator.
 */
import * as torch from '../src/torch/index.js';

function role(name: string, shape: number[], names: Set<string>): [base: number, scale: number] {
  const dot = name.lastIndexOf('.');
  const prefix = name.slice(0, dot), leaf = name.slice(dot + 1);
  if (leaf === 'running_var') return [1.0, 0.5];
  if (leaf === 'running_mean' || leaf === 'bias') return [0.0, 0.1];
  if (shape.length === 1) return names.has(`${prefix}.running_mean`) ? [1.0, 0.1] : [0.25, 0.05];
  const fanIn = shape.slice(1).reduce((a, b) => a * b, 1);
  return [0.0, Math.sqrt(3.0 / fanIn)];
}

/** Values for every float entry of `template` (same keys and shapes), in its order. */
export function deterministicStateDict(template: Map<string, torch.Tensor>): Map<string, torch.Tensor> {
  const names = new Set(template.keys());
  const out = new Map<string, torch.Tensor>();
  [...template].forEach(([name, t], k) => {
    if (t.dtype !== 'float32') {
      out.set(name, t.clone());
      return;
    }
    const [base, scale] = role(name, t.shape, names);
    const values = Float32Array.from({ length: t.numel }, (_, i) => base + scale * Math.sin(0.7 * i + 1.3 * k + 0.1));
    out.set(name, torch.tensor(values, { shape: t.shape }));
  });
  return out;
}

export function deterministicInput(batch: number): torch.Tensor {
  const n = batch * 3 * 112 * 112;
  const values = Float32Array.from({ length: n }, (_, i) => Math.sin(0.001 * i * (1 + (i % 7))));
  return torch.tensor(values, { shape: [batch, 3, 112, 112] });
}

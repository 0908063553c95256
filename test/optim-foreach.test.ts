/**
 * The multi-tensor optimizer steps (`foreach: true`: torch.optim's _multi_tensor_sgd / _multi_tensor_adamw)
 * against the per-parameter ones (`foreach: false`, held to PyTorch by optim.test.ts): over several steps
 * with momentum, Nesterov, dampening, weight decay, parameters of three dtypes in one group (so several
 * (device, dtype) groups per call) and gradients missing at some steps (buffers created while others
 * exist), the parameters and every state tensor must be bit-for-bit the same. On the CPU both paths run
 * the same elementwise kernels (libtorch's CPU foreach ops loop over the per-tensor ops), so equality is
 * exact; on CUDA the multi-tensor kernels compute in the same opmath precision. State dicts move between
 * the two paths: a run saved from one and resumed on the other continues bit-for-bit.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as torch from '../src/torch/index.js';
import type { Dtype, Tensor } from '../src/torch/index.js';
import { AdamW, SGD, type Optimizer } from '../src/optim/index.js';

const SHAPES: [number[], Dtype][] = [
  [[6, 5], 'float32'],
  [[7], 'float32'],
  [[3, 4], 'float64'],
  [[9], 'bfloat16'],
  [[2, 2, 3], 'float32'],
];
const STEPS = 6;
/** Which parameters have no gradient at which step (0-based): p1 has none at first, p4 skips a step. */
const MISSING: Record<number, number[]> = { 0: [1], 1: [1], 3: [4] };

type Kind = 'sgd' | 'adamw';
interface Case {
  name: string;
  kind: Kind;
  options: Record<string, unknown>;
}
const CASES: Case[] = [
  { name: 'sgd momentum + weight decay', kind: 'sgd', options: { lr: 0.1, momentum: 0.9, weightDecay: 5e-4 } },
  { name: 'sgd nesterov + weight decay', kind: 'sgd', options: { lr: 0.05, momentum: 0.9, nesterov: true, weightDecay: 1e-3 } },
  { name: 'sgd nesterov, no weight decay', kind: 'sgd', options: { lr: 0.05, momentum: 0.8, nesterov: true } },
  { name: 'sgd dampening', kind: 'sgd', options: { lr: 0.2, momentum: 0.5, dampening: 0.3 } },
  { name: 'sgd plain + weight decay', kind: 'sgd', options: { lr: 0.3, weightDecay: 1e-2 } },
  { name: 'adamw defaults', kind: 'adamw', options: {} },
  { name: 'adamw weight decay, betas, eps', kind: 'adamw', options: { lr: 3e-3, betas: [0.8, 0.99], eps: 1e-6, weightDecay: 0.1 } },
  { name: 'adamw no weight decay', kind: 'adamw', options: { lr: 1e-2, weightDecay: 0 } },
];

/** Deterministic values (a small LCG, independent of torch's generator). */
function values(n: number, seed: number): Float32Array {
  let s = seed >>> 0;
  return Float32Array.from({ length: n }, () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return (2 * s) / 2 ** 32 - 1;
  });
}

const numel = (shape: number[]) => shape.reduce((a, b) => a * b, 1);
const make = (k: number, seed: number, requiresGrad = false): Tensor => {
  const [shape, dtype] = SHAPES[k];
  const f = torch.tensor(values(numel(shape), seed), { shape });
  const t = f.to(dtype);
  f.dispose();
  t.requiresGrad = requiresGrad;
  return t;
};

function makeParams(): Tensor[] {
  return SHAPES.map((_, k) => make(k, 100 + k, true));
}

/** Two groups: the first holds four parameters of three dtypes, the second one more with its own lr. */
function makeOptimizer(c: Case, params: Tensor[], foreach: boolean): Optimizer {
  const groups = [{ params: params.slice(0, 4) }, { params: params.slice(4), lr: 0.01 }];
  const options = { ...c.options, foreach };
  return c.kind === 'sgd' ? new SGD(groups, options as unknown as { lr: number }) : new AdamW(groups, options);
}

function setGrads(params: Tensor[], step: number): void {
  params.forEach((p, k) => {
    p.grad = MISSING[step]?.includes(k) ? undefined : make(k, 1000 * (step + 1) + k);
  });
}

function stepBoth(a: { opt: Optimizer; params: Tensor[] }, b: { opt: Optimizer; params: Tensor[] }, from: number, to: number, check: (step: number) => void): void {
  for (let step = from; step < to; step++) {
    for (const side of [a, b]) {
      setGrads(side.params, step);
      torch.tidy(() => side.opt.step());
      side.opt.zeroGrad();
    }
    check(step);
  }
}

const bits = (t: Tensor): number[] => Array.from(new Uint8Array(t.toBuffer()));

function assertSameTensor(x: Tensor, y: Tensor, what: string): void {
  assert.equal(x.dtype, y.dtype, `${what}: dtype`);
  assert.deepEqual(x.shape, y.shape, `${what}: shape`);
  assert.deepEqual(bits(x), bits(y), `${what}: bit-for-bit`);
}

/** Parameters and every state entry equal bit for bit; the state dicts' layouts equal but for foreach. */
function assertSame(a: { opt: Optimizer; params: Tensor[] }, b: { opt: Optimizer; params: Tensor[] }, what: string): void {
  a.params.forEach((p, k) => assertSameTensor(p, b.params[k], `${what}: param ${k}`));
  const sa = a.opt.stateDict(), sb = b.opt.stateDict();
  assert.deepEqual([...sa.state.keys()], [...sb.state.keys()], `${what}: state indices`);
  for (const [i, entry] of sa.state) {
    const other = sb.state.get(i)!;
    assert.deepEqual(Object.keys(entry), Object.keys(other), `${what}: state[${i}] keys`);
    for (const [key, value] of Object.entries(entry)) {
      if (value instanceof torch.Tensor) assertSameTensor(value, other[key] as Tensor, `${what}: state[${i}].${key}`);
      else assert.equal(value, other[key], `${what}: state[${i}].${key}`);
    }
  }
  const withoutForeach = (g: Record<string, unknown>) => ({ ...g, foreach: undefined });
  assert.deepEqual(sa.param_groups.map(withoutForeach), sb.param_groups.map(withoutForeach), `${what}: param_groups`);
}

for (const c of CASES) {
  test(`${c.name}: foreach gives the per-parameter path's parameters and state, bit for bit`, () => {
    using _scope = new torch.Scope();
    const perParam = { params: makeParams(), opt: undefined as unknown as Optimizer };
    const foreach = { params: makeParams(), opt: undefined as unknown as Optimizer };
    perParam.opt = makeOptimizer(c, perParam.params, false);
    foreach.opt = makeOptimizer(c, foreach.params, true);
    const initial = foreach.params.map(bits);
    stepBoth(perParam, foreach, 0, STEPS, (step) => assertSame(perParam, foreach, `step ${step + 1}`));
    assert.ok(foreach.params.every((p, k) => bits(p).join() !== initial[k].join()), 'every parameter moved');
    if (c.kind === 'sgd' && (c.options.momentum ?? 0) !== 0) {
      assert.equal(foreach.opt.state.size, SHAPES.length, 'a momentum buffer for every parameter, the late ones too');
    }
    perParam.opt.dispose();
    foreach.opt.dispose();
  });

  test(`${c.name}: a state dict saved on one path resumes on the other, bit for bit`, () => {
    using _scope = new torch.Scope();
    for (const [savedOn, resumedOn] of [[true, false], [false, true]]) {
      const uninterrupted = { params: makeParams(), opt: undefined as unknown as Optimizer };
      uninterrupted.opt = makeOptimizer(c, uninterrupted.params, savedOn);
      const first = { params: makeParams(), opt: undefined as unknown as Optimizer };
      first.opt = makeOptimizer(c, first.params, savedOn);
      stepBoth(uninterrupted, first, 0, 3, () => {});

      const saved = first.opt.stateDict();
      const resumed = { params: first.params, opt: makeOptimizer(c, first.params, resumedOn) };
      resumed.opt.loadStateDict({ ...saved, param_groups: saved.param_groups.map((g) => ({ ...g, foreach: resumedOn })) });
      first.opt.dispose();
      assert.ok(resumed.opt.paramGroups.every((g) => (g as { foreach?: boolean }).foreach === resumedOn));
      stepBoth(uninterrupted, resumed, 3, STEPS, (step) => assertSame(uninterrupted, resumed, `saved on foreach ${savedOn}, step ${step + 1}`));
      uninterrupted.opt.dispose();
      resumed.opt.dispose();
    }
  });
}

test('foreach SGD leaves the gradients as they were (PyTorch adds Nesterov momentum into them in place)', () => {
  using _scope = new torch.Scope();
  const params = makeParams();
  const opt = new SGD(params, { lr: 0.1, momentum: 0.9, nesterov: true, foreach: true });
  for (let step = 0; step < 2; step++) {
    setGrads(params, 2);
    const before = params.map((p) => bits(p.grad!));
    opt.step();
    params.forEach((p, k) => assert.deepEqual(bits(p.grad!), before[k], `grad ${k} after step ${step + 1}`));
    opt.zeroGrad();
  }
  opt.dispose();
});

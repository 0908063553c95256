/**
 * src/optim against PyTorch 1.13 (test/fixtures/optim_trajectories.json, made by make_optim_fixture.py):
 * parameter trajectories of SGD / AdamW under fixed gradients, state dicts (layout, loading PyTorch's,
 * round trip) — each for the per-parameter and the multi-tensor (foreach) step — PolynomialLRWarmup's
 * lr sequence and arcface_torch's training-loop use of it, clip_grad_norm_, and GradScaler's skip /
 * backoff / growth behaviour.
 *
 * Tolerance for float32 tensors: |ts − torch| ≤ 1e-6·|torch| + 1e-7 elementwise (the kernels are
 * libtorch's own, so differences are at most a rounding or two). Learning rates are float64 JS
 * arithmetic against Python's: relative 1e-12. A recorded fixture holds on either CPU kind: the
 * updates are elementwise under fixed gradients (no reduction whose order could change), so the
 * only machine dependence is an FMA contraction, one rounding — inside the tolerance.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import * as torch from '../src/torch/index.js';
import { native } from '../src/torch/native.js';
import type { Tensor } from '../src/torch/index.js';
import {
  AdamW,
  GradScaler,
  PolynomialLRWarmup,
  SGD,
  clipGradNorm,
  type Optimizer,
  type LoadedOptimizerStateDict,
  type LRSchedulerStateDict,
  type OptimizerStateDict,
  type StateValue,
} from '../src/optim/index.js';
import { fixturePath } from './helpers.js';

interface Flat {
  shape: number[];
  data: number[];
}
type Name = 'w' | 'b';
type Values = Record<Name, number[]>;
interface PyStateDict {
  state: Record<string, Record<string, Flat | number | null>>;
  param_groups: ({ params: number[] } & Record<string, unknown>)[];
}
interface OptimizerCase {
  name: string;
  kind: 'sgd' | 'adamw';
  options: Record<string, unknown>;
  groups: { params: Name[]; options?: Record<string, unknown> }[];
  trajectory: Values[];
  state_dict_mid: PyStateDict;
  state_dict_final: PyStateDict;
}

const fx = JSON.parse(readFileSync(fixturePath('optim_trajectories.json'), 'utf8'));
const NAMES: Name[] = ['w', 'b'];
const STEPS: number = fx.grads.length;
const MID: number = fx.mid;
const cases: OptimizerCase[] = fx.optimizers;

function assertClose(actual: ArrayLike<number>, expected: number[], what: string, rtol = 1e-6, atol = 1e-7): void {
  assert.equal(actual.length, expected.length, `${what}: length`);
  for (let i = 0; i < expected.length; i++) {
    const err = Math.abs(actual[i] - expected[i]);
    assert.ok(err <= rtol * Math.abs(expected[i]) + atol, `${what}[${i}]: ${actual[i]} vs torch ${expected[i]}`);
  }
}

const fromFlat = (f: Flat): Tensor => torch.tensor(Float32Array.from(f.data), { shape: f.shape });

function makeParams(values: Values = { w: fx.init.w.data, b: fx.init.b.data }): Record<Name, Tensor> {
  const make = (n: Name) => torch.tensor(Float32Array.from(values[n]), { shape: fx.init[n].shape, requiresGrad: true });
  return { w: make('w'), b: make('b') };
}

function gradData(k: number, n: Name, scale = 1): Float32Array | undefined {
  const g: number[] | null = fx.grads[k][n];
  return g === null ? undefined : Float32Array.from(g, (v) => Math.fround(v * scale));
}

/** The fixture's gradients of step k (times scale, in float32 as torch multiplies them). */
function setGrads(params: Record<Name, Tensor>, k: number, scale = 1): void {
  for (const n of NAMES) {
    const data = gradData(k, n, scale);
    params[n].grad = data && torch.tensor(data, { shape: fx.init[n].shape });
  }
}

const paramValues = (params: Record<Name, Tensor>): Values => ({ w: [...params.w.data()] as number[], b: [...params.b.data()] as number[] });

function assertParams(params: Record<Name, Tensor>, expected: Values, what: string): void {
  for (const n of NAMES) assertClose(params[n].data() as Float32Array, expected[n], `${what} ${n}`);
}

function makeOptimizer(c: OptimizerCase, params: Record<Name, Tensor>, overrides: Record<string, unknown> = {}, groupOptions = true): Optimizer {
  const groups = c.groups.map((g) => ({ params: g.params.map((n) => params[n]), ...(groupOptions ? g.options : {}) }));
  const options = { ...c.options, ...overrides };
  return c.kind === 'sgd' ? new SGD(groups, options as { lr: number }) : new AdamW(groups, options);
}

/** Steps from..to-1 with the fixture's gradients; each step inside tidy(), so state must survive scopes. */
function run(opt: Optimizer, params: Record<Name, Tensor>, from: number, to: number, check?: (k: number) => void): void {
  for (let k = from; k < to; k++) {
    setGrads(params, k);
    torch.tidy(() => opt.step());
    opt.zeroGrad();
    check?.(k);
  }
}

const PY_ONLY_OPTIONS = new Set(['maximize', 'differentiable', 'amsgrad', 'capturable']);

/** PyTorch's state dict with `foreach` set in every group (the fixture has PyTorch's default, None). */
function withForeach(py: PyStateDict, foreach: boolean | null): PyStateDict {
  return { ...py, param_groups: py.param_groups.map((g) => ({ ...g, foreach })) };
}

/** Our state dict has PyTorch's layout and values (PyTorch's extra options are ones we fix to their defaults). */
function assertStateDictMatches(ours: OptimizerStateDict, py: PyStateDict, what: string): void {
  assert.deepEqual([...ours.state.keys()].sort(), Object.keys(py.state).map(Number).sort(), `${what}: state indices`);
  for (const [i, entry] of ours.state) {
    const expected = py.state[String(i)];
    assert.deepEqual(Object.keys(entry), Object.keys(expected), `${what}: state[${i}] keys`);
    for (const [key, value] of Object.entries(entry)) {
      const e = expected[key];
      if (value instanceof torch.Tensor) {
        const flat = e as Flat;
        assert.deepEqual(value.shape, flat.shape);
        assertClose(value.data() as Float32Array, flat.data, `${what}: state[${i}].${key}`);
      } else {
        assert.equal(value, e, `${what}: state[${i}].${key}`);
      }
    }
  }
  assert.equal(ours.param_groups.length, py.param_groups.length);
  ours.param_groups.forEach((group, i) => {
    const expected = py.param_groups[i];
    for (const key of Object.keys(expected)) if (!PY_ONLY_OPTIONS.has(key)) assert.ok(key in group, `${what}: group ${i} lacks ${key}`);
    for (const [key, value] of Object.entries(group)) assert.deepEqual(value, expected[key], `${what}: group ${i}.${key}`);
  });
}

/** A PyTorch state dict as a torch.load reader may give it: a plain object, AdamW's step a 0-d tensor. */
function toStateDict(py: PyStateDict): LoadedOptimizerStateDict {
  const value = (key: string, v: Flat | number | null): StateValue =>
    v === null ? null : typeof v === 'number' ? (key === 'step' ? torch.tensor(v) : v) : fromFlat(v);
  const state = Object.fromEntries(
    Object.entries(py.state).map(([i, entry]) => [i, Object.fromEntries(Object.entries(entry).map(([k, v]) => [k, value(k, v)]))]),
  );
  return { state, param_groups: py.param_groups };
}

// foreach null: PyTorch's default (per-parameter on the CPU); true: the multi-tensor kernels.
for (const c of cases) {
  for (const foreach of [null, true]) {
    const variant = `${c.name} (foreach ${foreach})`;
    const opts = { foreach };

    test(`${variant}: trajectory and state dict match torch.optim`, () => {
      using _scope = new torch.Scope();
      const params = makeParams();
      const opt = makeOptimizer(c, params, opts);
      run(opt, params, 0, STEPS, (k) => {
        for (const n of NAMES) assert.equal(params[n].grad, undefined, 'zeroGrad sets grads to undefined');
        assertParams(params, c.trajectory[k], `step ${k + 1}`);
      });
      assertStateDictMatches(opt.stateDict(), withForeach(c.state_dict_final, foreach), 'final state dict');
      opt.dispose();
    });

    test(`${variant}: loading PyTorch's mid-run state dict continues its trajectory`, () => {
      using _scope = new torch.Scope();
      const params = makeParams(c.trajectory[MID - 1]);
      // Built with a wrong lr and no per-group options: all hyper-parameters (foreach too) must come from the dict.
      const opt = makeOptimizer(c, params, { lr: 123, foreach: !foreach }, false);
      opt.loadStateDict(toStateDict(withForeach(c.state_dict_mid, foreach)));
      assert.ok(opt.paramGroups.every((g) => (g as { foreach?: boolean | null }).foreach === foreach), 'foreach from the dict');
      run(opt, params, MID, STEPS, (k) => assertParams(params, c.trajectory[k], `step ${k + 1}`));
      opt.dispose();
    });

    test(`${variant}: stateDict → loadStateDict round trip continues as if uninterrupted`, () => {
      using _scope = new torch.Scope();
      const reference = makeParams();
      const uninterrupted = makeOptimizer(c, reference, opts);
      const expected: Values[] = [];
      run(uninterrupted, reference, 0, STEPS, () => expected.push(paramValues(reference)));
      uninterrupted.dispose();

      const first = makeParams();
      const before = makeOptimizer(c, first, opts);
      run(before, first, 0, MID);
      const params = makeParams(paramValues(first));
      const resumed = makeOptimizer(c, params, { lr: 123 }, false);
      resumed.loadStateDict(before.stateDict());
      before.dispose(); // the resumed optimizer holds copies
      run(resumed, params, MID, STEPS, (k) => assert.deepEqual(paramValues(params), expected[k], `step ${k + 1} bitwise`));
      resumed.dispose();
    });
  }
}

test('SGD and AdamW step each group with one native call; foreach picks the multi-tensor path, null the per-parameter one on the CPU', () => {
  using _scope = new torch.Scope();
  for (const [kind, fn] of [['sgd', 'sgdStep'], ['adamw', 'adamwStep']] as const) {
    for (const [foreach, expected] of [[null, false], [false, false], [true, true]] as const) {
      const c = cases.find((x) => x.kind === kind && x.groups.length === 2)!;
      const params = makeParams();
      const opt = makeOptimizer(c, params, { foreach });
      const original = native[fn];
      const used: boolean[] = [];
      (native as unknown as Record<string, unknown>)[fn] = (...args: unknown[]) => {
        used.push((args[args.length - 1] as { foreach: boolean }).foreach);
        return (original as (...a: unknown[]) => unknown)(...args);
      };
      try {
        setGrads(params, 0);
        opt.step();
      } finally {
        (native as unknown as Record<string, unknown>)[fn] = original;
      }
      assert.deepEqual(used, [expected, expected], `${kind} foreach ${foreach}: one call per group`);
      opt.dispose();
    }
  }
});

test('dispose() frees the state tensors; state survives the scopes step() runs in', () => {
  using _scope = new torch.Scope();
  const params = makeParams();
  const opt = new AdamW([params.w, params.b]);
  run(opt, params, 0, 2);
  const held = [...opt.state.values()].flatMap((s) => [s.expAvg, s.expAvgSq]);
  assert.equal(held.length, 4);
  assert.ok(held.every((t) => !t.isDisposed));
  opt.dispose();
  assert.ok(held.every((t) => t.isDisposed));
  assert.equal(opt.state.size, 0);
});

test('loadStateDict copies state tensors, cast to the parameter dtype', () => {
  using _scope = new torch.Scope();
  const { w } = makeParams();
  const saved = torch.ones([3, 4], { dtype: 'float64' });
  const opt = new SGD([w], { lr: 0.1, momentum: 0.9 });
  opt.loadStateDict({ state: new Map([[0, { momentum_buffer: saved }]]), param_groups: [{ lr: 0.1, momentum: 0.9, params: [0] }] });
  const buf = opt.state.get(w)!.momentumBuffer!;
  assert.equal(buf.dtype, 'float32');
  saved.fill_(5);
  assert.deepEqual([...buf.data()], Array(12).fill(1));
  opt.dispose();
});

test('optimizer argument checks follow torch.optim', () => {
  using _scope = new torch.Scope();
  const { w, b } = makeParams();
  assert.throws(() => new SGD([], { lr: 0.1 }), /empty parameter list/);
  assert.throws(() => new SGD([w], { lr: -1 }), /Invalid learning rate/);
  assert.throws(() => new SGD([w], { lr: 0.1, nesterov: true }), /Nesterov momentum requires/);
  assert.throws(() => new SGD([{ params: [w] }, { params: [w, b] }], { lr: 0.1 }), /more than one parameter group/);
  assert.throws(() => new SGD([w.mul(2)], { lr: 0.1 }), /non-leaf/);
  assert.throws(() => new AdamW([w], { betas: [0.9, 1] }), /Invalid beta parameter at index 1/);
  assert.throws(() => new SGD([w], { lr: 0.1, foreach: 'yes' as unknown as boolean }), /Invalid foreach value: yes/);
  assert.throws(() => new AdamW([w], { foreach: 1 as unknown as boolean }), /Invalid foreach value: 1/);
  const opt = new SGD([{ params: [w] }, { params: [b], lr: 0.5 }], { lr: 0.1, momentum: 0.9 });
  assert.deepEqual(opt.paramGroups.map((g) => [g.lr, g.momentum]), [[0.1, 0.9], [0.5, 0.9]]);
  const sd = opt.stateDict();
  assert.throws(() => new SGD([w, b], { lr: 0.1 }).loadStateDict(sd), /different number of parameter groups/);
  assert.throws(() => new SGD([{ params: [w, b] }, { params: [] }], { lr: 0.1 }).loadStateDict(sd), /doesn't match the size/);
  const maximizing = { ...sd, param_groups: sd.param_groups.map((g) => ({ ...g, maximize: true })) };
  assert.throws(() => opt.loadStateDict(maximizing), /maximize=true is not supported/);
});

for (const s of fx.schedules as {
  warmupIters: number;
  totalIters: number;
  power: number;
  baseLrs: number[];
  lrs: number[][];
  stateAt: number;
  stateDict: Record<string, unknown>;
}[]) {
  test(`PolynomialLRWarmup(warmup ${s.warmupIters}, total ${s.totalIters}, power ${s.power}) matches arcface_torch`, () => {
    using _scope = new torch.Scope();
    const groups = s.baseLrs.map((lr) => ({ params: [torch.zeros([1], { requiresGrad: true })], lr }));
    const opt = new SGD(groups, { lr: s.baseLrs[0] });
    const sched = new PolynomialLRWarmup(opt, { warmupIters: s.warmupIters, totalIters: s.totalIters, power: s.power });
    const check = (lrs: number[], expected: number[], what: string) => assertClose(lrs, expected, what, 1e-12, 1e-15);
    check(sched.getLastLr(), s.lrs[0], 'lr at construction');
    let saved: { optimizer: OptimizerStateDict; scheduler: LRSchedulerStateDict } | undefined;
    for (let k = 1; k < s.lrs.length; k++) {
      opt.step();
      sched.step();
      check(sched.getLastLr(), s.lrs[k], `lr after step ${k}`);
      check(opt.paramGroups.map((g) => g.lr), s.lrs[k], `group lr after step ${k}`);
      if (k === s.stateAt) {
        saved = { optimizer: opt.stateDict(), scheduler: sched.stateDict() };
        assert.deepEqual(Object.keys(saved.scheduler).sort(), Object.keys(s.stateDict).sort());
        for (const [key, value] of Object.entries(s.stateDict)) {
          const ours: unknown = saved.scheduler[key];
          if (Array.isArray(value)) check(ours as number[], value as number[], `state_dict ${key}`);
          else assert.equal(ours, value, `state_dict ${key}`);
        }
        assert.deepEqual(saved.optimizer.param_groups.map((g) => g.initial_lr), s.baseLrs, 'initial_lr in the optimizer groups');
      }
    }
    // Resume as arcface_torch does: a fresh optimizer and scheduler, then both state dicts.
    const opt2 = new SGD(s.baseLrs.map(() => ({ params: [torch.zeros([1], { requiresGrad: true })] })), { lr: 7 });
    const sched2 = new PolynomialLRWarmup(opt2, { warmupIters: 1, totalIters: 2 });
    opt2.loadStateDict(saved!.optimizer);
    sched2.loadStateDict(saved!.scheduler);
    check(sched2.getLastLr(), s.lrs[s.stateAt], 'resumed last lr');
    for (let k = s.stateAt + 1; k < s.lrs.length; k++) {
      sched2.step();
      check(sched2.getLastLr(), s.lrs[k], `resumed lr after step ${k}`);
    }
  });
}

test("arcface_torch's loop (clip, SGD step, zero_grad, scheduler step) matches PyTorch", () => {
  using _scope = new torch.Scope();
  const a = fx.arcfaceLoop;
  const params = makeParams();
  const opt = new SGD([{ params: [params.w] }, { params: [params.b] }], { lr: 0.1, momentum: 0.9, weightDecay: 5e-4 });
  const sched = new PolynomialLRWarmup(opt, { warmupIters: a.warmupIters, totalIters: a.totalIters });
  for (let k = 0; k < STEPS; k++) {
    setGrads(params, k, a.gradScale);
    clipGradNorm([params.w], a.maxNorm).dispose();
    assertClose(opt.paramGroups.map((g) => g.lr), a.lrs[k], `lr used at iteration ${k + 1}`, 1e-12, 1e-15);
    torch.tidy(() => opt.step());
    opt.zeroGrad();
    sched.step();
    assertParams(params, a.trajectory[k], `iteration ${k + 1}`);
  }
  opt.dispose();
});

for (const c of fx.clip as {
  maxNorm: number;
  normType: number | 'inf';
  withGrad: Name[];
  totalNorm: number;
  grads: Record<Name, number[] | null>;
}[]) {
  test(`clipGradNorm(maxNorm ${c.maxNorm}, norm ${c.normType}, grads of ${c.withGrad.join('+')}) matches clip_grad_norm_`, () => {
    using _scope = new torch.Scope();
    const params = makeParams();
    setGrads(params, 0);
    if (!c.withGrad.includes('b')) params.b.grad = undefined;
    const total = clipGradNorm([params.w, params.b], c.maxNorm, c.normType);
    assert.deepEqual(total.shape, [], 'the total norm is a 0-d tensor, as clip_grad_norm_ returns it');
    assertClose([total.item()], [c.totalNorm], 'total norm');
    for (const n of NAMES) {
      const g = params[n].grad;
      if (c.grads[n] === null) assert.equal(g, undefined);
      else assertClose(g!.data() as Float32Array, c.grads[n]!, `clipped grad ${n}`);
    }
  });
}

test('clipGradNorm without gradients returns 0; a single tensor is accepted', () => {
  using _scope = new torch.Scope();
  const { w } = makeParams();
  assert.equal(clipGradNorm(w, 1).item(), 0);
  w.grad = torch.tensor([[3, 0, 0, 0], [4, 0, 0, 0], [0, 0, 0, 0]]);
  assertClose([clipGradNorm(w, 1).item()], [5], 'norm');
  assertClose(w.grad!.data() as Float32Array, [3 / (5 + 1e-6), 0, 0, 0, 4 / (5 + 1e-6), 0, 0, 0, 0, 0, 0, 0], 'clipped');
});

test('GradScaler skips steps with inf/NaN, backs off and grows as torch.cuda.amp.GradScaler', () => {
  using _scope = new torch.Scope();
  const g = fx.gradScaler;
  const params = makeParams();
  const opt = new SGD([params.w, params.b], { lr: 0.1, momentum: 0.9 });
  const scaler = new GradScaler(g.options);
  g.steps.forEach((s: { scaleBefore: number; explicitUnscale: boolean; stepped: boolean; scaleAfter: number; growthTracker: number; params: Values }, k: number) => {
    assert.equal(scaler.getScale(), s.scaleBefore, `scale before iteration ${k + 1}`);
    for (const n of NAMES) {
      const data = gradData(k, n, scaler.getScale());
      const bad = g.bad[String(k)];
      if (data && bad?.[0] === n) data[bad[1]] = bad[2] === 'inf' ? Infinity : NaN;
      params[n].grad = data && torch.tensor(data, { shape: fx.init[n].shape });
    }
    if (s.explicitUnscale) scaler.unscale_(opt);
    assert.equal(scaler.step(opt), s.stepped, `stepped at iteration ${k + 1}`);
    scaler.update();
    opt.zeroGrad();
    assert.equal(scaler.getScale(), s.scaleAfter, `scale after iteration ${k + 1}`);
    assert.equal(scaler.getGrowthTracker(), s.growthTracker, `growth tracker after iteration ${k + 1}`);
    assertParams(params, s.params, `iteration ${k + 1}`);
  });
  assert.deepEqual(scaler.stateDict(), g.stateDict);
  const resumed = new GradScaler();
  resumed.loadStateDict(scaler.stateDict());
  assert.deepEqual(resumed.stateDict(), g.stateDict);
  opt.dispose();
});

test('GradScaler.scale multiplies the loss; the stage checks of torch.cuda.amp.GradScaler hold', () => {
  using _scope = new torch.Scope();
  const { w, b } = makeParams();
  const opt = new SGD([w, b], { lr: 0.1 });
  const scaler = new GradScaler({ initScale: 256, growthInterval: 1 });
  const loss = w.sum().add(b.mul(3).sum());
  const scaled = scaler.scale(loss);
  assert.notEqual(scaled, loss);
  assert.equal(scaled.item(), Math.fround(loss.item() * 256));
  scaled.backward();
  assert.deepEqual([...w.grad!.data()], Array(12).fill(256));
  assert.throws(() => scaler.update(), /No inf checks were recorded/);
  scaler.unscale_(opt);
  assert.deepEqual([...b.grad!.data()], Array(4).fill(3));
  assert.throws(() => scaler.unscale_(opt), /already been called on this optimizer/);
  assert.equal(scaler.step(opt), true);
  assert.throws(() => scaler.step(opt), /step\(\) has already been called/);
  assert.throws(() => scaler.unscale_(opt), /after step/);
  scaler.update();
  assert.equal(scaler.getScale(), 512);

  // growth stops short of float32 overflow
  const top = new GradScaler({ initScale: 2 ** 127, growthInterval: 1 });
  w.grad = torch.onesLike(w);
  top.step(opt);
  top.update();
  assert.equal(top.getScale(), 2 ** 127);
  assert.equal(top.getGrowthTracker(), 0);
  top.update(1024);
  assert.equal(top.getScale(), 1024);

  const off = new GradScaler({ enabled: false });
  const before = [...w.data()];
  assert.equal(off.scale(loss).item(), loss.item());
  assert.equal(off.getScale(), 1);
  w.grad = torch.onesLike(w);
  assert.equal(off.step(opt), true);
  assert.notDeepEqual([...w.data()], before);
  assert.deepEqual(off.stateDict(), {});
  assert.throws(() => new GradScaler().loadStateDict({}), /state dict is empty/);
});

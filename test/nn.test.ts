import { describe, test, before } from 'node:test';
import assert from 'node:assert/strict';
import * as torch from '../src/torch/index.js';
import * as nn from '../src/nn/index.js';
import { torchReference, torchReferenceSkip } from './torch-reference.js';

type Tensor = torch.Tensor;

// ---------------------------------------------------------------- helpers
interface Dump {
  shape: number[];
  dtype: 'float32' | 'int64';
  data: number[];
}

function fromDump(d: Dump): Tensor {
  const flat = d.dtype === 'int64' ? BigInt64Array.from(d.data, (v) => BigInt(v)) : Float32Array.from(d.data);
  return torch.tensor(flat, { shape: d.shape });
}

const values = (t: Tensor): number[] => Array.from(t.data() as ArrayLike<number | bigint>, Number);

/** |actual − expected| ≤ atol + rtol·|expected| elementwise, with the shape checked first. */
function assertClose(actual: Tensor | number[], expected: Dump | number[], what: string, tol = 1e-5): void {
  const want = Array.isArray(expected) ? expected : expected.data;
  if (!Array.isArray(expected) && !Array.isArray(actual)) assert.deepEqual(actual.shape, expected.shape, `${what}: shape`);
  const got = Array.isArray(actual) ? actual : values(actual);
  assert.equal(got.length, want.length, `${what}: element count`);
  got.forEach((g, i) => {
    assert.ok(Math.abs(g - want[i]) <= tol + tol * Math.abs(want[i]), `${what}[${i}]: ${g} vs ${want[i]}`);
  });
}

/** The module's stateDict read out as plain numbers (freeing the handles). */
const stateValues = (m: nn.Module): Map<string, number[]> =>
  torch.tidy(() => new Map([...m.stateDict()].map(([k, v]) => [k, values(v)])));

const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
const unbiasedVar = (xs: number[]) => {
  const m = mean(xs);
  return xs.reduce((a, b) => a + (b - m) ** 2, 0) / (xs.length - 1);
};

// ---------------------------------------------------------------- PyTorch: conv → BN2d → PReLU → linear → BN1d
// Built like test/reference/torch_reference.py's NnChain, so its names are PyTorch's; every number
// compared comes from PyTorch run live on this machine (torch_reference.py nn_chain).
class Net extends nn.Module {
  readonly features = this.registerModule(
    'features',
    new nn.Sequential(new nn.Conv2d(3, 4, 3, { padding: 1, bias: false }), new nn.BatchNorm2d(4), new nn.PReLU(4)),
  );
  readonly flatten = this.registerModule('flatten', new nn.Flatten());
  readonly fc = this.registerModule('fc', new nn.Linear(4 * 6 * 6, 5));
  readonly bn = this.registerModule('bn', new nn.BatchNorm1d(5));

  forward(x: Tensor): Tensor {
    return torch.tidy(() => this.bn.forward(this.fc.forward(this.flatten.forward(this.features.forward(x)))));
  }
}

interface NnChainReference {
  state_dict_keys: string[];
  parameter_names: string[];
  buffer_names: string[];
  init_state: Record<string, Dump>;
  input: Dump;
  loss_weight: Dump;
  train_output: Dump;
  loss: number;
  grads: Record<string, Dump>;
  input_grad: Dump;
  state_after_train: Record<string, Dump>;
  eval_output: Dump;
}

describe('nn chain against PyTorch, live (torch_reference.py nn_chain)', { skip: torchReferenceSkip }, () => {
  let fx: NnChainReference;
  let initState: Map<string, Dump>;
  before(() => {
    fx = torchReference<NnChainReference>('nn_chain');
    initState = new Map(Object.entries(fx.init_state));
  });

  test('state dict keys, parameter and buffer names are PyTorch’s, in its order', () => {
    using net = new Net();
    assert.deepEqual(torch.tidy(() => [...net.stateDict().keys()]), fx.state_dict_keys);
    assert.deepEqual(net.namedParameters().map(([n]) => n), fx.parameter_names);
    assert.deepEqual(net.namedBuffers().map(([n]) => n), fx.buffer_names);
  });

  test('default initialisation with the same seed reproduces PyTorch’s parameters', () => {
    torch.manualSeed(0);
    using net = new Net();
    for (const [key, got] of stateValues(net)) {
      const want = initState.get(key)!;
      assert.deepEqual(got, want.data, `${key} differs from PyTorch's reset_parameters`);
    }
  });

  // float32 throughout; tolerance 1e-5 absolute + 1e-5 relative per element (on the same machine
  // the two agree bit for bit; the margin is for libtorch builds that pick other kernels). On one
  // thread, as the reference runs: libtorch's float32 reductions change order with the thread count (about 2e-6
  // of a tensor's largest value with 4 threads), and fc.bias's gradient, exactly 0 in theory since
  // BatchNorm1d follows, is rounding noise of ~1e-5 whose value depends on that order.
  test('train forward, loss, every gradient, running stats and eval forward match', (t) => {
    const threads = torch.getNumThreads();
    torch.setNumThreads(1);
    t.after(() => torch.setNumThreads(threads));
    torch.manualSeed(123); // a different init: every value must come from loadStateDict
    using net = new Net();
    const params = net.parameters();
    torch.tidy(() => net.loadStateDict(new Map([...initState].map(([k, d]) => [k, fromDump(d)]))));
    assert.deepEqual(net.parameters(), params, 'loading keeps the parameter objects');
    assert.ok(params.every((p) => p.requiresGrad && p.isLeaf));

    torch.tidy(() => {
      const x = fromDump(fx.input).requiresGrad_();
      net.train();
      const out = net.forward(x);
      assertClose(out, fx.train_output, 'train output');
      const loss = out.mul(fromDump(fx.loss_weight)).sum();
      assertClose(loss, [fx.loss], 'loss');
      loss.backward();
      for (const [name, p] of net.namedParameters()) assertClose(p.grad!, fx.grads[name], `grad of ${name}`);
      assertClose(x.grad!, fx.input_grad, 'input grad');
    });

    const after = stateValues(net);
    for (const [key, want] of Object.entries(fx.state_after_train)) {
      assertClose(after.get(key)!, want.data, `${key} after one training step`);
    }
    assert.deepEqual(after.get('bn.num_batches_tracked'), [1]);

    net.eval();
    torch.tidy(() => assertClose(torch.noGrad(() => net.forward(fromDump(fx.input))), fx.eval_output, 'eval output'));
  });
});

// ---------------------------------------------------------------- module mechanics
class Custom extends nn.Module {
  readonly child = this.registerModule('child', new nn.Linear(2, 2));
  readonly scale = this.registerParameter('scale', torch.ones([1]));
  readonly stats = this.registerBuffer('stats', torch.zeros([2]));
  readonly scratch = this.registerBuffer('scratch', torch.zeros([1]), { persistent: false });
  forward(x: Tensor): Tensor {
    return x;
  }
}

const keysOf = (m: nn.Module) => torch.tidy(() => [...m.stateDict().keys()]);

describe('Module', () => {
  test('stateDict order: own parameters, own persistent buffers, then children (PyTorch’s)', () => {
    using m = new Custom();
    // PyTorch gives exactly these for the same module (see the brief's _save_to_state_dict order).
    assert.deepEqual(keysOf(m), ['scale', 'stats', 'child.weight', 'child.bias']);
    assert.deepEqual(m.namedParameters().map(([n]) => n), ['scale', 'child.weight', 'child.bias']);
    assert.deepEqual(m.namedBuffers().map(([n]) => n), ['stats', 'scratch']);
    assert.deepEqual(m.namedModules().map(([n]) => n), ['', 'child']);
    assert.deepEqual(m.children(), [m.child]);
  });

  test('nested Sequential names its children 0, 1, … with dotted prefixes', () => {
    using seq = new nn.Sequential(
      new nn.Sequential(new nn.Conv2d(1, 2, 3, { bias: false }), new nn.BatchNorm2d(2)),
      new nn.Flatten(),
      new nn.Linear(2, 3),
    );
    assert.deepEqual(keysOf(seq), [
      '0.0.weight', '0.1.weight', '0.1.bias', '0.1.running_mean', '0.1.running_var', '0.1.num_batches_tracked', '2.weight', '2.bias',
    ]);
    assert.deepEqual(seq.namedModules().map(([n]) => n), ['', '0', '0.0', '0.1', '1', '2']);
    assert.equal(seq.length, 3);
    assert.ok(seq.at(-1) instanceof nn.Linear);
    assert.throws(() => seq.at(3), RangeError);
  });

  test('Sequential with named entries keeps their names and order', () => {
    using seq = new nn.Sequential(new Map<string, nn.Module>([['fc', new nn.Linear(2, 2)], ['act', new nn.ReLU()], ['0', new nn.Identity()]]));
    assert.deepEqual(seq.namedChildren().map(([n]) => n), ['fc', 'act', '0']);
    assert.deepEqual(keysOf(seq), ['fc.weight', 'fc.bias']);
  });

  test('a shared module counts once in parameters() and modules(), under each name in stateDict (as PyTorch)', () => {
    const lin = new nn.Linear(2, 2);
    using seq = new nn.Sequential(lin, new nn.ReLU(), lin);
    assert.deepEqual(seq.namedParameters().map(([n]) => n), ['0.weight', '0.bias']);
    assert.deepEqual(seq.namedModules().map(([n]) => n), ['', '0', '1']);
    assert.equal(seq.children().length, 2);
    assert.equal(seq.length, 3);
    assert.deepEqual(keysOf(seq), ['0.weight', '0.bias', '2.weight', '2.bias']);
    torch.tidy(() => assertClose(seq.forward(torch.tensor([[1, -1]])), values(lin.forward(torch.relu(lin.forward(torch.tensor([[1, -1]]))))), 'shared forward'));
  });

  test('stateDict values are detached handles on the same storage', () => {
    using lin = new nn.Linear(2, 2);
    torch.tidy(() => {
      const w = lin.stateDict().get('weight')!;
      assert.notEqual(w, lin.weight);
      assert.equal(w.requiresGrad, false);
      assert.equal(w.storageKey().key, lin.weight.storageKey().key);
      w.dispose();
      assert.equal(lin.weight.isDisposed, false);
    });
  });

  test('strict loadStateDict names missing keys, unexpected keys and shape mismatches like PyTorch', () => {
    using m = new nn.Sequential(new nn.Linear(3, 2), new nn.BatchNorm1d(2));
    torch.tidy(() => {
      const sd = m.stateDict();
      sd.delete('1.running_var');
      sd.set('1.extra', torch.zeros([1]));
      sd.set('2.weight', torch.zeros([1]));
      sd.set('0.weight', torch.zeros([3, 3]));
      assert.throws(() => m.loadStateDict(sd), {
        message:
          'Error(s) in loading state_dict for Sequential:\n' +
          '\tMissing key(s) in state_dict: "1.running_var". \n' +
          '\tUnexpected key(s) in state_dict: "2.weight", "1.extra". \n' +
          '\tsize mismatch for 0.weight: copying a param with shape [3, 3] from checkpoint, the shape in current model is [2, 3].',
      });
      // Shape mismatches are errors even when not strict.
      assert.throws(() => m.loadStateDict(sd, { strict: false }), /size mismatch for 0\.weight/);
    });
  });

  test('non-strict loadStateDict loads what matches and returns the key differences', () => {
    using m = new nn.Sequential(new nn.Linear(3, 2), new nn.BatchNorm1d(2));
    const result = torch.tidy(() => {
      const sd = new Map<string, Tensor>([
        ['0.weight', torch.full([2, 3], 0.5)],
        ['1.running_mean', torch.tensor([1, 2])],
        ['2.weight', torch.zeros([1])],
      ]);
      return m.loadStateDict(sd, { strict: false });
    });
    assert.deepEqual(result.missingKeys, ['0.bias', '1.weight', '1.bias', '1.running_var', '1.num_batches_tracked']);
    assert.deepEqual(result.unexpectedKeys, ['2.weight']);
    const lin = m.at(0) as nn.Linear, bn = m.at(1) as nn.BatchNorm1d;
    assert.deepEqual(values(lin.weight), [0.5, 0.5, 0.5, 0.5, 0.5, 0.5]);
    assert.deepEqual(values(bn.runningMean!), [1, 2]);
  });

  test('loading converts dtypes in place and accepts 1-element vectors for scalars', () => {
    using bn = new nn.BatchNorm1d(2);
    const weight = bn.weight!;
    torch.tidy(() => {
      bn.loadStateDict(new Map([
        ['weight', torch.tensor(new Float64Array([1.5, -2]))],
        ['bias', torch.tensor(new Float64Array([0.25, 0]))],
        ['running_mean', torch.zeros([2])],
        ['running_var', torch.ones([2])],
        ['num_batches_tracked', torch.tensor([7], { dtype: 'int64' })],
      ]));
    });
    assert.equal(bn.weight, weight);
    assert.equal(weight.dtype, 'float32');
    assert.deepEqual(values(weight), [1.5, -2]);
    assert.deepEqual(bn.numBatchesTracked!.shape, []);
    assert.equal(bn.numBatchesTracked!.dtype, 'int64');
    assert.equal(bn.numBatchesTracked!.item(), 7);
  });

  test('train() and eval() reach every module below', () => {
    using net = new Net();
    assert.equal(net.eval(), net);
    assert.ok(net.modules().every((m) => !m.training));
    net.features.train();
    assert.equal(net.training, false);
    assert.ok(net.features.modules().every((m) => m.training));
    net.train();
    assert.ok(net.modules().every((m) => m.training));
  });

  test('zeroGrad clears every gradient', () => {
    using lin = new nn.Linear(3, 2);
    torch.tidy(() => lin.forward(torch.ones([4, 3])).sum().backward());
    assert.ok(lin.parameters().every((p) => torch.tidy(() => p.grad !== undefined)));
    lin.zeroGrad();
    assert.ok(lin.parameters().every((p) => p.grad === undefined));
  });

  test('parameters and buffers survive the scope they were created in; dispose frees them all', () => {
    const net = torch.tidy(() => new Net());
    const owned = [...net.parameters(), ...net.buffers()];
    assert.equal(owned.length, 8 + 6);
    assert.ok(owned.every((t) => !t.isDisposed));
    torch.tidy(() => net.forward(torch.randn([2, 3, 6, 6])));
    net.dispose();
    assert.ok(owned.every((t) => t.isDisposed));
  });

  test('registration rejects duplicate and dotted names; parameter() rejects non-leaves', () => {
    using m = new Custom();
    assert.throws(() => m.registerBuffer('scale', torch.zeros([1])), /"scale" is already registered/);
    assert.throws(() => m.registerModule('child', new nn.Identity()), /already registered/);
    assert.throws(() => m.registerParameter('a.b', torch.zeros([1])), /contain no "\."/);
    torch.tidy(() => {
      const leaf = torch.ones([2], { requiresGrad: true });
      assert.throws(() => nn.parameter(leaf.mul(2)), /leaf/);
    });
  });
});

// ---------------------------------------------------------------- layers
describe('layers', () => {
  test('BatchNorm with momentum null keeps the cumulative average of batch statistics', () => {
    using bn = new nn.BatchNorm1d(1, { momentum: null });
    const batches = [[1, 2, 3, 6], [-1, 0, 4, 5]];
    torch.tidy(() => batches.forEach((b) => bn.forward(torch.tensor(b).reshape([4, 1]))));
    const means = batches.map(mean), vars = batches.map(unbiasedVar);
    // Starts from 0 / 1, first factor 1/1 then 1/2: exactly the mean of the two batches' statistics.
    assertClose(bn.runningMean!, [mean(means)], 'running_mean', 1e-6);
    assertClose(bn.runningVar!, [mean(vars)], 'running_var', 1e-6);
    assert.equal(bn.numBatchesTracked!.item(), 2);
  });

  test('BatchNorm2d momentum update, eval with running stats, options and input checks', () => {
    using bn = new nn.BatchNorm2d(1, { momentum: 0.3, eps: 0 });
    const xs = [0, 1, 2, 3, 4, 5, 6, 9];
    torch.tidy(() => bn.forward(torch.tensor(xs).reshape([2, 1, 2, 2])));
    assertClose(bn.runningMean!, [0.3 * mean(xs)], 'running_mean', 1e-6);
    assertClose(bn.runningVar!, [0.7 + 0.3 * unbiasedVar(xs)], 'running_var', 1e-6);
    bn.eval();
    const rm = 0.3 * mean(xs), rv = 0.7 + 0.3 * unbiasedVar(xs);
    torch.tidy(() => assertClose(bn.forward(torch.tensor(xs).reshape([2, 1, 2, 2])), xs.map((x) => (x - rm) / Math.sqrt(rv)), 'eval', 1e-6));
    assert.equal(bn.numBatchesTracked!.item(), 1, 'eval does not count batches');
    torch.tidy(() => {
      assert.throws(() => bn.forward(torch.ones([2, 1])), /expected 4D input \(got 2D input\)/);
      bn.train();
      assert.throws(() => bn.forward(torch.ones([1, 1, 1, 1])), /more than 1 value per channel/);
    });

    using plain = new nn.BatchNorm1d(3, { affine: false, trackRunningStats: false });
    assert.deepEqual(keysOf(plain), []);
    plain.eval();
    // Without running statistics eval normalises with the batch's own.
    torch.tidy(() => assertClose(plain.forward(torch.tensor([[1, 2, 3], [3, 6, 9]])).sum(0), [0, 0, 0], 'batch-normalised eval', 1e-6));
  });

  test('PReLU, ReLU, ReLU6, Sigmoid against closed forms', () => {
    using prelu = new nn.PReLU(2);
    assertClose(prelu.weight, [0.25, 0.25], 'default slopes');
    torch.noGrad(() => prelu.weight.copy_(torch.tensor([0.5, 0.1])));
    // [N=1, C=2, L=2]: channel 0 has slope 0.5, channel 1 slope 0.1
    torch.tidy(() => assertClose(prelu.forward(torch.tensor([[[-2, 3], [4, -8]]])), [-1, 3, 4, -0.8], 'prelu per channel'));
    using shared = new nn.PReLU(1, 0.1);
    torch.tidy(() => assertClose(shared.forward(torch.tensor([[-1, 2], [3, -4]])), [-0.1, 2, 3, -0.4], 'shared slope'));
    const v = [-3, 0.5, 7];
    torch.tidy(() => {
      assertClose(new nn.ReLU().forward(torch.tensor(v)), [0, 0.5, 7], 'relu');
      assertClose(new nn.ReLU6().forward(torch.tensor(v)), [0, 0.5, 6], 'relu6');
      assertClose(new nn.Sigmoid().forward(torch.tensor(v)), v.map((a) => 1 / (1 + Math.exp(-a))), 'sigmoid', 1e-6);
    });
  });

  test('Linear: y = x·Wᵀ + b, bias optional, default init bounded by 1/√fan_in', () => {
    using lin = new nn.Linear(2, 3, { bias: false });
    assert.deepEqual(keysOf(lin), ['weight']);
    assert.equal(lin.bias, undefined);
    torch.noGrad(() => lin.weight.copy_(torch.tensor([[1, 2], [3, 4], [5, 6]])));
    torch.tidy(() => assertClose(lin.forward(torch.tensor([[1, -1]])), [-1, -1, -1], 'x·Wᵀ'));

    using big = new nn.Linear(400, 300);
    const bound = 1 / Math.sqrt(400);
    for (const p of [big.weight, big.bias!]) {
      const absMax = Math.max(...values(p).map(Math.abs));
      assert.ok(absMax <= bound && absMax > 0.95 * bound, `max |value| ${absMax} vs bound ${bound}`);
    }
  });

  test('Conv2d shapes with stride, padding, dilation and groups; matches the functional op', () => {
    using conv = new nn.Conv2d(4, 6, [3, 1], { stride: 2, padding: [1, 0], dilation: 1, groups: 2 });
    assert.deepEqual(conv.weight.shape, [6, 2, 3, 1]);
    assert.deepEqual(conv.bias!.shape, [6]);
    torch.tidy(() => {
      const x = torch.randn([2, 4, 7, 5]);
      const y = conv.forward(x);
      assert.deepEqual(y.shape, [2, 6, 4, 3]);
      const ref = torch.conv2d(x, conv.weight, conv.bias, { stride: 2, padding: [1, 0], groups: 2 });
      assert.ok(torch.allclose(y, ref, 0, 0));
    });
    using same = new nn.Conv2d(2, 2, 3, { padding: 'same', dilation: 2, bias: false });
    torch.tidy(() => assert.deepEqual(same.forward(torch.randn([1, 2, 9, 9])).shape, [1, 2, 9, 9]));
    assert.throws(() => new nn.Conv2d(3, 4, 3, { groups: 2 }), /divisible by groups/);
  });

  test('LayerNorm against the closed form, with and without affine parameters', () => {
    const rows = [[1, 2, 4, 9], [-3, 0, 0, 3]];
    const expected = rows.flatMap((r) => {
      const m = mean(r), v = r.reduce((a, b) => a + (b - m) ** 2, 0) / r.length; // biased variance
      return r.map((x) => (x - m) / Math.sqrt(v + 1e-5));
    });
    using ln = new nn.LayerNorm(4);
    assert.deepEqual(keysOf(ln), ['weight', 'bias']);
    torch.noGrad(() => ln.bias!.fill_(1));
    torch.tidy(() => assertClose(ln.forward(torch.tensor(rows)), expected.map((e) => e + 1), 'layer norm + bias'));
    using bare = new nn.LayerNorm([2, 4], { elementwiseAffine: false, eps: 1e-5 });
    assert.deepEqual(keysOf(bare), []);
    torch.tidy(() => assert.deepEqual(bare.forward(torch.tensor([rows])).shape, [1, 2, 4]));
  });

  test('Dropout zeroes about p of the elements and scales the rest by 1/(1−p); eval is the identity', () => {
    using drop = new nn.Dropout(0.25);
    torch.tidy(() => {
      const y = values(drop.forward(torch.ones([100_000])));
      const zeros = y.filter((v) => v === 0).length / y.length;
      assert.ok(Math.abs(zeros - 0.25) < 0.01, `dropped fraction ${zeros}`);
      assert.ok(y.every((v) => v === 0 || Math.abs(v - 1 / 0.75) < 1e-6));
      drop.eval();
      assertClose(drop.forward(torch.tensor([1, 2, 3])), [1, 2, 3], 'eval');
    });
    assert.throws(() => new nn.Dropout(1.5), /between 0 and 1/);
  });

  test('Flatten and Identity', () => {
    torch.tidy(() => {
      const x = torch.zeros([2, 3, 4, 5]);
      assert.deepEqual(new nn.Flatten().forward(x).shape, [2, 60]);
      assert.deepEqual(new nn.Flatten(0, 1).forward(x).shape, [6, 4, 5]);
      assert.equal(new nn.Identity().forward(x), x);
    });
  });
});

// ---------------------------------------------------------------- init
/** Standard normal CDF by Simpson integration of the density from 0 (independent of the library's erf). */
function normalCdf(z: number): number {
  const n = 2000, h = z / n, pdf = (t: number) => Math.exp(-t * t / 2) / Math.sqrt(2 * Math.PI);
  let s = pdf(0) + pdf(z);
  for (let i = 1; i < n; i++) s += (i % 2 ? 4 : 2) * pdf(i * h);
  return 0.5 + (s * h) / 3;
}
const pdf = (t: number) => Math.exp(-t * t / 2) / Math.sqrt(2 * Math.PI);

const stats = (t: Tensor) => torch.tidy(() => ({ mean: t.mean().item(), std: torch.std(t).item(), min: t.min().item(), max: t.max().item() }));
const near = (got: number, want: number, rel: number, what: string) =>
  assert.ok(Math.abs(got - want) <= rel * Math.abs(want), `${what}: ${got} vs ${want}`);

describe('nn.init', () => {
  test('calculateGain matches torch.nn.init.calculate_gain', () => {
    const { calculateGain } = nn.init;
    assert.equal(calculateGain('linear'), 1);
    assert.equal(calculateGain('conv2d'), 1);
    assert.equal(calculateGain('sigmoid'), 1);
    assert.equal(calculateGain('tanh'), 5 / 3);
    assert.equal(calculateGain('relu'), Math.SQRT2);
    assert.equal(calculateGain('leaky_relu'), Math.sqrt(2 / (1 + 0.01 ** 2)));
    assert.equal(calculateGain('leaky_relu', 0.2), Math.sqrt(2 / 1.04));
    assert.equal(calculateGain('leaky_relu', 0), Math.SQRT2);
    assert.equal(calculateGain('selu'), 0.75);
    assert.throws(() => calculateGain('swish' as nn.init.Nonlinearity), /Unsupported nonlinearity swish/);
  });

  test('calculateFanInAndFanOut multiplies in the receptive field', () => {
    torch.tidy(() => {
      assert.deepEqual(nn.init.calculateFanInAndFanOut(torch.empty([8, 4, 3, 3])), { fanIn: 36, fanOut: 72 });
      assert.deepEqual(nn.init.calculateFanInAndFanOut(torch.empty([5, 7])), { fanIn: 7, fanOut: 5 });
      assert.throws(() => nn.init.calculateFanInAndFanOut(torch.empty([5])), /fewer than 2 dimensions/);
    });
  });

  test('kaiming and xavier give the documented spread on a large tensor', () => {
    torch.manualSeed(7);
    torch.tidy(() => {
      const w = torch.empty([256, 128, 3, 3]); // fan_in 1152, fan_out 2304, 295k elements
      const fanIn = 1152, fanOut = 2304;

      nn.init.kaimingUniform_(w); // leaky_relu with a = 0: gain √2
      let s = stats(w);
      const bound = Math.sqrt(3) * Math.SQRT2 / Math.sqrt(fanIn);
      assert.ok(s.max <= bound && s.min >= -bound && s.max > 0.99 * bound);
      near(s.std, Math.SQRT2 / Math.sqrt(fanIn), 0.01, 'kaiming uniform std');

      nn.init.kaimingNormal_(w, { mode: 'fan_out', nonlinearity: 'relu' });
      near(stats(w).std, Math.SQRT2 / Math.sqrt(fanOut), 0.01, 'kaiming normal fan_out std');

      nn.init.kaimingNormal_(w, { a: 0.2 });
      near(stats(w).std, Math.sqrt(2 / 1.04) / Math.sqrt(fanIn), 0.01, 'kaiming normal a=0.2 std');

      nn.init.xavierUniform_(w, 2);
      s = stats(w);
      const xBound = 2 * Math.sqrt(6 / (fanIn + fanOut));
      assert.ok(s.max <= xBound && s.min >= -xBound && s.max > 0.99 * xBound);
      near(s.std, 2 * Math.sqrt(2 / (fanIn + fanOut)), 0.01, 'xavier uniform std');

      nn.init.xavierNormal_(w);
      s = stats(w);
      near(s.std, Math.sqrt(2 / (fanIn + fanOut)), 0.01, 'xavier normal std');
      assert.ok(Math.abs(s.mean) < 0.01 * s.std, `mean ${s.mean}`);
    });
  });

  test('truncNormal_ stays in [a, b] with the truncated normal’s mean and std', () => {
    torch.manualSeed(3);
    torch.tidy(() => {
      const mu = 0.5, sigma = 2, a = -1, b = 3;
      const t = nn.init.truncNormal_(torch.empty([400_000]), mu, sigma, a, b);
      const s = stats(t);
      assert.ok(s.min >= a && s.max <= b);
      const al = (a - mu) / sigma, be = (b - mu) / sigma, z = normalCdf(be) - normalCdf(al);
      const wantMean = mu + (sigma * (pdf(al) - pdf(be))) / z;
      const wantVar = sigma ** 2 * (1 + (al * pdf(al) - be * pdf(be)) / z - ((pdf(al) - pdf(be)) / z) ** 2);
      assert.ok(Math.abs(s.mean - wantMean) < 0.005, `mean ${s.mean} vs ${wantMean}`);
      near(s.std, Math.sqrt(wantVar), 0.01, 'truncated std');
    });
  });

  test('initialisers work in place on parameters without recording a graph', () => {
    using lin = new nn.Linear(3, 2);
    const w = lin.weight;
    assert.equal(nn.init.constant_(w, 0.5), w);
    assert.deepEqual(values(w), Array(6).fill(0.5));
    nn.init.zeros_(lin.bias!);
    assert.deepEqual(values(lin.bias!), [0, 0]);
    nn.init.ones_(w);
    assert.deepEqual(values(w), Array(6).fill(1));
    nn.init.uniform_(w, 2, 3);
    assert.ok(values(w).every((v) => v >= 2 && v <= 3));
    nn.init.normal_(w, 10, 0.01);
    assert.ok(values(w).every((v) => Math.abs(v - 10) < 0.1));
    assert.ok(w.isLeaf && w.requiresGrad);
    assert.equal(lin.weight, w);
    torch.tidy(() => nn.init.kaimingUniform_(torch.empty([0, 3]))); // zero elements: a no-op, as in PyTorch
  });
});

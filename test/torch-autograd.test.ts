/**
 * Autograd through the dispatcher (requiresGrad, backward, grad accumulation, retained graphs,
 * no_grad/enable_grad), libtorch errors as JS errors, and CPU autocast.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as torch from '../src/torch/index.js';
import { native } from '../src/torch/native.js';
import type { Tensor } from '../src/torch/index.js';
import { assertClose, gradcheck } from './gradcheck.js';

const scoped = (fn: () => void) => () => torch.tidy(fn);
const flat = (t: Tensor): number[] => Array.from(t.data() as ArrayLike<number>, Number);
const leaf = (data: number[]) => torch.tensor(data, { dtype: 'float64', requiresGrad: true });

describe('requiresGrad and leaves', () => {
  test('results of ops on a tensor that requires grad require grad and are not leaves', scoped(() => {
    const x = leaf([1, 2]);
    const y = x.mul(2).add(1);
    assert.equal(x.requiresGrad, true);
    assert.equal(x.isLeaf, true);
    assert.equal(y.requiresGrad, true);
    assert.equal(y.isLeaf, false);
  }));

  test('tensors without requiresGrad give results that do not require grad', scoped(() => {
    const c = torch.ones([2]);
    assert.equal(c.requiresGrad, false);
    assert.equal(c.isLeaf, true);
    assert.equal(c.exp().requiresGrad, false);
    assert.equal(torch.add(c, leaf([1, 1]).float()).requiresGrad, true);
  }));

  test('requiresGrad can be set, and requiresGrad_ returns the tensor', scoped(() => {
    const x = torch.zeros([2]);
    x.requiresGrad = true;
    assert.equal(x.requiresGrad, true);
    assert.equal(x.requiresGrad_(false), x);
    assert.equal(x.requiresGrad, false);
    assert.equal(torch.inplace.requiresGrad(x, true), x);
    assert.equal(x.requiresGrad, true);
  }));

  test('only floating tensors can require grad (libtorch says so)', scoped(() => {
    const i = torch.ones([2], { dtype: 'int64' });
    assert.throws(() => { i.requiresGrad = true; }, { message: /Only Tensors of floating point and complex dtype can require gradients/ });
  }));

  test('detach gives a tensor outside the graph that shares storage', scoped(() => {
    const x = leaf([1, 2]);
    const y = x.mul(3);
    const d = y.detach();
    assert.equal(d.requiresGrad, false);
    assert.equal(d.isLeaf, true);
    d.fill_(0);
    assert.deepEqual(y.toArray(), [0, 0]);
  }));
});

describe('backward', () => {
  test('backward of a scalar fills the gradient of each leaf', scoped(() => {
    const x = leaf([1, -2, 3]), w = leaf([0.5, 2, -1]);
    torch.sum(torch.mul(x.square(), w)).backward();
    assert.deepEqual(flat(x.grad!), [1, -8, -6]); // 2·x·w
    assert.deepEqual(flat(w.grad!), [1, 4, 9]); // x²
  }));

  test('backward of a non-scalar takes an explicit gradient', scoped(() => {
    const x = leaf([1, 2, 3]);
    x.mul(3).backward({ gradient: torch.tensor([1, 10, 100], { dtype: 'float64' }) });
    assert.deepEqual(flat(x.grad!), [3, 30, 300]);
  }));

  test('backward of a non-scalar without a gradient throws libtorch\'s error', scoped(() => {
    const x = leaf([1, 2]);
    assert.throws(() => x.exp().backward(), { message: /grad can be implicitly created only for scalar outputs/ });
  }));

  test('gradients accumulate across backward calls until cleared', scoped(() => {
    const x = leaf([1, 2]);
    x.mul(2).sum().backward();
    x.mul(5).sum().backward();
    assert.deepEqual(flat(x.grad!), [7, 7]);
    x.grad!.zero_();
    x.mul(1).sum().backward();
    assert.deepEqual(flat(x.grad!), [1, 1]);
    x.grad = undefined;
    assert.equal(x.grad, undefined);
    x.mul(4).sum().backward();
    assert.deepEqual(flat(x.grad!), [4, 4]);
  }));

  test('the gradient can be assigned', scoped(() => {
    const x = leaf([1, 2]);
    x.grad = torch.tensor([5, 6], { dtype: 'float64' });
    x.sum().backward();
    assert.deepEqual(flat(x.grad!), [6, 7]);
  }));

  test('each .grad read is a new handle on the same gradient storage', scoped(() => {
    const x = leaf([1, 2]);
    x.sum().backward();
    const g1 = x.grad!, g2 = x.grad!;
    assert.notEqual(g1, g2);
    assert.equal(g1.sameTensor(g2), true);
    g1.dispose();
    assert.deepEqual(flat(x.grad!), [1, 1]);
    g2.add_(1);
    assert.deepEqual(flat(x.grad!), [2, 2]);
  }));

  test('retainGraph allows a second backward; without it the second one throws', scoped(() => {
    const x = leaf([0, 1]);
    const y = x.exp().sum();
    y.backward({ retainGraph: true });
    y.backward();
    assertClose(x.grad!, [2, 2 * Math.E], { rtol: 1e-15 });
    assert.throws(() => y.backward(), (e: unknown) => {
      assert.ok(e instanceof Error);
      assert.match(e.message, /Trying to backward through the graph a second time/);
      return true;
    });
  }));

  test('inputs limits accumulation to the given leaves', scoped(() => {
    const a = leaf([1]), b = leaf([2]);
    a.mul(b).sum().backward({ inputs: [b] });
    assert.equal(a.grad, undefined);
    assert.deepEqual(flat(b.grad!), [1]);
  }));

  test('createGraph gives a differentiable gradient (second derivative of x³ is 6x)', scoped(() => {
    const x = leaf([1, 2]);
    x.pow(3).sum().backward({ createGraph: true });
    const first = x.grad!;
    assert.deepEqual(flat(first), [3, 12]);
    assert.equal(first.requiresGrad, true);
    x.grad = undefined;
    first.sum().backward();
    assert.deepEqual(flat(x.grad!), [6, 12]);
  }));

  test('retainGrad keeps the gradient of a non-leaf', scoped(() => {
    const x = leaf([1, 2]);
    const h = x.mul(2).retainGrad();
    const other = x.mul(3);
    h.square().sum().add(other.sum()).backward();
    assert.deepEqual(flat(h.grad!), [4, 8]); // 2·h
    assert.equal(other.grad, undefined);
    assert.deepEqual(flat(x.grad!), [11, 19]); // 2·2h + 3
  }));

  test('modifying a saved tensor in place makes backward fail with libtorch\'s message', scoped(() => {
    const x = leaf([1, 2]);
    const e = x.exp();
    e.mul_(2);
    assert.throws(() => e.sum().backward(), { message: /modified by an inplace operation/ });
  }));

  test('a gradient through a chain of ops matches finite differences', () => {
    torch.tidy(() => {
      gradcheck((x, w) => torch.softmax(torch.matmul(x, w).tanh(), 1).log().mean(0), [
        torch.tensor([[0.1, -0.3, 0.8], [0.5, 0.2, -0.7]], { dtype: 'float64', requiresGrad: true }),
        torch.tensor([[1, 0.5], [-0.2, 0.3], [0.4, -1]], { dtype: 'float64', requiresGrad: true }),
      ]);
    });
  });

  test('the gradcheck helper notices a wrong gradient', scoped(() => {
    // x.detach()·x has true derivative 2x, but autograd only sees the second factor
    assert.throws(() => gradcheck((x) => torch.mul(x.detach(), x), [leaf([1, 2])]), /gradcheck: input 0 element 0/);
  }));
});

describe('noGrad and enableGrad', () => {
  test('inside noGrad results do not require grad; the mode is restored after', scoped(() => {
    const x = leaf([1, 2]);
    assert.equal(torch.isGradEnabled(), true);
    const y = torch.noGrad(() => {
      assert.equal(torch.isGradEnabled(), false);
      return x.mul(2);
    });
    assert.equal(y.requiresGrad, false);
    assert.equal(torch.isGradEnabled(), true);
    assert.equal(x.mul(2).requiresGrad, true);
  }));

  test('noGrad restores the mode when its function throws', () => {
    assert.throws(() => torch.noGrad(() => { throw new Error('boom'); }), /boom/);
    assert.equal(torch.isGradEnabled(), true);
  });

  test('enableGrad nested inside noGrad records again', scoped(() => {
    const x = leaf([1, 2]);
    torch.noGrad(() => {
      const y = torch.enableGrad(() => x.mul(2));
      assert.equal(y.requiresGrad, true);
      assert.equal(torch.isGradEnabled(), false);
      assert.equal(x.mul(2).requiresGrad, false);
    });
  }));

  test('in-place updates of a leaf are allowed under noGrad only', scoped(() => {
    const x = leaf([1, 2]);
    assert.throws(() => x.add_(1), { message: /a leaf Variable that requires grad is being used in an in-place operation/ });
    torch.noGrad(() => x.add_(1));
    assert.deepEqual(flat(x), [2, 3]);
  }));

  test('setGradEnabled switches the mode until switched back', () => {
    torch.setGradEnabled(false);
    try {
      assert.equal(torch.isGradEnabled(), false);
      torch.tidy(() => assert.equal(leaf([1]).mul(2).requiresGrad, false));
    } finally {
      torch.setGradEnabled(true);
    }
    assert.equal(torch.isGradEnabled(), true);
  });
});

describe('errors', () => {
  test('libtorch errors arrive as JS Errors with libtorch\'s message', scoped(() => {
    const a = torch.ones([2, 3]), b = torch.ones([4, 5]);
    assert.throws(() => torch.matmul(a, b), (e: unknown) => {
      assert.ok(e instanceof Error);
      assert.match(e.message, /mat1 and mat2 shapes cannot be multiplied \(2x3 and 4x5\)/);
      assert.doesNotMatch(e.message, /Exception raised from/); // no C++ backtrace
      return true;
    });
    assert.throws(() => torch.add(torch.ones([2]), torch.ones([3])), { message: /The size of tensor a \(2\) must match the size of tensor b \(3\)/ });
    assert.throws(() => torch.ones([6]).view(4), { message: /shape '\[4\]' is invalid for input of size 6/ });
  }));

  test('argument errors are TypeErrors naming the operator and the argument', scoped(() => {
    const x = torch.ones([3]);
    assert.throws(() => torch.narrow(x, 0, 'a' as unknown as number, 1), { name: 'TypeError', message: "aten::narrow: argument 'start' expects an integer" });
    assert.throws(() => torch.narrow(x, 0, 1.5, 1), { name: 'TypeError', message: "aten::narrow: argument 'start' expects an integer, got 1.500000" });
    assert.throws(() => torch.matmul(x, 3 as unknown as Tensor), { name: 'TypeError', message: "aten::matmul: argument 'other' expects a Tensor" });
    assert.throws(() => torch.dropout(x, 0.5, 'yes' as unknown as boolean), { name: 'TypeError', message: "aten::dropout: argument 'train' expects a boolean" });
    assert.throws(() => torch.reshape(x, 3 as unknown as number[]), { name: 'TypeError', message: "aten::reshape: argument 'shape' expects an array of integers" });
  }));

  test('unknown dtypes, operators and too many arguments are reported', scoped(() => {
    assert.throws(() => torch.zeros([2], { dtype: 'float8' as torch.Dtype }), { name: 'TypeError', message: /unknown dtype 'float8'/ });
    assert.throws(() => torch.aten('no_such_op')(), { message: 'unknown operator aten::no_such_op in this libtorch' });
    assert.throws(() => torch.aten('neg')(torch.ones([1]), 1), { name: 'TypeError', message: 'aten::neg: 2 arguments given, at most 1 expected' });
    assert.throws(() => torch.aten('add.Tensor')(torch.ones([1])), { name: 'TypeError', message: "aten::add.Tensor: missing argument 'other'" });
  }));

  test('aten() reaches any operator by schema name, with schema defaults', scoped(() => {
    const x = torch.tensor([[1, 2], [3, 4]]);
    assert.deepEqual(torch.aten('trace')(x).item(), 5);
    assert.deepEqual(torch.aten('sum.dim_IntList')(x, [1]).toArray(), [3, 7]);
    assert.deepEqual(torch.aten('amax')(x, [0], true).toArray(), [[3, 4]]);
  }));
});

describe('autocast (CPU, bfloat16)', () => {
  const inputs = () => ({
    x: torch.randn([4, 8]),
    w: torch.randn([3, 8]),
    img: torch.randn([1, 2, 6, 6]),
    k: torch.randn([3, 2, 3, 3]),
  });

  test('matmul, mm, bmm, linear and conv2d run in bfloat16', scoped(() => {
    const { x, w, img, k } = inputs();
    torch.autocast({ deviceType: 'cpu' }, () => {
      assert.equal(torch.matmul(x, w.t()).dtype, 'bfloat16');
      assert.equal(torch.mm(x, w.t()).dtype, 'bfloat16');
      assert.equal(torch.bmm(x.unsqueeze(0), w.t().unsqueeze(0)).dtype, 'bfloat16');
      assert.equal(torch.linear(x, w).dtype, 'bfloat16');
      assert.equal(torch.conv2d(img, k).dtype, 'bfloat16');
    });
  }));

  test('softmax, sum and crossEntropy of float32 inputs stay float32; crossEntropy casts up', scoped(() => {
    const { x, w } = inputs();
    const target = torch.tensor([0, 1, 2, 0], { dtype: 'int64' });
    torch.autocast({ deviceType: 'cpu', dtype: 'bfloat16' }, () => {
      assert.equal(torch.softmax(x, 1).dtype, 'float32');
      assert.equal(torch.sum(x).dtype, 'float32');
      assert.equal(torch.crossEntropy(torch.linear(x, w).float(), target).dtype, 'float32');
      // cross_entropy_loss is on libtorch's CPU float32 list: bfloat16 logits come back float32
      assert.equal(torch.crossEntropy(torch.linear(x, w), target).dtype, 'float32');
    });
  }));

  test('softmax and sum of bfloat16 stay bfloat16 (not on libtorch 1.13\'s CPU float32 list, as in PyTorch 1.13)', scoped(() => {
    const { x, w } = inputs();
    torch.autocast({ deviceType: 'cpu' }, () => {
      const logits = torch.linear(x, w);
      assert.equal(torch.softmax(logits, 1).dtype, 'bfloat16');
      assert.equal(torch.sum(logits).dtype, 'bfloat16');
    });
  }));

  test('outside autocast the same ops give float32', scoped(() => {
    const { x, w, img, k } = inputs();
    assert.equal(torch.matmul(x, w.t()).dtype, 'float32');
    assert.equal(torch.linear(x, w).dtype, 'float32');
    assert.equal(torch.conv2d(img, k).dtype, 'float32');
  }));

  test('autocast results are close to float32 at bfloat16 precision', scoped(() => {
    const { x, w } = inputs();
    const exact = torch.linear(x, w);
    const low = torch.autocast({ deviceType: 'cpu' }, () => torch.linear(x, w));
    const scale = exact.abs().max().item();
    assert.ok(torch.sub(low.float(), exact).abs().max().item() < 0.05 * scale);
  }));

  test('a nested region with enabled: false turns it off inside and back on after', scoped(() => {
    const { x, w } = inputs();
    torch.autocast({ deviceType: 'cpu' }, () => {
      torch.autocast({ deviceType: 'cpu', enabled: false }, () => {
        assert.equal(torch.matmul(x, w.t()).dtype, 'float32');
        assert.equal(native.autocastState().cpu, false);
      });
      assert.equal(torch.matmul(x, w.t()).dtype, 'bfloat16');
      assert.equal(native.autocastState().cpu, true);
    });
    assert.equal(native.autocastState().cpu, false);
    assert.equal(torch.matmul(x, w.t()).dtype, 'float32');
  }));

  test('autocast restores the state when its function throws', () => {
    assert.throws(() => torch.autocast({ deviceType: 'cpu' }, () => { throw new Error('inside'); }), /inside/);
    assert.equal(native.autocastState().cpu, false);
  });

  test('CPU autocast refuses float16', () => {
    assert.throws(() => torch.autocast({ deviceType: 'cpu', dtype: 'float16' }, () => 0), /CPU autocast supports bfloat16 only/);
  });

  test('gradients of float32 leaves are float32 and close to the float32 gradients', scoped(() => {
    torch.manualSeed(9);
    const x = torch.randn([4, 8]), w = torch.randn([3, 8], { requiresGrad: true }), b = torch.zeros([3], { requiresGrad: true });
    const target = torch.tensor([0, 1, 2, 0], { dtype: 'int64' });
    torch.autocast({ deviceType: 'cpu' }, () => torch.crossEntropy(torch.linear(x, w, b), target)).backward();
    assert.equal(w.grad!.dtype, 'float32');
    assert.equal(b.grad!.dtype, 'float32');
    const lowGrad = w.grad!.clone();
    w.grad = undefined;
    torch.crossEntropy(torch.linear(x, w, b), target).backward();
    assert.ok(torch.sub(lowGrad, w.grad!).abs().max().item() < 0.05 * w.grad!.abs().max().item());
  }));
});

/**
 * Tensor lifetime: tidy, keep, Scope (with `using`), dispose, and what a disposed tensor does.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as torch from '../src/torch/index.js';
import type { Tensor } from '../src/torch/index.js';

describe('tidy', () => {
  test('disposes the tensors made inside and keeps the returned one', () => {
    let a!: Tensor, b!: Tensor;
    const result = torch.tidy(() => {
      a = torch.ones([2]);
      b = a.mul(2);
      return b.add(1);
    });
    assert.equal(a.isDisposed, true);
    assert.equal(b.isDisposed, true);
    assert.deepEqual(result.toArray(), [3, 3]);
    result.dispose();
  });

  test('keeps tensors returned inside arrays, plain objects and Maps', () => {
    let scratch!: Tensor;
    const out = torch.tidy(() => {
      scratch = torch.zeros([1]);
      return { list: [torch.ones([1]), { deep: torch.ones([2]) }], map: new Map([['m', torch.ones([3])]]), label: 'x' };
    });
    assert.equal(scratch.isDisposed, true);
    const [first, nested] = out.list as [Tensor, { deep: Tensor }];
    assert.equal(first.isDisposed, false);
    assert.equal(nested.deep.isDisposed, false);
    assert.equal(out.map.get('m')!.isDisposed, false);
    assert.equal(out.label, 'x');
    torch.dispose(out);
    assert.equal(first.isDisposed, true);
    assert.equal(nested.deep.isDisposed, true);
    assert.equal(out.map.get('m')!.isDisposed, true);
  });

  test('passes non-tensor results through', () => {
    assert.equal(torch.tidy(() => torch.ones([3]).sum().item()), 3);
    assert.equal(torch.tidy(() => undefined), undefined);
  });

  test('a nested tidy moves its result to the enclosing scope', () => {
    let inner!: Tensor;
    torch.tidy(() => {
      inner = torch.tidy(() => torch.ones([2]).mul(3));
      assert.equal(inner.isDisposed, false);
      return undefined;
    });
    assert.equal(inner.isDisposed, true);
  });

  test('a result of a nested tidy survives every scope it is returned from', () => {
    const result = torch.tidy(() => torch.tidy(() => torch.ones([2])));
    assert.equal(result.isDisposed, false);
    result.dispose();
  });

  test('returning a tensor made outside the scope leaves it alone', () => {
    const outside = torch.ones([1]);
    const same = torch.tidy(() => outside);
    assert.equal(same, outside);
    torch.tidy(() => { torch.tidy(() => outside); });
    assert.equal(outside.isDisposed, false);
    outside.dispose();
  });

  test('still disposes when its function throws, and rethrows the same error', () => {
    let made!: Tensor;
    const depth = torch.scopeDepth();
    const error = new Error('inside tidy');
    assert.throws(() => torch.tidy(() => {
      made = torch.ones([2]);
      throw error;
    }), (e) => e === error);
    assert.equal(made.isDisposed, true);
    assert.equal(torch.scopeDepth(), depth);
  });

  test('refuses an async function and disposes what it made synchronously', () => {
    let made!: Tensor;
    const depth = torch.scopeDepth();
    assert.throws(() => torch.tidy((async () => {
      made = torch.ones([1]);
      await Promise.resolve();
    }) as () => unknown), /tidy\(fn\): fn must be synchronous/);
    assert.equal(made.isDisposed, true);
    assert.equal(torch.scopeDepth(), depth);
  });

  test('tensors made outside any scope live until disposed', () => {
    const free = torch.ones([2]);
    torch.tidy(() => free.add(1));
    assert.equal(free.isDisposed, false);
    free.dispose();
    assert.equal(free.isDisposed, true);
  });

  test('tensors returned by ops with several results are tracked too', () => {
    let parts!: Tensor[];
    let maxima!: torch.ValuesIndices;
    torch.tidy(() => {
      parts = torch.split(torch.arange(6), 2);
      maxima = torch.max(torch.ones([2, 2]), 1);
    });
    assert.ok(parts.every((p) => p.isDisposed));
    assert.equal(maxima.values.isDisposed, true);
    assert.equal(maxima.indices.isDisposed, true);
  });

  test('gradients read inside a scope are disposed with it, the gradient itself stays', () => {
    const x = torch.ones([2], { requiresGrad: true });
    let handle!: Tensor;
    torch.tidy(() => {
      x.mul(3).sum().backward();
      handle = x.grad!;
    });
    assert.equal(handle.isDisposed, true);
    const g = x.grad!;
    assert.deepEqual(g.toArray(), [3, 3]);
    torch.dispose(g, x);
  });
});

describe('keep', () => {
  test('a kept tensor survives its scope and the caller disposes it', () => {
    let kept!: Tensor, dropped!: Tensor;
    torch.tidy(() => {
      kept = torch.keep(torch.ones([2]));
      dropped = torch.ones([2]);
    });
    assert.equal(kept.isDisposed, false);
    assert.equal(dropped.isDisposed, true);
    kept.dispose();
  });

  test('keep takes a tensor out of every open scope', () => {
    let kept!: Tensor;
    torch.tidy(() => {
      torch.tidy(() => {
        kept = torch.keep(torch.ones([2]));
      });
    });
    assert.equal(kept.isDisposed, false);
    kept.dispose();
  });

  test('keep returns its argument', () => {
    const t = torch.ones([1]);
    assert.equal(torch.keep(t), t);
    t.dispose();
  });
});

describe('Scope', () => {
  test('`using` disposes the tensors made in the block at its end', () => {
    let inner!: Tensor;
    const depth = torch.scopeDepth();
    {
      using _scope = new torch.Scope();
      assert.equal(torch.scopeDepth(), depth + 1);
      inner = torch.ones([2]).mul(2);
      assert.equal(inner.isDisposed, false);
    }
    assert.equal(inner.isDisposed, true);
    assert.equal(torch.scopeDepth(), depth);
  });

  test('`using` also closes the scope when the block throws', () => {
    let inner!: Tensor;
    const depth = torch.scopeDepth();
    assert.throws(() => {
      using _scope = new torch.Scope();
      inner = torch.ones([1]);
      throw new Error('in block');
    }, /in block/);
    assert.equal(inner.isDisposed, true);
    assert.equal(torch.scopeDepth(), depth);
  });

  test('close(survivors) moves the survivors to the enclosing scope', () => {
    let survivor!: Tensor, other!: Tensor;
    torch.tidy(() => {
      const scope = new torch.Scope();
      survivor = torch.ones([1]);
      other = torch.ones([1]);
      scope.close([survivor]);
      assert.equal(survivor.isDisposed, false);
      assert.equal(other.isDisposed, true);
    });
    assert.equal(survivor.isDisposed, true);
  });

  test('closing out of order throws, and the scopes can then close in order', () => {
    const outer = new torch.Scope();
    const inner = new torch.Scope();
    const t = torch.ones([1]);
    assert.throws(() => outer.close(), /Scope closed out of order: close inner scopes first/);
    assert.equal(t.isDisposed, false);
    inner.close();
    assert.equal(t.isDisposed, true);
    outer.close();
  });

  test('closing twice is harmless', () => {
    const depth = torch.scopeDepth();
    const scope = new torch.Scope();
    scope.close();
    scope.close();
    assert.equal(torch.scopeDepth(), depth);
  });

  test('a tensor can itself be a `using` resource', () => {
    let t!: Tensor;
    {
      using held = torch.ones([2]);
      t = held;
      assert.equal(t.isDisposed, false);
    }
    assert.equal(t.isDisposed, true);
  });
});

describe('dispose and disposed tensors', () => {
  test('dispose(...) frees tensors in nested arrays and objects and ignores the rest', () => {
    const a = torch.ones([1]), b = torch.ones([1]), c = torch.ones([1]), d = torch.ones([1]);
    torch.dispose(a, [b, { c, more: [[d]], n: 1, s: 'x' }], null, undefined, 3);
    assert.ok([a, b, c, d].every((t) => t.isDisposed));
  });

  test('disposing twice is harmless', () => {
    const t = torch.ones([1]);
    t.dispose();
    t.dispose();
    assert.equal(t.isDisposed, true);
  });

  test('using a disposed tensor throws "Tensor has been disposed"', () => {
    const t = torch.ones([2]);
    t.dispose();
    assert.throws(() => t.shape, { message: 'Tensor has been disposed' });
    assert.throws(() => t.data(), { message: 'Tensor has been disposed' });
    assert.throws(() => t.add(1), { message: 'Tensor has been disposed' });
    assert.throws(() => torch.cat([torch.ones([2]), t]), { message: 'Tensor has been disposed' });
    assert.match(String(t), /disposed/);
  });

  test('a view keeps the storage alive after its base is disposed', () => {
    const base = torch.arange(4);
    const view = base.narrow(0, 1, 2);
    base.dispose();
    assert.deepEqual(view.toArray(), [1, 2]);
    view.dispose();
  });

  test('an in-place op in a scope does not dispose its (outside) target', () => {
    const x = torch.zeros([2]);
    torch.tidy(() => {
      x.add_(1);
      torch.inplace.mul(x, 3);
    });
    assert.deepEqual(x.toArray(), [3, 3]);
    x.dispose();
  });

  test('Tensors cannot be constructed with new', () => {
    assert.throws(() => new (torch.Tensor as unknown as new () => Tensor)(), /not by `new`/);
  });
});

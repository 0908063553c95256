/**
 * Tensor lifetime. V8 does not see tensor memory, so tensors are freed explicitly: every tensor
 * created while a scope is open belongs to it and is disposed when the scope closes, except the
 * ones the scope returns (they move to the enclosing scope) and the ones passed to keep().
 *
 *   const loss = tidy(() => model.forward(x).sub(y).square().mean());  // intermediates freed
 *   { using scope = new Scope(); ... }                                   // freed at block end
 */

interface Disposable {
  dispose(): void;
}

const stack: Set<Disposable>[] = [];

/** Called by the Tensor constructor: the newest open scope owns the tensor. */
export function track(tensor: Disposable): void {
  stack[stack.length - 1]?.add(tensor);
}

/** Takes a tensor out of every open scope: the caller now disposes it. */
export function keep<T extends Disposable>(tensor: T): T {
  for (const scope of stack) scope.delete(tensor);
  return tensor;
}

/** A scope usable with `using`, or opened and closed by hand (always in LIFO order). */
export class Scope {
  private readonly owned = new Set<Disposable>();
  private closed = false;

  constructor() {
    stack.push(this.owned);
  }

  /** Disposes what the scope owns except `survivors`, which move to the enclosing scope. */
  close(survivors: Iterable<Disposable> = []): void {
    if (this.closed) return;
    if (stack[stack.length - 1] !== this.owned) throw new Error('Scope closed out of order: close inner scopes first');
    stack.pop();
    this.closed = true;
    const keepSet = new Set(survivors);
    for (const t of this.owned) {
      if (keepSet.has(t)) track(t);
      else t.dispose();
    }
    this.owned.clear();
  }

  [Symbol.dispose](): void {
    this.close();
  }
}

/** Runs fn in a new scope; tensors it returns (also inside arrays and plain objects) survive. */
export function tidy<T>(fn: () => T): T {
  const scope = new Scope();
  let result: T;
  try {
    result = fn();
  } catch (error) {
    scope.close();
    throw error;
  }
  if (result instanceof Promise) {
    scope.close();
    throw new Error('tidy(fn): fn must be synchronous (tensors of an async function outlive the scope)');
  }
  scope.close(disposablesIn(result));
  return result;
}

// Tensors (and anything else with dispose() and a dtype) count; other objects are searched.
const isTensorLike = (value: object): value is Disposable =>
  typeof (value as Partial<Disposable>).dispose === 'function' && 'dtype' in value;

function* disposablesIn(value: unknown, depth = 0): Iterable<Disposable> {
  if (value === null || typeof value !== 'object' || depth > 8) return;
  if (isTensorLike(value)) {
    yield value;
  } else if (Array.isArray(value)) {
    for (const v of value) yield* disposablesIn(v, depth + 1);
  } else if (value instanceof Map) {
    for (const v of value.values()) yield* disposablesIn(v, depth + 1);
  } else if (Object.getPrototypeOf(value) === Object.prototype) {
    for (const v of Object.values(value)) yield* disposablesIn(v, depth + 1);
  }
}

/** Disposes every tensor among the arguments (arrays and plain objects are searched). */
export function dispose(...values: unknown[]): void {
  for (const t of disposablesIn(values)) t.dispose();
}

/** Number of scopes open now (for tests and leak checks). */
export function scopeDepth(): number {
  return stack.length;
}

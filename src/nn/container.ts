/** Sequential container (torch.nn.Sequential). */
import { tidy, type Tensor } from '../torch/index.js';
import { Module } from './module.js';

/**
 * Runs its children in order, each on the output of the one before. Children are named
 * "0", "1", … (`new Sequential(a, b)`), or given names in order (`new Sequential(new Map([['conv', c]]))`).
 */
export class Sequential extends Module {
  constructor(...modules: Module[] | [ReadonlyMap<string, Module>]) {
    super();
    if (modules[0] instanceof Map) {
      for (const [name, module] of modules[0]) this.registerModule(name, module);
    } else {
      for (const module of modules as Module[]) this.append(module);
    }
  }

  get length(): number {
    return this._modules.size;
  }

  /** The child at `index` (negative counts from the end). */
  at(index: number): Module {
    const module = [...this._modules.values()].at(index);
    if (module === undefined) throw new RangeError(`index ${index} is out of range for Sequential of length ${this.length}`);
    return module;
  }

  /** Adds a module at the end, named by its position. */
  append(module: Module): this {
    this.registerModule(String(this.length), module);
    return this;
  }

  /** Intermediate outputs are freed; only the last one is returned. */
  forward(input: Tensor): Tensor {
    return tidy(() => [...this._modules.values()].reduce<Tensor>((x, module) => module.forward(x), input));
  }
}

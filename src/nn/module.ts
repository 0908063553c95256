/**
 * Module: the base of every layer and model, as torch.nn.Module. A module registers its
 * parameters, buffers and child modules by name, in insertion order; the dotted names of
 * stateDict() (`layer1.0.bn1.running_mean`) and the order of its entries are PyTorch's, so
 * checkpoints move between the two by name.
 *
 *   class Block extends Module {
 *     readonly conv = this.registerModule('conv', new Conv2d(64, 64, 3, { padding: 1 }));
 *     readonly bn = this.registerModule('bn', new BatchNorm2d(64));
 *     forward(x: Tensor): Tensor { return tidy(() => this.bn.forward(this.conv.forward(x))); }
 *   }
 *
 * The module owns what it registers: parameters and buffers are kept out of open scopes and
 * freed by dispose().
 */
import { keep, noGrad, resolveDevice, select, tidy, Tensor } from '../torch/index.js';
import { parameter, type Parameter } from './parameter.js';

export interface LoadStateDictOptions {
  /** keys must match exactly (default true); shape mismatches are errors either way */
  strict?: boolean;
}

/** The keys loadStateDict found missing from, or unexpected in, the state dict. */
export interface IncompatibleKeys {
  missingKeys: string[];
  unexpectedKeys: string[];
}

interface LoadReport extends IncompatibleKeys {
  errors: string[];
}

export abstract class Module {
  /** Training mode (train()) or evaluation mode (eval()); layers such as BatchNorm and Dropout read it. */
  training = true;
  private readonly _parameters = new Map<string, Parameter>();
  private readonly _buffers = new Map<string, Tensor>();
  private readonly _nonPersistent = new Set<string>();
  /** Child modules by name, in registration order (containers iterate it). */
  protected readonly _modules = new Map<string, Module>();

  abstract forward(...inputs: any[]): any;

  // ------------------------------------------------------------ registration
  /** Makes `data` a parameter of this module (see parameter(): the module takes ownership) and returns it. */
  registerParameter(name: string, data: Tensor, requiresGrad = true): Parameter {
    this.checkNewName(name);
    const p = parameter(data, requiresGrad);
    this._parameters.set(name, p);
    return p;
  }

  /** Adds a buffer: state that is not trained (running statistics). Non-persistent buffers stay out of stateDict(). */
  registerBuffer(name: string, value: Tensor, { persistent = true }: { persistent?: boolean } = {}): Tensor {
    this.checkNewName(name);
    this._buffers.set(name, keep(value));
    if (!persistent) this._nonPersistent.add(name);
    return value;
  }

  registerModule<M extends Module>(name: string, module: M): M {
    this.checkNewName(name);
    this._modules.set(name, module);
    return module;
  }

  // Names are unique across the three kinds, as attribute names are in PyTorch. Replacing an
  // entry is not offered: values change in place, so optimizers keep valid references.
  private checkNewName(name: string): void {
    if (name === '' || name.includes('.')) throw new Error(`${this.constructor.name}: name must be non-empty and contain no ".", got "${name}"`);
    if (this._parameters.has(name) || this._buffers.has(name) || this._modules.has(name)) {
      throw new Error(`${this.constructor.name}: "${name}" is already registered`);
    }
  }

  // ------------------------------------------------------------ traversal
  /** This module ('') and every module below it with its dotted name, depth first, each once. */
  namedModules(): [string, Module][] {
    const out: [string, Module][] = [];
    const seen = new Set<Module>();
    const visit = (module: Module, prefix: string) => {
      if (seen.has(module)) return;
      seen.add(module);
      out.push([prefix, module]);
      for (const [name, child] of module._modules) visit(child, prefix === '' ? name : `${prefix}.${name}`);
    };
    visit(this, '');
    return out;
  }
  modules(): Module[] {
    return this.namedModules().map(([, m]) => m);
  }
  /** Direct children with their names. */
  namedChildren(): [string, Module][] {
    const seen = new Set<Module>();
    return [...this._modules].filter(([, m]) => !seen.has(m) && seen.add(m));
  }
  children(): Module[] {
    return this.namedChildren().map(([, m]) => m);
  }

  /** Every parameter below this module with its dotted name, each tensor once. */
  namedParameters(): [string, Parameter][] {
    return this.collect((m) => m._parameters);
  }
  parameters(): Parameter[] {
    return this.namedParameters().map(([, p]) => p);
  }
  /** Every buffer below this module (non-persistent ones too) with its dotted name. */
  namedBuffers(): [string, Tensor][] {
    return this.collect((m) => m._buffers);
  }
  buffers(): Tensor[] {
    return this.namedBuffers().map(([, b]) => b);
  }

  private collect(own: (m: Module) => Map<string, Tensor>): [string, Tensor][] {
    const out: [string, Tensor][] = [];
    const seen = new Set<Tensor>();
    for (const [prefix, module] of this.namedModules()) {
      for (const [name, t] of own(module)) {
        if (seen.has(t)) continue;
        seen.add(t);
        out.push([prefix === '' ? name : `${prefix}.${name}`, t]);
      }
    }
    return out;
  }

  // ------------------------------------------------------------ modes and gradients
  /** Sets training mode on this module and all below it. */
  train(mode = true): this {
    this.training = mode;
    for (const child of this._modules.values()) child.train(mode);
    return this;
  }
  eval(): this {
    return this.train(false);
  }

  // ------------------------------------------------------------ devices
  /**
   * Moves every parameter, gradient and buffer to `device` in place ('cuda' is cuda:LOCAL_RANK), as
   * module.to(device): the Tensor objects stay the same (so optimizers and DDP built on them hold),
   * only their data moves. The device is checked once, before anything moves.
   */
  to(device: string): this {
    const target = resolveDevice(device, `${this.constructor.name}.to`);
    // setData_ shares the moved storage: the handles made here are freed with the tidy, the data stays.
    const move = (t: Tensor) => void (t.device !== target && t.setData_(t.detach().to(target)));
    tidy(() =>
      noGrad(() => {
        for (const p of this.parameters()) {
          move(p);
          const g = p.grad;
          if (g) move(g);
        }
        for (const b of this.buffers()) move(b);
      }),
    );
    return this;
  }

  /** Where the parameters are (the first's device; 'cpu' for a module without parameters). */
  get device(): string {
    return this.parameters()[0]?.device ?? this.buffers()[0]?.device ?? 'cpu';
  }

  /** Clears every parameter's gradient (PyTorch's zero_grad(set_to_none=True)). */
  zeroGrad(): void {
    for (const p of this.parameters()) p.grad = undefined;
  }

  // ------------------------------------------------------------ state dict
  /**
   * Parameters and persistent buffers by dotted name, in PyTorch's order: each module's own
   * parameters, then its own buffers, then its children's entries. Values are new detached
   * handles sharing the module's storage: dispose them (or call this inside a scope).
   */
  stateDict(): Map<string, Tensor> {
    const out = new Map<string, Tensor>();
    const save = (module: Module, prefix: string) => {
      for (const [name, p] of module._parameters) out.set(prefix + name, p.detach());
      for (const [name, b] of module._buffers) if (!module._nonPersistent.has(name)) out.set(prefix + name, b.detach());
      for (const [name, child] of module._modules) save(child, `${prefix}${name}.`);
    };
    save(this, '');
    return out;
  }

  /**
   * Copies the values of `stateDict` into this module's parameters and buffers in place (the
   * Tensor objects stay the same; dtypes convert as copy_ does). Throws, like PyTorch, with every
   * missing key, unexpected key and shape mismatch named; with strict=false only shape and copy
   * errors throw and the key differences are returned.
   */
  loadStateDict(stateDict: ReadonlyMap<string, Tensor>, { strict = true }: LoadStateDictOptions = {}): IncompatibleKeys {
    const report: LoadReport = { missingKeys: [], unexpectedKeys: [], errors: [] };
    const load = (module: Module, local: ReadonlyMap<string, Tensor>, prefix: string) => {
      module.loadOwn(local, prefix, report);
      for (const [name, child] of module._modules) {
        const childPrefix = `${prefix}${name}.`;
        load(child, new Map([...local].filter(([key]) => key.startsWith(childPrefix))), childPrefix);
      }
    };
    tidy(() => noGrad(() => load(this, stateDict, '')));
    const { missingKeys, unexpectedKeys, errors } = report;
    if (strict) {
      const quoted = (keys: string[]) => keys.map((k) => `"${k}"`).join(', ');
      if (unexpectedKeys.length > 0) errors.unshift(`Unexpected key(s) in state_dict: ${quoted(unexpectedKeys)}. `);
      if (missingKeys.length > 0) errors.unshift(`Missing key(s) in state_dict: ${quoted(missingKeys)}. `);
    }
    if (errors.length > 0) throw new Error(`Error(s) in loading state_dict for ${this.constructor.name}:\n\t${errors.join('\n\t')}`);
    return { missingKeys, unexpectedKeys };
  }

  // As PyTorch's _load_from_state_dict: own entries, then keys under `prefix` that name nothing here.
  private loadOwn(stateDict: ReadonlyMap<string, Tensor>, prefix: string, report: LoadReport): void {
    const local = new Map<string, Tensor>(this._parameters);
    for (const [name, b] of this._buffers) if (!this._nonPersistent.has(name)) local.set(name, b);
    for (const [name, target] of local) {
      const key = prefix + name;
      let source = stateDict.get(key);
      if (source === undefined) {
        report.missingKeys.push(key);
        continue;
      }
      if (!((source as unknown) instanceof Tensor)) {
        report.errors.push(`While copying the parameter named "${key}", expected a Tensor from checkpoint but received ${typeof source}`);
        continue;
      }
      // Checkpoints from PyTorch 0.3 stored scalars as 1-element vectors.
      if (target.ndim === 0 && source.ndim === 1) source = select(source, 0, 0);
      if (!sameShape(source.shape, target.shape)) {
        report.errors.push(
          `size mismatch for ${key}: copying a param with shape [${source.shape.join(', ')}] from checkpoint, ` +
            `the shape in current model is [${target.shape.join(', ')}].`,
        );
        continue;
      }
      try {
        target.copy_(source);
      } catch (error) {
        report.errors.push(
          `While copying the parameter named "${key}", whose dimensions in the model are [${target.shape.join(', ')}] and ` +
            `whose dimensions in the checkpoint are [${source.shape.join(', ')}], an exception occurred : ${(error as Error).message}.`,
        );
      }
    }
    for (const key of stateDict.keys()) {
      if (!key.startsWith(prefix)) continue;
      const first = key.slice(prefix.length).split('.', 1)[0];
      if (!this._modules.has(first) && !local.has(first)) report.unexpectedKeys.push(key);
    }
  }

  // ------------------------------------------------------------ lifetime
  /** Frees every parameter and buffer of this module and the modules below it. */
  dispose(): void {
    for (const t of [...this.parameters(), ...this.buffers()]) t.dispose();
  }
  [Symbol.dispose](): void {
    this.dispose();
  }
}

const sameShape = (a: number[], b: number[]) => a.length === b.length && a.every((d, i) => d === b[i]);

/**
 * The graph an export builds: nodes in execution order, initializers (weights, named by their
 * state-dict key), and the static shape of every value (the batch dimension stays symbolic).
 * Emitters (./emitters.ts) append to it while walking a model's modules in forward order.
 */
import type { Module } from '../nn/index.js';
import type { Tensor } from '../torch/index.js';
import type { Attribute, Dim, NodeProto, TensorProto } from './onnx-proto.js';

/** A value of the graph: its name and shape. */
export interface Value {
  name: string;
  shape: Dim[];
}

export class GraphBuilder {
  readonly nodes: NodeProto[] = [];
  readonly initializers = new Map<string, TensorProto>();
  private readonly names = new Set<string>();
  private readonly paths = new Map<Module, string>();

  /** `model`'s modules give initializers and nodes their dotted names. */
  constructor(readonly opset: number, model: Module) {
    for (const [name, m] of model.namedModules()) this.paths.set(m, name);
  }

  /** The module's dotted name in the exported model ('' for the model itself). */
  path(m: Module): string {
    const p = this.paths.get(m);
    if (p === undefined) throw new Error(`ONNX export: a ${m.constructor.name} that is not part of the exported model`);
    return p;
  }

  /** `base`, or `base_1`, `base_2`, … if taken: every value and node name is unique. */
  fresh(base: string): string {
    const root = base || 'value';
    let name = root;
    for (let i = 1; this.names.has(name); i++) name = `${root}_${i}`;
    this.names.add(name);
    return name;
  }

  /** Appends a node with one output named after `name` (a module path or an op name). */
  node(opType: string, inputs: string[], shape: Dim[], { name = opType, attributes = [] }: { name?: string; attributes?: Attribute[] } = {}): Value {
    const out = this.fresh(name);
    this.nodes.push({ name: out, opType, inputs, outputs: [out], attributes });
    return { name: out, shape };
  }

  /** Adds a float32 (or int64) constant and returns its name. */
  constant(name: string, data: Float32Array | BigInt64Array, dims: number[]): string {
    const unique = this.fresh(name);
    this.initializers.set(unique, { name: unique, dims, data });
    return unique;
  }

  /** A module's parameter or buffer as an initializer named by its state-dict key, optionally reshaped. */
  param(m: Module, key: string, t: Tensor, dims: number[] = t.shape): string {
    const prefix = this.path(m);
    const float = t.float();
    try {
      return this.constant(prefix ? `${prefix}.${key}` : key, float.data() as Float32Array, dims);
    } finally {
      float.dispose();
    }
  }
}

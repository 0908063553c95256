/**
 * How each module type becomes ONNX nodes. An emitter receives the module, the value its forward()
 * would receive and the graph, appends the nodes forward() would run (in eval mode: dropout is the
 * identity, batch norm uses the running statistics) and returns the output value.
 *
 * The registry is open: a new module type is exported by registering its class, e.g.
 *
 *   registerEmitter(MyBlock, (m, x, g) => {
 *     const y = emit(m.conv, x, g);                       // children through their own emitters
 *     return g.node('Add', [x.name, y.name], x.shape, { name: `${g.path(m)}.add` });
 *   });
 *
 * Lookup is by exact class: a subclass with its own forward() needs its own emitter, and a module
 * without one is an error that names it, never a silently wrong graph.
 */
import { BatchNorm1d, BatchNorm2d, Conv2d, Dropout, Flatten, Identity, LayerNorm, Linear, PReLU, ReLU, ReLU6, Sequential, Sigmoid } from '../nn/index.js';
import type { BatchNorm, Module } from '../nn/index.js';
import { ones, zeros } from '../torch/index.js';
import type { Dim } from './onnx-proto.js';
import type { GraphBuilder, Value } from './graph.js';

export type Emitter<M extends Module = Module> = (module: M, x: Value, g: GraphBuilder) => Value;

type ModuleClass<M extends Module> = abstract new (...args: never[]) => M;

const emitters = new Map<Function, Emitter<never>>();

/** Makes modules of exactly this class exportable (replacing an earlier emitter for it). */
export function registerEmitter<M extends Module>(type: ModuleClass<M>, emitter: Emitter<M>): void {
  emitters.set(type, emitter as Emitter<never>);
}

/** Appends the nodes of `module.forward(x)` to the graph. */
export function emit(module: Module, x: Value, g: GraphBuilder): Value {
  const emitter = emitters.get(module.constructor) as Emitter | undefined;
  if (!emitter) {
    throw new Error(`ONNX export: no emitter for ${module.constructor.name} at '${g.path(module) || '(model)'}' (add one with registerEmitter)`);
  }
  return emitter(module, x, g);
}

/** Emits the children of `module` one after the other (what Sequential-like forwards do). */
export const emitChildren = (module: Module, x: Value, g: GraphBuilder): Value => module.children().reduce((v, child) => emit(child, v, g), x);

const pair = (v: number | [number, number]): [number, number] => (typeof v === 'number' ? [v, v] : v);
const product = (dims: Dim[]): Dim => (dims.every((d) => typeof d === 'number') ? (dims as number[]).reduce((a, b) => a * b, 1) : `${dims.join('*')}`);

/** ONNX Flatten(axis = 1): N × (everything else), as torch.flatten(x, 1). */
export const flatten1 = (x: Value, g: GraphBuilder, name: string): Value =>
  g.node('Flatten', [x.name], [x.shape[0], product(x.shape.slice(1))], { name, attributes: [{ name: 'axis', i: 1 }] });

function conv2d(m: Conv2d, x: Value, g: GraphBuilder): Value {
  const [kh, kw] = m.kernelSize;
  const [sh, sw] = pair(m.stride);
  const [dh, dw] = pair(m.dilation);
  let pads: [number, number, number, number];
  if (m.padding === 'valid') pads = [0, 0, 0, 0];
  else if (m.padding === 'same') {
    // PyTorch puts the odd pixel of 'same' padding at the end
    const th = dh * (kh - 1), tw = dw * (kw - 1);
    pads = [Math.floor(th / 2), Math.floor(tw / 2), th - Math.floor(th / 2), tw - Math.floor(tw / 2)];
  } else {
    const [ph, pw] = pair(m.padding);
    pads = [ph, pw, ph, pw];
  }
  const size = (n: Dim, pad: number, d: number, k: number, s: number): Dim =>
    typeof n === 'number' ? Math.floor((n + pad - d * (k - 1) - 1) / s) + 1 : n;
  const [batch, , h, w] = x.shape;
  const shape = [batch, m.outChannels, size(h, pads[0] + pads[2], dh, kh, sh), size(w, pads[1] + pads[3], dw, kw, sw)];
  const inputs = [x.name, g.param(m, 'weight', m.weight)];
  if (m.bias) inputs.push(g.param(m, 'bias', m.bias));
  return g.node('Conv', inputs, shape, {
    name: g.path(m),
    attributes: [
      { name: 'dilations', ints: [dh, dw] },
      { name: 'group', i: m.groups },
      { name: 'kernel_shape', ints: [kh, kw] },
      { name: 'pads', ints: pads },
      { name: 'strides', ints: [sh, sw] },
    ],
  });
}

function batchNorm(m: BatchNorm, x: Value, g: GraphBuilder): Value {
  if (!m.runningMean || !m.runningVar) throw new Error(`ONNX export: ${g.path(m)} has no running statistics (trackRunningStats false) to export`);
  const n = m.numFeatures;
  const scale = m.weight ? g.param(m, 'weight', m.weight) : g.constant(`${g.path(m)}.weight`, new Float32Array(n).fill(1), [n]);
  const bias = m.bias ? g.param(m, 'bias', m.bias) : g.constant(`${g.path(m)}.bias`, new Float32Array(n), [n]);
  const inputs = [x.name, scale, bias, g.param(m, 'running_mean', m.runningMean), g.param(m, 'running_var', m.runningVar)];
  return g.node('BatchNormalization', inputs, x.shape, { name: g.path(m), attributes: [{ name: 'epsilon', f: m.eps }] });
}

function prelu(m: PReLU, x: Value, g: GraphBuilder): Value {
  // ONNX broadcasts the slope from the last dimension: one per channel is [C, 1, …, 1]
  const dims = m.numParameters === 1 ? [1] : [m.numParameters, ...Array<number>(Math.max(x.shape.length - 2, 0)).fill(1)];
  return g.node('PRelu', [x.name, g.param(m, 'weight', m.weight, dims)], x.shape, { name: g.path(m) });
}

function linear(m: Linear, x: Value, g: GraphBuilder): Value {
  const shape = [...x.shape.slice(0, -1), m.outFeatures];
  if (x.shape.length === 2) {
    const inputs = [x.name, g.param(m, 'weight', m.weight)];
    if (m.bias) inputs.push(g.param(m, 'bias', m.bias));
    return g.node('Gemm', inputs, shape, { name: g.path(m), attributes: [{ name: 'transB', i: 1 }] });
  }
  // tokens (N × T × D): MatMul by the transposed weight, then the bias
  const weightT = m.weight.t();
  try {
    const y = g.node('MatMul', [x.name, g.param(m, 'weight_t', weightT)], shape, { name: g.path(m) });
    return m.bias ? g.node('Add', [y.name, g.param(m, 'bias', m.bias)], shape, { name: `${g.path(m)}.bias_add` }) : y;
  } finally {
    weightT.dispose();
  }
}

function flatten(m: Flatten, x: Value, g: GraphBuilder): Value {
  const rank = x.shape.length;
  const start = m.startDim < 0 ? m.startDim + rank : m.startDim;
  const end = m.endDim < 0 ? m.endDim + rank : m.endDim;
  if (start === 1 && end === rank - 1) return flatten1(x, g, g.path(m));
  const shape = [...x.shape.slice(0, start), product(x.shape.slice(start, end + 1)), ...x.shape.slice(end + 1)];
  // Reshape: leading dims copied (0), the merged one inferred (−1), trailing ones as they are
  const trailing = x.shape.slice(end + 1);
  if (trailing.some((d) => typeof d !== 'number')) throw new Error(`ONNX export: ${g.path(m)}: cannot flatten before a symbolic dimension`);
  const target = BigInt64Array.from([...Array<bigint>(start).fill(0n), -1n, ...trailing.map((d) => BigInt(d))]);
  return g.node('Reshape', [x.name, g.constant(`${g.path(m)}.shape`, target, [target.length])], shape, { name: g.path(m) });
}

function layerNorm(m: LayerNorm, x: Value, g: GraphBuilder): Value {
  if (g.opset < 17) throw new Error(`ONNX export: ${g.path(m)}: LayerNormalization needs opset 17 or later (exporting opset ${g.opset})`);
  const weight = m.weight ?? ones(m.normalizedShape), bias = m.bias ?? zeros(m.normalizedShape);
  try {
    const inputs = [x.name, g.param(m, 'weight', weight), g.param(m, 'bias', bias)];
    const attributes = [{ name: 'axis', i: -m.normalizedShape.length }, { name: 'epsilon', f: m.eps }];
    return g.node('LayerNormalization', inputs, x.shape, { name: g.path(m), attributes });
  } finally {
    if (!m.weight) weight.dispose();
    if (!m.bias) bias.dispose();
  }
}

/** ReLU6 as Clip(0, 6); exported for subclasses that only change how it trains (the ViT's). */
export const relu6 = (m: Module, x: Value, g: GraphBuilder): Value =>
  g.node('Clip', [x.name, g.constant(`${g.path(m)}.min`, Float32Array.of(0), []), g.constant(`${g.path(m)}.max`, Float32Array.of(6), [])], x.shape, { name: g.path(m) });

const unary = (opType: string) => (m: Module, x: Value, g: GraphBuilder) => g.node(opType, [x.name], x.shape, { name: g.path(m) });
const identity = (_m: Module, x: Value) => x;

registerEmitter(Sequential, emitChildren);
registerEmitter(Identity, identity);
registerEmitter(Dropout, identity);
registerEmitter(Conv2d, conv2d);
registerEmitter(BatchNorm1d, batchNorm);
registerEmitter(BatchNorm2d, batchNorm);
registerEmitter(PReLU, prelu);
registerEmitter(Linear, linear);
registerEmitter(Flatten, flatten);
registerEmitter(LayerNorm, layerNorm);
registerEmitter(ReLU, unary('Relu'));
registerEmitter(Sigmoid, unary('Sigmoid'));
registerEmitter(ReLU6, relu6);

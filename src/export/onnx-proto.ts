/**
 * The ONNX messages the exporter writes (onnx/onnx.proto, field numbers as there): a model with
 * one graph of nodes, initializers (raw little-endian data) and typed inputs/outputs. Repeated
 * scalars are written unpacked, as proto2 (which onnx.proto is) does.
 */
import { ProtoWriter } from './protobuf.js';

/** TensorProto.DataType */
export const DataType = { float: 1, int64: 7 } as const;

export interface TensorProto {
  name: string;
  dims: number[];
  data: Float32Array | BigInt64Array;
  /** where the data lies in the side file instead (data_location EXTERNAL) */
  external?: { location: string; offset: number; length: number };
}

export type Attribute = { name: string } & ({ i: number } | { f: number } | { s: string } | { ints: number[] } | { floats: number[] });

export interface NodeProto {
  name: string;
  opType: string;
  inputs: string[];
  outputs: string[];
  attributes: Attribute[];
}

/** A dimension: its size, or the name of a symbolic one (the batch). */
export type Dim = number | string;

export interface ValueInfo {
  name: string;
  shape: Dim[];
}

export interface ModelProto {
  irVersion: number;
  opset: number;
  producerName: string;
  producerVersion: string;
  graph: {
    name: string;
    nodes: NodeProto[];
    initializers: TensorProto[];
    inputs: ValueInfo[];
    outputs: ValueInfo[];
  };
}

/** A tensor's data as little-endian bytes (a view, not a copy). */
export const tensorBytes = (t: TensorProto): Uint8Array => new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);

function tensorProto(t: TensorProto): ProtoWriter {
  const w = new ProtoWriter();
  for (const d of t.dims) w.int(1, d);
  w.int(2, t.data instanceof Float32Array ? DataType.float : DataType.int64);
  w.string(8, t.name);
  if (t.external) {
    // external_data: StringStringEntryProto {key, value}; data_location EXTERNAL (1)
    for (const [key, value] of Object.entries(t.external)) w.message(13, new ProtoWriter().string(1, key).string(2, String(value)));
    w.int(14, 1);
    return w;
  }
  // raw_data is little-endian, as typed arrays are on every platform Node supports
  w.bytes(9, tensorBytes(t));
  return w;
}

// AttributeProto.AttributeType
const FLOAT = 1, INT = 2, STRING = 3, FLOATS = 6, INTS = 7;

function attributeProto(a: Attribute): ProtoWriter {
  const w = new ProtoWriter().string(1, a.name);
  if ('f' in a) w.float(2, a.f).int(20, FLOAT);
  else if ('i' in a) w.int(3, a.i).int(20, INT);
  else if ('s' in a) w.string(4, a.s).int(20, STRING);
  else if ('floats' in a) {
    for (const f of a.floats) w.float(7, f);
    w.int(20, FLOATS);
  } else {
    for (const i of a.ints) w.int(8, i);
    w.int(20, INTS);
  }
  return w;
}

function nodeProto(n: NodeProto): ProtoWriter {
  const w = new ProtoWriter();
  for (const i of n.inputs) w.string(1, i);
  for (const o of n.outputs) w.string(2, o);
  w.string(3, n.name).string(4, n.opType);
  for (const a of n.attributes) w.message(5, attributeProto(a));
  return w;
}

/** ValueInfoProto of a float tensor: TypeProto.tensor_type { elem_type, shape { dim* } }. */
function valueInfoProto(v: ValueInfo): ProtoWriter {
  const shape = new ProtoWriter();
  for (const d of v.shape) shape.message(1, typeof d === 'number' ? new ProtoWriter().int(1, d) : new ProtoWriter().string(2, d));
  const tensorType = new ProtoWriter().int(1, DataType.float).message(2, shape);
  return new ProtoWriter().string(1, v.name).message(2, new ProtoWriter().message(1, tensorType));
}

export function encodeModel(m: ModelProto): ProtoWriter {
  const g = new ProtoWriter();
  for (const n of m.graph.nodes) g.message(1, nodeProto(n));
  g.string(2, m.graph.name);
  for (const t of m.graph.initializers) g.message(5, tensorProto(t));
  for (const v of m.graph.inputs) g.message(11, valueInfoProto(v));
  for (const v of m.graph.outputs) g.message(12, valueInfoProto(v));
  return new ProtoWriter()
    .int(1, m.irVersion)
    .string(2, m.producerName)
    .string(3, m.producerVersion)
    .message(7, g)
    .message(8, new ProtoWriter().string(1, '').int(2, m.opset));
}

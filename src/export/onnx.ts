/**
 * ONNX export of a backbone: its modules, walked in forward order through the emitter registry
 * (./emitters.ts, ./backbones.ts), become one graph with the weights as initializers. The input
 * is NCHW float32 [batch, 3, 112, 112] with a symbolic batch ('None', as arcface_torch's
 * torch2onnx.py names it); the output is [batch, embedding size], the raw (unnormalised) embedding.
 * The graph computes the model's eval-mode forward.
 *
 * The opset defaults to the lowest the model's layers need: 13, or 17 when it has a LayerNorm
 * (LayerNormalization, ONNX 1.12), as the ViTs do. LayerNorm is not decomposed for older opsets.
 */
import fs from 'node:fs';
import path from 'node:path';
import { version } from '../package.js';
import { LayerNorm, type Module } from '../nn/index.js';
import { GraphBuilder } from './graph.js';
import { emit } from './emitters.js';
import { foldBatchNorms } from './fold-bn.js';
import { encodeModel, tensorBytes, type TensorProto } from './onnx-proto.js';
import { writeFileAtomic } from '../torch/serialization/torch-file.js';
import type { ProtoWriter } from './protobuf.js';
import './backbones.js';
import './vit.js';

/** The IR version of the ONNX release that introduced each opset (onnx/helper.py VERSION_TABLE). */
export const IR_VERSION_OF_OPSET: Readonly<Record<number, number>> = { 13: 7, 14: 7, 15: 8, 16: 8, 17: 8, 18: 8, 19: 9, 20: 9, 21: 10 };

export interface OnnxExportOptions {
  /** default: the lowest the model needs (defaultOpset), read by the most runtimes */
  opset?: number;
  /** fold batch norms that follow a Conv or Linear into its weights */
  simplifyBn?: boolean;
  /** default 'input.1' (the name torch.onnx.export gives an unnamed input) */
  inputName?: string;
  /** default 'embedding' */
  outputName?: string;
  /** C, H, W of one image (default 3, 112, 112) */
  imageShape?: [number, number, number];
  /**
   * Weights (initializer bytes) above this go to one side file as ONNX external data (default
   * EXTERNAL_DATA_THRESHOLD, under protobuf's 2 GiB message limit); 0 forces it.
   */
  externalDataThreshold?: number;
  /** the side file's name, relative to the model file (writeOnnx: `<model file name>.data`) */
  externalDataLocation?: string;
}

/** 1920 MiB: protobuf cannot hold a message of 2 GiB; this leaves the graph itself room. */
export const EXTERNAL_DATA_THRESHOLD = 2 ** 31 - 2 ** 27;
/** tensors smaller than this stay inline (onnx's convert_model_to_external_data default) */
const EXTERNAL_MIN_BYTES = 1024;
/** each external tensor starts at a multiple of this (a page: the runtime can map it) */
const EXTERNAL_ALIGN = 4096;

export interface OnnxGraphSummary {
  nodes: number;
  initializers: number;
  foldedBatchNorms: number;
  ops: Record<string, number>;
  outputShape: (number | string)[];
  opset: number;
  /** the side file and its bytes, when the weights went there */
  externalData?: { location: string; bytes: number; tensors: number };
}

/** 17 for a model with a LayerNorm (LayerNormalization), else 13. */
export const defaultOpset = (model: Module): number => (model.modules().some((m) => m instanceof LayerNorm) ? 17 : 13);

/**
 * The model as an ONNX protobuf message (serialise with `.finish()`), and what it holds. Weights over
 * the external-data threshold are only referenced from it: `external` lists them with their offsets
 * in the side file (writeOnnx writes it).
 */
export function exportOnnx(model: Module, options: OnnxExportOptions = {}): { proto: ProtoWriter; summary: OnnxGraphSummary; external: TensorProto[] } {
  const { opset = defaultOpset(model), simplifyBn = false, inputName = 'input.1', outputName = 'embedding', imageShape = [3, 112, 112] } = options;
  const irVersion = IR_VERSION_OF_OPSET[opset];
  if (irVersion === undefined) throw new Error(`ONNX export: opset ${opset} is not supported (choose ${Object.keys(IR_VERSION_OF_OPSET).join(', ')})`);
  if (inputName === outputName) throw new Error(`ONNX export: the input and the output are both named '${inputName}'`);

  const g = new GraphBuilder(opset, model);
  const input = { name: g.fresh(inputName), shape: ['None', ...imageShape] };
  g.fresh(outputName); // reserved: no inner value may take it
  const out = emit(model, input, g);
  if (out.name === input.name) throw new Error('ONNX export: the model returns its input unchanged');
  // the model's output value takes the public name
  for (const n of g.nodes) {
    n.outputs = n.outputs.map((o) => (o === out.name ? outputName : o));
    n.inputs = n.inputs.map((i) => (i === out.name ? outputName : i));
  }
  const foldedBatchNorms = simplifyBn ? foldBatchNorms(g, [outputName]) : 0;

  const ops: Record<string, number> = {};
  for (const n of g.nodes) ops[n.opType] = (ops[n.opType] ?? 0) + 1;
  const initializers = [...g.initializers.values()];
  const external = placeExternal(initializers, options);
  const proto = encodeModel({
    irVersion,
    opset,
    producerName: 'arcface-ts',
    producerVersion: version(),
    graph: {
      name: model.constructor.name,
      nodes: g.nodes,
      initializers,
      inputs: [input],
      outputs: [{ name: outputName, shape: out.shape }],
    },
  });
  const last = external.at(-1)?.external;
  const externalData = last && { location: last.location, bytes: last.offset + last.length, tensors: external.length };
  return { proto, summary: { nodes: g.nodes.length, initializers: g.initializers.size, foldedBatchNorms, ops, outputShape: out.shape, opset, externalData }, external };
}

/** Over the threshold: gives the initializers of EXTERNAL_MIN_BYTES or more their place in the side file. */
function placeExternal(initializers: TensorProto[], options: OnnxExportOptions): TensorProto[] {
  const total = initializers.reduce((sum, t) => sum + t.data.byteLength, 0);
  const threshold = options.externalDataThreshold ?? EXTERNAL_DATA_THRESHOLD;
  if (total <= threshold) return [];
  const location = options.externalDataLocation;
  if (!location) throw new Error(`ONNX export: the weights are ${total} bytes, over the external-data threshold of ${threshold}: write the model with writeOnnx (a side file), or give externalDataLocation`);
  let offset = 0;
  const placed = initializers.filter((t) => t.data.byteLength >= EXTERNAL_MIN_BYTES);
  for (const t of placed) {
    offset = Math.ceil(offset / EXTERNAL_ALIGN) * EXTERNAL_ALIGN;
    t.external = { location, offset, length: t.data.byteLength };
    offset += t.data.byteLength;
  }
  return placed;
}

/**
 * Writes the model's ONNX file, through a temporary file renamed over it (a crash leaves the old
 * file or the new one, never half of one); weights over the threshold go to `<file>.data` next to
 * it, written the same way and renamed first. Returns what the graph holds.
 */
export function writeOnnx(file: string, model: Module, options: OnnxExportOptions = {}): OnnxGraphSummary {
  const location = options.externalDataLocation ?? `${path.basename(file)}.data`;
  const { proto, summary, external } = exportOnnx(model, { ...options, externalDataLocation: location });
  const side = path.join(path.dirname(file), location);
  if (external.length > 0) {
    writeFileAtomic(side, (sink) => {
      let at = 0;
      for (const t of external) {
        if (t.external!.offset > at) sink(new Uint8Array(t.external!.offset - at));
        sink(tensorBytes(t));
        at = t.external!.offset + t.external!.length;
      }
    });
  }
  writeFileAtomic(file, (sink) => proto.writeTo(sink));
  // a side file of an earlier export that this model does not use
  if (external.length === 0 && options.externalDataLocation === undefined) fs.rmSync(side, { force: true });
  return summary;
}

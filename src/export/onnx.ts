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
import { writeFileSync } from 'node:fs';
import { version } from '../package.js';
import { LayerNorm, type Module } from '../nn/index.js';
import { GraphBuilder } from './graph.js';
import { emit } from './emitters.js';
import { foldBatchNorms } from './fold-bn.js';
import { encodeModel } from './onnx-proto.js';
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
}

export interface OnnxGraphSummary {
  nodes: number;
  initializers: number;
  foldedBatchNorms: number;
  ops: Record<string, number>;
  outputShape: (number | string)[];
  opset: number;
}

/** 17 for a model with a LayerNorm (LayerNormalization), else 13. */
export const defaultOpset = (model: Module): number => (model.modules().some((m) => m instanceof LayerNorm) ? 17 : 13);

/** The model as an ONNX protobuf message (serialise with `.finish()`), and what it holds. */
export function exportOnnx(model: Module, options: OnnxExportOptions = {}): { proto: ProtoWriter; summary: OnnxGraphSummary } {
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
  const proto = encodeModel({
    irVersion,
    opset,
    producerName: 'arcface-ts',
    producerVersion: version(),
    graph: {
      name: model.constructor.name,
      nodes: g.nodes,
      initializers: [...g.initializers.values()],
      inputs: [input],
      outputs: [{ name: outputName, shape: out.shape }],
    },
  });
  return { proto, summary: { nodes: g.nodes.length, initializers: g.initializers.size, foldedBatchNorms, ops, outputShape: out.shape, opset } };
}

/** Writes the model's ONNX file; returns what the graph holds. */
export function writeOnnx(file: string, model: Module, options: OnnxExportOptions = {}): OnnxGraphSummary {
  const { proto, summary } = exportOnnx(model, options);
  writeFileSync(file, proto.finish());
  return summary;
}

/**
 * `arcface export onnx`: a model.pt backbone as an ONNX file.
 *
 *   arcface export onnx --model model.pt --network r50 --out model.onnx [--simplify-bn] [--opset N]
 *                       [--input-name input.1] [--output-name NAME] [--external-data] [--check]
 *
 * The output is named as arcface_torch's torch2onnx.py names it for that network (see
 * src/export/torch-names.ts) unless --output-name says otherwise. --check runs the file in
 * onnxruntime and compares its embeddings of random images with libtorch's. The opset defaults to
 * the lowest the network needs: 13, or 17 for the ViTs (LayerNormalization).
 */
import * as torch from '../torch/index.js';
import { loadBackbone, OnnxEmbedder, TorchEmbedder } from '../eval/index.js';
import { torchOutputName, writeOnnx } from '../export/index.js';
import { intOption, parseOptions, UsageError } from './args.js';
import { usage } from './help.js';

/** Largest |libtorch − onnxruntime| over the embeddings of a few random images, and their largest magnitude. */
async function check(file: string, torchEmbedder: TorchEmbedder): Promise<{ maxAbsDiff: number; maxAbs: number }> {
  const onnx = await OnnxEmbedder.create(file);
  const images = torch.tidy(() => torch.rand([3, 3, 112, 112]).mul(2).sub(1));
  try {
    const [ours, theirs] = [await torchEmbedder.embed(images), await onnx.embed(images)];
    try {
      return torch.tidy(() => ({ maxAbsDiff: ours.sub(theirs).abs().max().item(), maxAbs: ours.abs().max().item() }));
    } finally {
      torch.dispose(ours, theirs);
    }
  } finally {
    images.dispose();
    await onnx.dispose();
  }
}

async function onnx(args: string[]): Promise<number> {
  const command = 'arcface export onnx';
  const o = parseOptions(args, { values: ['model', 'network', 'out', 'opset', 'input-name', 'output-name'], flags: ['simplify-bn', 'check', 'external-data'] }, command);
  const [model, network, out] = ['model', 'network', 'out'].map((k) => o.get(k));
  if (typeof model !== 'string' || typeof network !== 'string' || typeof out !== 'string') {
    throw new UsageError(usage('export'));
  }
  const opset = o.has('opset') ? intOption(o, 'opset', 13, 13) : undefined;
  const embedder = new TorchEmbedder(loadBackbone(model, network));
  try {
    const started = Date.now();
    const summary = writeOnnx(out, embedder.backbone, {
      opset,
      simplifyBn: o.has('simplify-bn'),
      // weights above 1920 MiB go to <out>.data regardless; the flag sends them there at any size
      ...(o.has('external-data') ? { externalDataThreshold: 0 } : {}),
      inputName: typeof o.get('input-name') === 'string' ? String(o.get('input-name')) : undefined,
      outputName: typeof o.get('output-name') === 'string' ? String(o.get('output-name')) : (torchOutputName(network) ?? 'embedding'),
    });
    const ops = Object.entries(summary.ops).map(([op, n]) => `${op} ${n}`).join(', ');
    const side = summary.externalData ? `, weights in ${summary.externalData.location} (${summary.externalData.bytes} bytes)` : '';
    console.log(`${out}: ${network}, opset ${summary.opset}, ${summary.nodes} nodes (${ops}), output [${summary.outputShape.join(', ')}]${side}, in ${((Date.now() - started) / 1000).toFixed(1)} s`);
    if (o.has('check')) {
      const { maxAbsDiff, maxAbs } = await check(out, embedder);
      console.log(`onnxruntime check: max |difference| ${maxAbsDiff.toExponential(2)} over embeddings up to ${maxAbs.toFixed(3)}`);
      if (!(maxAbsDiff <= 1e-4 * Math.max(1, maxAbs))) throw new Error(`${out}: onnxruntime's embeddings differ from libtorch's by ${maxAbsDiff}`);
    }
  } finally {
    await embedder.dispose();
  }
  return 0;
}

export async function exportCommand(args: string[]): Promise<number> {
  const [format, ...rest] = args;
  if (format !== 'onnx') throw new UsageError(`${usage('export')}${format ? `\n(unknown format '${format}')` : ''}`);
  return onnx(rest);
}

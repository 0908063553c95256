/**
 * `--simplify-bn`: folds every BatchNormalization that directly follows a Conv, or a Gemm of a
 * Linear layer, into that node's weight and bias (what torch.onnx.export does in eval mode):
 *
 *   s = γ / √(var + ε),   W' = W · s (per output channel),   b' = (b − mean) · s + β
 *
 * Batch norms after anything else stay (IResNet's pre-activation bn1 and its bn2 before the
 * flatten: folding those into the following conv would be wrong where it pads with zeros).
 */
import type { GraphBuilder } from './graph.js';
import type { NodeProto, TensorProto } from './onnx-proto.js';

const attr = (n: NodeProto, name: string) => n.attributes.find((a) => a.name === name);

/** Gemm(A, W, b) with W as [out, in], nothing scaled: a Linear layer. */
const isLinearGemm = (n: NodeProto) =>
  n.opType === 'Gemm' && (attr(n, 'transB') as { i: number } | undefined)?.i === 1 && ['transA', 'alpha', 'beta'].every((a) => !attr(n, a));

/** Folds in place; returns how many batch norms were folded. */
export function foldBatchNorms(g: GraphBuilder, graphOutputs: string[]): number {
  const uses = new Map<string, number>();
  for (const n of g.nodes) for (const i of n.inputs) uses.set(i, (uses.get(i) ?? 0) + 1);
  const producer = new Map(g.nodes.flatMap((n) => n.outputs.map((o) => [o, n] as const)));
  const folded = new Set<NodeProto>();
  const floats = (name: string | undefined) => {
    const t = name === undefined ? undefined : g.initializers.get(name);
    return t?.data instanceof Float32Array ? (t as TensorProto & { data: Float32Array }) : undefined;
  };

  for (const bn of g.nodes) {
    if (bn.opType !== 'BatchNormalization') continue;
    const prev = producer.get(bn.inputs[0]);
    if (!prev || !(prev.opType === 'Conv' || isLinearGemm(prev))) continue;
    // the pre-norm value must feed only this batch norm
    if (uses.get(prev.outputs[0]) !== 1 || graphOutputs.includes(prev.outputs[0])) continue;
    const weight = floats(prev.inputs[1]);
    const [gamma, beta, mean, variance] = bn.inputs.slice(1).map(floats);
    if (!weight || !gamma || !beta || !mean || !variance) continue;
    const bias = floats(prev.inputs[2]);
    const eps = (attr(bn, 'epsilon') as { f: number } | undefined)?.f ?? 1e-5;

    const channels = weight.dims[0];
    const perChannel = weight.data.length / channels;
    const w = new Float32Array(weight.data.length), b = new Float32Array(channels);
    for (let c = 0; c < channels; c++) {
      const s = gamma.data[c] / Math.sqrt(variance.data[c] + eps);
      for (let k = c * perChannel; k < (c + 1) * perChannel; k++) w[k] = weight.data[k] * s;
      b[c] = ((bias?.data[c] ?? 0) - mean.data[c]) * s + beta.data[c];
    }
    const name = `${prev.name}+${bn.name}`;
    prev.inputs = [prev.inputs[0], g.constant(`${name}.weight`, w, weight.dims), g.constant(`${name}.bias`, b, [channels])];
    prev.outputs = bn.outputs;
    folded.add(bn);
  }

  g.nodes.splice(0, g.nodes.length, ...g.nodes.filter((n) => !folded.has(n)));
  const used = new Set(g.nodes.flatMap((n) => n.inputs));
  for (const name of [...g.initializers.keys()]) if (!used.has(name)) g.initializers.delete(name);
  return folded.size;
}

/**
 * Emitters of the Vision Transformer (src/models/vit.ts), mirroring its eval-mode forward: masking
 * and drop path are training-only and activation checkpointing changes how the blocks run, not
 * what they compute. The attention (float32 in the model under bf16/fp16 too) is written out as
 * MatMul → Mul(scale) → Softmax → MatMul, which is what every attention backend computes.
 *
 * Reshapes copy the batch with 0 and spell out the other dimensions, so one file takes any batch.
 * LayerNorm needs opset 17 (LayerNormalization); the per-patch BatchNorm variant exports from 13.
 */
import { Attention, Block, Mlp, PatchEmbed, VisionTransformer, VITBatchNorm } from '../models/vit.js';
import type { Dim } from './onnx-proto.js';
import { emit, registerEmitter, relu6 } from './emitters.js';
import type { GraphBuilder, Value } from './graph.js';

/** Reshape to `dims` (0: copy the input's dimension there); `shape` is the resulting value's. */
function reshape(x: Value, dims: number[], shape: Dim[], g: GraphBuilder, name: string): Value {
  const target = BigInt64Array.from(dims.map((d) => BigInt(d)));
  return g.node('Reshape', [x.name, g.constant(`${name}.shape`, target, [dims.length])], shape, { name });
}

function transpose(x: Value, perm: number[], g: GraphBuilder, name: string): Value {
  return g.node('Transpose', [x.name], perm.map((p) => x.shape[p]), { name, attributes: [{ name: 'perm', ints: perm }] });
}

// N×C×H×W → conv → N×D×h×w → N×D×(h·w) → N×patches×D
registerEmitter(PatchEmbed, (m, x, g) => {
  const [, , h, w] = x.shape;
  if (h !== m.imgSize || w !== m.imgSize) {
    throw new Error(`ONNX export: ${g.path(m)}: input image size (${h}*${w}) doesn't match model (${m.imgSize}*${m.imgSize})`);
  }
  const dim = m.proj.outChannels;
  const tokens = reshape(emit(m.proj, x, g), [0, dim, m.numPatches], [x.shape[0], dim, m.numPatches], g, `${g.path(m)}.flatten`);
  return transpose(tokens, [0, 2, 1], g, `${g.path(m)}.transpose`);
});

registerEmitter(Attention, (m, x, g) => {
  const p = g.path(m);
  const [batch, tokens, dim] = x.shape as [Dim, number, number];
  const heads = m.numHeads, headDim = dim / heads;
  // [N, T, 3D] → [N, T, 3, heads, D/heads] → [3, N, heads, T, D/heads]
  const qkv = emit(m.qkv, x, g);
  const split = reshape(qkv, [0, 0, 3, heads, headDim], [batch, tokens, 3, heads, headDim], g, `${p}.reshape`);
  const stacked = transpose(split, [2, 0, 3, 1, 4], g, `${p}.permute`);
  const [q, k, v] = ['q', 'k', 'v'].map((part, i) =>
    g.node('Gather', [stacked.name, g.constant(`${p}.${part}_index`, BigInt64Array.of(BigInt(i)), [])], stacked.shape.slice(1), {
      name: `${p}.${part}`,
      attributes: [{ name: 'axis', i: 0 }],
    }),
  );
  const scoresShape = [batch, heads, tokens, tokens];
  const kT = transpose(k, [0, 1, 3, 2], g, `${p}.k_t`);
  const scores = g.node('MatMul', [q.name, kT.name], scoresShape, { name: `${p}.scores` });
  const scaled = g.node('Mul', [scores.name, g.constant(`${p}.scale`, Float32Array.of(headDim ** -0.5), [])], scoresShape, { name: `${p}.scaled` });
  const weights = g.node('Softmax', [scaled.name], scoresShape, { name: `${p}.softmax`, attributes: [{ name: 'axis', i: -1 }] });
  const mixed = g.node('MatMul', [weights.name, v.name], v.shape, { name: `${p}.mix` });
  // [N, heads, T, D/heads] → [N, T, heads, D/heads] → [N, T, D]
  const merged = reshape(transpose(mixed, [0, 2, 1, 3], g, `${p}.transpose`), [0, 0, dim], x.shape, g, `${p}.merge`);
  return emit(m.proj, merged, g);
});

// the activation is a ReLU6 subclass that only changes how it trains in bfloat16
registerEmitter(Mlp, (m, x, g) => emit(m.fc2, relu6(m.act, emit(m.fc1, x, g), g), g));

// BatchNormalization normalises axis 1 of N×patches×D: the patch axis, as BatchNorm1d does
registerEmitter(VITBatchNorm, (m, x, g) => emit(m.bn, x, g));

// x + attn(norm1(x)), then + mlp(norm2(·)); drop path is the identity in eval
registerEmitter(Block, (m, x, g) => {
  const a = emit(m.attn, emit(m.norm1, x, g), g);
  const y = g.node('Add', [x.name, a.name], x.shape, { name: `${g.path(m)}.attn_add` });
  const f = emit(m.mlp, emit(m.norm2, y, g), g);
  return g.node('Add', [y.name, f.name], y.shape, { name: `${g.path(m)}.mlp_add` });
});

registerEmitter(VisionTransformer, (m, x, g) => {
  const patches = emit(m.patchEmbed, x, g);
  let tokens = g.node('Add', [patches.name, g.param(m, 'pos_embed', m.posEmbed)], patches.shape, { name: 'pos_embed_add' });
  tokens = emit(m.norm, emit(m.blocks, tokens, g), g);
  const width = m.numPatches * m.embedDim;
  return emit(m.feature, reshape(tokens, [0, width], [tokens.shape[0], width], g, 'flatten'), g);
});

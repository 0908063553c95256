/**
 * Backbones by arcface_torch's names: `getModel('r50', { embeddingSize: 512, bf16: true })`.
 */
import type { Module } from '../nn/index.js';
import { iresnet18, iresnet34, iresnet50, iresnet100, iresnet200 } from './iresnet.js';
import { mobileFaceNet, mobileFaceNetLarge } from './mobilefacenet.js';
import { vitModels } from './vit.js';
import type { BackboneOptions } from './precision.js';

export { IResNet, IBasicBlock, iresnet18, iresnet34, iresnet50, iresnet100, iresnet200 } from './iresnet.js';
export { MobileFaceNet, mobileFaceNet, mobileFaceNetLarge } from './mobilefacenet.js';
export { VisionTransformer, vitModels, type VisionTransformerOptions } from './vit.js';
export { backwardCheckpoints, CheckpointedChain } from './checkpoint.js';
export { attentionBackend } from './attention.js';
export { countComplexity, type Complexity } from './flops.js';
export type { BackboneOptions, BodyPrecision } from './precision.js';

/** A backbone maps N×3×112×112 images to N×embeddingSize embeddings. */
export type Backbone = Module & { forward(x: import('../torch/index.js').Tensor): import('../torch/index.js').Tensor };

const registry: Record<string, (o?: BackboneOptions) => Backbone> = {
  r18: iresnet18,
  r34: iresnet34,
  r50: iresnet50,
  r100: iresnet100,
  r200: iresnet200,
  mbf: mobileFaceNet,
  mbf_large: mobileFaceNetLarge,
  ...vitModels,
};

export const modelNames = (): string[] => Object.keys(registry);

export function getModel(name: string, options: BackboneOptions = {}): Backbone {
  const make = registry[name];
  if (!make) throw new Error(`unknown network '${name}' (available: ${modelNames().join(', ')})`);
  return make(options);
}

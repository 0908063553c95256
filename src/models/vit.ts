/**
 * Vision Transformer (insightface arcface_torch `backbones/vit.py`). Names, shapes and order of the
 * state dict are arcface_torch's, so weights move both ways.
 *
 *   patch_embed  conv k×k stride k (k = 9: 3×112×112 → 144 patches of `dim`), + pos_embed
 *   masking      training only: per sample a random int(144·(1 − maskRatio)) patches go on
 *   blocks       depth × Block: x + dropPath(attn(norm1(x))), then x + dropPath(mlp(norm2(x)))
 *   norm         then mask_token fills the removed positions and the patch order is restored
 *   feature      Linear(144·dim → dim) → BatchNorm1d → Linear(dim → E) → BatchNorm1d
 *
 * forward(x) = feature.forward(forwardFeatures(x)). In eval every module's forward is a plain
 * function of its input (Block.forward also takes drop-path factors, in training only).
 * Mixed precision as arcface_torch: with fp16/bf16 the qkv and proj linears and the MLP half of
 * each block run under autocast, the attention itself, the patch embedding, norm and feature head
 * in float32. arcface_torch's dropout options (all 0 in its configs) are not offered.
 */
import {
  argsort, autocast, cat, clamp, gather, isGradEnabled, linspace, noGrad, rand, tidy, zeros, type Tensor,
} from '../torch/index.js';
import { Module, Conv2d, Linear, LayerNorm, BatchNorm1d, ReLU6, Sequential, init } from '../nn/index.js';
import { bodyPrecision, runBody, type BackboneOptions, type BodyPrecision } from './precision.js';
import { scaledDotProductAttention } from './attention.js';
import { DropPath } from './drop-path.js';
import { CheckpointedChain, type Segment } from './checkpoint.js';

export type VitNorm = 'ln' | 'bn';

export interface VisionTransformerOptions extends BackboneOptions {
  /** input side, default 112 */
  imgSize?: number;
  /** patch side, default 16 (arcface_torch's class default; its registry uses 9) */
  patchSize?: number;
  inChannels?: number;
  /** token width, default 768 */
  embedDim?: number;
  /** blocks, default 12 */
  depth?: number;
  /** attention heads, default 12 */
  numHeads?: number;
  /** MLP hidden width / embedDim, default 4 */
  mlpRatio?: number;
  /** bias in the qkv projection, default false */
  qkvBias?: boolean;
  /** drop-path probability of the last block; it rises linearly from 0 at the first. Default 0 */
  dropPathRate?: number;
  /** LayerNorm over each token ('ln', default) or BatchNorm1d over the patch axis ('bn') */
  normLayer?: VitNorm;
  /** share of patches removed in training, default 0.1 */
  maskRatio?: number;
  /** activation checkpointing of the blocks in training (see ./checkpoint.ts), default false */
  usingCheckpoint?: boolean;
}

/** Runs fn with autocast off: arcface_torch computes the attention itself in float32. */
function float32Region<T>(x: Tensor, fn: () => T): T {
  const cuda = x.device.startsWith('cuda');
  return autocast({ deviceType: cuda ? 'cuda' : 'cpu', dtype: cuda ? 'float16' : 'bfloat16', enabled: false }, fn);
}


/** N×C×H×W → N×patches×dim: a k×k stride-k convolution, flattened to tokens. */
export class PatchEmbed extends Module {
  readonly proj: Conv2d;
  readonly numPatches: number;

  constructor(readonly imgSize: number, readonly patchSize: number, inChannels: number, embedDim: number) {
    super();
    this.numPatches = Math.floor(imgSize / patchSize) ** 2;
    this.proj = this.registerModule('proj', new Conv2d(inChannels, embedDim, patchSize, { stride: patchSize }));
  }

  forward(x: Tensor): Tensor {
    const [, , h, w] = x.shape;
    if (h !== this.imgSize || w !== this.imgSize) {
      throw new Error(`Input image size (${h}*${w}) doesn't match model (${this.imgSize}*${this.imgSize}).`);
    }
    return tidy(() => this.proj.forward(x).flatten(2).transpose(1, 2));
  }
}

/** Multi-head self-attention over N×tokens×dim. */
export class Attention extends Module {
  readonly qkv: Linear;
  readonly proj: Linear;

  constructor(dim: number, readonly numHeads: number, qkvBias: boolean, readonly precision: BodyPrecision) {
    super();
    this.qkv = this.registerModule('qkv', new Linear(dim, dim * 3, { bias: qkvBias }));
    this.proj = this.registerModule('proj', new Linear(dim, dim));
  }

  forward(x: Tensor): Tensor {
    return tidy(() => {
      const [b, n, d] = x.shape;
      // [3, N, heads, tokens, dim / heads]
      const qkv = runBody(this.precision, x, () => this.qkv.forward(x)).reshape([b, n, 3, this.numHeads, d / this.numHeads]).permute([2, 0, 3, 1, 4]);
      const out = float32Region(x, () => {
        const [q, k, v] = [0, 1, 2].map((i) => qkv.select(0, i).float());
        return scaledDotProductAttention(q, k, v).transpose(1, 2).reshape([b, n, d]);
      });
      return runBody(this.precision, x, () => this.proj.forward(out));
    });
  }
}

/** ReLU6 that also trains in bfloat16 on the CPU, where libtorch 1.13 lacks hardtanh's backward. */
class TrainableReLU6 extends ReLU6 {
  override forward(x: Tensor): Tensor {
    return x.dtype === 'bfloat16' ? clamp(x, 0, 6) : super.forward(x);
  }
}

/** fc1 → ReLU6 → fc2. */
export class Mlp extends Module {
  readonly fc1: Linear;
  readonly act: ReLU6;
  readonly fc2: Linear;

  constructor(dim: number, hidden: number) {
    super();
    this.fc1 = this.registerModule('fc1', new Linear(dim, hidden));
    this.act = this.registerModule('act', new TrainableReLU6());
    this.fc2 = this.registerModule('fc2', new Linear(hidden, dim));
  }

  forward(x: Tensor): Tensor {
    return tidy(() => this.fc2.forward(this.act.forward(this.fc1.forward(x))));
  }
}

/** BatchNorm1d over the patch axis of N×patches×dim (arcface_torch's VITBatchNorm; state under `bn`). */
export class VITBatchNorm extends Module {
  readonly bn: BatchNorm1d;

  constructor(numPatches: number) {
    super();
    this.bn = this.registerModule('bn', new BatchNorm1d(numPatches));
  }

  forward(x: Tensor): Tensor {
    return this.bn.forward(x);
  }
}

/** One training call's drop-path factors of a block's two branches (undefined: kept as is). */
export interface BlockNoise {
  attn?: Tensor;
  mlp?: Tensor;
}

export interface BlockOptions {
  dim: number;
  numHeads: number;
  numPatches: number;
  mlpRatio: number;
  qkvBias: boolean;
  dropPath: number;
  normLayer: VitNorm;
  precision: BodyPrecision;
}

export class Block extends Module {
  readonly norm1: LayerNorm | VITBatchNorm;
  readonly norm2: LayerNorm | VITBatchNorm;
  readonly attn: Attention;
  readonly dropPath: DropPath;
  readonly mlp: Mlp;
  readonly precision: BodyPrecision;

  constructor(o: BlockOptions) {
    super();
    const norm = () => (o.normLayer === 'bn' ? new VITBatchNorm(o.numPatches) : new LayerNorm(o.dim));
    // arcface_torch's registration order (norm1, norm2, attn, drop_path, mlp) is its state-dict order.
    this.norm1 = this.registerModule('norm1', norm());
    this.norm2 = this.registerModule('norm2', norm());
    this.attn = this.registerModule('attn', new Attention(o.dim, o.numHeads, o.qkvBias, o.precision));
    this.dropPath = this.registerModule('drop_path', new DropPath(o.dropPath));
    this.mlp = this.registerModule('mlp', new Mlp(o.dim, Math.trunc(o.dim * o.mlpRatio)));
    this.precision = o.precision;
  }

  /** Draws the drop-path factors of one training call, attention branch first (as forward would). */
  sampleNoise(x: Tensor): BlockNoise {
    return { attn: this.dropPath.sample(x), mlp: this.dropPath.sample(x) };
  }

  /** N×tokens×dim → same; `noise` from sampleNoise, else drawn here in training. */
  forward(x: Tensor, noise?: BlockNoise): Tensor {
    return tidy(() => {
      const { attn, mlp } = noise ?? this.sampleNoise(x);
      const y = x.add(this.dropPath.forward(this.attn.forward(this.norm1.forward(x)), attn));
      return runBody(this.precision, y, () => y.add(this.dropPath.forward(this.mlp.forward(this.norm2.forward(y)), mlp)));
    });
  }
}

/** arcface_torch's random_masking: per sample, the patches with the int(L·(1 − ratio)) smallest noise values go on. */
function randomMasking(x: Tensor, maskRatio: number): { kept: Tensor; idsRestore: Tensor } {
  const [n, l, d] = x.shape;
  const lenKeep = Math.trunc(l * (1 - maskRatio));
  const idsShuffle = argsort(rand([n, l], { device: x.device }), 1);
  const idsRestore = argsort(idsShuffle, 1);
  const idsKeep = idsShuffle.narrow(1, 0, lenKeep).unsqueeze(-1).expand([n, lenKeep, d]);
  return { kept: gather(x, 1, idsKeep), idsRestore };
}

/** The kept tokens followed by mask tokens, put back in patch order. */
function unshuffle(x: Tensor, maskToken: Tensor, idsRestore: Tensor): Tensor {
  const [n, kept, d] = x.shape;
  const l = idsRestore.shape[1];
  const full = cat([x, maskToken.expand([n, l - kept, d])], 1);
  return gather(full, 1, idsRestore.unsqueeze(-1).expand([n, l, d]));
}

export class VisionTransformer extends Module {
  readonly posEmbed: Tensor;
  readonly maskToken: Tensor;
  readonly patchEmbed: PatchEmbed;
  readonly blocks: Sequential;
  readonly norm: LayerNorm | VITBatchNorm;
  readonly feature: Sequential;
  readonly embedDim: number;
  readonly numPatches: number;
  readonly maskRatio: number;
  readonly usingCheckpoint: boolean;
  readonly precision: BodyPrecision;
  readonly channelsLast: boolean;
  /** training forwards whose blocks wait for backwardCheckpoints() (when usingCheckpoint) */
  readonly checkpoints = new CheckpointedChain();

  constructor(o: VisionTransformerOptions = {}) {
    super();
    const dim = (this.embedDim = o.embedDim ?? 768);
    const depth = o.depth ?? 12;
    const embeddingSize = o.embeddingSize ?? 512;
    const normLayer = o.normLayer ?? 'ln';
    this.maskRatio = o.maskRatio ?? 0.1;
    this.usingCheckpoint = o.usingCheckpoint ?? false;
    this.precision = bodyPrecision(o);
    this.channelsLast = o.channelsLast ?? false;

    const patchEmbed = new PatchEmbed(o.imgSize ?? 112, o.patchSize ?? 16, o.inChannels ?? 3, dim);
    const numPatches = (this.numPatches = patchEmbed.numPatches);
    this.posEmbed = this.registerParameter('pos_embed', zeros([1, numPatches, dim]));
    this.maskToken = this.registerParameter('mask_token', zeros([1, 1, dim]));
    this.patchEmbed = this.registerModule('patch_embed', patchEmbed);
    // stochastic depth rising linearly from 0, as float32 values (arcface_torch's torch.linspace)
    const dpr = noGrad(() => tidy(() => Array.from(linspace(0, o.dropPathRate ?? 0, depth).data() as Float32Array)));
    const blockOptions = { dim, numHeads: o.numHeads ?? 12, numPatches, mlpRatio: o.mlpRatio ?? 4, qkvBias: o.qkvBias ?? false, normLayer, precision: this.precision };
    this.blocks = this.registerModule('blocks', new Sequential(...dpr.map((dropPath) => new Block({ ...blockOptions, dropPath }))));
    this.norm = this.registerModule('norm', normLayer === 'bn' ? new VITBatchNorm(numPatches) : new LayerNorm(dim));
    this.feature = this.registerModule(
      'feature',
      new Sequential(
        new Linear(dim * numPatches, dim, { bias: false }),
        new BatchNorm1d(dim, { eps: 2e-5 }),
        new Linear(dim, embeddingSize, { bias: false }),
        new BatchNorm1d(embeddingSize, { eps: 2e-5 }),
      ),
    );

    // arcface_torch: trunc_normal_(std=0.02) for pos_embed and Linear weights, Linear biases 0,
    // LayerNorm 1 / 0 (its default here too), PyTorch's defaults for the convolution and BatchNorm.
    // timm truncates at ±2 absolute, i.e. ±100σ: that is a plain normal, drawn without the erfinv
    // pass of truncNormal_ that takes over a minute on vit_h's 750 M weights.
    init.normal_(this.maskToken, 0, 0.02);
    init.normal_(this.posEmbed, 0, 0.02);
    for (const m of this.modules()) {
      if (m instanceof Linear) {
        init.normal_(m.weight, 0, 0.02);
        if (m.bias) init.zeros_(m.bias);
      }
    }
  }

  /** x: N×3×112×112, RGB, normalised to [−1, 1]; returns N×embeddingSize (float32). */
  forward(x: Tensor): Tensor {
    return tidy(() => this.feature.forward(this.forwardFeatures(x)));
  }

  /** N×C×H×W → N×(patches·dim): the tokens after blocks and norm, in patch order. */
  forwardFeatures(x: Tensor): Tensor {
    return tidy(() => {
      let tokens = this.patchEmbed.forward(this.channelsLast ? x.contiguous('channels_last') : x).add(this.posEmbed);
      const masking = this.training && this.maskRatio > 0 ? randomMasking(tokens, this.maskRatio) : undefined;
      if (masking) tokens = masking.kept;
      tokens = this.norm.forward(this.runBlocks(tokens).float());
      if (masking) tokens = unshuffle(tokens, this.maskToken, masking.idsRestore);
      return tokens.reshape([x.shape[0], this.numPatches * this.embedDim]);
    });
  }

  private runBlocks(x: Tensor): Tensor {
    const blocks = this.blocks.children() as Block[];
    // Every block's drop-path factors first (arcface_torch draws them in this order too, as the
    // blocks between draw nothing), so a checkpointed recomputation sees the same ones.
    const noise = blocks.map((b) => b.sampleNoise(x));
    const segments: Segment[] = blocks.map((b, i) => ({ run: (t) => b.forward(t, noise[i]), module: b }));
    if (this.usingCheckpoint && this.training && isGradEnabled()) {
      const factors = noise.flatMap((n) => [n.attn, n.mlp]).filter((t): t is Tensor => t !== undefined);
      return this.checkpoints.run(x, segments, factors);
    }
    return segments.reduce((t, segment) => segment.run(t), x);
  }
}

/** arcface_torch's ViT names (backbones/__init__.py): 112×112 input, patch 9, 8 heads, LayerNorm. */
const variants: Record<string, VisionTransformerOptions> = {
  vit_t: { embedDim: 256, depth: 12, dropPathRate: 0.1, maskRatio: 0.1 },
  vit_t_dp005_mask0: { embedDim: 256, depth: 12, dropPathRate: 0.05, maskRatio: 0 },
  vit_s: { embedDim: 512, depth: 12, dropPathRate: 0.1, maskRatio: 0.1 },
  vit_s_dp005_mask_0: { embedDim: 512, depth: 12, dropPathRate: 0.05, maskRatio: 0 },
  vit_b: { embedDim: 512, depth: 24, dropPathRate: 0.1, maskRatio: 0.1, usingCheckpoint: true },
  vit_b_dp005_mask_005: { embedDim: 512, depth: 24, dropPathRate: 0.05, maskRatio: 0.05, usingCheckpoint: true },
  vit_l_dp005_mask_005: { embedDim: 768, depth: 24, dropPathRate: 0.05, maskRatio: 0.05, usingCheckpoint: true },
  vit_h: { embedDim: 1024, depth: 48, dropPathRate: 0.1, maskRatio: 0, usingCheckpoint: true },
};

/** Constructors by name; options override the variant's settings (e.g. usingCheckpoint). */
export const vitModels: Record<string, (o?: VisionTransformerOptions) => VisionTransformer> = Object.fromEntries(
  Object.entries(variants).map(([name, v]) => [
    name,
    (o: VisionTransformerOptions = {}) => new VisionTransformer({ imgSize: 112, patchSize: 9, numHeads: 8, normLayer: 'ln', ...v, ...o }),
  ]),
);

/**
 * What evaluation needs from a model: images in, raw embeddings out. Two implementations: a
 * libtorch backbone (TorchEmbedder, below) and an ONNX file run by onnxruntime (./onnx-embedder.ts),
 * so every protocol runs the same way on both.
 */
import * as torch from '../torch/index.js';
import type { Backbone } from '../models/index.js';
import { normaliseImages } from '../data/index.js';

export { normaliseImages };

export interface Embedder {
  /** N×3×112×112 float32 images normalised to [−1, 1] → N×E float32 raw embeddings, owned by the caller */
  embed(images: torch.Tensor): Promise<torch.Tensor>;
  /** frees the model */
  dispose(): Promise<void>;
}

/** A backbone in eval mode, without autograd. Owns the backbone (dispose() frees it). */
export class TorchEmbedder implements Embedder {
  constructor(readonly backbone: Backbone) {
    backbone.eval();
  }

  /** Images on any device run where the backbone is; the embeddings come back on the CPU. */
  async embed(images: torch.Tensor): Promise<torch.Tensor> {
    const device = this.backbone.device;
    return torch.keep(torch.noGrad(() => torch.tidy(() => this.backbone.forward(images.to(device)).to('cpu'))));
  }

  async dispose(): Promise<void> {
    this.backbone.dispose();
  }
}

export interface EmbedOptions {
  /** images per forward (default 64) */
  batchSize?: number;
  /** also embed every image flipped left–right */
  flip?: boolean;
}

/**
 * Embeds N images (uint8 0–255 or normalised float32, N×3×H×W) batch by batch. Returns the raw
 * embeddings, and with `flip` those of the mirrored images; the caller owns them.
 */
export async function embedImages(embedder: Embedder, images: torch.Tensor, { batchSize = 64, flip = false }: EmbedOptions = {}): Promise<{ plain: torch.Tensor; flipped?: torch.Tensor }> {
  if (images.shape[0] === 0) throw new Error('embedImages: no images');
  const plain: torch.Tensor[] = [], flipped: torch.Tensor[] = [];
  try {
    for (let start = 0; start < images.shape[0]; start += batchSize) {
      const input = torch.tidy(() => normaliseImages(images.narrow(0, start, Math.min(batchSize, images.shape[0] - start))));
      try {
        plain.push(await embedder.embed(input));
        if (flip) {
          const mirrored = torch.flip(input, [3]);
          try {
            flipped.push(await embedder.embed(mirrored));
          } finally {
            mirrored.dispose();
          }
        }
      } finally {
        input.dispose();
      }
    }
    return { plain: torch.cat(plain), flipped: flip ? torch.cat(flipped) : undefined };
  } finally {
    torch.dispose(plain, flipped);
  }
}

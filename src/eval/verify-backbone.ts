/**
 * arcface_torch's CallBackVerification test(): embed every image of a verification set and its
 * horizontal flip, then report 10-fold accuracy for the plain embeddings and for the flip-summed
 * ones (normalised), and XNorm, the mean norm of the raw embeddings. verifyBackbone runs a live
 * module (synchronously, as the training callback does); verifyEmbedder any Embedder (a
 * libtorch backbone or an ONNX model).
 */
import * as torch from '../torch/index.js';
import type { Module } from '../nn/index.js';
import { evaluatePairs, type VerificationResult } from './verification.js';
import { embedImages, normaliseImages, type Embedder } from './embedder.js';

export interface VerificationSet {
  /**
   * 2·pairs images, N×3×112×112: float32 normalised to [−1, 1], or uint8 RGB 0–255 (normalised per
   * batch); pair i is images 2i and 2i+1
   */
  images: torch.Tensor;
  issame: boolean[];
}

export interface BackboneVerification {
  plain: VerificationResult;
  flip: VerificationResult;
  xnorm: number;
}

/** Squared L2 distances between consecutive rows (0–1, 2–3, …) of L2-normalised embeddings. */
export function pairDistances(embeddings: torch.Tensor): Float64Array {
  return torch.tidy(() => {
    const e = torch.normalize(embeddings.double(), 2, 1);
    const n = e.shape[0];
    const a = torch.slice(e, 0, 0, n, 2), b = torch.slice(e, 0, 1, n, 2);
    return new Float64Array(a.sub(b).square().sum(1).data() as Float64Array);
  });
}

function checkPairs(set: VerificationSet): void {
  if (set.images.shape[0] !== 2 * set.issame.length) {
    throw new Error(`verification set: ${set.images.shape[0]} images for ${set.issame.length} pairs (need two per pair)`);
  }
}

/** Accuracies and XNorm from the raw embeddings of the images and of their mirror images. */
function score(plain: torch.Tensor, flipped: torch.Tensor, issame: boolean[], folds: number): BackboneVerification {
  return torch.tidy(() => ({
    plain: evaluatePairs(pairDistances(plain), issame, folds),
    flip: evaluatePairs(pairDistances(plain.add(flipped)), issame, folds),
    xnorm: torch.cat([plain, flipped]).norm(2, 1).mean().item(),
  }));
}

export function verifyBackbone(backbone: Module & { forward(x: torch.Tensor): torch.Tensor }, set: VerificationSet, batchSize = 64, folds = 10): BackboneVerification {
  checkPairs(set);
  const wasTraining = backbone.training;
  backbone.eval();
  try {
    return torch.noGrad(() =>
      torch.tidy(() => {
        const embed = (flip: boolean) => {
          const chunks: torch.Tensor[] = [];
          for (let start = 0; start < set.images.shape[0]; start += batchSize) {
            const size = Math.min(batchSize, set.images.shape[0] - start);
            // the pixels travel to the backbone's device as uint8, and are normalised there
            const batch = normaliseImages(set.images.narrow(0, start, size).to(backbone.device));
            chunks.push(torch.tidy(() => backbone.forward(flip ? torch.flip(batch, [3]) : batch).to('cpu')));
          }
          return torch.cat(chunks);
        };
        return score(embed(false), embed(true), set.issame, folds);
      }),
    );
  } finally {
    backbone.train(wasTraining);
  }
}

export async function verifyEmbedder(embedder: Embedder, set: VerificationSet, batchSize = 64, folds = 10): Promise<BackboneVerification> {
  checkPairs(set);
  const { plain, flipped } = await embedImages(embedder, set.images, { batchSize, flip: true });
  try {
    return score(plain, flipped!, set.issame, folds);
  } finally {
    torch.dispose(plain, flipped);
  }
}

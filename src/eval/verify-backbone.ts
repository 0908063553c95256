/**
 * arcface_torch's CallBackVerification test(): embed every image of a verification set and its
 * horizontal flip, then report 10-fold accuracy for the plain embeddings and for the flip-summed
 * ones (normalised), and XNorm, the mean norm of the raw embeddings.
 */
import * as torch from '../torch/index.js';
import type { Module } from '../nn/index.js';
import { evaluatePairs, type VerificationResult } from './verification.js';

export interface VerificationSet {
  /** 2·pairs images, N×3×112×112, normalised to [−1, 1]; pair i is images 2i and 2i+1 */
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

export function verifyBackbone(backbone: Module & { forward(x: torch.Tensor): torch.Tensor }, set: VerificationSet, batchSize = 64, folds = 10): BackboneVerification {
  if (set.images.shape[0] !== 2 * set.issame.length) {
    throw new Error(`verification set: ${set.images.shape[0]} images for ${set.issame.length} pairs (need two per pair)`);
  }
  const wasTraining = backbone.training;
  backbone.eval();
  try {
    return torch.noGrad(() =>
      torch.tidy(() => {
        const embed = (flip: boolean) => {
          const chunks: torch.Tensor[] = [];
          for (let start = 0; start < set.images.shape[0]; start += batchSize) {
            const size = Math.min(batchSize, set.images.shape[0] - start);
            const batch = set.images.narrow(0, start, size);
            chunks.push(torch.tidy(() => backbone.forward(flip ? torch.flip(batch, [3]) : batch)));
          }
          return torch.cat(chunks);
        };
        const plain = embed(false), flipped = embed(true);
        const xnorm = torch.cat([plain, flipped]).norm(2, 1).mean().item();
        return {
          plain: evaluatePairs(pairDistances(plain), set.issame, folds),
          flip: evaluatePairs(pairDistances(plain.add(flipped)), set.issame, folds),
          xnorm,
        };
      }),
    );
  } finally {
    backbone.train(wasTraining);
  }
}

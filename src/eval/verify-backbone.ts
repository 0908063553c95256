/**
 * arcface_torch's CallBackVerification test(): embed every image of a verification set and its
 * horizontal flip, then report 10-fold accuracy for the plain embeddings and for the flip-summed
 * ones (normalised), and XNorm, the mean norm of the raw embeddings. verifyBackbone runs a live
 * module (synchronously, as the training callback does), alone or sharded over the ranks of a
 * process group; verifyEmbedder any Embedder (a libtorch backbone or an ONNX model).
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

/** The ranks that share one verification (a ProcessGroup): each embeds its share, then all gather. */
export interface VerificationGroup {
  rank: number;
  worldSize: number;
  /** each rank's tensor (equal shapes), in rank order */
  allGather(t: torch.Tensor): torch.Tensor[];
}

/**
 * Rank `rank`'s contiguous share of `n` images: ⌈n / worldSize⌉ (the last shorter, or empty when
 * there are fewer images than ranks), so every rank takes about as long; `padded` rows per rank
 * for the all-gather. (Shares of whole batches would give bit-equal embeddings, but a small set's
 * one or two batches would then leave a rank idle in the all-gather for most of the time.)
 */
export function verificationShare(n: number, worldSize: number, rank: number): { start: number; size: number; padded: number } {
  const padded = Math.ceil(n / worldSize);
  const start = Math.min(n, rank * padded);
  return { start, size: Math.min(n, start + padded) - start, padded };
}

export interface VerifyBackboneOptions {
  batchSize?: number;
  folds?: number;
  /**
   * Share the forward passes over these ranks (every rank calls with the same set): each embeds
   * its share, the embeddings are all-gathered, and every rank scores all pairs — the result of
   * one process (per-image embeddings in eval mode do not depend on the batch, up to GEMM
   * rounding), world size times sooner, and no rank waits long in a collective for another.
   */
  group?: VerificationGroup;
}

export function verifyBackbone(backbone: Module & { forward(x: torch.Tensor): torch.Tensor }, set: VerificationSet, options: VerifyBackboneOptions = {}): BackboneVerification {
  const { batchSize = 64, folds = 10, group } = options;
  checkPairs(set);
  const n = set.images.shape[0];
  const share = group ? verificationShare(n, group.worldSize, group.rank) : { start: 0, size: n, padded: n };
  const wasTraining = backbone.training;
  backbone.eval();
  try {
    return torch.noGrad(() =>
      torch.tidy(() => {
        const embed = (start: number, size: number, flip: boolean) => {
          const chunks: torch.Tensor[] = [];
          for (let at = start; at < start + size; at += batchSize) {
            // the pixels travel to the backbone's device as uint8, and are normalised there
            const batch = normaliseImages(set.images.narrow(0, at, Math.min(batchSize, start + size - at)).to(backbone.device));
            chunks.push(torch.tidy(() => backbone.forward(flip ? torch.flip(batch, [3]) : batch).to('cpu')));
          }
          return torch.cat(chunks);
        };
        if (!group) return score(embed(0, n, false), embed(0, n, true), set.issame, folds);
        // an empty share still needs the embedding width for its padding: one image's forward gives it
        const width = share.size > 0 ? undefined : embed(0, 1, false).shape[1];
        const mine = share.size > 0 ? torch.cat([embed(share.start, share.size, false), embed(share.start, share.size, true)], 1) : torch.zeros([0, 2 * width!]);
        const padded = torch.zeros([share.padded, mine.shape[1]]);
        padded.narrow(0, 0, share.size).copy_(mine);
        // one all-gather carries the plain and the flipped embeddings side by side
        const all = torch.cat(group.allGather(padded)).narrow(0, 0, n);
        const dim = mine.shape[1] / 2;
        return score(all.narrow(1, 0, dim), all.narrow(1, dim, dim), set.issame, folds);
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

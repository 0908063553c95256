/**
 * IJB-B / IJB-C 1:1 template verification as arcface_torch's eval_ijbc.py computes it:
 *
 *   1. every image of loose_crop/ aligned to 112×112 by its five landmarks (./align.ts);
 *   2. its embedding plus that of its mirror image (flip test), times the detector score;
 *   3. per template: the images of one media averaged, the media features summed, normalised;
 *   4. each template pair scored by cosine similarity; TAR at FAR 10⁻⁶ … 10⁻¹ off the ROC.
 *
 * Embeddings are not normalised before pooling (eval_ijbc.py's use_norm_score), so their norms
 * weigh the images.
 */
import path from 'node:path';
import { readFileSync } from 'node:fs';
import * as torch from '../torch/index.js';
import { decodeImage } from '../data/index.js';
import { alignmentMatrix, warpAffine, type Affine } from './align.js';
import { embedImages, type Embedder } from './embedder.js';
import { MetaError, readFaceList, readTemplateMedia, readTemplatePairs, type FaceList } from './ijb-meta.js';
import { IJB_FARS, rocAuc, rocCurve, tarAtFar, type RocCurve } from './roc.js';

export interface IjbOptions {
  /** the pack's folder: loose_crop/ and meta/ */
  root: string;
  target: 'IJBC' | 'IJBB';
  /** add the mirror image's embedding (default true) */
  flip?: boolean;
  /** weigh each image by its detector score (default true) */
  detectorScore?: boolean;
  /** images per forward (default 128) */
  batchSize?: number;
  onProgress?: (done: number, total: number) => void;
}

export interface IjbResult {
  target: string;
  images: number;
  templates: number;
  pairs: number;
  /** cosine similarity of each template pair, in the order of the pair file */
  scores: Float64Array;
  labels: Uint8Array;
  roc: RocCurve;
  auc: number;
  tarAtFar: { far: number; tar: number; fpr: number }[];
}

/** The aligned image as 3×112×112 uint8. */
function alignedImage(file: string, landmarks: Float32Array): Uint8Array {
  let bytes: Buffer;
  try {
    bytes = readFileSync(file);
  } catch (error) {
    throw new Error(`${file}: cannot read the image (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`);
  }
  let image: ReturnType<typeof decodeImage>;
  try {
    image = decodeImage(bytes);
  } catch (error) {
    throw new Error(`${file}: cannot decode the image (${(error as Error).message})`);
  }
  let matrix: Affine;
  try {
    matrix = alignmentMatrix(landmarks);
  } catch (error) {
    throw new Error(`${file}: cannot align the image to its landmarks (${(error as Error).message})`);
  }
  return warpAffine(image.pixels, image.width, image.height, matrix);
}

/**
 * Image features (N × E, row i for image i of the face list): flip-summed and score-weighted as
 * the options say.
 */
export async function ijbImageFeatures(embedder: Embedder, faces: FaceList, o: IjbOptions): Promise<{ features: Float32Array; dim: number }> {
  const n = faces.names.length;
  const batchSize = o.batchSize ?? 128;
  let features = new Float32Array(0), dim = 0;
  for (let start = 0; start < n; start += batchSize) {
    const count = Math.min(batchSize, n - start);
    const pixels = new Uint8Array(count * 3 * 112 * 112);
    for (let i = 0; i < count; i++) {
      const k = start + i;
      pixels.set(alignedImage(path.join(o.root, 'loose_crop', faces.names[k]), faces.landmarks.subarray(10 * k, 10 * k + 10)), i * 3 * 112 * 112);
    }
    const images = torch.tensor(pixels, { shape: [count, 3, 112, 112] });
    const { plain, flipped } = await embedImages(embedder, images, { batchSize, flip: o.flip ?? true }).finally(() => images.dispose());
    const batch = torch.tidy(() => {
      let e = flipped ? plain.add(flipped) : plain;
      if (o.detectorScore ?? true) e = e.mul(torch.tensor(faces.scores.subarray(start, start + count), { shape: [count, 1] }));
      return e.data() as Float32Array;
    });
    torch.dispose(plain, flipped);
    if (start === 0) {
      dim = batch.length / count;
      features = new Float32Array(n * dim);
    }
    features.set(batch, start * dim);
    o.onProgress?.(start + count, n);
  }
  return { features, dim };
}

/**
 * Template features (eval_ijbc.py image2template_feature): per template (ascending id), the mean
 * feature of each of its media, summed over the media, L2-normalised (a zero vector stays zero).
 */
export function templateFeatures(features: Float32Array, dim: number, templates: Int32Array, medias: Int32Array): Map<number, Float64Array> {
  const members = new Map<number, number[]>();
  templates.forEach((t, i) => (members.get(t) ?? members.set(t, []).get(t)!).push(i));
  const out = new Map<number, Float64Array>();
  for (const t of [...members.keys()].sort((a, b) => a - b)) {
    const byMedia = new Map<number, number[]>();
    for (const i of members.get(t)!) (byMedia.get(medias[i]) ?? byMedia.set(medias[i], []).get(medias[i])!).push(i);
    const sum = new Float64Array(dim), media = new Float64Array(dim);
    for (const m of [...byMedia.keys()].sort((a, b) => a - b)) {
      const images = byMedia.get(m)!;
      media.fill(0);
      for (const i of images) for (let k = 0; k < dim; k++) media[k] += features[i * dim + k];
      for (let k = 0; k < dim; k++) sum[k] += media[k] / images.length;
    }
    const norm = Math.sqrt(sum.reduce((s, v) => s + v * v, 0)) || 1;
    out.set(t, sum.map((v) => v / norm));
  }
  return out;
}

/** Cosine similarity of each pair of (normalised) template features. */
export function pairScores(templates: Map<number, Float64Array>, t1: Int32Array, t2: Int32Array): Float64Array {
  const scores = new Float64Array(t1.length);
  for (let p = 0; p < t1.length; p++) {
    const a = templates.get(t1[p]), b = templates.get(t2[p]);
    if (!a || !b) throw new Error(`template pair ${p}: template ${a ? t2[p] : t1[p]} has no features`);
    let dot = 0;
    for (let k = 0; k < a.length; k++) dot += a[k] * b[k];
    scores[p] = dot;
  }
  return scores;
}

export async function evaluateIjb(embedder: Embedder, o: IjbOptions): Promise<IjbResult> {
  if (o.target !== 'IJBC' && o.target !== 'IJBB') throw new Error(`IJB target must be IJBC or IJBB, got '${o.target}'`);
  const meta = (name: string) => path.join(o.root, 'meta', `${o.target.toLowerCase()}_${name}.txt`);
  // all meta files read and checked first: a bad one fails before hours of embedding
  const tidMid = readTemplateMedia(meta('face_tid_mid'));
  const pairs = readTemplatePairs(meta('template_pair_label'));
  const faces = readFaceList(meta('name_5pts_score'));
  if (faces.names.length === 0) throw new MetaError(meta('name_5pts_score'), undefined, 'no images listed');
  if (tidMid.names.length !== faces.names.length) {
    throw new MetaError(meta('face_tid_mid'), undefined, `lists ${tidMid.names.length} images, ${path.basename(meta('name_5pts_score'))} ${faces.names.length}`);
  }
  const mismatch = faces.names.findIndex((name, i) => name !== tidMid.names[i]);
  if (mismatch >= 0) throw new MetaError(meta('face_tid_mid'), mismatch + 1, `image '${tidMid.names[mismatch]}' where the face list has '${faces.names[mismatch]}'`);
  const known = new Set(tidMid.templates);
  const unknown = pairs.t1.findIndex((t, p) => !known.has(t) || !known.has(pairs.t2[p]));
  if (unknown >= 0) {
    const t = known.has(pairs.t1[unknown]) ? pairs.t2[unknown] : pairs.t1[unknown];
    throw new MetaError(meta('template_pair_label'), unknown + 1, `template ${t} has no images in ${path.basename(meta('face_tid_mid'))}`);
  }

  const { features, dim } = await ijbImageFeatures(embedder, faces, o);
  const templates = templateFeatures(features, dim, tidMid.templates, tidMid.medias);
  const scores = pairScores(templates, pairs.t1, pairs.t2);
  const roc = rocCurve(pairs.labels, scores);
  return { target: o.target, images: faces.names.length, templates: templates.size, pairs: scores.length, scores, labels: pairs.labels, roc, auc: rocAuc(roc), tarAtFar: tarAtFar(roc, IJB_FARS) };
}

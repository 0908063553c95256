/**
 * The generated-identities dataset: a training pack of N identities × K images and a held-out
 * verification `.bin` (in lfw.bin's layout) of identities the pack does not contain, rendered by
 * native/src/data/face_render.cc. Everything follows from the seed: the same options give the same bytes.
 *
 * The held-out pairs are laid out as LFW's: 10 folds, each with its own identities, half of each
 * fold same-identity pairs then half different-identity pairs.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { native } from '../torch/native.js';
import { PackWriter } from './pack.js';
import { MT19937 } from './randperm.js';
import { writeVerificationBin } from './verification-bin.js';

/** bumped whenever the renderer's output changes, so stale datasets can be told apart */
export const GENERATOR_VERSION = 1;

export interface GenerateOptions {
  /** output folder: train.rec, train.idx, property, heldout.bin, generated.json */
  out: string;
  seed?: number;
  /** training identities (default 1000) */
  identities?: number;
  /** images per training identity (default 20) */
  imagesPerIdentity?: number;
  /** held-out identities for the verification pairs (default 200, at least 20) */
  heldOutIdentities?: number;
  /** verification pairs (default 3000) */
  pairs?: number;
  /** JPEG quality (default 90) */
  quality?: number;
  /** rendering threads (default: all cores) */
  threads?: number;
  onProgress?: (done: number, total: number) => void;
}

export interface GeneratedDataset {
  dir: string;
  bin: string;
  images: number;
  identities: number;
  pairs: number;
}

export const defaultGenerateOptions = { seed: 0, identities: 1000, imagesPerIdentity: 20, heldOutIdentities: 200, pairs: 3000, quality: 90 };

/** Renders faces of (identity, image) pairs, `chunk` at a time, as JPEG bytes. */
function* render(seed: number, identities: number[], images: number[], quality: number, threads: number): Generator<Uint8Array[]> {
  const chunk = 512;
  for (let at = 0; at < identities.length; at += chunk) {
    yield native.renderFaces({
      seed,
      identities: Float64Array.from(identities.slice(at, at + chunk)),
      images: Float64Array.from(images.slice(at, at + chunk)),
      quality,
      threads,
    });
  }
}

export function generateIdentities(options: GenerateOptions): GeneratedDataset {
  const o = { ...defaultGenerateOptions, ...options };
  const threads = options.threads ?? os.availableParallelism();
  if (o.heldOutIdentities < 20) throw new RangeError('heldOutIdentities must be at least 20 (two per fold)');
  for (const key of ['identities', 'imagesPerIdentity', 'pairs'] as const) {
    if (!Number.isInteger(o[key]) || o[key] < 1) throw new RangeError(`${key} must be a positive integer, got ${o[key]}`);
  }
  mkdirSync(o.out, { recursive: true });
  const pairs = heldOutPairs(o.seed, o.identities, o.heldOutIdentities, o.pairs);
  const total = o.identities * o.imagesPerIdentity + 2 * pairs.issame.length;
  let done = 0;

  const pack = new PackWriter(o.out);
  const ids = Array.from({ length: o.identities * o.imagesPerIdentity }, (_, i) => Math.floor(i / o.imagesPerIdentity));
  const imgs = ids.map((_, i) => i % o.imagesPerIdentity);
  let next = 0;
  for (const jpegs of render(o.seed, ids, imgs, o.quality, threads)) {
    for (const jpeg of jpegs) pack.add(ids[next++], jpeg);
    o.onProgress?.((done += jpegs.length), total);
  }
  pack.close();

  const images: Uint8Array[] = [];
  for (const jpegs of render(o.seed, pairs.identities, pairs.images, o.quality, threads)) {
    images.push(...jpegs);
    o.onProgress?.((done += jpegs.length), total);
  }
  const bin = path.join(o.out, 'heldout.bin');
  writeVerificationBin(bin, { images, issame: pairs.issame });
  const { seed, identities, imagesPerIdentity, heldOutIdentities, quality } = o;
  const recorded = { generator: GENERATOR_VERSION, seed, identities, imagesPerIdentity, heldOutIdentities, pairs: o.pairs, quality };
  writeFileSync(path.join(o.out, 'generated.json'), `${JSON.stringify(recorded, null, 2)}\n`);
  return { dir: o.out, bin, images: pack.images, identities: pack.identities, pairs: pairs.issame.length };
}

/**
 * The (identity, image) of both sides of every pair. Held-out identities are numbered after the
 * training ones; their images use indices no training image uses (each image is fresh).
 */
export function heldOutPairs(seed: number, trainIdentities: number, heldOut: number, pairs: number) {
  const rng = new MT19937((seed * 7919 + 17) % 2 ** 32);
  const pick = (n: number) => rng.next() % n;
  const used = new Map<number, number>();
  const fresh = (identity: number) => {
    const k = used.get(identity) ?? 0;
    used.set(identity, k + 1);
    return k;
  };
  const identities: number[] = [];
  const images: number[] = [];
  const issame: boolean[] = [];
  const perFold = Math.floor(pairs / 10);
  for (let fold = 0; fold < 10; fold++) {
    const group = Array.from({ length: heldOut }, (_, i) => i).filter((i) => i % 10 === fold).map((i) => trainIdentities + i);
    for (let p = 0; p < perFold; p++) {
      const same = p < Math.ceil(perFold / 2);
      const a = group[pick(group.length)];
      let b = a;
      while (!same && b === a) b = group[pick(group.length)];
      identities.push(a, b);
      images.push(fresh(a), fresh(b));
      issame.push(same);
    }
  }
  return { identities, images, issame };
}

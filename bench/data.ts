/**
 * Data pipeline throughput: decoded + augmented images/s read from a RecordIO pack, with 1 and 2
 * decoding threads, against the bare libjpeg-turbo decode rate of the same JPEGs (records read and
 * decoded into uint8, nothing else: the ceiling). One JSON line per case; variants alternate round
 * by round, and round 0 (warm-up) is not counted. cpu_us_per_image (CPU time of the whole process per
 * image) does not depend on how busy the machine is: it says what a core costs per image.
 *
 *   node dist/bench/data.js [--images 4096] [--rounds 5] [--batch 128]
 */
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { DataLoader, ImageDecoder, MXFaceDataset, generateIdentities, type AugmentOptions } from '../src/data/index.js';
import { emit, round, summarize, argNumber } from './harness.js';

const images = argNumber('images', 4096);
const rounds = argNumber('rounds', 5);
const batchSize = argNumber('batch', 128);

const dir = mkdtempSync(path.join(os.tmpdir(), 'arcface-bench-data-'));
const perIdentity = 16;
generateIdentities({ out: dir, identities: Math.ceil(images / perIdentity), imagesPerIdentity: perIdentity, heldOutIdentities: 20, pairs: 20 });
const dataset = new MXFaceDataset(dir);
const n = dataset.length;
const meanBytes = Array.from({ length: n }, (_, i) => dataset.read(i).image.length).reduce((a, b) => a + b) / n;

/** Seconds for the native batch path: pread from train.rec, decode, augment, write the batch tensor. */
async function batches(threads: number, augment: AugmentOptions | undefined): Promise<number> {
  const decoder = new ImageDecoder({ threads });
  const t0 = performance.now();
  for (let start = 0; start < n; start += batchSize) {
    const indices = Array.from({ length: Math.min(batchSize, n - start) }, (_, i) => start + i);
    const options = augment ? { augment } : { dtype: 'uint8' as const };
    const result = await decoder.decode(dataset.source(indices).source, indices, options);
    result.images.dispose();
  }
  const seconds = (performance.now() - t0) / 1000;
  decoder.close();
  return seconds;
}

/** Seconds for a whole epoch through the DataLoader (shuffled reads, prefetch 2, labels too). */
async function loader(threads: number): Promise<number> {
  const l = new DataLoader(dataset, { batchSize, threads, augment: { flip: 0.5 } });
  const t0 = performance.now();
  l.setEpoch(0);
  for await (const b of l) {
    b.images.dispose();
    b.labels.dispose();
  }
  const seconds = (performance.now() - t0) / 1000;
  await l.close();
  return seconds;
}

const CEILING = 'libjpeg-turbo decode only (uint8, no augmentation), 1 thread';
const variants: Record<string, () => Promise<number>> = {
  [CEILING]: () => batches(1, undefined),
  'libjpeg-turbo decode only (uint8, no augmentation), 2 threads': () => batches(2, undefined),
  'decode + flip + normalise (float32), 1 thread': () => batches(1, { flip: 0.5 }),
  'decode + flip + normalise (float32), 2 threads': () => batches(2, { flip: 0.5 }),
  'decode + DALI set + flip + normalise, 1 thread': () => batches(1, { flip: 0.5, dali: true }),
  'decode + DALI set + flip + normalise, 2 threads': () => batches(2, { flip: 0.5, dali: true }),
  'DataLoader epoch (shuffled, prefetch 2), 1 thread': () => loader(1),
  'DataLoader epoch (shuffled, prefetch 2), 2 threads': () => loader(2),
};

const times: Record<string, number[]> = Object.fromEntries(Object.keys(variants).map((k) => [k, []]));
const cpu: Record<string, number[]> = Object.fromEntries(Object.keys(variants).map((k) => [k, []]));
for (let r = 0; r < rounds + 1; r++) {
  for (const [name, fn] of Object.entries(variants)) {
    const before = process.cpuUsage();
    const seconds = await fn();
    const used = process.cpuUsage(before);
    if (r === 0) continue; // round 0 warms caches and thread-local codecs
    times[name].push(seconds * 1000);
    cpu[name].push((used.user + used.system) / n);
  }
}
const ceiling = n / (summarize(times[CEILING]).medianMs / 1000);
for (const [name, ms] of Object.entries(times)) {
  const t = summarize(ms);
  const rate = n / (t.medianMs / 1000);
  emit({ bench: 'data', case: name, images: n, batch: batchSize, jpeg_bytes: Math.round(meanBytes), images_per_s: round(rate), vs_decode_only_1_thread: round(rate / ceiling, 3), cpu_us_per_image: round(summarize(cpu[name]).medianMs, 3), spread: t.spread, rounds: t.samples });
}
dataset.close();
rmSync(dir, { recursive: true, force: true });

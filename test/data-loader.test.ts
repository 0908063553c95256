// The loader: batches and labels as the dataset has them, determinism given seed and rank,
// disjoint ranks, resuming from a saved state, bad records (error or skip), other datasets,
// and no tensors left behind.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as torch from '../src/torch/index.js';
import {
  DataError, DataLoader, ImageFolder, MXFaceDataset, PackWriter, SyntheticDataset, decodeImage, generateIdentities, type Batch, type DataLoaderOptions,
  type FaceDataset,
} from '../src/data/index.js';

const root = mkdtempSync(path.join(os.tmpdir(), 'arcface-loader-'));
test.after(() => rmSync(root, { recursive: true, force: true }));
const packDir = path.join(root, 'pack');
generateIdentities({ out: packDir, seed: 11, identities: 12, imagesPerIdentity: 4, heldOutIdentities: 20, pairs: 20, threads: 2 });

/** The batches of one epoch as plain arrays (tensors disposed). */
async function epoch(loader: DataLoader, e: number, limit = Infinity) {
  loader.setEpoch(e);
  const out: Array<{ images: Float32Array; labels: number[]; indices: number[] }> = [];
  for await (const batch of loader) {
    out.push(plain(batch));
    if (out.length >= limit) break;
  }
  return out;
}

function plain(batch: Batch) {
  const result = { images: batch.images.data() as Float32Array, labels: Array.from(batch.labels.data() as BigInt64Array, Number), indices: Array.from(batch.indices) };
  batch.images.dispose();
  batch.labels.dispose();
  return result;
}

async function withLoader<T>(dataset: FaceDataset, options: DataLoaderOptions, fn: (loader: DataLoader) => Promise<T>): Promise<T> {
  const loader = new DataLoader(dataset, options);
  try {
    return await fn(loader);
  } finally {
    await loader.close();
  }
}

test('batches hold the dataset images and labels, each sample once per epoch', async () => {
  const ds = new MXFaceDataset(packDir);
  const live = torch.liveTensors();
  await withLoader(ds, { batchSize: 8, threads: 2, augment: { flip: 0 } }, async (loader) => {
    assert.equal(loader.length, 6);
    const batches = await epoch(loader, 0);
    assert.equal(batches.length, 6);
    const seen = batches.flatMap((b) => b.indices);
    assert.equal(new Set(seen).size, 48);
    for (const b of batches) {
      assert.equal(b.images.length, 8 * 3 * 112 * 112);
      assert.deepEqual(b.labels, b.indices.map((i) => ds.read(i).label));
    }
    // first sample of the first batch: the decoded JPEG, normalised
    const { pixels } = decodeImage(ds.read(batches[0].indices[0]).image);
    const f = Math.fround;
    for (const [c, y, x] of [[0, 0, 0], [1, 50, 60], [2, 111, 111]]) {
      assert.equal(batches[0].images[(c * 112 + y) * 112 + x], f(f(f(pixels[(y * 112 + x) * 3 + c] / 255) - 0.5) / 0.5));
    }
  });
  assert.equal(torch.liveTensors(), live, 'no tensor left behind');
  ds.close();
});

test('batches survive a scope that is open while they are awaited (the caller owns them)', async () => {
  const ds = new MXFaceDataset(packDir);
  await withLoader(ds, { batchSize: 4 }, async (loader) => {
    loader.setEpoch(0);
    const scope = new torch.Scope();
    const batch = (await loader.next())!;
    const second = (await loader.next())!;
    scope.close();
    for (const b of [batch, second]) {
      assert.ok(!b.images.isDisposed && !b.labels.isDisposed);
      b.images.dispose();
      b.labels.dispose();
    }
  });
  ds.close();
});

test('the same seed gives the same batches (whatever the prefetch depth); epochs differ', async () => {
  const ds = new MXFaceDataset(packDir);
  const options = { batchSize: 5, seed: 3, augment: { flip: 0.5, dali: true } };
  const a = await withLoader(ds, { ...options, prefetch: 1, threads: 1 }, async (l) => [await epoch(l, 0), await epoch(l, 1)]);
  const b = await withLoader(ds, { ...options, prefetch: 4, threads: 2 }, async (l) => [await epoch(l, 0), await epoch(l, 1)]);
  assert.deepEqual(a, b);
  assert.notDeepEqual(a[0][0].indices, a[1][0].indices);
  const other = await withLoader(ds, { ...options, seed: 4 }, (l) => epoch(l, 0));
  assert.notDeepEqual(other[0].indices, a[0][0].indices);
  ds.close();
});

test('ranks see disjoint shards of equal length', async () => {
  const ds = new MXFaceDataset(packDir);
  const shards = await Promise.all([0, 1, 2].map((rank) => withLoader(ds, { batchSize: 4, rank, worldSize: 3 }, (l) => epoch(l, 2))));
  const indices = shards.map((s) => s.flatMap((b) => b.indices));
  assert.ok(indices.every((s) => s.length === 16));
  assert.equal(new Set(indices.flat()).size, 48);
  ds.close();
});

test('a loader resumed from state() continues with the same batches', async () => {
  const ds = new MXFaceDataset(packDir);
  const options = { batchSize: 8, seed: 5, augment: { flip: 0.5, dali: true } };
  const full = await withLoader(ds, options, (l) => epoch(l, 1));
  const state = await withLoader(ds, options, async (l) => {
    await epoch(l, 1, 2);
    return l.state();
  });
  assert.deepEqual(state, { epoch: 1, batch: 2, seed: 5, rank: 0, worldSize: 1, skipped: 0 });
  const rest = await withLoader(ds, options, async (l) => {
    l.loadState(JSON.parse(JSON.stringify(state)));
    return epoch(l, 1);
  });
  assert.deepEqual(rest, full.slice(2));
  const after = await withLoader(ds, options, async (l) => {
    await epoch(l, 1);
    return l.state();
  });
  assert.deepEqual([after.epoch, after.batch], [2, 0]);
  await withLoader(ds, { ...options, rank: 1, worldSize: 2 }, async (l) => assert.throws(() => l.loadState(state), /rank 0 of 1; this loader has seed 5, rank 1 of 2/));
  ds.close();
});

/** A copy of the pack with records `keys` broken by `damage` (default: their JPEG header). */
function corruptPack(keys: number | number[], damage = (rec: Buffer, at: number) => void rec.fill(0x11, at + 8 + 24, at + 8 + 24 + 64)): string {
  const dir = mkdtempSync(path.join(root, 'corrupt-'));
  for (const f of ['train.idx', 'property']) copyFileSync(path.join(packDir, f), path.join(dir, f));
  const ds = new MXFaceDataset(packDir);
  const rec = Buffer.from(readFileSync(path.join(packDir, 'train.rec')));
  for (const key of [keys].flat()) damage(rec, ds.record.offset(key)); // record header, IRHeader, then the JPEG
  ds.close();
  writeFileSync(path.join(dir, 'train.rec'), rec);
  return dir;
}

test('a corrupt record stops the loader with the file and record named, or is skipped with a warning', async () => {
  const ds = new MXFaceDataset(corruptPack(7));
  await withLoader(ds, { batchSize: 48, shuffle: false }, async (l) => {
    l.setEpoch(0);
    await assert.rejects(l.next(), (e: unknown) => e instanceof DataError && /^train\.rec: record 7: not a JPEG or PNG image/.test(e.message));
  });
  const warnings: string[] = [];
  await withLoader(ds, { batchSize: 48, shuffle: false, skipCorrupt: true, onWarning: (m) => warnings.push(m) }, async (l) => {
    const [batch] = await epoch(l, 0);
    assert.equal(l.skipped, 1);
    assert.match(warnings[0], /^train\.rec: record 7: not a JPEG or PNG image .* — skipped \(1 so far\)$/);
    // record 7 is sample 6; its slot holds the next sample
    assert.deepEqual(batch.indices.slice(5, 8), [5, 7, 7]);
    assert.deepEqual(batch.images.subarray(6 * 3 * 112 * 112, 7 * 3 * 112 * 112), batch.images.subarray(7 * 3 * 112 * 112, 8 * 3 * 112 * 112));
    assert.equal(l.state().skipped, 1);
  });
  ds.close();
});

test('skipping stops past maxSkipped, naming the count and the last record', async () => {
  const ds = new MXFaceDataset(corruptPack([3, 7, 9]));
  const warnings: string[] = [];
  await withLoader(ds, { batchSize: 48, shuffle: false, skipCorrupt: true, maxSkipped: 2, onWarning: (m) => warnings.push(m) }, async (l) => {
    l.setEpoch(0);
    await assert.rejects(l.next(), (e: unknown) =>
      e instanceof DataError && /^train\.rec: record 9: not a JPEG or PNG image .* — 3 corrupt records met, over the cap of 2 \(maxSkipped\); stopped$/.test(e.message));
  });
  assert.deepEqual(warnings.map((w) => w.match(/record (\d+)/)?.[1]), ['3', '7']);
  ds.close();
});

test('a record declaring more bytes than the file holds is refused before it is read', async () => {
  // record 7's length field says 2^29 − 1 bytes (the most one part can declare); the file is ~100 kB
  const ds = new MXFaceDataset(corruptPack(7, (rec, at) => void rec.writeUInt32LE((1 << 29) - 1, at + 4)));
  await withLoader(ds, { batchSize: 48, shuffle: false }, async (l) => {
    l.setEpoch(0);
    await assert.rejects(l.next(), (e: unknown) =>
      e instanceof DataError && /^train\.rec: record 7: truncated record: the part at offset \d+ declares 536870911 bytes but the file has \d+ after its header$/.test(e.message));
  });
  ds.close();
});

test('image files over maxImageBytes are bad samples named by their path', async () => {
  const folder = path.join(root, 'big-files');
  const ds = new MXFaceDataset(packDir);
  const jpegs = Array.from({ length: 4 }, (_, i) => ds.read(i).image);
  ds.close();
  const cap = Math.max(...jpegs.map((j) => j.length)) + 16;
  for (const [i, jpeg] of jpegs.entries()) {
    mkdirSync(path.join(folder, `id${i >> 1}`), { recursive: true });
    // the second image: a valid JPEG followed by padding, one byte over the cap
    const bytes = i === 1 ? Buffer.concat([jpeg, Buffer.alloc(cap + 1 - jpeg.length)]) : jpeg;
    writeFileSync(path.join(folder, `id${i >> 1}`, `${i}.jpg`), bytes);
  }
  const images = new ImageFolder(folder);
  const big = path.join(folder, 'id0', '1.jpg');
  await withLoader(images, { batchSize: 4, shuffle: false, maxImageBytes: cap }, async (l) => {
    l.setEpoch(0);
    await assert.rejects(l.next(), (e: unknown) =>
      e instanceof DataError && e.message === `${big}: image file of ${cap + 1} bytes is over the cap of ${cap} bytes (maxImageBytes)`);
  });
  const warnings: string[] = [];
  const [batch] = await withLoader(images, { batchSize: 4, shuffle: false, maxImageBytes: cap, skipCorrupt: true, onWarning: (m) => warnings.push(m) }, (l) => epoch(l, 0));
  assert.deepEqual(batch.indices, [0, 2, 2, 3]);
  assert.equal(warnings.length, 1);
  assert.ok(warnings[0].startsWith(`${big}: image file of`));
  // under the default cap (64 MiB) the same file is an image
  const [whole] = await withLoader(images, { batchSize: 4, shuffle: false }, (l) => epoch(l, 0));
  assert.deepEqual(whole.indices, [0, 1, 2, 3]);
});

test('labels outside [0, numClasses) are errors naming the record', async () => {
  const dir = path.join(root, 'labels');
  const pack = new PackWriter(dir);
  const ds0 = new MXFaceDataset(packDir);
  for (let i = 0; i < 6; i++) pack.add(Math.floor(i / 2), ds0.read(i * 4).image);
  ds0.close();
  pack.close();
  writeFileSync(path.join(dir, 'property'), '2,112,112\n'); // claims 2 classes, the pack has 3
  const ds = new MXFaceDataset(dir);
  await withLoader(ds, { batchSize: 6, shuffle: false }, async (l) => {
    l.setEpoch(0);
    await assert.rejects(l.next(), /^DataError: train\.rec: record 5: label 2 is outside \[0, 2\)$/);
  });
  ds.close();
});

test('image folders and the synthetic dataset load through the same path', async () => {
  const folder = path.join(root, 'folder');
  const ds = new MXFaceDataset(packDir);
  for (const [i, person] of ['b', 'a'].entries()) {
    mkdirSync(path.join(folder, person), { recursive: true });
    for (let k = 0; k < 3; k++) writeFileSync(path.join(folder, person, `${k}.jpg`), ds.read(i * 4 + k).image);
  }
  ds.close();
  const images = new ImageFolder(folder);
  const [batch] = await withLoader(images, { batchSize: 6, shuffle: false, augment: { flip: 0 } }, (l) => epoch(l, 0));
  assert.deepEqual(batch.labels, [0, 0, 0, 1, 1, 1]);

  const synthetic = new SyntheticDataset({ length: 10, seed: 1 });
  const [s] = await withLoader(synthetic, { batchSize: 4, augment: { flip: 0 } }, (l) => epoch(l, 0));
  assert.deepEqual(s.labels, [1, 1, 1, 1]);
  const f = Math.fround;
  const first = Float32Array.from({ length: 112 * 112 }, (_, i) => f(f(f(synthetic.pixels[i * 3] / 255) - 0.5) / 0.5));
  assert.deepEqual(s.images.subarray(0, 112 * 112), first);
  assert.deepEqual(s.images.subarray(3 * 112 * 112, 4 * 112 * 112), first);
});

// The generated-identities dataset: the same seed gives the same bytes, identities are stable
// across their images and distinct from each other, and the held-out .bin has LFW's layout with
// identities the training pack does not contain.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fixturePath } from './helpers.js';
import {
  MXFaceDataset, checkPack, encodeVerificationBin, generateIdentities, heldOutPairs, readVerificationBin, decodeImage,
} from '../src/data/index.js';
import { native } from '../src/torch/native.js';

const small = { identities: 6, imagesPerIdentity: 3, heldOutIdentities: 20, pairs: 40, threads: 2 };
const root = mkdtempSync(path.join(os.tmpdir(), 'arcface-gen-'));
test.after(() => rmSync(root, { recursive: true, force: true }));
let dirCount = 0;
const tmp = () => mkdtempSync(path.join(root, `${dirCount++}-`));

test('the same seed gives byte-identical packs and .bin files; another seed does not', () => {
  const [a, b, c] = [tmp(), tmp(), tmp()];
  generateIdentities({ ...small, out: a, seed: 1 });
  generateIdentities({ ...small, out: b, seed: 1, threads: 1 });
  generateIdentities({ ...small, out: c, seed: 2 });
  for (const file of ['train.rec', 'train.idx', 'property', 'heldout.bin', 'generated.json']) {
    assert.deepEqual(readFileSync(path.join(a, file)), readFileSync(path.join(b, file)), file);
  }
  assert.notDeepEqual(readFileSync(path.join(a, 'train.rec')), readFileSync(path.join(c, 'train.rec')));
  assert.deepEqual(JSON.parse(readFileSync(path.join(a, 'generated.json'), 'utf8')), {
    generator: 1, seed: 1, identities: 6, imagesPerIdentity: 3, heldOutIdentities: 20, pairs: 40, quality: 90,
  });
});

test('the pack holds N identities × K images in the insightface layout', async () => {
  const out = tmp();
  const result = generateIdentities({ ...small, out, seed: 4 });
  assert.deepEqual(result, { dir: out, bin: path.join(out, 'heldout.bin'), images: 18, identities: 6, pairs: 40 });
  const report = await checkPack(out);
  assert.deepEqual(report, { images: 18, identities: 6, numClasses: 6, layout: 'header', sizes: { '112x112': 18 }, problems: [] });
  const ds = new MXFaceDataset(out);
  assert.deepEqual(Array.from({ length: 18 }, (_, i) => ds.read(i).label), [0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3, 4, 4, 4, 5, 5, 5]);
  ds.close();
});

test('held-out pairs: 10 folds of same-then-different pairs over identities not in the pack', () => {
  const pairs = heldOutPairs(3, 1000, 200, 3000);
  assert.equal(pairs.issame.length, 3000);
  for (let fold = 0; fold < 10; fold++) {
    const flags = pairs.issame.slice(fold * 300, (fold + 1) * 300);
    assert.deepEqual(flags, [...Array(150).fill(true), ...Array(150).fill(false)]);
    const ids = new Set(pairs.identities.slice(fold * 600, (fold + 1) * 600));
    assert.ok([...ids].every((id) => id >= 1000 && id < 1200 && (id - 1000) % 10 === fold), 'each fold has its own held-out identities');
  }
  for (let p = 0; p < 3000; p++) {
    const [a, b] = [pairs.identities[2 * p], pairs.identities[2 * p + 1]];
    assert.equal(a === b, pairs.issame[p]);
  }
  const images = pairs.identities.map((id, i) => `${id}/${pairs.images[i]}`);
  assert.equal(new Set(images).size, images.length, 'every image of the .bin is a fresh rendering');
});

test('the .bin is the pickle Python 3 writes (protocol 2), and reads back', () => {
  const fixture = readFileSync(fixturePath('data_verification_py3.bin'));
  const py2 = readVerificationBin(fixturePath('data_verification_py2.bin'));
  const py3 = readVerificationBin(fixturePath('data_verification_py3.bin'));
  assert.deepEqual(py2, py3);
  assert.deepEqual(py3.issame, [true, false]);
  assert.deepEqual(py3.images.map((i) => i.length), [5, 300, 0, 17]);
  assert.deepEqual(Buffer.from(encodeVerificationBin(py3)), fixture);
  const out = tmp();
  generateIdentities({ ...small, out, seed: 5 });
  const set = readVerificationBin(path.join(out, 'heldout.bin'));
  assert.equal(set.images.length, 80);
  assert.ok(set.images.every((jpeg) => decodeImage(jpeg).width === 112));
});

test('an identity looks alike across its images, and unlike other identities', () => {
  const n = 12;
  const render = (identities: number[], images: number[]) =>
    native.renderFaces({ seed: 8, identities: Float64Array.from(identities), images: Float64Array.from(images), quality: 0, threads: 2 });
  const a = render([...Array(n).keys()], Array(n).fill(0));
  assert.deepEqual(a, render([...Array(n).keys()], Array(n).fill(0)), 'rendering is deterministic');
  const b = render([...Array(n).keys()], Array(n).fill(1));
  assert.ok(a.every((img, i) => !Buffer.from(img).equals(Buffer.from(b[i]))), 'each image is a new variation');
  // faces of the same identity are closer (median absolute pixel difference over the face) than
  // faces of different identities, on most identities
  const faceDistance = (x: Uint8Array, y: Uint8Array) => {
    const d: number[] = [];
    for (let yy = 30; yy < 100; yy += 2) for (let xx = 30; xx < 82; xx += 2) for (let c = 0; c < 3; c++) d.push(Math.abs(x[(yy * 112 + xx) * 3 + c] - y[(yy * 112 + xx) * 3 + c]));
    return d.sort((p, q) => p - q)[d.length >> 1];
  };
  let closer = 0;
  for (let i = 0; i < n; i++) if (faceDistance(a[i], b[i]) < faceDistance(a[i], b[(i + 1) % n])) closer++;
  assert.ok(closer >= n * 0.6, `${closer} of ${n}`);
});

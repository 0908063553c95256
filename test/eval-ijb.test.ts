/**
 * IJB-C 1:1 verification end to end on a miniature pack built here: rendered faces pasted into
 * larger images at known offsets (some turned 90°), meta files in insightface's layout, and a
 * random MobileFaceNet saved as model.pt. `arcface eval ijb` must give the scores and TAR@FAR of a
 * direct computation: crop the faces by index, embed them and their mirror images, weigh by the
 * detector score, average per media, sum per template, cosine per pair.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as torch from '../src/torch/index.js';
import { getModel } from '../src/models/index.js';
import { decodeImage, encodeJpeg } from '../src/data/index.js';
import { native } from '../src/torch/native.js';
import { ARCFACE_TEMPLATE, evaluateIjb, loadBackbone, readNpy, rocCurve, tarAtFar, TorchEmbedder } from '../src/eval/index.js';
import { evalCommand } from '../src/cli/eval.js';
import { arcface } from './cli-in-process.js';

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'ijb-'));
after(() => fs.rmSync(root, { recursive: true, force: true }));

// 12 images of 4 identities; templates 2 per identity (images 0–1 and 2 of each); medias chosen so
// that some templates average two images of one media and others sum two medias
const identity = (i: number) => Math.floor(i / 3);
const templates = Int32Array.from({ length: 12 }, (_, i) => 100 + 2 * identity(i) + (i % 3 === 2 ? 1 : 0));
const medias = Int32Array.from([7, 7, 8, 9, 10, 11, 12, 12, 13, 14, 15, 16]);
const scores = Float32Array.from({ length: 12 }, (_, i) => 0.5 + (i % 5) / 8);
const rotated = (i: number) => i % 2 === 1;
const offsets = Array.from({ length: 12 }, (_, i) => [5 + ((i * 7) % 23), 3 + ((i * 11) % 19)]);
const [W, H] = [150, 140];

/** Face pixel (u, v) sits at canvas (dx + u, dy + v), or turned 90°: at (dx + 111 − v, dy + u). */
const place = (i: number, u: number, v: number): [number, number] => {
  const [dx, dy] = offsets[i];
  return rotated(i) ? [dx + 111 - v, dy + u] : [dx + u, dy + v];
};

function buildPack(): void {
  fs.mkdirSync(path.join(root, 'loose_crop'));
  fs.mkdirSync(path.join(root, 'meta'));
  const faces = native.renderFaces({ seed: 3, identities: Float64Array.from({ length: 12 }, (_, i) => identity(i)), images: Float64Array.from({ length: 12 }, (_, i) => i % 3), quality: 95, threads: 2 });
  const landmarkLines: string[] = [];
  faces.forEach((jpeg, i) => {
    const face = decodeImage(jpeg).pixels;
    const canvas = Uint8Array.from({ length: W * H * 3 }, (_, k) => (k * 37) % 251);
    for (let v = 0; v < 112; v++) {
      for (let u = 0; u < 112; u++) {
        const [x, y] = place(i, u, v);
        canvas.set(face.subarray((v * 112 + u) * 3, (v * 112 + u) * 3 + 3), (y * W + x) * 3);
      }
    }
    fs.writeFileSync(path.join(root, 'loose_crop', `${i + 1}.jpg`), encodeJpeg(canvas, W, H, 95));
    const landmarks = ARCFACE_TEMPLATE.flatMap(([u, v]) => (rotated(i) ? [offsets[i][0] + 111 - v, offsets[i][1] + u] : [offsets[i][0] + u, offsets[i][1] + v]));
    landmarkLines.push(`${i + 1}.jpg ${landmarks.map((l) => l.toFixed(6)).join(' ')} ${scores[i]}`);
  });
  fs.writeFileSync(path.join(root, 'meta', 'ijbc_name_5pts_score.txt'), `${landmarkLines.join('\n')}\n`);
  fs.writeFileSync(path.join(root, 'meta', 'ijbc_face_tid_mid.txt'), `${Array.from(templates, (t, i) => `${i + 1}.jpg ${t} ${medias[i]}`).join('\n')}\n`);
  const ids = [...new Set(templates)];
  const pairs = ids.flatMap((a, i) => ids.slice(i + 1).map((b) => `${a} ${b} ${Math.floor((a - 100) / 2) === Math.floor((b - 100) / 2) ? 1 : 0}`));
  fs.writeFileSync(path.join(root, 'meta', 'ijbc_template_pair_label.txt'), `${pairs.join('\n')}\n`);
}

/** Embeddings of the faces cropped by index (rows in image order), and of their mirror images. */
async function directEmbeddings(modelFile: string): Promise<{ plain: number[][]; flipped: number[][] }> {
  const crops = new Uint8Array(12 * 3 * 112 * 112);
  for (let i = 0; i < 12; i++) {
    const { pixels } = decodeImage(fs.readFileSync(path.join(root, 'loose_crop', `${i + 1}.jpg`)));
    for (let c = 0; c < 3; c++) {
      for (let v = 0; v < 112; v++) {
        for (let u = 0; u < 112; u++) {
          const [x, y] = place(i, u, v);
          crops[((i * 3 + c) * 112 + v) * 112 + u] = pixels[(y * W + x) * 3 + c];
        }
      }
    }
  }
  const embedder = new TorchEmbedder(loadBackbone(modelFile, 'mbf'));
  const images = torch.tidy(() => torch.tensor(crops, { shape: [12, 3, 112, 112] }).float().div(255).sub(0.5).div(0.5));
  const mirrored = torch.flip(images, [3]);
  const [plain, flipped] = [await embedder.embed(images), await embedder.embed(mirrored)];
  const out = { plain: plain.toArray() as number[][], flipped: flipped.toArray() as number[][] };
  torch.dispose(images, mirrored, plain, flipped);
  await embedder.dispose();
  return out;
}

/** Pair scores the direct way: (flip-summed) embeddings × score, media means summed per template, cosine. */
function directScores(e: { plain: number[][]; flipped: number[][] }, flip: boolean, detectorScore: boolean): { scores: Float64Array; labels: number[] } {
  const features = e.plain.map((f, i) => f.map((x, k) => (x + (flip ? e.flipped[i][k] : 0)) * (detectorScore ? scores[i] : 1)));
  const pooled = new Map(
    [...new Set(templates)].map((t) => {
      const sum = new Array(features[0].length).fill(0);
      for (const m of new Set(medias.filter((_, i) => templates[i] === t))) {
        const members = features.filter((_, i) => templates[i] === t && medias[i] === m);
        members.forEach((f) => f.forEach((x, k) => (sum[k] += x / members.length)));
      }
      const norm = Math.hypot(...sum);
      return [t, sum.map((x) => x / norm)];
    }),
  );
  const lines = fs.readFileSync(path.join(root, 'meta', 'ijbc_template_pair_label.txt'), 'utf8').trim().split('\n').map((l) => l.split(' ').map(Number));
  return {
    scores: Float64Array.from(lines, ([a, b]) => pooled.get(a)!.reduce((s, x, k) => s + x * pooled.get(b)![k], 0)),
    labels: lines.map(([, , label]) => label),
  };
}

buildPack();
const modelFile = path.join(root, 'model.pt');
torch.manualSeed(4);
const model = getModel('mbf', { embeddingSize: 64 });
torch.tidy(() => torch.save(model.stateDict(), modelFile));
model.dispose();
const direct = directEmbeddings(modelFile);

test('arcface eval ijb: scores and TAR@FAR equal the direct computation (flip test, detector scores)', async () => {
  const scoresFile = path.join(root, 'scores.npy');
  const run = await arcface(evalCommand, 'eval', ['ijb', '--model', modelFile, '--network', 'mbf', '--root', root, '--target', 'IJBC', '--batch-size', '5', '--save-scores', scoresFile, '--json']);
  assert.equal(run.status, 0, run.stderr);
  const result = JSON.parse(run.stdout);
  assert.equal(result.target, 'IJBC');
  assert.deepEqual([result.images, result.templates, result.pairs, result.flip, result.detectorScore], [12, 8, 28, true, true]);
  const expected = directScores(await direct, true, true);
  const saved = readNpy(scoresFile).data;
  saved.forEach((s, p) => assert.ok(Math.abs(s - expected.scores[p]) < 1e-5, `pair ${p}: ${s} vs ${expected.scores[p]}`));
  assert.deepEqual(result.tarAtFar, tarAtFar(rocCurve(expected.labels, expected.scores)));
  assert.deepEqual(result.tarAtFar.map((r: { far: number }) => r.far), [1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1]);
});

test('without flip test and detector scores, as eval_ijbc.py with those modes off', async () => {
  const embedder = new TorchEmbedder(loadBackbone(modelFile, 'mbf'));
  const result = await evaluateIjb(embedder, { root, target: 'IJBC', flip: false, detectorScore: false, batchSize: 12 });
  await embedder.dispose();
  const expected = directScores(await direct, false, false);
  result.scores.forEach((s, p) => assert.ok(Math.abs(s - expected.scores[p]) < 1e-5, `pair ${p}`));
  assert.deepEqual(result.tarAtFar, tarAtFar(rocCurve(expected.labels, expected.scores)));
});

test('bad packs give errors naming the file and line', async () => {
  const meta = path.join(root, 'meta');
  const backup = (name: string) => fs.readFileSync(path.join(meta, name), 'utf8');
  const faces = backup('ijbc_name_5pts_score.txt'), tidMid = backup('ijbc_face_tid_mid.txt'), pairs = backup('ijbc_template_pair_label.txt');
  const embedder = new TorchEmbedder(loadBackbone(modelFile, 'mbf'));
  const expectError = async (file: string, text: string, pattern: RegExp) => {
    fs.writeFileSync(path.join(meta, file), text);
    await assert.rejects(evaluateIjb(embedder, { root, target: 'IJBC' }), pattern);
    fs.writeFileSync(path.join(meta, file), { 'ijbc_name_5pts_score.txt': faces, 'ijbc_face_tid_mid.txt': tidMid, 'ijbc_template_pair_label.txt': pairs }[file]!);
  };
  try {
    const lines = faces.split('\n');
    await expectError('ijbc_name_5pts_score.txt', [lines[0], lines[1], lines[2].split(' ').slice(0, 11).join(' '), ...lines.slice(3)].join('\n'), /ijbc_name_5pts_score\.txt:3: expected an image name, 10 landmark coordinates and a score, found 11 fields/);
    await expectError('ijbc_name_5pts_score.txt', faces.replace(/ [\d.]+\n/, ' high\n'), /ijbc_name_5pts_score\.txt:1: 'high' is not a number/);
    await expectError('ijbc_face_tid_mid.txt', tidMid.replace('5.jpg', '50.jpg'), /ijbc_face_tid_mid\.txt:5: image '50\.jpg' where the face list has '5\.jpg'/);
    await expectError('ijbc_face_tid_mid.txt', tidMid.replace(' 7\n', ' 7.5\n'), /ijbc_face_tid_mid\.txt:1: '7\.5' is not an integer/);
    await expectError('ijbc_template_pair_label.txt', `${pairs}100 999 0\n`, /ijbc_template_pair_label\.txt:29: template 999 has no images in ijbc_face_tid_mid\.txt/);
    await expectError('ijbc_template_pair_label.txt', pairs.replace(/ 0\n/, ' 2\n'), /ijbc_template_pair_label\.txt:\d+: label 2 is not 0 or 1/);
    await assert.rejects(evaluateIjb(embedder, { root: path.join(root, 'nowhere'), target: 'IJBC' }), /nowhere\/meta\/ijbc_face_tid_mid\.txt: cannot read it \(ENOENT\)/);
    const image = path.join(root, 'loose_crop', '2.jpg');
    fs.renameSync(image, `${image}.away`);
    await assert.rejects(evaluateIjb(embedder, { root, target: 'IJBC' }), /loose_crop\/2\.jpg: cannot read the image \(ENOENT\)/);
    fs.renameSync(`${image}.away`, image);
    fs.writeFileSync(image, 'not a jpeg');
    await assert.rejects(evaluateIjb(embedder, { root, target: 'IJBC' }), /loose_crop\/2\.jpg: cannot decode the image/);
  } finally {
    await embedder.dispose();
  }
  const usage = await arcface(evalCommand, 'eval', ['ijb', '--model', modelFile, '--network', 'mbf', '--root', root, '--target', 'IJBA']);
  assert.equal(usage.status, 2);
  assert.match(usage.stderr, /--target must be IJBC or IJBB, got 'IJBA'/);
});

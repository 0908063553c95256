/**
 * The commands `arcface eval verification`, `eval roc`, `embed` and `export onnx` on generated
 * data and a random MobileFaceNet saved by torch.save: output structure, agreement with the library
 * (verifyBackbone, a direct embedding), the ONNX path giving libtorch's accuracy, `eval roc` against
 * a ROC worked out by hand, PyTorch and numpy reading what we write (visible skips without them),
 * and errors that name the file or key.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import * as torch from '../src/torch/index.js';
import { getModel } from '../src/models/index.js';
import { decodeImage, encodeJpeg, generateIdentities, readVerificationBin, resizeImage, writeVerificationBin } from '../src/data/index.js';
import { loadBackbone, loadVerificationSet, readNpy, verifyBackbone, writeNpy } from '../src/eval/index.js';
import { evalCommand } from '../src/cli/eval.js';
import { embed } from '../src/cli/embed.js';
import { exportCommand } from '../src/cli/export.js';
import { fixturePath, pythonHasTorch } from './helpers.js';
import { arcface } from './cli-in-process.js';
import { rocPoints } from '../src/eval/result-file.js';

const evalCli = (...args: string[]) => arcface(evalCommand, 'eval', args);
const pythonHasNumpy = spawnSync('/usr/bin/python3', ['-c', 'import numpy'], { stdio: 'ignore' }).status === 0;

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'eval-cli-'));
after(() => fs.rmSync(dir, { recursive: true, force: true }));

// 20 held-out pairs of generated faces, and 10 pairs of 100×90 noise images (resized on decoding)
const { bin } = generateIdentities({ out: path.join(dir, 'generated'), identities: 2, imagesPerIdentity: 1, heldOutIdentities: 20, pairs: 20, threads: 2 });
const noiseBin = path.join(dir, 'noise.bin');
torch.manualSeed(5);
const noise = torch.randint(0, 256, [20, 90, 100, 3], { dtype: 'uint8' });
writeVerificationBin(noiseBin, {
  images: Array.from({ length: 20 }, (_, i) => encodeJpeg(torch.tidy(() => noise.select(0, i).data() as Uint8Array), 100, 90)),
  issame: Array.from({ length: 10 }, (_, i) => i % 2 === 0),
});
noise.dispose();
const modelFile = path.join(dir, 'model.pt');
{
  const model = getModel('mbf', { embeddingSize: 32 });
  torch.tidy(() => torch.save(model.stateDict(), modelFile));
  model.dispose();
}

/** The --json output for the held-out set with the libtorch backbone (test 1 sets it, test 3 compares). */
let libtorchResult: { plain: { accuracy: number[] }; flip: { accuracy: number[] }; xnorm: number } | undefined;

test('eval verification --json: per set the 10 folds, XNorm, plain and flip accuracy, as verifyBackbone computes them', async () => {
  const outFile = path.join(dir, 'eval-verification.json');
  const run = await evalCli('verification', '--model', modelFile, '--network', 'mbf', '--bin', bin, '--bin', noiseBin, '--json', '--out', outFile);
  assert.equal(run.status, 0, run.stderr);
  assert.match(run.stderr, /warning: .*noise\.bin: 20 images were not 112×112 and were resized/);
  const out = JSON.parse(run.stdout);
  assert.equal(out.model, `${modelFile} (mbf)`);
  assert.deepEqual(out.sets.map((s: { name: string; pairs: number }) => [s.name, s.pairs]), [['heldout', 20], ['noise', 10]]);
  const set = await loadVerificationSet(bin);
  const backbone = loadBackbone(modelFile, 'mbf');
  const expected = verifyBackbone(backbone, set);
  backbone.dispose();
  set.images.dispose();
  const heldout = (libtorchResult = out.sets[0]);
  assert.equal(heldout.plain.accuracy.length, 10);
  assert.equal(heldout.plain.accMean, expected.plain.accMean);
  assert.equal(heldout.flip.accMean, expected.flip.accMean);
  assert.equal(heldout.flip.accStd, expected.flip.accStd);
  assert.ok(Math.abs(heldout.xnorm - expected.xnorm) < 1e-5 * expected.xnorm);
  for (const key of ['val', 'valStd', 'far', 'accStd']) assert.equal(typeof heldout.plain[key], 'number');
  // --out, the dashboard's file: each set's flip accuracy
  const saved = JSON.parse(fs.readFileSync(outFile, 'utf8'));
  assert.deepEqual(saved, { kind: 'verification', model: out.model, accuracies: { heldout: expected.flip.accMean, noise: out.sets[1].flip.accMean } });
});

test('eval verification prints insightface\'s lines; errors name the file, the keys, the options', async () => {
  const run = await evalCli('verification', '--model', modelFile, '--network', 'mbf', '--bin', bin);
  assert.equal(run.status, 0, run.stderr);
  assert.match(run.stdout, /^\[heldout\]XNorm: \d+\.\d{6}\n\[heldout\]Accuracy: [01]\.\d{5}\+-0\.\d{5}\n\[heldout\]Accuracy-Flip: [01]\.\d{5}\+-0\.\d{5}\n$/);

  const wrong = await evalCli('verification', '--model', modelFile, '--network', 'r18', '--bin', bin);
  assert.equal(wrong.status, 1);
  assert.match(wrong.stderr, /model\.pt: not the weights of a 'r18' backbone: missing 'conv1\.weight', 'bn1\.weight', 'bn1\.bias' and \d+ more; unexpected 'layers\.0\.layers\.0\.weight'.* \(is --network right\?\)/);
  const missingModel = await evalCli('verification', '--model', path.join(dir, 'none.pt'), '--network', 'mbf', '--bin', bin);
  assert.match(missingModel.stderr, /none\.pt: no such model file/);
  const missingBin = await evalCli('verification', '--model', modelFile, '--network', 'mbf', '--bin', path.join(dir, 'none.bin'));
  assert.equal(missingBin.status, 1);
  assert.match(missingBin.stderr, /none\.bin/);
  const both = await evalCli('verification', '--model', modelFile, '--network', 'mbf', '--onnx', 'x.onnx', '--bin', bin);
  assert.equal(both.status, 2);
  assert.match(both.stderr, /either --onnx or --model with --network, not both/);
  assert.equal((await evalCli('verification', '--model', modelFile, '--network', 'mbf')).status, 2);
  assert.equal((await evalCli('lfw')).status, 2);
});

test('a state_dict PyTorch wrote (an OrderedDict) of the same weights loads the same as ours', { skip: pythonHasTorch ? false : 'needs /usr/bin/python3 with torch (npm test installs python3-torch)' }, () => {
  // compares against PyTorch's own torch.load / torch.save of our model.pt
  const pythonFile = path.join(dir, 'python.pt');
  const py = spawnSync('/usr/bin/python3', ['-c', 'import sys, collections, torch; torch.save(collections.OrderedDict(torch.load(sys.argv[1])), sys.argv[2])', modelFile, pythonFile], { encoding: 'utf8' });
  assert.equal(py.status, 0, py.stderr);
  const [ours, theirs] = [loadBackbone(modelFile, 'mbf'), loadBackbone(pythonFile, 'mbf')];
  torch.tidy(() => {
    const [a, b] = [ours.stateDict(), theirs.stateDict()];
    assert.deepEqual([...a.keys()], [...b.keys()]);
    for (const [key, t] of a) assert.ok(t.eq(b.get(key)!).all().item(), key);
  });
  ours.dispose();
  theirs.dispose();
});

test('export onnx --check, then eval verification --onnx gives the accuracy of the libtorch path', async () => {
  const [plainFile, foldedFile] = [path.join(dir, 'model.onnx'), path.join(dir, 'model-folded.onnx')];
  const exported = await arcface(exportCommand, 'export', ['onnx', '--model', modelFile, '--network', 'mbf', '--out', plainFile, '--check']);
  assert.equal(exported.status, 0, exported.stderr);
  assert.match(exported.stdout, /model\.onnx: mbf, opset 13, \d+ nodes \(Conv \d+, .*\), output \[None, 32\]/);
  assert.match(exported.stdout, /onnxruntime check: max \|difference\| \d\.\d+e-\d+ over embeddings up to/);
  const folded = await arcface(exportCommand, 'export', ['onnx', '--model', modelFile, '--network', 'mbf', '--out', foldedFile, '--simplify-bn', '--opset', '17']);
  assert.equal(folded.status, 0, folded.stderr);
  assert.doesNotMatch(folded.stdout, /BatchNormalization/);

  const run = await evalCli('verification', '--onnx', foldedFile, '--bin', bin, '--json');
  assert.equal(run.status, 0, run.stderr);
  const set = JSON.parse(run.stdout).sets[0];
  assert.ok(libtorchResult, 'the libtorch run (first test) gave a result');
  assert.deepEqual([set.plain.accuracy, set.flip.accuracy], [libtorchResult.plain.accuracy, libtorchResult.flip.accuracy]);
  assert.ok(Math.abs(set.xnorm - libtorchResult.xnorm) < 1e-4 * libtorchResult.xnorm);

  const bad = await arcface(exportCommand, 'export', ['onnx', '--model', modelFile, '--network', 'mbf', '--out', path.join(dir, 'x.onnx'), '--opset', '11']);
  assert.equal(bad.status, 2);
  assert.match(bad.stderr, /--opset needs an integer ≥ 13, got '11'/);
  assert.equal((await arcface(exportCommand, 'export', ['tflite'])).status, 2);
});

test('embed: folders and files in order, normalised or raw, flip test, JSON and .npy; resized images are named', async (t) => {
  const faces = path.join(dir, 'faces');
  fs.mkdirSync(path.join(faces, 'b'), { recursive: true });
  const jpegs = readVerificationBin(bin).images.slice(0, 3);
  jpegs.forEach((jpeg, i) => fs.writeFileSync(path.join(faces, i === 0 ? 'b' : '', `${i}.jpg`), jpeg));
  fs.writeFileSync(path.join(faces, 'notes.txt'), 'not an image');
  const png = fixturePath('data_image_rgb.png');
  const json = path.join(dir, 'embeddings.json');
  const run = await arcface(embed, 'embed', ['--model', modelFile, '--network', 'mbf', '--images', faces, png, '--out', json, '--flip', '--batch-size', '2']);
  assert.equal(run.status, 0, run.stderr);
  assert.match(run.stderr, /warning: 1 of 4 images are not 112×112 and were resized .*data_image_rgb\.png \(23×17\)/);
  const out = JSON.parse(fs.readFileSync(json, 'utf8'));
  const files = [path.join(faces, '1.jpg'), path.join(faces, '2.jpg'), path.join(faces, 'b', '0.jpg'), png];
  assert.deepEqual(out.files, files);

  // the same embeddings computed directly: decode, resize, normalise, embed image and mirror image, L2-normalise
  const backbone = loadBackbone(modelFile, 'mbf').eval();
  const expected = torch.tidy(() => {
    const images = torch.stack(files.map((f) => {
      let { width, height, pixels } = decodeImage(fs.readFileSync(f));
      if (width !== 112 || height !== 112) [pixels, width, height] = [resizeImage(pixels, width, height, 112, 112), 112, 112];
      return torch.tensor(pixels, { shape: [112, 112, 3] }).permute(2, 0, 1).float().div(255).sub(0.5).div(0.5);
    }));
    const e = torch.noGrad(() => backbone.forward(images).add(backbone.forward(torch.flip(images, [3]))));
    return torch.normalize(e, 2, 1).toArray() as number[][];
  });
  backbone.dispose();
  out.embeddings.forEach((row: number[], i: number) => {
    assert.equal(row.length, 32);
    row.forEach((v, k) => assert.ok(Math.abs(v - expected[i][k]) < 1e-5, `file ${i} [${k}]: ${v} vs ${expected[i][k]}`));
  });

  const npy = path.join(dir, 'embeddings.npy');
  const raw = await arcface(embed, 'embed', ['--model', modelFile, '--network', 'mbf', '--images', ...files, '--out', npy, '--raw']);
  assert.equal(raw.status, 0, raw.stderr);
  assert.match(raw.stdout, /embeddings\.npy: 4 raw embeddings of size 32/);
  const { data, shape } = readNpy(npy);
  assert.deepEqual(shape, [4, 32]);
  assert.ok(Math.abs(Math.hypot(...data.subarray(0, 32)) - 1) > 1e-3, 'raw embeddings are not normalised');
  await t.test('numpy.load reads the .npy: dtype, shape, a value', { skip: pythonHasNumpy ? false : 'needs /usr/bin/python3 with numpy (python3-numpy)' }, () => {
    // compares against numpy's own reader
    const numpy = spawnSync('/usr/bin/python3', ['-c', 'import sys, numpy; a = numpy.load(sys.argv[1]); print(a.dtype, a.shape, repr(float(a[2, 31])))', npy], { encoding: 'utf8' });
    assert.equal(numpy.status, 0, numpy.stderr);
    const [dtype, rows, cols, last] = numpy.stdout.trim().split(/[ (),]+/);
    assert.deepEqual([dtype, rows, cols, Number(last)], ['float32', '4', '32', data[2 * 32 + 31]]);
  });

  assert.equal((await arcface(embed, 'embed', ['--model', modelFile, '--network', 'mbf', '--images', faces, '--out', path.join(dir, 'e.csv')])).status, 2);
  const missing = await arcface(embed, 'embed', ['--model', modelFile, '--network', 'mbf', '--images', path.join(dir, 'nothing'), '--out', json]);
  assert.match(missing.stderr, /nothing: no such file or folder/);
});

test('eval roc: TAR@FAR table and JSON from text or .npy scores and labels, as worked out by hand from sklearn\'s roc_curve rules', async () => {
  // 4 genuine pairs (0.9, 0.7, 0.45, 0.3) and 10 impostors (0.8, 0.6, 0.45, 0.2, 0.15, 0.1, 0.05, 0, −0.1, −0.2),
  // overlapping, one genuine–impostor tie, written out of order. The expectation is worked out by hand
  // as sklearn.metrics.roc_curve and eval_ijbc.py define it, not by our code:
  //   thresholds high to low give (fp, tp) = (0,1) (1,1) (1,2) (2,2) (3,3) [the tie] (3,4) (4,4) … (10,4);
  //   drop_intermediate removes the collinear (4,4) … (9,4), so with the leading (0,0) the curve is
  //   FPR 0, 0, .1, .1, .2, .3, .3, 1 and TPR 0, .25, .25, .5, .5, .75, 1, 1;
  //   FAR 1e-6 … 1e-2: the nearest FPR is 0, of those points the last (TAR .25); FAR 0.1: FPR 0.1 exactly, TAR .5;
  //   AUC = P(genuine > impostor) + ½ P(tie) = (10 + 9 + 7.5 + 7) / 40 = 0.8375 (sklearn: 0.8374999999999999).
  const scores = path.join(dir, 'scores.txt'), labels = path.join(dir, 'labels.npy');
  fs.writeFileSync(scores, '0.45 -0.1\n0.9\n0.2 0.7 0.05\n0.6\n0.45 0.3 0\n0.8 0.15\n-0.2 0.1\n');
  writeNpy(labels, Float32Array.of(1, 0, 1, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0), [14]);
  const json = await evalCli('roc', '--scores', scores, '--labels', labels, '--json');
  assert.equal(json.status, 0, json.stderr);
  const out = JSON.parse(json.stdout);
  assert.deepEqual([out.pairs, out.positives], [14, 4]);
  assert.ok(Math.abs(out.auc - 33.5 / 40) < 1e-12, `AUC ${out.auc} vs 0.8375`);
  assert.deepEqual(out.tarAtFar, [
    ...[1e-6, 1e-5, 1e-4, 1e-3, 1e-2].map((far) => ({ far, tar: 0.25, fpr: 0 })),
    { far: 0.1, tar: 0.5, fpr: 0.1 },
  ]);
  // --out: the dashboard's file, the same figures and the hand-worked curve's 8 points
  const result = path.join(dir, 'eval-roc.json');
  assert.equal((await evalCli('roc', '--scores', scores, '--labels', labels, '--out', result)).status, 0);
  const written = JSON.parse(fs.readFileSync(result, 'utf8'));
  assert.equal(written.kind, 'roc');
  assert.ok(Math.abs(written.auc - 33.5 / 40) < 1e-12);
  assert.deepEqual(written.tarAtFar, { '0.000001': 0.25, '0.00001': 0.25, '0.0001': 0.25, '0.001': 0.25, '0.01': 0.25, '0.1': 0.5 });
  assert.deepEqual(written.roc.far, [0, 0, 0.1, 0.1, 0.2, 0.3, 0.3, 1]);
  assert.deepEqual(written.roc.tar, [0, 0.25, 0.25, 0.5, 0.5, 0.75, 1, 1]);
  assert.ok(!fs.readdirSync(dir).some((f) => f.startsWith('eval-roc.json.tmp-')), 'written through a temporary file');
  const table = await evalCli('roc', '--scores', scores, '--labels', labels);
  assert.equal(table.stdout, [
    '14 pairs; AUC 83.7500 %',
    'FAR                | 1e-06 | 1e-05 | 0.0001 | 0.001 |  0.01 |   0.1',
    'TAR (%) scores.txt | 25.00 | 25.00 |  25.00 | 25.00 | 25.00 | 50.00',
    '',
  ].join('\n'));
  fs.writeFileSync(scores, '0.9\n0.8\nhigh\n');
  assert.match((await evalCli('roc', '--scores', scores, '--labels', labels)).stderr, /scores\.txt:3: 'high' is not a number/);
  fs.writeFileSync(scores, '0.9\n0.8\n');
  assert.match((await evalCli('roc', '--scores', scores, '--labels', labels)).stderr, /scores\.txt has 2 scores, .*labels\.npy 14 labels/);
});

test('rocPoints: a long curve thinned to every k-th point, its first and last kept', () => {
  const n = 2502;  // stride ⌈2502 / 1000⌉ = 3: points 0, 3, …, 2499, then the last, 2501
  const curve = { fpr: Float64Array.from({ length: n }, (_, i) => i / (n - 1)), tpr: Float64Array.from({ length: n }, (_, i) => Math.sqrt(i / (n - 1))), thresholds: new Float64Array(n) };
  const { far, tar } = rocPoints(curve);
  const picked = [...Array.from({ length: 834 }, (_, k) => 3 * k), n - 1];
  assert.deepEqual(far, picked.map((i) => curve.fpr[i]));
  assert.deepEqual(tar, picked.map((i) => curve.tpr[i]));
  const short = rocPoints({ fpr: Float64Array.of(0, 0.5, 1), tpr: Float64Array.of(0, 0.9, 1), thresholds: new Float64Array(3) });
  assert.deepEqual(short, { far: [0, 0.5, 1], tar: [0, 0.9, 1] }, 'a short curve whole');
});

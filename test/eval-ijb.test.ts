/**
 * IJB-C 1:1 verification on a miniature pack built here: rendered faces pasted into larger images
 * at known offsets (some turned 90°), meta files in insightface's layout. The reference is
 * arcface_torch's eval_ijbc.py, as test/fixtures/make_ijb_fixture.py computes it with numpy and
 * sklearn (flip-sum, detector-score weighting, media then template pooling, normalisation, pair
 * cosines, sklearn's roc_curve, TAR at FAR 1e-6 … 1e-1):
 *
 *   - always: the pack's meta and raw embeddings of its 16 faces come from the committed fixture
 *     ijb_reference.json; `evaluateIjb` aligns the faces of the pack and hands them to an embedder
 *     that answers with the fixture's embedding of the face it recognises (an image that is not
 *     exactly one of the faces, or its mirror image, fails the test), and must give the fixture's
 *     scores, AUC and TAR@FAR in the four modes;
 *   - always: `arcface eval ijb` with a random MobileFaceNet passes --no-flip/--no-detector-score on
 *     and saves and reports what `evaluateIjb` gives for that model (the computation checked above);
 *   - with /usr/bin/python3 and sklearn (python3-sklearn), else a visible skip: that CLI run against
 *     the same script run live on the network's embeddings of the faces cropped by index.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import * as torch from '../src/torch/index.js';
import { getModel } from '../src/models/index.js';
import { decodeImage, encodeJpeg } from '../src/data/index.js';
import { native } from '../src/torch/native.js';
import { ARCFACE_TEMPLATE, evaluateIjb, loadBackbone, normaliseImages, readNpy, TorchEmbedder, writeNpy, type Embedder } from '../src/eval/index.js';
import { evalCommand } from '../src/cli/eval.js';
import { arcface } from './cli-in-process.js';
import { fixturePath } from './helpers.js';

interface TarRow {
  far: number;
  tar: number;
  fpr: number;
}
interface Case {
  flip: boolean;
  detector_score: boolean;
  scores: number[];
  auc: number;
  tar_at_far: TarRow[];
}
/** make_ijb_fixture.py's output: the pack's meta, raw embeddings (float32 values), eval_ijbc.py's results per mode */
const ref = JSON.parse(fs.readFileSync(fixturePath('ijb_reference.json'), 'utf8')) as {
  identities: number[];
  templates: number[];
  medias: number[];
  detector_scores: string[];
  pairs: [number, number, number][];
  plain: number[][];
  flipped: number[][];
  cases: Case[];
};
const fixtureScript = fixturePath('make_ijb_fixture.py');

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'ijb-'));
after(() => fs.rmSync(root, { recursive: true, force: true }));

// 16 images of 4 identities; the fixture gives each its identity, template (2 per identity) and media
const N = ref.identities.length;
const rotated = (i: number) => i % 2 === 1;
const offsets = Array.from({ length: N }, (_, i) => [5 + ((i * 7) % 23), 3 + ((i * 11) % 19)]);
const [W, H] = [150, 140];

/** Face pixel (u, v) sits at canvas (dx + u, dy + v), or turned 90°: at (dx + 111 − v, dy + u). */
const place = (i: number, u: number, v: number): [number, number] => {
  const [dx, dy] = offsets[i];
  return rotated(i) ? [dx + 111 - v, dy + u] : [dx + u, dy + v];
};

function buildPack(): void {
  fs.mkdirSync(path.join(root, 'loose_crop'));
  fs.mkdirSync(path.join(root, 'meta'));
  const faces = native.renderFaces({ seed: 3, identities: Float64Array.from(ref.identities), images: Float64Array.from({ length: N }, (_, i) => i % 4), quality: 95, threads: 2 });
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
    landmarkLines.push(`${i + 1}.jpg ${landmarks.map((l) => l.toFixed(6)).join(' ')} ${ref.detector_scores[i]}`);
  });
  fs.writeFileSync(path.join(root, 'meta', 'ijbc_name_5pts_score.txt'), `${landmarkLines.join('\n')}\n`);
  fs.writeFileSync(path.join(root, 'meta', 'ijbc_face_tid_mid.txt'), `${ref.templates.map((t, i) => `${i + 1}.jpg ${t} ${ref.medias[i]}`).join('\n')}\n`);
  fs.writeFileSync(path.join(root, 'meta', 'ijbc_template_pair_label.txt'), `${ref.pairs.map((p) => p.join(' ')).join('\n')}\n`);
}

/** The faces cut out of the pack's images by index (not by landmarks), N×3×112×112 uint8, in face-list order. */
function cropsByIndex(): torch.Tensor {
  const crops = new Uint8Array(N * 3 * 112 * 112);
  for (let i = 0; i < N; i++) {
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
  return torch.tensor(crops, { shape: [N, 3, 112, 112] });
}

/**
 * Stands in for a network: answers each image with the fixture's raw embedding of the face it is
 * (or of its mirror image), found by comparing pixels with the faces cropped by index. An image
 * that is not exactly one of them is an alignment error and fails the test.
 */
class FixtureEmbedder implements Embedder {
  /** the 2N normalised references: face i at 2i, its mirror image at 2i + 1 */
  private readonly references: Float32Array[] = [];
  readonly seen: string[] = [];

  constructor(crops: torch.Tensor) {
    torch.tidy(() => {
      const images = normaliseImages(crops);
      const mirrored = torch.flip(images, [3]);
      for (let i = 0; i < N; i++) this.references.push(images.select(0, i).data() as Float32Array, mirrored.select(0, i).data() as Float32Array);
    });
  }

  async embed(images: torch.Tensor): Promise<torch.Tensor> {
    const size = 3 * 112 * 112, dim = ref.plain[0].length;
    const data = images.contiguous().data() as Float32Array;
    const out = new Float32Array(images.shape[0] * dim);
    for (let j = 0; j < images.shape[0]; j++) {
      const image = data.subarray(j * size, (j + 1) * size);
      const diffs = this.references.map((r) => r.reduce((m, x, k) => Math.max(m, Math.abs(x - image[k])), 0));
      const best = diffs.indexOf(Math.min(...diffs));
      assert.equal(diffs[best], 0, `image ${j} of a batch of ${images.shape[0]} is no face of the pack: nearest face ${best >> 1}${best & 1 ? ' mirrored' : ''}, max |difference| ${diffs[best]}`);
      out.set((best & 1 ? ref.flipped : ref.plain)[best >> 1], j * dim);
      this.seen.push(`${best >> 1}${best & 1 ? 'm' : ''}`);
    }
    return torch.tensor(out, { shape: [images.shape[0], dim] });
  }

  async dispose(): Promise<void> {}
}

buildPack();
const crops = cropsByIndex();
after(() => crops.dispose());

// Tolerance of the scores against the fixture: both sides start from the same float32 embeddings
// and form the flip sum and the detector-score product in float32 (IEEE-rounded alike), then
// eval_ijbc.py takes media means and sums in float32 (np.mean, np.sum of float32 rows) where we
// sum in float64; normalisation and dot products are float64 on both sides. A few float32
// roundings (2⁻²⁴ ≈ 6e-8 relative each) of unit-scale template features: |Δ| < 1e-6 for a cosine.
// The fixture script checks that no two scores lie within 1e-4, so TAR@FAR must match exactly.
for (const c of ref.cases) {
  test(`evaluateIjb equals eval_ijbc.py (fixture from make_ijb_fixture.py): flip ${c.flip ? 'on' : 'off'}, detector score ${c.detector_score ? 'on' : 'off'}`, async () => {
    const embedder = new FixtureEmbedder(crops);
    const result = await evaluateIjb(embedder, { root, target: 'IJBC', flip: c.flip, detectorScore: c.detector_score, batchSize: 5 });
    // every face once, and its mirror image once with the flip test
    const faces = Array.from({ length: N }, (_, i) => String(i));
    assert.deepEqual(embedder.seen.sort(), [...faces, ...(c.flip ? faces.map((f) => `${f}m`) : [])].sort());
    assert.deepEqual([result.images, result.templates, result.pairs], [N, new Set(ref.templates).size, ref.pairs.length]);
    assert.deepEqual(Array.from(result.labels), ref.pairs.map((p) => p[2]));
    result.scores.forEach((s, p) => assert.ok(Math.abs(s - c.scores[p]) < 1e-6, `pair ${p} (${ref.pairs[p].join(' ')}): ${s} vs eval_ijbc.py ${c.scores[p]}`));
    assert.ok(Math.abs(result.auc - c.auc) < 1e-12, `AUC ${result.auc} vs sklearn ${c.auc}`);
    assert.deepEqual(result.tarAtFar, c.tar_at_far);
  });
}

const modelFile = path.join(root, 'model.pt');
torch.manualSeed(4);
{
  const model = getModel('mbf', { embeddingSize: 64 });
  torch.tidy(() => torch.save(model.stateDict(), modelFile));
  model.dispose();
}

/** `arcface eval ijb --json --save-scores` with the random MobileFaceNet, once per set of flags. */
const cliRuns = new Map<string, Promise<{ result: { [key: string]: unknown; tarAtFar: TarRow[]; auc: number }; scores: Float64Array; outFile: string }>>();
function cliRun(flags: string[]) {
  const key = flags.join(' ');
  if (!cliRuns.has(key)) {
    cliRuns.set(key, (async () => {
      const scoresFile = path.join(root, `scores${flags.join('')}.npy`);
      const outFile = path.join(root, `eval${flags.join('')}.json`);
      const run = await arcface(evalCommand, 'eval', ['ijb', '--model', modelFile, '--network', 'mbf', '--root', root, '--target', 'IJBC', '--batch-size', '5', '--save-scores', scoresFile, '--json', '--out', outFile, ...flags]);
      assert.equal(run.status, 0, run.stderr);
      return { result: JSON.parse(run.stdout), scores: readNpy(scoresFile).data, outFile };
    })());
  }
  return cliRuns.get(key)!;
}

test('arcface eval ijb --json --save-scores passes its flags on and reports what evaluateIjb gives (the computation checked above)', async () => {
  for (const [flags, flip, detectorScore] of [[[], true, true], [['--no-flip', '--no-detector-score'], false, false]] as const) {
    const { result, scores, outFile } = await cliRun([...flags]);
    assert.deepEqual([result.model, result.target, result.images, result.templates, result.pairs, result.flip, result.detectorScore], [`${modelFile} (mbf)`, 'IJBC', N, new Set(ref.templates).size, ref.pairs.length, flip, detectorScore]);
    assert.deepEqual(result.tarAtFar.map((r) => r.far), [1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1]);
    const embedder = new TorchEmbedder(loadBackbone(modelFile, 'mbf'));
    const library = await evaluateIjb(embedder, { root, target: 'IJBC', flip, detectorScore, batchSize: 5 }).finally(() => embedder.dispose());
    assert.deepEqual(Array.from(scores), Array.from(library.scores));
    assert.deepEqual([result.auc, result.tarAtFar], [library.auc, library.tarAtFar]);
    // --out, the dashboard's file: the same figures, and ROC points taken from the library's curve, its ends kept
    const saved = JSON.parse(fs.readFileSync(outFile, 'utf8'));
    assert.deepEqual([saved.kind, saved.model, saved.auc], ['ijb', `${modelFile} (mbf)`, library.auc]);
    assert.deepEqual(saved.tarAtFar, Object.fromEntries(library.tarAtFar.map((r) => [String(r.far), r.tar])));
    const curve = new Map(Array.from(library.roc.fpr, (far, i) => [`${far} ${library.roc.tpr[i]}`, i]));
    const at = saved.roc.far.map((far: number, i: number) => curve.get(`${far} ${saved.roc.tar[i]}`));
    assert.ok(at.every((i: number | undefined) => i !== undefined) && at.every((i: number, k: number) => k === 0 || i > at[k - 1]), 'points of the curve, in order');
    assert.deepEqual([at[0], at.at(-1)], [0, library.roc.fpr.length - 1]);
    assert.ok(saved.roc.far.length <= 1001);
  }
});

const pythonHasSklearn = spawnSync('/usr/bin/python3', ['-c', 'import numpy, sklearn.metrics, sklearn.preprocessing'], { stdio: 'ignore' }).status === 0;

test('arcface eval ijb with a random MobileFaceNet equals eval_ijbc.py run live (make_ijb_fixture.py --pack) on the embeddings of the faces cropped by index', { skip: pythonHasSklearn ? false : 'needs /usr/bin/python3 with numpy and sklearn (apt-get install python3-sklearn); the fixture tests above check the same computation without them' }, async () => {
  // the direct embeddings: the crops normalised as arcface_torch does, and mirrored, through the
  // network in the CLI's batches of 5 (the same inputs in the same batches give the same floats)
  const backbone = loadBackbone(modelFile, 'mbf').eval();
  const [plain, flipped] = torch.tidy(() => {
    const images = crops.float().div(255).sub(0.5).div(0.5);
    const forward = (x: torch.Tensor) => torch.cat(Array.from({ length: Math.ceil(N / 5) }, (_, b) => torch.noGrad(() => backbone.forward(x.narrow(0, 5 * b, Math.min(5, N - 5 * b))))));
    return [forward(images).data() as Float32Array, forward(torch.flip(images, [3])).data() as Float32Array];
  });
  backbone.dispose();
  const [plainFile, flippedFile] = [path.join(root, 'plain.npy'), path.join(root, 'flipped.npy')];
  writeNpy(plainFile, plain, [N, plain.length / N]);
  writeNpy(flippedFile, flipped, [N, flipped.length / N]);
  const py = spawnSync('/usr/bin/python3', [fixtureScript, '--pack', root, '--plain', plainFile, '--flipped', flippedFile], { encoding: 'utf8' });
  assert.equal(py.status, 0, py.stderr);
  const live = (JSON.parse(py.stdout) as { cases: Case[] }).cases;

  for (const [flags, flip, detectorScore] of [[[], true, true], [['--no-flip', '--no-detector-score'], false, false]] as const) {
    const expected = live.find((c) => c.flip === flip && c.detector_score === detectorScore)!;
    const { result, scores, outFile } = await cliRun([...flags]);
    // tolerance as for the fixture (bit-identical embeddings on both sides, float32 against float64
    // pooling); the random network's scores are not spaced by construction as the fixture's are, so
    // check that no two lie so close that the rounding could reorder them
    const sorted = [...expected.scores].sort((a, b) => a - b);
    const gap = Math.min(...sorted.slice(1).map((s, k) => s - sorted[k]));
    assert.ok(gap > 1e-5, `two pair scores lie ${gap} apart: TAR@FAR would hang on their rounding`);
    scores.forEach((s, p) => assert.ok(Math.abs(s - expected.scores[p]) < 1e-6, `${flags.join(' ') || 'default flags'}: pair ${p}: ${s} vs eval_ijbc.py ${expected.scores[p]}`));
    assert.ok(Math.abs(result.auc - expected.auc) < 1e-12, `AUC ${result.auc} vs sklearn ${expected.auc}`);
    assert.deepEqual(result.tarAtFar, expected.tar_at_far);
  }
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

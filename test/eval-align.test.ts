/**
 * Face alignment: Umeyama's similarity transform against the complex-number closed form of the
 * least-squares similarity, known transforms undone, and cv2.warpAffine's fixed-point bilinear
 * sampling on cases whose pixels are known exactly.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ARCFACE_TEMPLATE, alignmentMatrix, umeyama, warpAffine, type Affine } from '../src/eval/index.js';

type Point = [number, number];
const apply = (m: Affine, [x, y]: Point): Point => [m[0] * x + m[1] * y + m[2], m[3] * x + m[4] * y + m[5]];
const close = (a: number[], b: number[], tol: number) => a.every((v, i) => Math.abs(v - b[i]) <= tol);

/**
 * The least-squares similarity in complex numbers: with z = x + iy demeaned, dst ≈ c·src + t has
 * c = Σ conj(src)·dst / Σ |src|²  (no SVD involved).
 */
function closedForm(src: Point[], dst: Point[]): Affine {
  const n = src.length;
  const mean = (p: Point[]): Point => [p.reduce((s, q) => s + q[0], 0) / n, p.reduce((s, q) => s + q[1], 0) / n];
  const [ms, md] = [mean(src), mean(dst)];
  let re = 0, im = 0, norm = 0;
  for (let i = 0; i < n; i++) {
    const [ax, ay] = [src[i][0] - ms[0], src[i][1] - ms[1]];
    const [bx, by] = [dst[i][0] - md[0], dst[i][1] - md[1]];
    re += ax * bx + ay * by;
    im += ax * by - ay * bx;
    norm += ax * ax + ay * ay;
  }
  const [a, b] = [re / norm, im / norm];
  return [a, -b, md[0] - (a * ms[0] - b * ms[1]), b, a, md[1] - (b * ms[0] + a * ms[1])];
}

/** A similarity transform: scale, rotation (radians), translation. */
const similarity = (s: number, angle: number, tx: number, ty: number): Affine => [
  s * Math.cos(angle), -s * Math.sin(angle), tx, s * Math.sin(angle), s * Math.cos(angle), ty,
];

function lcg(seed: number) {
  let state = seed;
  return () => ((state = (state * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
}

test('landmarks already on the template give the identity', () => {
  const m = alignmentMatrix(ARCFACE_TEMPLATE.flat());
  assert.ok(close(m, [1, 0, 0, 0, 1, 0], 1e-12), m.join());
});

test('a known rotation, scale and translation is undone', () => {
  for (const [s, angle, tx, ty] of [[2.5, 0.4, 30, -12], [0.6, -1.2, 250.5, 80.25], [1.3, Math.PI * 0.9, -7, 41]]) {
    const forward = similarity(s, angle, tx, ty);
    const landmarks = ARCFACE_TEMPLATE.map((p) => apply(forward, p as Point));
    const m = alignmentMatrix(landmarks.flat());
    const inverse = similarity(1 / s, -angle, 0, 0);
    const [ix, iy] = apply(inverse, [-tx, -ty]);
    assert.ok(close(m, [inverse[0], inverse[1], ix, inverse[3], inverse[4], iy], 1e-9), `${m} for s=${s} angle=${angle}`);
    landmarks.forEach((p, i) => assert.ok(close(apply(m, p), ARCFACE_TEMPLATE[i] as Point, 1e-9)));
  }
});

test('Umeyama equals the closed-form least-squares similarity on noisy and on mirrored points', () => {
  const random = lcg(11);
  for (let trial = 0; trial < 50; trial++) {
    const forward = similarity(0.5 + 2 * random(), 6 * random(), 200 * random(), 200 * random());
    const src: Point[] = ARCFACE_TEMPLATE.map((p) => apply(forward, p as Point)).map(([x, y]) => [x + 8 * (random() - 0.5), y + 8 * (random() - 0.5)]);
    // every third trial mirrored: the best rotation still has det > 0 (d = (1, −1) in Umeyama)
    if (trial % 3 === 0) src.forEach((p) => (p[0] = -p[0]));
    const dst = ARCFACE_TEMPLATE.map((p) => [...p] as Point);
    const m = umeyama(src, dst), expected = closedForm(src, dst);
    assert.ok(close(m, expected, 1e-9), `trial ${trial}: ${m} vs ${expected}`);
    assert.ok(m[0] * m[4] - m[1] * m[3] > 0, 'a rotation, never a reflection');
  }
  assert.throws(() => umeyama([[1, 1], [1, 1]], [[0, 0], [1, 1]]), /all coincide/);
  assert.throws(() => alignmentMatrix([1, 2, 3]), /5 landmarks/);
});

/** A w×h RGB test image whose every byte differs: value = (7·x + 13·y + 50·c) mod 256. */
function testImage(w: number, h: number): Uint8Array {
  const out = new Uint8Array(w * h * 3);
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) for (let c = 0; c < 3; c++) out[(y * w + x) * 3 + c] = (7 * x + 13 * y + 50 * c) % 256;
  return out;
}
const pixel = (img: Uint8Array, w: number, h: number, x: number, y: number, c: number) =>
  x >= 0 && x < w && y >= 0 && y < h ? img[(y * w + x) * 3 + c] : 0;
/** The expected CHW output where output pixel (x, y) takes source value f(x, y, c). */
function expectedChw(w: number, h: number, f: (x: number, y: number, c: number) => number): Uint8Array {
  const out = new Uint8Array(3 * w * h);
  for (let c = 0; c < 3; c++) for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) out[c * w * h + y * w + x] = f(x, y, c);
  return out;
}

test('warpAffine: identity, integer shifts (black border), 90° rotation and 2× downscale move pixels exactly', () => {
  const [w, h] = [130, 120];
  const img = testImage(w, h);
  const at = (x: number, y: number, c: number) => pixel(img, w, h, x, y, c);
  assert.deepEqual(warpAffine(img, w, h, [1, 0, 0, 0, 1, 0]), expectedChw(112, 112, at));
  // m maps source to output: output (x, y) comes from source (x + 10, y − 5)
  assert.deepEqual(warpAffine(img, w, h, [1, 0, -10, 0, 1, 5]), expectedChw(112, 112, (x, y, c) => at(x + 10, y - 5, c)));
  // 90° about the origin, shifted back into view: output (x, y) from source (y, 111 − x)
  assert.deepEqual(warpAffine(img, w, h, [0, -1, 111, 1, 0, 0]), expectedChw(112, 112, (x, y, c) => at(y, 111 - x, c)));
  assert.deepEqual(warpAffine(img, w, h, [0.5, 0, 0, 0, 0.5, 0]), expectedChw(112, 112, (x, y, c) => at(2 * x, 2 * y, c)));
});

test('warpAffine: half-pixel shifts average neighbours with OpenCV rounding, zeros outside', () => {
  const [w, h] = [112, 112];
  const img = testImage(w, h);
  const at = (x: number, y: number, c: number) => pixel(img, w, h, x, y, c);
  // output (x, y) samples source (x + 0.5, y): weights 1/2, 1/2 → (a + b + 1) >> 1
  const half = warpAffine(img, w, h, [1, 0, -0.5, 0, 1, 0]);
  assert.deepEqual(half, expectedChw(w, h, (x, y, c) => (at(x, y, c) + at(x + 1, y, c) + 1) >> 1));
  // a quarter pixel in x and y: weights 9/16, 3/16, 3/16, 1/16 in units of 2⁻¹⁵, rounded
  const quarter = warpAffine(img, w, h, [1, 0, -0.25, 0, 1, -0.25]);
  const q = (x: number, y: number, c: number) => (18432 * at(x, y, c) + 6144 * at(x + 1, y, c) + 6144 * at(x, y + 1, c) + 2048 * at(x + 1, y + 1, c) + 16384) >> 15;
  assert.deepEqual(quarter, expectedChw(w, h, q));
  // everything far outside the source is black
  assert.ok(warpAffine(img, w, h, [1, 0, 500, 0, 1, 0]).every((v) => v === 0));
  assert.throws(() => warpAffine(img, w, h - 1, [1, 0, 0, 0, 1, 0]), /bytes for a 112×111 RGB image/);
});

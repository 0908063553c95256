// Native decoding and augmentation: PNG exactly as Pillow and a JS reader decode it, JPEG as
// Pillow's libjpeg within a tolerance, resizing as Pillow's BILINEAR, normalisation bit-exact to
// torchvision's ToTensor + Normalize(0.5, 0.5), flips exact, the DALI set checked transform by
// transform, and everything deterministic given (seed, epoch, key).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fixturePath } from './helpers.js';
import { readPngRgb } from './png-reader.js';
import { ImageDecoder, decodeImage, encodeJpeg, resizeImage, type DecodeOptions, type ImageSource } from '../src/data/index.js';
import { native } from '../src/torch/native.js';

const images = JSON.parse(readFileSync(fixturePath('data_images.json'), 'utf8'));
const b64 = (s: string) => new Uint8Array(Buffer.from(s, 'base64'));
const decoder = new ImageDecoder({ threads: 2 });
test.after(() => decoder.close());

/** Decodes through the batch path and returns the tensor's values (and the per-sample errors). */
async function batch(source: ImageSource, keys: number[], options: DecodeOptions & { epoch?: number }) {
  const result = await decoder.decode(source, keys, options);
  const data = result.images.data() as Float32Array | Uint8Array;
  const shape = result.images.shape;
  result.images.dispose();
  return { data, shape, errors: result.errors, resized: result.resized };
}

/** HWC pixels → CHW */
function chw(pixels: Uint8Array, width: number, height: number): Uint8Array {
  const out = new Uint8Array(pixels.length);
  for (let c = 0; c < 3; c++) for (let i = 0; i < width * height; i++) out[c * width * height + i] = pixels[i * 3 + c];
  return out;
}

const maxDiff = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  assert.equal(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
};

/** 64 × 48 test picture: smooth gradients, a grey patch, some noise */
function picture(): Uint8Array {
  const w = 64, h = 48;
  const p = new Uint8Array(w * h * 3);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const i = (y * w + x) * 3;
      const grey = x > 40 && y > 30;
      p[i] = grey ? 128 : (x * 4 + ((x * 7 + y * 13) % 17)) & 0xff;
      p[i + 1] = grey ? 128 : (y * 5 + ((x * 3) % 11)) & 0xff;
      p[i + 2] = grey ? 128 : (x * 2 + y * 2) & 0xff;
    }
  }
  return p;
}

test('PNG (RGB, grey, palette, RGBA) decodes to the pixels Pillow gives', () => {
  for (const name of ['rgb', 'gray', 'palette', 'rgba']) {
    const f = images[name];
    const decoded = decodeImage(readFileSync(fixturePath(f.file)));
    assert.equal(decoded.width, f.width);
    assert.equal(decoded.height, f.height);
    assert.deepEqual(new Uint8Array(decoded.pixels), b64(f.pixels), name);
  }
});

test('normalisation is bit-exact: (x/255 − 0.5)/0.5 in float32 of a JS-decoded PNG', async () => {
  const png = readFileSync(fixturePath('data_image_rgb.png'));
  const { width, height, pixels } = readPngRgb(png);
  const { data, shape } = await batch({ encoded: [png] }, [0], { width, height });
  assert.deepEqual(shape, [1, 3, height, width]);
  const f = Math.fround;
  const expected = Float32Array.from(chw(pixels, width, height), (x) => f(f(f(x / 255) - 0.5) / 0.5));
  assert.deepEqual(data, expected);
  const raw = await batch({ encoded: [png] }, [0], { width, height, dtype: 'uint8' });
  assert.deepEqual(raw.data, chw(pixels, width, height));
});

test('JPEG decodes as Pillow (libjpeg) decodes it, within ±1', () => {
  const f = images.jpeg;
  const decoded = decodeImage(readFileSync(fixturePath(f.file)));
  assert.ok(maxDiff(decoded.pixels, b64(f.pixels)) <= 1);
});

test('resizing follows Pillow BILINEAR (antialiased when shrinking) within ±1', () => {
  for (const r of images.resize) {
    const out = resizeImage(b64(r.pixels), r.width, r.height, r.outWidth, r.outHeight);
    assert.ok(maxDiff(out, b64(r.expected)) <= 1, `${r.width}×${r.height} → ${r.outWidth}×${r.outHeight}`);
  }
});

test('images of another size are resized (counted) or refused with a clear message', async () => {
  const pixels = picture();
  const jpeg = encodeJpeg(pixels, 64, 48, 95);
  const resized = await batch({ encoded: [jpeg] }, [0], { dtype: 'uint8' });
  assert.equal(resized.resized, 1);
  const d = decodeImage(jpeg);
  assert.deepEqual(resized.data, chw(resizeImage(d.pixels, 64, 48, 112, 112), 112, 112));
  const refused = await batch({ encoded: [jpeg] }, [0], { resize: false });
  assert.equal(refused.errors[0], 'image is 64×48, expected 112×112 (resizing is off)');
});

test('undecodable images give a message per sample and a zero slot, never a crash', async () => {
  const good = encodeJpeg(picture(), 64, 48, 90);
  const { data, errors } = await batch({ encoded: [Buffer.from('GIF89a...'), good.subarray(0, 300), new Uint8Array(0), good] }, [0, 1, 2, 3], { width: 64, height: 48 });
  assert.equal(errors[0], 'not a JPEG or PNG image (unrecognised signature)');
  assert.match(errors[1] ?? '', /JPEG/);
  assert.equal(errors[2], 'empty image data');
  assert.equal(errors[3], null);
  assert.ok(data.subarray(0, 3 * 64 * 48).every((v) => v === 0));
  assert.throws(() => decodeImage(Buffer.from('nope')), /not a JPEG or PNG image/);
});

test('horizontal flip mirrors each row exactly', async () => {
  const pixels = picture();
  const source = { rgb: { buffers: [pixels], width: 64, height: 48 } };
  const plain = await batch(source, [0], { width: 64, height: 48, augment: { flip: 0 } });
  const flipped = await batch(source, [0], { width: 64, height: 48, augment: { flip: 1 } });
  for (let c = 0; c < 3; c++) {
    for (let y = 0; y < 48; y++) {
      for (let x = 0; x < 64; x++) assert.equal(flipped.data[(c * 48 + y) * 64 + x], plain.data[(c * 48 + y) * 64 + 63 - x]);
    }
  }
});

test('augmentation is deterministic given (seed, epoch, key), whatever the threads', async () => {
  const faces = native.renderFaces({ seed: 9, identities: Float64Array.from([0, 1, 2, 3, 4, 5, 6, 7]), images: new Float64Array(8), quality: 90, threads: 2 });
  const keys = [10, 11, 12, 13, 14, 15, 16, 17];
  const options = { seed: 7, augment: { flip: 0.5, dali: { resize: 0.5, blur: 0.5, hsv: 0.5, gray: 0.5 } } };
  const a = await batch({ encoded: faces }, keys, { ...options, epoch: 3 });
  const one = new ImageDecoder({ threads: 1 });
  const b = await one.decode({ encoded: faces }, keys, { ...options, epoch: 3 });
  one.close();
  assert.deepEqual(a.data, b.images.data());
  b.images.dispose();
  const other = await batch({ encoded: faces }, keys, { ...options, epoch: 4 });
  assert.notDeepEqual(a.data, other.data);
  // a sample's augmentation depends on its key, not on its position in the batch
  const reversed = await batch({ encoded: [...faces].reverse() }, [...keys].reverse(), { ...options, epoch: 3 });
  const slot = 3 * 112 * 112;
  assert.deepEqual(reversed.data.subarray(7 * slot, 8 * slot), a.data.subarray(0, slot));
});

/** The DALI set with one transform forced on and the others off. */
const only = (name: 'resize' | 'blur' | 'hsv' | 'gray') => ({ flip: 0, dali: { resize: 0, blur: 0, hsv: 0, gray: 0, [name]: 1 } });

test('DALI set, transform by transform: grey, HSV on grey pixels, blur, resize, all off', async () => {
  const pixels = picture();
  const source = { rgb: { buffers: [pixels], width: 64, height: 48 } };
  const opts = (augment: DecodeOptions['augment']) => ({ width: 64, height: 48, dtype: 'uint8' as const, augment });
  const plane = 64 * 48;
  const plain = (await batch(source, [0], opts({ flip: 0 }))).data;

  const off = await batch(source, [0], opts({ flip: 0, dali: { resize: 0, blur: 0, hsv: 0, gray: 0 } }));
  assert.deepEqual(off.data, plain);

  // greyscale: the luma .299 R + .587 G + .114 B in every channel
  const grey = (await batch(source, [0], opts(only('gray')))).data;
  for (let i = 0; i < plane; i++) {
    const luma = 0.299 * pixels[i * 3] + 0.587 * pixels[i * 3 + 1] + 0.114 * pixels[i * 3 + 2];
    for (let c = 0; c < 3; c++) assert.ok(Math.abs(grey[c * plane + i] - luma) <= 0.5 + 1e-9);
  }

  // HSV jitter rotates and scales chroma only: grey pixels stay grey, colours change
  const hsv = (await batch(source, [5], opts(only('hsv')))).data;
  const at = (data: ArrayLike<number>, x: number, y: number, c: number) => data[c * plane + y * 64 + x];
  for (const [x, y] of [[50, 40], [60, 46]]) for (let c = 0; c < 3; c++) assert.ok(Math.abs(at(hsv, x, y, c) - 128) <= 1);
  assert.ok(maxDiff(hsv, plain) > 0);

  // blur: a Gaussian of window 3 (sigma 0.8) or 5 (sigma 1.1), edges mirrored (reflect-101)
  const blurred = (await batch(source, [0], opts(only('blur')))).data;
  const candidates = [1, 2].map((radius) => gaussianBlur(plain, 64, 48, radius));
  assert.ok(candidates.some((ref) => maxDiff(ref, blurred) <= 1), 'matches one of the two DALI windows');

  // downscale-upscale: softer, close to the original
  const rescaled = (await batch(source, [0], opts(only('resize')))).data;
  assert.ok(maxDiff(rescaled, plain) > 0);
  assert.ok(energy(rescaled, 64, 48) < energy(plain, 64, 48));
});

/** Reference blur: separable Gaussian, sigma = (radius − 1)·0.3 + 0.8, reflect-101 borders. */
function gaussianBlur(chwPixels: ArrayLike<number>, w: number, h: number, radius: number): Float64Array {
  const sigma = (radius - 1) * 0.3 + 0.8;
  const k = Array.from({ length: 2 * radius + 1 }, (_, i) => Math.exp(-0.5 * ((i - radius) / sigma) ** 2));
  const sum = k.reduce((a, b) => a + b);
  const weights = k.map((v) => v / sum);
  const reflect = (i: number, n: number) => (i < 0 ? -i : i >= n ? 2 * (n - 1) - i : i);
  const out = new Float64Array(chwPixels.length);
  for (let c = 0; c < 3; c++) {
    const tmp = new Float64Array(w * h);
    for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) tmp[y * w + x] = weights.reduce((s, wt, i) => s + wt * chwPixels[c * w * h + y * w + reflect(x + i - radius, w)], 0);
    for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) out[c * w * h + y * w + x] = Math.round(weights.reduce((s, wt, i) => s + wt * tmp[reflect(y + i - radius, h) * w + x], 0));
  }
  return out;
}

/** Sum of squared horizontal differences: high-frequency content. */
function energy(chwPixels: ArrayLike<number>, w: number, h: number): number {
  let e = 0;
  for (let i = 0; i < 3 * w * h; i++) if (i % w !== w - 1) e += (chwPixels[i + 1] - chwPixels[i]) ** 2;
  return e;
}

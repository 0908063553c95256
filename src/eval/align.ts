/**
 * Face alignment as arcface_torch's eval_ijbc.py does it: the similarity transform (rotation,
 * uniform scale, translation) that maps the five detected landmarks onto the ArcFace 112×112
 * template in the least-squares sense (skimage's SimilarityTransform.estimate, i.e. Umeyama's
 * method), then cv2.warpAffine with bilinear interpolation and a black (0) border.
 */

/** A 2×3 affine matrix [a, b, c, d, e, f]: x' = a·x + b·y + c, y' = d·x + e·y + f. */
export type Affine = [number, number, number, number, number, number];

/**
 * ArcFace's five-point template (left eye, right eye, nose tip, left and right mouth corner) for
 * 112×112 crops: insightface's 96×112 points shifted 8 px right. eval_ijbc.py keeps it in float32,
 * so the values are rounded to float32 here too.
 */
export const ARCFACE_TEMPLATE: readonly [number, number][] = (
  [
    [30.2946, 51.6963],
    [65.5318, 51.5014],
    [48.0252, 71.7366],
    [33.5493, 92.3655],
    [62.7299, 92.2041],
  ] as const
).map(([x, y]) => [Math.fround(Math.fround(x) + 8), Math.fround(y)]);

/**
 * Umeyama (1991) for 2-D points with scale (skimage.transform._umeyama(src, dst, True)): the
 * rotation from the SVD of the cross-covariance, a reflection undone by d = (1, ±1), and
 * scale = trace(S·D) / var(src). Returns the matrix mapping `src` onto `dst`.
 */
export function umeyama(src: readonly (readonly [number, number])[], dst: readonly (readonly [number, number])[]): Affine {
  const n = src.length;
  if (n !== dst.length || n < 2) throw new Error(`umeyama: needs two equal-length point sets of at least 2 points (${n}, ${dst.length})`);
  const mean = (p: readonly (readonly [number, number])[], k: 0 | 1) => p.reduce((s, q) => s + q[k], 0) / n;
  const [sx, sy, dx, dy] = [mean(src, 0), mean(src, 1), mean(dst, 0), mean(dst, 1)];
  // A = dst_demeanᵀ · src_demean / n, and the variance of src summed over x and y
  let a = 0, b = 0, c = 0, d = 0, variance = 0;
  for (let i = 0; i < n; i++) {
    const [px, py] = [src[i][0] - sx, src[i][1] - sy];
    const [qx, qy] = [dst[i][0] - dx, dst[i][1] - dy];
    a += qx * px; b += qx * py; c += qy * px; d += qy * py;
    variance += px * px + py * py;
  }
  [a, b, c, d, variance] = [a / n, b / n, c / n, d / n, variance / n];
  if (variance === 0) throw new Error('umeyama: the source points all coincide');

  // 2×2 SVD in closed form: A = R(φ)·diag(σ1, σ2)·R(θ) with σ1 ≥ |σ2| (σ2 < 0 when det A < 0).
  const e = (a + d) / 2, f = (a - d) / 2, g = (c + b) / 2, h = (c - b) / 2;
  const q = Math.hypot(e, h), r = Math.hypot(f, g);
  const [s1, s2] = [q + r, q - r];
  const phi = (Math.atan2(h, e) + Math.atan2(g, f)) / 2, theta = (Math.atan2(h, e) - Math.atan2(g, f)) / 2;
  // U = R(φ), S = diag(σ1, |σ2|), V = diag(1, sign σ2)·R(θ); with d = (1, sign det A) the rotation
  // U·diag(d)·V is R(φ + θ) in every case (rank 1 included), and trace(S·diag(d)) = σ1 + σ2.
  const rotation = phi + theta;
  const scale = (s1 + s2) / variance;
  const [cos, sin] = [Math.cos(rotation) * scale, Math.sin(rotation) * scale];
  return [cos, -sin, dx - (cos * sx - sin * sy), sin, cos, dy - (sin * sx + cos * sy)];
}

/** Similarity transform taking five landmarks (x, y pairs) onto the ArcFace template. */
export function alignmentMatrix(landmarks: ArrayLike<number>): Affine {
  if (landmarks.length !== 10) throw new Error(`alignment needs 5 landmarks (10 numbers), got ${landmarks.length} numbers`);
  const points = ARCFACE_TEMPLATE.map((_, i) => [landmarks[2 * i], landmarks[2 * i + 1]] as [number, number]);
  return umeyama(points, ARCFACE_TEMPLATE);
}

/** cvRound: round half to even, as the SSE conversion OpenCV uses. */
function cvRound(v: number): number {
  const floor = Math.floor(v), frac = v - floor;
  return frac > 0.5 || (frac === 0.5 && floor % 2 !== 0) ? floor + 1 : floor;
}

const INTER_BITS = 5, INTER_TAB_SIZE = 1 << INTER_BITS, AB_BITS = 10, AB_SCALE = 1 << AB_BITS;

/**
 * cv2.warpAffine(image, m, (width, height)) with INTER_LINEAR and BORDER_CONSTANT 0, in OpenCV's
 * fixed point (so the pixels equal OpenCV's): each output pixel centre (x, y) maps back through
 * m⁻¹, the source position is rounded to 1/32 pixel, the four neighbours (0 outside the image) are
 * weighted in units of 1/32768 and the sum rounded. `pixels`: height × width × 3 RGB (HWC);
 * returns the warped image as 3 × outHeight × outWidth (CHW), ready to be a network input.
 */
export function warpAffine(pixels: Uint8Array, width: number, height: number, m: Affine, outWidth = 112, outHeight = 112): Uint8Array {
  if (pixels.length !== width * height * 3) throw new Error(`warpAffine: ${pixels.length} bytes for a ${width}×${height} RGB image`);
  // m⁻¹ as cv::warpAffine computes it
  let det = m[0] * m[4] - m[1] * m[3];
  det = det !== 0 ? 1 / det : 0;
  const i0 = m[4] * det, i1 = -m[1] * det, i3 = -m[3] * det, i4 = m[0] * det;
  const i2 = -i0 * m[2] - i1 * m[5], i5 = -i3 * m[2] - i4 * m[5];

  const out = new Uint8Array(3 * outWidth * outHeight);
  const plane = outWidth * outHeight;
  const at = (sx: number, sy: number, c: number) => (sx >= 0 && sx < width && sy >= 0 && sy < height ? pixels[(sy * width + sx) * 3 + c] : 0);
  const roundDelta = AB_SCALE / INTER_TAB_SIZE / 2;
  for (let y = 0; y < outHeight; y++) {
    const x0 = cvRound((i1 * y + i2) * AB_SCALE) + roundDelta;
    const y0 = cvRound((i4 * y + i5) * AB_SCALE) + roundDelta;
    for (let x = 0; x < outWidth; x++) {
      const X = (x0 + cvRound(i0 * x * AB_SCALE)) >> (AB_BITS - INTER_BITS);
      const Y = (y0 + cvRound(i3 * x * AB_SCALE)) >> (AB_BITS - INTER_BITS);
      const sx = X >> INTER_BITS, sy = Y >> INTER_BITS;
      const fx = X & (INTER_TAB_SIZE - 1), fy = Y & (INTER_TAB_SIZE - 1);
      // bilinear weights (1 − u)(1 − v), u(1 − v), (1 − u)v, uv in units of 2⁻¹⁵; they sum to 2¹⁵
      const w00 = (INTER_TAB_SIZE - fy) * (INTER_TAB_SIZE - fx) * 32, w01 = (INTER_TAB_SIZE - fy) * fx * 32;
      const w10 = fy * (INTER_TAB_SIZE - fx) * 32, w11 = fy * fx * 32;
      for (let c = 0; c < 3; c++) {
        const sum = w00 * at(sx, sy, c) + w01 * at(sx + 1, sy, c) + w10 * at(sx, sy + 1, c) + w11 * at(sx + 1, sy + 1, c);
        out[c * plane + y * outWidth + x] = (sum + (1 << 14)) >> 15;
      }
    }
  }
  return out;
}

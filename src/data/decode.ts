/**
 * Batch decoding off the JS thread: native worker threads read the images (straight from a .rec
 * file, from image files, or from bytes in memory), decode JPEG/PNG, resize what is not
 * width × height, apply the training augmentations and write an N × 3 × H × W tensor, normalised
 * as arcface_torch's `(x/255 − 0.5)/0.5` (float32) or raw (uint8). A sample that fails leaves a
 * zero slot and an error message; the caller decides what to do with it (see loader.ts).
 */
import { native, type DecodeJobSpec, type ImageDecoderHandle } from '../torch/native.js';
import { keep } from '../torch/scope.js';
import type { Tensor } from '../torch/tensor.js';
// loading tensor.ts registers the class the addon wraps its results in
import '../torch/tensor.js';

export interface AugmentOptions {
  /** probability of a horizontal flip (arcface_torch: 0.5; 0 for evaluation) */
  flip?: number;
  /**
   * arcface_torch's `dali_aug` set, in its order: downscale-upscale to 50–80 % (p 0.1), Gaussian
   * blur with a 3- or 5-pixel window (p 0.2), hue +0–20° and saturation ×1–1.2 (p 0.2), greyscale
   * (p 0.1). `true` uses those probabilities; an object overrides some.
   */
  dali?: boolean | { resize?: number; blur?: number; hsv?: number; gray?: number };
}

export interface DecodeOptions {
  /** output size (default 112 × 112) */
  width?: number;
  height?: number;
  /** resize images of another size (default true); false makes them errors */
  resize?: boolean;
  /** float32 normalised (default) or the raw uint8 pixels */
  dtype?: 'float32' | 'uint8';
  /** page-locked output for fast copies to a GPU (ignored without CUDA) */
  pinMemory?: boolean;
  /** image files larger than this are per-sample errors, refused before they are read (default 64 MiB) */
  maxImageBytes?: number;
  augment?: AugmentOptions;
  /** the augmentation seed; each sample's stream is a function of (seed, epoch, key) */
  seed?: number;
}

/** Where a batch's images come from (exactly one). */
export type ImageSource =
  | { rec: { path: string; offsets: Float64Array } }
  | { files: string[] }
  | { encoded: Uint8Array[] }
  | { rgb: { buffers: Uint8Array[]; width: number; height: number } };

export interface DecodedBatch {
  /** N × 3 × H × W; owned by the caller (dispose it) */
  images: Tensor;
  /** the IRHeader labels, for `rec` sources */
  labels?: Float64Array;
  /** per sample: why it could not be decoded (its slot is zero), or null */
  errors: (string | null)[];
  /** width, height of each image as stored (before resizing; 0, 0 where it failed) */
  sizes: Int32Array;
  /** how many images were resized to width × height */
  resized: number;
}

/** The default cap on an image file's size: a face crop is kilobytes; a huge file is a mistake, not a sample. */
export const DEFAULT_MAX_IMAGE_BYTES = 64 * 1024 * 1024;

/** Keys pick each sample's augmentation stream: the same key, seed and epoch give the same result. */
export class ImageDecoder {
  private handle: ImageDecoderHandle | undefined;

  constructor(options: { threads?: number } = {}) {
    this.handle = new native.ImageDecoder({ threads: options.threads ?? 2 });
  }

  get threads(): number {
    return this.handle?.threads ?? 0;
  }

  async decode(source: ImageSource, keys: ArrayLike<number>, options: DecodeOptions & { epoch?: number } = {}): Promise<DecodedBatch> {
    if (!this.handle) throw new Error('ImageDecoder is closed');
    const dali = options.augment?.dali;
    const probabilities = typeof dali === 'object' ? dali : {};
    const job: DecodeJobSpec = {
      ...source,
      keys: Float64Array.from(keys),
      seed: options.seed ?? 0,
      epoch: options.epoch ?? 0,
      width: options.width ?? 112,
      height: options.height ?? 112,
      resize: options.resize ?? true,
      dtype: options.dtype ?? 'float32',
      pinMemory: options.pinMemory ?? false,
      maxImageBytes: options.maxImageBytes ?? DEFAULT_MAX_IMAGE_BYTES,
      flip: options.augment?.flip ?? 0,
      dali: Boolean(dali),
      resizeProb: probabilities.resize,
      blurProb: probabilities.blur,
      hsvProb: probabilities.hsv,
      grayProb: probabilities.gray,
    };
    const result = await this.handle.decode(job);
    // the tensor was made while the event loop ran a native callback: take it out of any scope
    // that happened to be open, the caller owns it
    return { ...result, images: keep(result.images as Tensor) };
  }

  /** Frees the threads once the batches already submitted are done. */
  close(): void {
    this.handle?.close();
    this.handle = undefined;
  }
}

/** Decodes one JPEG or PNG to RGB pixels (height × width × 3), on this thread. */
export function decodeImage(bytes: Uint8Array): { width: number; height: number; pixels: Uint8Array } {
  return native.decodeImage(bytes);
}

/** Encodes RGB pixels (height × width × 3) as a baseline 4:2:0 JPEG. */
export function encodeJpeg(pixels: Uint8Array, width: number, height: number, quality = 95): Uint8Array {
  return native.encodeJpeg(pixels, width, height, quality);
}

/** Antialiased linear resampling of RGB pixels (as PIL's BILINEAR). */
export function resizeImage(pixels: Uint8Array, width: number, height: number, outWidth: number, outHeight: number): Uint8Array {
  return native.resizeImage(pixels, width, height, outWidth, outHeight);
}

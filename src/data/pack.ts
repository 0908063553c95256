/**
 * Writing and checking insightface packs (`train.rec`, `train.idx`, `property`) in face2rec2's
 * layout: images are records 1 … N (IRHeader label = class, id = key), then record 0 with labels
 * [N + 1, N + 1 + C) and one record per identity with labels [first image, end) — what
 * MXFaceDataset and the DALI reader expect.
 */
import { mkdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { DEFAULT_MAX_IMAGE_BYTES, ImageDecoder } from './decode.js';
import { DataError } from './errors.js';
import { ImageFolder } from './image-folder.js';
import { packIR } from './ir-header.js';
import { MXFaceDataset } from './mx-face-dataset.js';
import { writeProperty } from './property.js';
import { IndexedRecordIOWriter } from './recordio.js';

/** float32 labels in the header records stay exact below this */
const FLOAT32_EXACT = 2 ** 24;

export class PackWriter {
  private readonly writer: IndexedRecordIOWriter;
  private readonly ranges: Array<[number, number]> = [];
  private key = 1;

  constructor(readonly dir: string, readonly imageSize: [number, number] = [112, 112]) {
    mkdirSync(dir, { recursive: true });
    this.writer = new IndexedRecordIOWriter(path.join(dir, 'train.idx'), path.join(dir, 'train.rec'));
  }

  /** Appends an image; identities come one after another, labelled 0, 1, 2, … */
  add(label: number, image: Uint8Array): void {
    const current = this.ranges.length - 1;
    if (label !== current) {
      if (label !== current + 1) {
        throw new Error(`pack: images must come grouped by identity, labelled 0, 1, 2, …: got label ${label} after ${current}`);
      }
      this.ranges.push([this.key, this.key]);
    }
    this.writer.write(this.key, packIR({ label, id: this.key }, image));
    this.ranges[label][1] = ++this.key;
  }

  get images(): number {
    return this.key - 1;
  }

  get identities(): number {
    return this.ranges.length;
  }

  /** Writes the header and identity records (when their float32 labels are exact) and `property`. */
  close(): void {
    const end = this.key + this.ranges.length;
    if (end < FLOAT32_EXACT) {
      this.writer.write(0, packIR({ label: [this.key, end], id: 0 }, new Uint8Array(0)));
      for (const [i, range] of this.ranges.entries()) this.writer.write(this.key + i, packIR({ label: range, id: this.key + i }, new Uint8Array(0)));
    }
    this.writer.close();
    writeProperty(this.dir, { numClasses: this.ranges.length, height: this.imageSize[0], width: this.imageSize[1] });
  }
}

/** JPEG or PNG by signature: the formats the decoder reads. */
export function imageFormat(bytes: Uint8Array): 'jpeg' | 'png' | undefined {
  if (bytes[0] === 0xff && bytes[1] === 0xd8 && bytes[2] === 0xff) return 'jpeg';
  if (bytes[0] === 0x89 && bytes[1] === 0x50 && bytes[2] === 0x4e && bytes[3] === 0x47) return 'png';
  return undefined;
}

/** `arcface pack --src <folder-per-identity> --out <dir>`: the encoded files, stored as they are. */
export function packFolder(src: string, out: string, onProgress?: (done: number, total: number) => void): { images: number; identities: number } {
  const folder = new ImageFolder(src);
  const pack = new PackWriter(out);
  for (const [i, [file, label]] of folder.samples.entries()) {
    const size = statSync(file).size;
    if (size > DEFAULT_MAX_IMAGE_BYTES) throw new DataError(file, undefined, `image file of ${size} bytes is over the cap of ${DEFAULT_MAX_IMAGE_BYTES} bytes`);
    const bytes = readFileSync(file);
    if (!imageFormat(bytes)) throw new DataError(file, undefined, 'not a JPEG or PNG file (the formats the loader decodes)');
    pack.add(label, bytes);
    onProgress?.(i + 1, folder.length);
  }
  pack.close();
  return { images: pack.images, identities: pack.identities };
}

export interface PackReport {
  images: number;
  identities: number;
  numClasses: number | undefined;
  layout: 'header' | 'flat';
  /** image sizes seen, e.g. {'112x112': 5179510} */
  sizes: Record<string, number>;
  /** one message per bad record (decode errors, labels out of range, identity ranges that disagree) */
  problems: string[];
}

/** a corrupt pack could have millions of problems: the first ones are kept, the rest counted */
const MAX_PROBLEMS = 10_000;

/**
 * `arcface pack --check <dir>`: reads every record, decodes every image (on `threads` threads) and
 * checks labels against numClasses and the identity records.
 */
export async function checkPack(dir: string, options: { threads?: number; onProgress?: (done: number, total: number) => void } = {}): Promise<PackReport> {
  const dataset = new MXFaceDataset(dir);
  const decoder = new ImageDecoder({ threads: options.threads ?? 2 });
  const problems: string[] = [];
  let uncounted = 0;
  const problem = (key: number | undefined, reason: string) => {
    if (problems.length < MAX_PROBLEMS) problems.push(new DataError('train.rec', key, reason).message);
    else uncounted++;
  };
  const sizes: Record<string, number> = {};
  const labels = new Float64Array(dataset.length).fill(NaN);
  try {
    const batch = 256;
    for (let start = 0; start < dataset.length; start += batch) {
      const indices = Array.from({ length: Math.min(batch, dataset.length - start) }, (_, i) => start + i);
      const decoded = await decoder.decode(dataset.source(indices).source, indices, { resize: true, dtype: 'uint8' });
      decoded.images.dispose();
      indices.forEach((index, i) => {
        const key = dataset.imgidx[index];
        const error = decoded.errors[i];
        if (error !== null) return problem(key, error);
        const label = (labels[index] = decoded.labels![i]);
        if (!Number.isInteger(label) || label < 0 || (dataset.numClasses !== undefined && label >= dataset.numClasses)) {
          problem(key, `label ${label} is outside [0, ${dataset.numClasses ?? '∞'})`);
        }
        const size = `${decoded.sizes[2 * i]}x${decoded.sizes[2 * i + 1]}`;
        sizes[size] = (sizes[size] ?? 0) + 1;
      });
      options.onProgress?.(start + indices.length, dataset.length);
    }
    let ranges: Array<[number, number]> = [];
    try {
      ranges = dataset.identityRanges();
    } catch (error) {
      problem(undefined, (error as Error).message.replace(/^train\.rec: /, ''));
    }
    // in the header layout, images are records 1 … N: sample key − 1
    ranges.forEach(([a, b], identity) => {
      for (let key = a; key < b; key++) {
        const label = labels[key - 1];
        if (label !== identity && !Number.isNaN(label)) problem(key, `label ${label}, but identity record ${dataset.header0![0] + identity} lists it under identity ${identity}`);
      }
    });
    if (uncounted > 0) problems.push(`… and ${uncounted} more problems`);
    const identities = dataset.header0 ? ranges.length : new Set(labels.filter((l) => !Number.isNaN(l))).size;
    return { images: dataset.length, identities, numClasses: dataset.numClasses, layout: dataset.header0 ? 'header' : 'flat', sizes, problems };
  } finally {
    decoder.close();
    dataset.close();
  }
}

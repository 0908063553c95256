/**
 * arcface_torch's MXFaceDataset: an insightface pack (`train.rec`, `train.idx`, `property`).
 *
 * Two layouts exist. face2rec2-style packs (MS1M, …) start with record 0 whose IRHeader labels are
 * [a, b): the images are records 1 … a−1, and records a … b−1 describe one identity each (their
 * labels: the identity's [first, end) image records). rec_builder-style packs (Glint360K,
 * WebFace) have no such header: every indexed record is an image. An image's class is its IRHeader
 * label (or the first of its labels).
 */
import path from 'node:path';
import { DataError } from './errors.js';
import type { FaceDataset } from './dataset.js';
import type { ImageSource } from './decode.js';
import { imageLabel, unpackIR } from './ir-header.js';
import { readProperty, type PackProperty } from './property.js';
import { IndexedRecordIO } from './recordio.js';

export class MXFaceDataset implements FaceDataset {
  readonly recPath: string;
  readonly idxPath: string;
  readonly record: IndexedRecordIO;
  /** record keys of the images, in sample order */
  readonly imgidx: Float64Array;
  /** byte offsets of those records */
  readonly imageOffsets: Float64Array;
  /** record 0's [first identity record, end of identity records), when the pack has it */
  readonly header0: [number, number] | undefined;
  readonly property: PackProperty | undefined;
  readonly numClasses: number | undefined;

  constructor(readonly root: string) {
    this.recPath = path.join(root, 'train.rec');
    this.idxPath = path.join(root, 'train.idx');
    this.property = readProperty(root);
    this.record = new IndexedRecordIO(this.idxPath, this.recPath);
    try {
      const first = this.record.has(0) ? unpackIR(this.record.read(0), 'train.rec', 0).header : undefined;
      if (first && first.flag > 0 && typeof first.label !== 'number' && first.label.length >= 2) {
        const [a, b] = [first.label[0], first.label[1]];
        if (!(Number.isInteger(a) && Number.isInteger(b) && a >= 1 && b >= a)) {
          throw new DataError('train.rec', 0, `header record's range [${a}, ${b}) is not a range of record keys`);
        }
        this.header0 = [a, b];
        this.imgidx = Float64Array.from({ length: a - 1 }, (_, i) => i + 1);
      } else {
        this.imgidx = Float64Array.from(this.record.keys);
      }
      this.imageOffsets = this.imgidx.map((key) => {
        if (!this.record.has(key)) throw new DataError('train.idx', key, 'image record named by the header is missing from the index');
        return this.record.offset(key);
      });
      this.numClasses = this.property?.numClasses ?? (this.header0 ? this.header0[1] - this.header0[0] : undefined);
    } catch (error) {
      this.record.close();
      throw error;
    }
  }

  get length(): number {
    return this.imgidx.length;
  }

  source(indices: ArrayLike<number>): { source: ImageSource } {
    const offsets = Float64Array.from(indices, (i) => this.imageOffsets[i]);
    return { source: { rec: { path: this.recPath, offsets } } };
  }

  describe(index: number): { file: string; record: number } {
    return { file: 'train.rec', record: this.imgidx[index] };
  }

  /** Sample i read on this thread: its label and encoded image (as `__getitem__` before decoding). */
  read(index: number): { label: number; image: Uint8Array } {
    const key = this.imgidx[index];
    const { header, image } = unpackIR(this.record.read(key), 'train.rec', key);
    return { label: imageLabel(header), image };
  }

  /** [first, end) image records of each identity, from the identity records (header layout only). */
  identityRanges(): Array<[number, number]> {
    if (!this.header0) return [];
    const ranges: Array<[number, number]> = [];
    for (let key = this.header0[0]; key < this.header0[1]; key++) {
      const { header } = unpackIR(this.record.read(key), 'train.rec', key);
      if (typeof header.label === 'number' || header.label.length < 2) {
        throw new DataError('train.rec', key, 'identity record without an image range');
      }
      ranges.push([header.label[0], header.label[1]]);
    }
    return ranges;
  }

  close(): void {
    this.record.close();
  }
}

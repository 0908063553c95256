/**
 * mxnet.recordio.pack / unpack: the IRHeader in front of each record's image.
 *
 * struct 'IfQQ' (native little-endian, 24 bytes): flag u32, label f32, id u64, id2 u64. A list of
 * labels is stored as `flag` float32 values right after the header, with the header's own label 0.
 * insightface packs use this for record 0 (label = [first identity record, end of identity records])
 * and for the identity records (label = [first image, end of images) of that identity).
 */
import { DataError } from './errors.js';

export const IR_HEADER_SIZE = 24;

export interface IRHeader {
  flag: number;
  /** the scalar label, or the `flag` labels after the header */
  label: number | Float32Array;
  id: number;
  id2: number;
}

/** pack(header, s): a number label sets flag 0; a list of labels sets flag to its length. */
export function packIR(header: { label: number | ArrayLike<number>; id: number; id2?: number }, image: Uint8Array): Uint8Array {
  const labels = typeof header.label === 'number' ? undefined : Float32Array.from(header.label);
  const extra = labels ? labels.length * 4 : 0;
  const out = new Uint8Array(IR_HEADER_SIZE + extra + image.length);
  const v = new DataView(out.buffer);
  v.setUint32(0, labels ? labels.length : 0, true);
  v.setFloat32(4, labels ? 0 : (header.label as number), true);
  v.setBigUint64(8, BigInt(header.id), true);
  v.setBigUint64(16, BigInt(header.id2 ?? 0), true);
  if (labels) out.set(new Uint8Array(labels.buffer), IR_HEADER_SIZE);
  out.set(image, IR_HEADER_SIZE + extra);
  return out;
}

/** unpack(s) → (header, image bytes). `source` and `record` name the record in errors. */
export function unpackIR(record: Uint8Array, source = '<record>', key?: number): { header: IRHeader; image: Uint8Array } {
  if (record.length < IR_HEADER_SIZE) {
    throw new DataError(source, key, `record of ${record.length} bytes is shorter than its ${IR_HEADER_SIZE}-byte IRHeader`);
  }
  const v = new DataView(record.buffer, record.byteOffset, record.byteLength);
  const flag = v.getUint32(0, true);
  const header: IRHeader = {
    flag,
    label: v.getFloat32(4, true),
    id: Number(v.getBigUint64(8, true)),
    id2: Number(v.getBigUint64(16, true)),
  };
  let start = IR_HEADER_SIZE;
  if (flag > 0) {
    if ((record.length - IR_HEADER_SIZE) / 4 < flag) {
      throw new DataError(source, key, `IRHeader announces ${flag} labels but the record has only ${record.length} bytes`);
    }
    const labels = new Float32Array(flag);
    for (let i = 0; i < flag; i++) labels[i] = v.getFloat32(IR_HEADER_SIZE + 4 * i, true);
    header.label = labels;
    start += flag * 4;
  }
  return { header, image: record.subarray(start) };
}

/** The class label of an image record: the header's, or the first of its labels (as MXFaceDataset). */
export function imageLabel(header: IRHeader): number {
  return typeof header.label === 'number' ? header.label : header.label[0];
}

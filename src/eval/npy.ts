/**
 * NumPy's .npy format (numpy.lib.format): write float32/float64 arrays as format 1.0 (what np.save
 * writes for small headers); read the little-endian numeric arrays np.save writes (scores, labels).
 */
import { readFileSync, writeFileSync } from 'node:fs';

const MAGIC = [0x93, ...Buffer.from('NUMPY')];

/** The bytes of a C-order float32 (or float64) array of `shape` in .npy format 1.0. */
export function encodeNpy(data: Float32Array | Float64Array, shape: number[]): Uint8Array {
  if (shape.reduce((a, b) => a * b, 1) !== data.length) throw new Error(`npy: shape [${shape}] does not hold ${data.length} values`);
  const dims = shape.length === 1 ? `(${shape[0]},)` : `(${shape.join(', ')})`;
  let header = `{'descr': '${data instanceof Float32Array ? '<f4' : '<f8'}', 'fortran_order': False, 'shape': ${dims}, }`;
  // spaces and a newline pad the preamble (magic, version, length, header) to a multiple of 64
  header += ' '.repeat(63 - ((10 + header.length) % 64)) + '\n';
  const out = new Uint8Array(10 + header.length + data.byteLength);
  out.set(MAGIC);
  out.set([1, 0, header.length & 0xff, header.length >> 8], 6);
  out.set(Buffer.from(header, 'latin1'), 10);
  out.set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength), 10 + header.length);
  return out;
}

export function writeNpy(file: string, data: Float32Array | Float64Array, shape: number[]): void {
  writeFileSync(file, encodeNpy(data, shape));
}

const READERS: Record<string, [number, (v: DataView, at: number) => number]> = {
  '<f4': [4, (v, at) => v.getFloat32(at, true)],
  '<f8': [8, (v, at) => v.getFloat64(at, true)],
  '<i4': [4, (v, at) => v.getInt32(at, true)],
  '<i8': [8, (v, at) => Number(v.getBigInt64(at, true))],
  '|u1': [1, (v, at) => v.getUint8(at)],
  '|b1': [1, (v, at) => v.getUint8(at)],
};

/** A numeric .npy file (any version, C order, little-endian) as float64 values and its shape. */
export function readNpy(file: string): { data: Float64Array; shape: number[] } {
  const bytes = readFileSync(file);
  if (bytes.length < 10 || !MAGIC.every((b, i) => bytes[i] === b)) throw new Error(`${file}: not a .npy file`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const major = bytes[6];
  const [headerAt, headerLength] = major === 1 ? [10, view.getUint16(8, true)] : [12, view.getUint32(8, true)];
  const header = bytes.toString('latin1', headerAt, headerAt + headerLength);
  const descr = /'descr':\s*'([^']+)'/.exec(header)?.[1];
  const shapeText = /'shape':\s*\(([^)]*)\)/.exec(header)?.[1];
  if (/'fortran_order':\s*True/.test(header)) throw new Error(`${file}: Fortran-order arrays are not supported`);
  const reader = descr === undefined ? undefined : READERS[descr];
  if (!reader || shapeText === undefined) throw new Error(`${file}: unsupported .npy header ${header.trim()} (numeric little-endian arrays only)`);
  const shape = shapeText.split(',').map((s) => s.trim()).filter(Boolean).map(Number);
  const count = shape.reduce((a, b) => a * b, 1);
  const [size, read] = reader;
  const start = headerAt + headerLength;
  if (bytes.length - start < count * size) throw new Error(`${file}: truncated (${count} values of ${size} bytes need ${count * size} bytes)`);
  return { data: Float64Array.from({ length: count }, (_, i) => read(view, start + i * size)), shape };
}

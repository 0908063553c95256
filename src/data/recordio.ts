/**
 * MXNet RecordIO, byte for byte as dmlc-core writes it (include/dmlc/recordio.h, src/recordio.cc)
 * and mxnet/recordio.py indexes it.
 *
 * A record is framed as: magic 0xced7230a (u32 LE), lrec (u32 LE: continuation flag in the top 3
 * bits, length in the low 29), the bytes, zero padding to a multiple of 4. The writer splits a
 * record wherever the magic itself occurs at a 4-byte-aligned position of the data: the magic is
 * dropped there and the parts get flags 1 (first), 2 (middle), 3 (last); a whole record has flag 0.
 * The reader joins the parts, putting the magic back between them.
 * The `.idx` file has one line `key\toffset\n` per record (MXIndexedRecordIO.write_idx).
 */
import { closeSync, fstatSync, openSync, readFileSync, readSync, writeSync } from 'node:fs';
import path from 'node:path';
import { DataError } from './errors.js';

export const RECORDIO_MAGIC = 0xced7230a;
/** the 29-bit length field */
const MAX_PART = (1 << 29) - 1;
/** a corrupt chain of continuation parts stops here */
const MAX_RECORD = 1 << 30;

const padded = (n: number): number => (n + 3) & ~3;

/** The bytes dmlc's RecordIOWriter::WriteRecord emits for one record. */
export function encodeRecord(data: Uint8Array): Uint8Array {
  if (data.length > MAX_PART) throw new Error(`RecordIO records must be under 2^29 bytes (got ${data.length})`);
  const parts: Uint8Array[] = [];
  const head = (flag: number, length: number) => {
    const h = new Uint8Array(8);
    const v = new DataView(h.buffer);
    v.setUint32(0, RECORDIO_MAGIC, true);
    v.setUint32(4, ((flag << 29) | length) >>> 0, true);
    parts.push(h);
  };
  let start = 0;
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  for (let i = 0; i + 4 <= (data.length & ~3); i += 4) {
    if (view.getUint32(i, true) === RECORDIO_MAGIC) {
      head(start === 0 ? 1 : 2, i - start);
      parts.push(data.subarray(start, i));
      start = i + 4;
    }
  }
  head(start === 0 ? 0 : 3, data.length - start);
  parts.push(data.subarray(start));
  parts.push(new Uint8Array(padded(data.length) - data.length));
  return concat(parts);
}

/** Random access to bytes: a file or a buffer. `read` may return fewer bytes at the end. */
export interface ByteSource {
  readonly name: string;
  readonly size: number;
  read(offset: number, length: number): Uint8Array;
}

export function memorySource(bytes: Uint8Array, name = '<memory>'): ByteSource {
  return { name, size: bytes.length, read: (offset, length) => bytes.subarray(offset, offset + length) };
}

export function fileSource(fd: number, name: string): ByteSource {
  const size = fstatSync(fd).size;
  return {
    name,
    size,
    read(offset, length) {
      const n = Math.max(0, Math.min(length, size - offset));
      const out = Buffer.allocUnsafe(n);
      let got = 0;
      while (got < n) {
        const r = readSync(fd, out, got, n - got, offset + got);
        if (r === 0) break;
        got += r;
      }
      return out.subarray(0, got);
    },
  };
}

/**
 * The record starting at byte `offset`, its parts joined; `end` is where the next record starts.
 * Throws a DataError (naming `record`, the record's key, when given) on a bad magic, a bad part
 * sequence or a source that ends inside the record.
 */
export function readRecord(source: ByteSource, offset: number, record?: number): { data: Uint8Array; end: number } {
  const fail = (reason: string): never => {
    throw new DataError(source.name, record, reason);
  };
  const parts: Uint8Array[] = [];
  let total = 0;
  let pos = offset;
  for (let part = 0; ; part++) {
    if (pos + 8 > source.size) fail(`truncated record: the file ends inside the record at offset ${offset}`);
    const head = source.read(pos, 8);
    const v = new DataView(head.buffer, head.byteOffset, 8);
    const magic = v.getUint32(0, true);
    if (magic !== RECORDIO_MAGIC) fail(`bad magic 0x${magic.toString(16).padStart(8, '0')} at offset ${pos} (expected 0xced7230a)`);
    const lrec = v.getUint32(4, true);
    const flag = lrec >>> 29;
    const length = lrec & MAX_PART;
    if ((part === 0) !== (flag === 0 || flag === 1)) fail(`bad continuation flag ${flag} at offset ${pos}`);
    if (pos + 8 + padded(length) > source.size) fail(`truncated record: the file ends inside the record at offset ${offset}`);
    if (total + length + 4 > MAX_RECORD) fail(`record at offset ${offset} is too large`);
    if (part > 0) parts.push(MAGIC_BYTES);
    parts.push(source.read(pos + 8, length));
    total += length + (part > 0 ? 4 : 0);
    pos += 8 + padded(length);
    if (flag === 0 || flag === 3) return { data: parts.length === 1 ? parts[0] : concat(parts), end: pos };
  }
}

const MAGIC_BYTES = new Uint8Array(new Uint32Array([RECORDIO_MAGIC]).buffer);

/** A parsed `.idx` file: keys in file order with their offsets. */
export interface RecordIndex {
  keys: Float64Array;
  offsets: Float64Array;
}

/**
 * Parses `key\toffset` lines (blank lines are skipped). Every offset must leave room for a record
 * header inside a file of `recSize` bytes; errors name the .idx file and line. Hand-rolled: an
 * MS1MV3 index has 5 million lines.
 */
export function parseIndex(text: Uint8Array, name: string, recSize: number): RecordIndex {
  const keys: number[] = [];
  const offsets: number[] = [];
  const isSpace = (c: number) => c === 0x20 || c === 0x09 || c === 0x0d;
  let pos = 0;
  for (let line = 1; pos < text.length; line++) {
    let end = text.indexOf(0x0a, pos);
    if (end < 0) end = text.length;
    const fail = (): never => {
      const shown = Buffer.from(text.buffer, text.byteOffset + pos, Math.min(end - pos, 60)).toString('latin1');
      throw new DataError(name, undefined, `line ${line}: expected 'key<TAB>offset', got '${shown}'`);
    };
    let i = pos;
    while (i < end && isSpace(text[i])) i++;
    if (i === end) {
      pos = end + 1;
      continue;
    }
    const number = (signed: boolean): number => {
      const negative = signed && text[i] === 0x2d;
      if (negative) i++;
      const first = i;
      let value = 0;
      while (i < end && text[i] >= 0x30 && text[i] <= 0x39) value = value * 10 + (text[i++] - 0x30);
      if (i === first || i - first > 15) fail();
      return negative ? -value : value;
    };
    const key = number(true);
    if (i === end || !isSpace(text[i])) fail();
    while (i < end && isSpace(text[i])) i++;
    const offset = number(false);
    while (i < end && isSpace(text[i])) i++;
    if (i !== end) fail();
    if (offset + 8 > recSize) {
      throw new DataError(name, key, `offset ${offset} (line ${line}) points past the end of the .rec file (${recSize} bytes)`);
    }
    keys.push(key);
    offsets.push(offset);
    pos = end + 1;
  }
  return { keys: Float64Array.from(keys), offsets: Float64Array.from(offsets) };
}

/** MXIndexedRecordIO opened for reading: records by key. */
export class IndexedRecordIO {
  readonly keys: Float64Array;
  readonly offsets: Float64Array;
  private readonly byKey: Map<number, number>;
  private readonly source: ByteSource;
  private fd: number | undefined;

  constructor(readonly idxPath: string, readonly recPath: string) {
    this.fd = openSync(recPath, 'r');
    try {
      this.source = fileSource(this.fd, path.basename(recPath));
      const index = parseIndex(readFileSync(idxPath), path.basename(idxPath), this.source.size);
      this.keys = index.keys;
      this.offsets = index.offsets;
      this.byKey = new Map();
      for (let i = 0; i < this.keys.length; i++) {
        if (this.byKey.has(this.keys[i])) throw new DataError(path.basename(idxPath), this.keys[i], 'key appears twice');
        this.byKey.set(this.keys[i], this.offsets[i]);
      }
    } catch (error) {
      this.close();
      throw error;
    }
  }

  has(key: number): boolean {
    return this.byKey.has(key);
  }

  /** byte offset of a record in the .rec file */
  offset(key: number): number {
    const offset = this.byKey.get(key);
    if (offset === undefined) throw new DataError(path.basename(this.idxPath), key, 'no such key in the index');
    return offset;
  }

  /** read_idx: the record's bytes (IRHeader and image, see ir-header.ts) */
  read(key: number): Uint8Array {
    if (this.fd === undefined) throw new Error(`${this.recPath} is closed`);
    return readRecord(this.source, this.offset(key), key).data;
  }

  close(): void {
    if (this.fd !== undefined) closeSync(this.fd);
    this.fd = undefined;
  }
}

/** MXIndexedRecordIO opened for writing: appends records and their `.idx` lines. */
export class IndexedRecordIOWriter {
  private readonly recFd: number;
  private readonly idxFd: number;
  private position = 0;
  private chunks: Uint8Array[] = [];
  private buffered = 0;
  private idxLines: string[] = [];

  constructor(readonly idxPath: string, readonly recPath: string) {
    this.recFd = openSync(recPath, 'w');
    this.idxFd = openSync(idxPath, 'w');
  }

  /** write_idx(key, data) */
  write(key: number, data: Uint8Array): void {
    const framed = encodeRecord(data);
    this.idxLines.push(`${key}\t${this.position}\n`);
    this.position += framed.length;
    this.chunks.push(framed);
    this.buffered += framed.length;
    if (this.buffered >= 4 << 20) this.flush();
  }

  /** bytes written to the .rec so far */
  get size(): number {
    return this.position;
  }

  flush(): void {
    writeAll(this.recFd, concat(this.chunks));
    writeAll(this.idxFd, Buffer.from(this.idxLines.join(''), 'latin1'));
    this.chunks = [];
    this.buffered = 0;
    this.idxLines = [];
  }

  close(): void {
    this.flush();
    closeSync(this.recFd);
    closeSync(this.idxFd);
  }
}

function writeAll(fd: number, data: Uint8Array): void {
  for (let at = 0; at < data.length; ) at += writeSync(fd, data, at);
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = Buffer.allocUnsafe(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

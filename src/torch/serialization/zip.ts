/**
 * Minimal ZIP reader and writer for torch.save archives: STORED (uncompressed) entries only,
 * CRC-32 checked on read, ZIP64 on both sides.
 *
 * The writer reproduces the layout of PyTorch's PyTorchStreamWriter (miniz underneath):
 * every entry's data starts on a 64-byte boundary, padded by an 'FB' extra field in the local
 * header; CRC and sizes follow the data in a data descriptor; zero dates; and a zip64
 * end-of-central-directory record is always written.
 */

const LOCAL_SIG = 0x04034b50;
const CENTRAL_SIG = 0x02014b50;
const DESCRIPTOR_SIG = 0x08074b50;
const EOCD_SIG = 0x06054b50;
const ZIP64_EOCD_SIG = 0x06064b50;
const ZIP64_LOCATOR_SIG = 0x07064b50;

const LOCAL_HEADER_SIZE = 30;
const CENTRAL_HEADER_SIZE = 46;
const EOCD_SIZE = 22;
const ZIP64_EOCD_SIZE = 56;
const ZIP64_LOCATOR_SIZE = 20;
const MAX_COMMENT = 0xffff;

const ZIP64_EXTRA_ID = 0x0001;
const FLAG_ENCRYPTED = 0x0001;
const FLAG_DATA_DESCRIPTOR = 0x0008;
const FLAG_UTF8 = 0x0800;

const U16_MAX = 0xffff;
const U32_MAX = 0xffffffff;
/** PyTorch aligns record data so that it can be mmapped and viewed as any dtype */
const ALIGNMENT = 64;

export interface ZipEntry {
  name: string;
  data: Uint8Array;
}

// ---------------------------------------------------------------- CRC-32

/** Slicing-by-8 tables: TABLES[k][b] is the CRC contribution of byte b followed by k zero bytes. */
const CRC_TABLES = (() => {
  const tables = Array.from({ length: 8 }, () => new Uint32Array(256));
  const [first] = tables as [Uint32Array];
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    first[n] = c >>> 0;
  }
  for (let k = 1; k < 8; k++) {
    for (let n = 0; n < 256; n++) {
      const previous = tables[k - 1]![n]!;
      tables[k]![n] = (previous >>> 8) ^ first[previous & 0xff]!;
    }
  }
  return tables;
})();

/** CRC-32 (IEEE 802.3, as in zip and zlib) of `data`, continuing from `crc`; 8 bytes per step. */
export function crc32(data: Uint8Array, crc = 0): number {
  const [t0, t1, t2, t3, t4, t5, t6, t7] = CRC_TABLES as [Uint32Array, Uint32Array, Uint32Array, Uint32Array,
    Uint32Array, Uint32Array, Uint32Array, Uint32Array];
  let c = ~crc >>> 0;
  let i = 0;
  for (const end = data.length - (data.length % 8); i < end; i += 8) {
    const low = c ^ (data[i]! | (data[i + 1]! << 8) | (data[i + 2]! << 16) | (data[i + 3]! << 24));
    c = t7[low & 0xff]! ^ t6[(low >>> 8) & 0xff]! ^ t5[(low >>> 16) & 0xff]! ^ t4[low >>> 24]!
      ^ t3[data[i + 4]!]! ^ t2[data[i + 5]!]! ^ t1[data[i + 6]!]! ^ t0[data[i + 7]!]!;
  }
  for (; i < data.length; i++) c = t0[(c ^ data[i]!) & 0xff]! ^ (c >>> 8);
  return ~c >>> 0;
}

// ---------------------------------------------------------------- writer

export interface ZipWriterOptions {
  /** Write zip64 fields for every entry, as if all sizes and offsets were ≥ 4 GiB (for tests). */
  forceZip64?: boolean;
}

interface CentralRecord {
  name: Uint8Array;
  flags: number;
  crc: number;
  size: number;
  offset: number;
}

/** Streams a STORED zip archive to `sink`, chunk by chunk, in PyTorch's layout. */
export class ZipWriter {
  private offset = 0;
  private readonly records: CentralRecord[] = [];
  /** sizes and offsets at or above this need zip64 fields */
  private readonly limit: number;
  private readonly countLimit: number;
  private finished = false;

  constructor(private readonly sink: (chunk: Uint8Array) => void, options: ZipWriterOptions = {}) {
    this.limit = options.forceZip64 ? 0 : U32_MAX;
    this.countLimit = options.forceZip64 ? 0 : U16_MAX;
  }

  add(name: string, data: Uint8Array): void {
    if (this.finished) throw new Error(`zip writer: cannot add '${name}' after finish()`);
    const nameBytes = new TextEncoder().encode(name);
    if (nameBytes.length > U16_MAX) throw new Error(`zip writer: entry name too long: '${name.slice(0, 80)}…'`);
    const record: CentralRecord = {
      name: nameBytes,
      // like miniz, empty entries get no data descriptor
      flags: FLAG_UTF8 | (data.length > 0 ? FLAG_DATA_DESCRIPTOR : 0),
      crc: crc32(data),
      size: data.length,
      offset: this.offset,
    };
    this.emit(this.localHeader(record));
    this.emit(data);
    if (data.length > 0) this.emit(this.dataDescriptor(record));
    this.records.push(record);
  }

  finish(): void {
    if (this.finished) return;
    this.finished = true;
    const directoryOffset = this.offset;
    for (const record of this.records) this.emit(this.centralHeader(record));
    const directorySize = this.offset - directoryOffset;
    const zip64EocdOffset = this.offset;
    this.emit(this.zip64Eocd(directoryOffset, directorySize));
    this.emit(zip64Locator(zip64EocdOffset));
    this.emit(this.eocd(directoryOffset, directorySize));
  }

  private emit(chunk: Uint8Array): void {
    this.sink(chunk);
    this.offset += chunk.length;
  }

  private needsZip64(record: CentralRecord): boolean {
    return record.size >= this.limit || record.offset >= this.limit;
  }

  private field32(value: number): number {
    return value >= this.limit ? U32_MAX : value;
  }

  /**
   * The zip64 extra field miniz writes: sizes when the size is large, the offset when the
   * offset is. In the local header miniz stores the compressed size as 0 (not known yet).
   */
  private zip64Extra(record: CentralRecord, inLocalHeader: boolean): Uint8Array {
    if (!this.needsZip64(record)) return new Uint8Array(0);
    const values: number[] = [];
    if (record.size >= this.limit) values.push(record.size, inLocalHeader ? 0 : record.size);
    if (record.offset >= this.limit) values.push(record.offset);
    const out = new Bytes(4 + 8 * values.length);
    out.u16(ZIP64_EXTRA_ID).u16(8 * values.length);
    for (const v of values) out.u64(v);
    return out.bytes;
  }

  private localHeader(record: CentralRecord): Uint8Array {
    const zip64 = this.zip64Extra(record, true);
    // PyTorchStreamWriter's getPadding: an 'FB' extra field pads the data start to ALIGNMENT
    const unpadded = record.offset + LOCAL_HEADER_SIZE + record.name.length + zip64.length + 4;
    const padding = (ALIGNMENT - (unpadded % ALIGNMENT)) % ALIGNMENT;
    const extraLength = zip64.length + 4 + padding;
    const out = new Bytes(LOCAL_HEADER_SIZE + record.name.length + extraLength);
    out.u32(LOCAL_SIG).u16(0).u16(record.flags).u16(0) // version needed, flags, method: stored
      .u16(0).u16(0) // time, date
      .u32(0).u32(0).u32(0) // crc and sizes are in the data descriptor
      .u16(record.name.length).u16(extraLength)
      .raw(record.name).raw(zip64)
      .raw([0x46, 0x42]).u16(padding).raw(new Uint8Array(padding).fill(0x5a)); // 'FB', 'Z'…
    return out.bytes;
  }

  private dataDescriptor(record: CentralRecord): Uint8Array {
    if (this.needsZip64(record)) {
      return new Bytes(24).u32(DESCRIPTOR_SIG).u32(record.crc).u64(record.size).u64(record.size).bytes;
    }
    return new Bytes(16).u32(DESCRIPTOR_SIG).u32(record.crc).u32(record.size).u32(record.size).bytes;
  }

  private centralHeader(record: CentralRecord): Uint8Array {
    const zip64 = this.zip64Extra(record, false);
    const size32 = this.field32(record.size);
    const out = new Bytes(CENTRAL_HEADER_SIZE + record.name.length + zip64.length);
    out.u32(CENTRAL_SIG).u16(0).u16(0).u16(record.flags).u16(0) // made by, needed, flags, method
      .u16(0).u16(0).u32(record.crc).u32(size32).u32(size32)
      .u16(record.name.length).u16(zip64.length).u16(0) // comment length
      .u16(0).u16(0).u32(0) // disk, internal and external attributes
      .u32(this.field32(record.offset))
      .raw(record.name).raw(zip64);
    return out.bytes;
  }

  private zip64Eocd(directoryOffset: number, directorySize: number): Uint8Array {
    const count = this.records.length;
    return new Bytes(ZIP64_EOCD_SIZE).u32(ZIP64_EOCD_SIG).u64(ZIP64_EOCD_SIZE - 12)
      .u16(0x031e).u16(0x002d).u32(0).u32(0) // made by, needed, disk numbers (values as miniz)
      .u64(count).u64(count).u64(directorySize).u64(directoryOffset).bytes;
  }

  private eocd(directoryOffset: number, directorySize: number): Uint8Array {
    const count = this.records.length >= this.countLimit ? U16_MAX : this.records.length;
    return new Bytes(EOCD_SIZE).u32(EOCD_SIG).u16(0).u16(0).u16(count).u16(count)
      .u32(this.field32(directorySize)).u32(this.field32(directoryOffset)).u16(0).bytes;
  }
}

function zip64Locator(zip64EocdOffset: number): Uint8Array {
  return new Bytes(ZIP64_LOCATOR_SIZE).u32(ZIP64_LOCATOR_SIG).u32(0).u64(zip64EocdOffset).u32(1).bytes;
}

/** Builds a whole archive in memory. */
export function writeZip(entries: Iterable<ZipEntry>, options: ZipWriterOptions = {}): Uint8Array {
  const chunks: Uint8Array[] = [];
  const writer = new ZipWriter((chunk) => chunks.push(chunk), options);
  for (const entry of entries) writer.add(entry.name, entry.data);
  writer.finish();
  return concat(chunks);
}

function concat(chunks: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  let at = 0;
  for (const chunk of chunks) {
    out.set(chunk, at);
    at += chunk.length;
  }
  return out;
}

/** Little-endian field builder for fixed-size headers. */
class Bytes {
  readonly bytes: Uint8Array;
  private readonly view: DataView;
  private at = 0;

  constructor(size: number) {
    this.bytes = new Uint8Array(size);
    this.view = new DataView(this.bytes.buffer);
  }

  u16(v: number): this {
    this.view.setUint16(this.at, v, true);
    this.at += 2;
    return this;
  }

  u32(v: number): this {
    this.view.setUint32(this.at, v, true);
    this.at += 4;
    return this;
  }

  u64(v: number): this {
    this.view.setBigUint64(this.at, BigInt(v), true);
    this.at += 8;
    return this;
  }

  raw(data: ArrayLike<number>): this {
    this.bytes.set(data, this.at);
    this.at += data.length;
    return this;
  }
}

// ---------------------------------------------------------------- reader

interface CentralDirectory {
  offset: number;
  size: number;
  count: number;
}

interface CentralEntry {
  name: string;
  nameBytes: Uint8Array;
  flags: number;
  method: number;
  crc: number;
  compressedSize: number;
  size: number;
  localOffset: number;
  /** offset of the next central directory entry */
  next: number;
}

/**
 * Lists the entries of a STORED zip archive held in memory, in central-directory order.
 * Entry data are views into `bytes`, CRC-checked. Errors start with `source`.
 */
export function readZip(bytes: Uint8Array, source: string): ZipEntry[] {
  const reader = new Reader(bytes, source);
  const directory = findCentralDirectory(reader);
  const entries: ZipEntry[] = [];
  let pos = directory.offset;
  for (let i = 0; i < directory.count; i++) {
    const entry = readCentralEntry(reader, pos, directory.offset + directory.size);
    entries.push({ name: entry.name, data: readEntryData(reader, entry, directory.offset) });
    pos = entry.next;
  }
  return entries;
}

/** Bounds-checked little-endian reads that fail with the file name. */
class Reader {
  readonly bytes: Uint8Array;
  readonly view: DataView;

  constructor(bytes: Uint8Array, readonly source: string) {
    // a plain view, so that entry data are Uint8Arrays even when given a Buffer
    this.bytes = new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  get length(): number {
    return this.bytes.length;
  }

  fail(message: string): never {
    throw new Error(`${this.source}: ${message}`);
  }

  /** fails unless [pos, pos + size) lies inside the file */
  need(pos: number, size: number, what: string): void {
    if (pos + size > this.length) this.fail(`truncated zip (${what} at ${pos} beyond end of file ${this.length})`);
  }

  u16(pos: number): number {
    return this.view.getUint16(pos, true);
  }

  u32(pos: number): number {
    return this.view.getUint32(pos, true);
  }

  u64(pos: number): number {
    const value = this.view.getBigUint64(pos, true);
    if (value > BigInt(Number.MAX_SAFE_INTEGER)) this.fail(`corrupt zip (64-bit field at ${pos} is ${value})`);
    return Number(value);
  }
}

function findCentralDirectory(reader: Reader): CentralDirectory {
  const eocd = findEocd(reader);
  if (eocd < 0) {
    const looksLikeZip = reader.length >= 4 && reader.u32(0) === LOCAL_SIG;
    reader.fail(looksLikeZip
      ? `truncated zip (no end of central directory record in ${reader.length} bytes)`
      : 'not a zip archive (no end of central directory record)');
  }
  if (reader.u16(eocd + 4) !== 0 || reader.u16(eocd + 6) !== 0) reader.fail('multi-disk zip archives are not supported');
  let directory: CentralDirectory = {
    count: reader.u16(eocd + 10),
    size: reader.u32(eocd + 12),
    offset: reader.u32(eocd + 16),
  };
  const locator = eocd - ZIP64_LOCATOR_SIZE;
  if (locator >= 0 && reader.u32(locator) === ZIP64_LOCATOR_SIG) {
    directory = readZip64Eocd(reader, reader.u64(locator + 8));
  } else if (directory.count === U16_MAX || directory.size === U32_MAX || directory.offset === U32_MAX) {
    reader.fail('corrupt zip (zip64 end of central directory locator missing)');
  }
  reader.need(directory.offset, directory.size, 'central directory');
  return directory;
}

/** Offset of the end-of-central-directory record, searching back over a possible comment. */
function findEocd(reader: Reader): number {
  const last = reader.length - EOCD_SIZE;
  for (let pos = last; pos >= 0 && pos >= last - MAX_COMMENT; pos--) {
    if (reader.u32(pos) === EOCD_SIG && pos + EOCD_SIZE + reader.u16(pos + 20) <= reader.length) return pos;
  }
  return -1;
}

function readZip64Eocd(reader: Reader, pos: number): CentralDirectory {
  reader.need(pos, ZIP64_EOCD_SIZE, 'zip64 end of central directory');
  if (reader.u32(pos) !== ZIP64_EOCD_SIG) reader.fail(`corrupt zip (bad zip64 end of central directory signature at ${pos})`);
  return { count: reader.u64(pos + 32), size: reader.u64(pos + 40), offset: reader.u64(pos + 48) };
}

function readCentralEntry(reader: Reader, pos: number, directoryEnd: number): CentralEntry {
  if (pos + CENTRAL_HEADER_SIZE > directoryEnd) reader.fail(`corrupt zip (central directory entry at ${pos} overruns the directory)`);
  if (reader.u32(pos) !== CENTRAL_SIG) reader.fail(`corrupt zip (bad central directory entry signature at ${pos})`);
  const nameLength = reader.u16(pos + 28);
  const extraLength = reader.u16(pos + 30);
  const commentLength = reader.u16(pos + 32);
  const next = pos + CENTRAL_HEADER_SIZE + nameLength + extraLength + commentLength;
  if (next > directoryEnd) reader.fail(`corrupt zip (central directory entry at ${pos} overruns the directory)`);
  const nameBytes = reader.bytes.subarray(pos + CENTRAL_HEADER_SIZE, pos + CENTRAL_HEADER_SIZE + nameLength);
  const entry: CentralEntry = {
    name: new TextDecoder().decode(nameBytes),
    nameBytes,
    flags: reader.u16(pos + 8),
    method: reader.u16(pos + 10),
    crc: reader.u32(pos + 16),
    compressedSize: reader.u32(pos + 20),
    size: reader.u32(pos + 24),
    localOffset: reader.u32(pos + 42),
    next,
  };
  applyZip64Extra(reader, entry, pos + CENTRAL_HEADER_SIZE + nameLength, extraLength);
  return entry;
}

/** Replaces the 0xFFFFFFFF placeholders of `entry` by the 64-bit values of its zip64 extra field. */
function applyZip64Extra(reader: Reader, entry: CentralEntry, extraStart: number, extraLength: number): void {
  const wanted = (['size', 'compressedSize', 'localOffset'] as const).filter((field) => entry[field] === U32_MAX);
  if (wanted.length === 0) return;
  const end = extraStart + extraLength;
  for (let pos = extraStart; pos + 4 <= end; pos += 4 + reader.u16(pos + 2)) {
    if (reader.u16(pos) !== ZIP64_EXTRA_ID) continue;
    if (reader.u16(pos + 2) < 8 * wanted.length || pos + 4 + 8 * wanted.length > end) break;
    wanted.forEach((field, i) => { entry[field] = reader.u64(pos + 4 + 8 * i); });
    return;
  }
  reader.fail(`corrupt zip (entry '${entry.name}' lacks the zip64 extra field its header calls for)`);
}

function readEntryData(reader: Reader, entry: CentralEntry, directoryOffset: number): Uint8Array {
  const { name } = entry;
  if (entry.flags & FLAG_ENCRYPTED) reader.fail(`entry '${name}' is encrypted`);
  if (entry.method !== 0) reader.fail(`entry '${name}' is compressed (method ${entry.method}); only stored entries are supported`);
  if (entry.compressedSize !== entry.size) reader.fail(`corrupt zip (stored entry '${name}' has different compressed and uncompressed sizes)`);
  const local = entry.localOffset;
  if (local + LOCAL_HEADER_SIZE > directoryOffset) reader.fail(`corrupt zip (local header of '${name}' at ${local} is not before the central directory)`);
  if (reader.u32(local) !== LOCAL_SIG) reader.fail(`corrupt zip (bad local header signature for '${name}' at ${local})`);
  if (reader.u16(local + 8) !== 0) reader.fail(`entry '${name}' is compressed (method ${reader.u16(local + 8)}); only stored entries are supported`);
  const nameLength = reader.u16(local + 26);
  const localName = reader.bytes.subarray(local + LOCAL_HEADER_SIZE, local + LOCAL_HEADER_SIZE + nameLength);
  if (!sameBytes(localName, entry.nameBytes)) reader.fail(`corrupt zip (local header at ${local} does not name '${name}')`);
  const start = local + LOCAL_HEADER_SIZE + nameLength + reader.u16(local + 28);
  const end = start + entry.size;
  if (end > directoryOffset) reader.fail(`corrupt zip (data of '${name}' at ${start}..${end} overlaps the central directory at ${directoryOffset})`);
  const data = reader.bytes.subarray(start, end);
  const actual = crc32(data);
  if (actual !== entry.crc) reader.fail(`CRC mismatch in '${name}' (expected ${hex(entry.crc)}, got ${hex(actual)})`);
  return data;
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((byte, i) => byte === b[i]);
}

function hex(n: number): string {
  return `0x${n.toString(16).padStart(8, '0')}`;
}

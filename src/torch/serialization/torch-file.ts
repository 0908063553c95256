/**
 * torch.save files without PyTorch: reads the zip format (PyTorch ≥ 1.6) and the legacy
 * pickle-stream format (`_use_new_zipfile_serialization=False`); writes the zip format.
 *
 * readTorchFile returns the unpickled object (values mapped as described in pickle.ts) with:
 * - every tensor as a TensorRecord; tensors that share a storage share one StorageRecord, whose
 *   `data` is a view into the file's bytes (at multiples of 64 from the start of a zip file, so
 *   typed arrays can view them when read from a path; legacy files give no alignment);
 *   a storage pickled as torch.UntypedStorage loads as uint8, as torch does;
 * - `collections.OrderedDict` as a Map that `isOrderedDict` recognises; the `_metadata` attribute
 *   of nn.Module.state_dict() results is kept aside, see `orderedDictMetadata`;
 * - a torch.dtype value (e.g. `torch.float32`) as a DtypeRecord.
 * Only the globals torch.save itself emits are accepted; anything else is refused.
 *
 * writeTorchFile writes what torch.save would: `archive/data.pkl`, `archive/byteorder`, one
 * `archive/data/<key>` record per distinct StorageRecord (keys renumbered 0, 1, … in pickling
 * order, as torch does) and `archive/version`, atomically.
 */

import fs from 'node:fs';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { readZip, ZipWriter } from './zip.js';
import { isTuple, pickle, PyGlobal, PyReduce, tuple, unpickle, unpickleAt, type PyCallable, type Tuple, type UnpickleOptions } from './pickle.js';
import { ELEMENT_SIZE, type DtypeRecord, type StorageDtype, type StorageRecord, type TensorRecord } from './records.js';

/** A file path, or bytes already in memory with the name to use in error messages. */
export type TorchFileSource = string | { buffer: Uint8Array; name: string };

export interface WriteTorchFileOptions {
  /** write a top-level Map as collections.OrderedDict, as nn.Module.state_dict() returns */
  orderedDict?: boolean;
  /** sees every chunk of the file as it is written (e.g. to hash it without reading it back) */
  onChunk?: (chunk: Uint8Array) => void;
}

const STORAGE_CLASS: Readonly<Record<StorageDtype, string>> = {
  float64: 'DoubleStorage', float32: 'FloatStorage', float16: 'HalfStorage', bfloat16: 'BFloat16Storage',
  int64: 'LongStorage', int32: 'IntStorage', int16: 'ShortStorage', int8: 'CharStorage', uint8: 'ByteStorage',
  bool: 'BoolStorage',
};
const DTYPE_OF_STORAGE_CLASS = new Map(Object.entries(STORAGE_CLASS).map(([dtype, cls]) => [cls, dtype as StorageDtype]));
/** modules storage classes are pickled from (torch.cuda in very old files) */
const STORAGE_MODULES = new Set(['torch', 'torch.storage', 'torch.cuda']);

const ARCHIVE_NAME = 'archive';
const FORMAT_VERSION = 3;
/** kMinSupportedFileFormatVersion..kMaxSupportedFileFormatVersion of caffe2/serialize/versions.h */
const SUPPORTED_VERSIONS = { min: 1, max: 10 };
const ZIP_MAGIC = [0x50, 0x4b, 0x03, 0x04];
const LEGACY_MAGIC = 0x1950a86a20f9469cfc6cn;
const LEGACY_PROTOCOL = 1001;

const ORDERED_DICT = new PyGlobal('collections', 'OrderedDict');
const REBUILD_TENSOR_V2 = new PyGlobal('torch._utils', '_rebuild_tensor_v2');

// ---------------------------------------------------------------- OrderedDict bookkeeping

const orderedDicts = new WeakSet<Map<unknown, unknown>>();
const metadataByDict = new WeakMap<Map<unknown, unknown>, unknown>();

/** Marks `map` to be written as a collections.OrderedDict, with a state-dict `_metadata` attribute if given. */
export function asOrderedDict<M extends Map<unknown, unknown>>(map: M, metadata?: unknown): M {
  orderedDicts.add(map);
  if (metadata !== undefined) metadataByDict.set(map, metadata);
  return map;
}

export function isOrderedDict(value: unknown): value is Map<unknown, unknown> {
  return value instanceof Map && orderedDicts.has(value);
}

/** The `_metadata` attribute an OrderedDict was loaded with (per-module versions of a state dict). */
export function orderedDictMetadata(map: Map<unknown, unknown>): unknown {
  return metadataByDict.get(map);
}

// ---------------------------------------------------------------- reading

/** Reads a torch.save file of either format; every error message starts with the file name. */
export function readTorchFile(source: TorchFileSource): unknown {
  const { bytes, name } = typeof source === 'string'
    ? { bytes: readWholeFile(source), name: source }
    : { bytes: plainView(source.buffer), name: source.name };
  if (ZIP_MAGIC.every((b, i) => bytes[i] === b)) return readZipFormat(bytes, name);
  if (isTar(bytes)) fail(`${name}: the tar-based torch.save format of PyTorch < 0.4 is not supported`);
  return readLegacyFormat(bytes, name);
}

/** fs.readFileSync stops at 2 GiB; a buffer of our own can be larger */
function readWholeFile(file: string): Uint8Array {
  const fd = fs.openSync(file, 'r');
  try {
    const size = fs.fstatSync(fd).size;
    const buffer = Buffer.allocUnsafeSlow(size); // unpooled: starts at offset 0, so zip records stay aligned
    for (let at = 0; at < size;) {
      const n = fs.readSync(fd, buffer, at, Math.min(size - at, 1 << 30), at);
      if (n === 0) fail(`${file}: file shrank while being read`);
      at += n;
    }
    return plainView(buffer);
  } finally {
    fs.closeSync(fd);
  }
}

/** storage data are views into the file's bytes: make them plain Uint8Arrays, not Buffers */
function plainView(bytes: Uint8Array): Uint8Array {
  return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

function isTar(bytes: Uint8Array): boolean {
  return new TextDecoder().decode(bytes.subarray(257, 262)) === 'ustar';
}

function readZipFormat(bytes: Uint8Array, name: string): unknown {
  const archive = openArchive(bytes, name);
  if (archive.get('constants.pkl')) fail(`${name}: this is a TorchScript archive (torch.jit.save), not a torch.save file`);
  checkVersion(archive.get('version') ?? archive.get('.data/version'), name);
  checkByteOrder(archive.get('byteorder'), name);
  const pickled = archive.get('data.pkl') ?? fail(`${name}: '${archive.prefix}data.pkl' is missing`);
  const storages = storageLoader(name, 5, (key, dtype, numel) => {
    const data = archive.get(`data/${key}`) ?? fail(`${name}: storage '${key}' has no '${archive.prefix}data/${key}' record`);
    checkStorageSize({ key, dtype, numel, data }, name);
    return data;
  });
  const value = unpickle(pickled, { ...torchUnpickleOptions(name), persistentLoad: storages.load });
  forEachTensor(value, (tensor, where) => validateTensor(tensor, where, name));
  return value;
}

/** Records of the archive, under the directory of its first record (`archive/` or the file stem). */
function openArchive(bytes: Uint8Array, name: string): { prefix: string; get: (record: string) => Uint8Array | undefined } {
  const entries = readZip(bytes, name);
  const first = entries[0]?.name ?? fail(`${name}: empty zip archive`);
  const slash = first.indexOf('/');
  if (slash <= 0) fail(`${name}: not a torch.save archive (first record '${first}' is not in a directory)`);
  const prefix = first.slice(0, slash + 1);
  const byName = new Map(entries.map((entry) => [entry.name, entry.data]));
  return { prefix, get: (record) => byName.get(prefix + record) };
}

function checkVersion(record: Uint8Array | undefined, name: string): void {
  if (!record) fail(`${name}: archive has no version record`);
  const text = new TextDecoder().decode(record).trim();
  const version = Number(text);
  if (!/^\d+$/.test(text) || version < SUPPORTED_VERSIONS.min || version > SUPPORTED_VERSIONS.max) {
    fail(`${name}: unsupported archive version '${text.slice(0, 20)}' (supported: ${SUPPORTED_VERSIONS.min} to ${SUPPORTED_VERSIONS.max})`);
  }
}

function checkByteOrder(record: Uint8Array | undefined, name: string): void {
  const order = record && new TextDecoder().decode(record);
  if (order !== undefined && order !== 'little') fail(`${name}: byte order '${order.slice(0, 20)}' is not supported, only little-endian`);
}

function readLegacyFormat(bytes: Uint8Array, name: string): unknown {
  const options = torchUnpickleOptions(name);
  const magic = readLegacyMagic(bytes, options);
  const protocol = unpickleAt(bytes, magic.end, options);
  if (protocol.value !== LEGACY_PROTOCOL) fail(`${name}: unsupported legacy torch.save protocol ${String(protocol.value)}`);
  const sysInfo = unpickleAt(bytes, protocol.end, options);
  if (!(sysInfo.value instanceof Map) || sysInfo.value.get('little_endian') !== true) {
    fail(`${name}: only little-endian legacy torch.save files are supported`);
  }
  const storages = storageLoader(name, 6, () => new Uint8Array(0)); // data follows the pickles
  const body = unpickleAt(bytes, sysInfo.end, { ...options, persistentLoad: storages.load });
  const keys = unpickleAt(bytes, body.end, options);
  readLegacyStorageData(bytes, keys.end, keys.value, storages.loaded, name);
  forEachTensor(body.value, (tensor, where) => validateTensor(tensor, where, name));
  return body.value;
}

function readLegacyMagic(bytes: Uint8Array, options: UnpickleOptions): { end: number } {
  let magic: { value: unknown; end: number } | undefined;
  try {
    magic = unpickleAt(bytes, 0, options);
  } catch {
    // not even a pickle: reported below like any other wrong magic number
  }
  if (magic?.value !== LEGACY_MAGIC) fail(`${options.source}: not a torch.save file (neither a zip archive nor a legacy torch pickle)`);
  return magic;
}

/** After the pickles: per listed storage, an int64 element count and the raw bytes. */
function readLegacyStorageData(bytes: Uint8Array, at: number, keys: unknown, storages: Map<string, StorageRecord>, name: string): void {
  if (!Array.isArray(keys) || !keys.every((key) => typeof key === 'string')) fail(`${name}: corrupt legacy file (bad storage key list)`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const filled = new Set<string>();
  for (const key of keys as string[]) {
    const storage = storages.get(key) ?? fail(`${name}: legacy file has data for unknown storage '${key}'`);
    if (at + 8 > bytes.length) fail(`${name}: truncated legacy file (storage '${key}' at ${at} beyond end of file ${bytes.length})`);
    const count = Number(view.getBigUint64(at, true));
    if (count !== storage.numel) fail(`${name}: storage '${key}' has ${count} elements in the file but ${storage.numel} in the pickle`);
    const end = at + 8 + count * ELEMENT_SIZE[storage.dtype];
    if (end > bytes.length) fail(`${name}: truncated legacy file (storage '${key}' ends at ${end}, beyond end of file ${bytes.length})`);
    storage.data = bytes.subarray(at + 8, end);
    filled.add(key);
    at = end;
  }
  const missing = [...storages.keys()].find((key) => !filled.has(key));
  if (missing !== undefined) fail(`${name}: storage '${missing}' has no data in the file`);
}

// ---------------------------------------------------------------- the unpickling whitelist

/** What a storage class global (torch.FloatStorage, …) unpickles to. */
class StorageType {
  constructor(readonly dtype: StorageDtype) {}
}

function torchUnpickleOptions(name: string): UnpickleOptions {
  const callables = new Map<string, PyCallable>([
    ['collections.OrderedDict', (args) => asOrderedDict(new Map(pairs(args[0], name)))],
    ['torch._utils._rebuild_tensor_v2', (args) => rebuildTensor(args, name)],
    ['torch._utils._rebuild_tensor', (args) => rebuildTensor(args, name)],
    ['torch._utils._rebuild_parameter', (args) => rebuildParameter(args, name)],
    ['torch._utils._rebuild_parameter_with_state', (args) => rebuildParameter(args, name)],
    ['torch.Size', (args) => tuple(items(args[0], name))],
    ['_codecs.encode', (args) => encodeLatin1(args, name)],
    ['builtins.set', (args) => new Set(items(args[0] ?? [], name))],
    ['builtins.frozenset', (args) => new Set(items(args[0] ?? [], name))],
    ['builtins.bytes', (args) => (args.length === 0 ? new Uint8Array(0) : fail(`${name}: unsupported bytes() arguments`))],
  ]);
  return {
    source: name,
    findGlobal: (module, global) => callables.get(`${module}.${global}`) ?? storageType(module, global, name) ?? dtypeRecord(module, global),
    build: (target, state) => restoreOrderedDictState(target, state, name),
  };
}

function storageType(module: string, global: string, name: string): StorageType | undefined {
  if (!STORAGE_MODULES.has(module) || !global.endsWith('Storage')) return undefined;
  if (global === 'UntypedStorage') return new StorageType('uint8'); // torch loads untyped storages as bytes
  const dtype = DTYPE_OF_STORAGE_CLASS.get(global) ?? fail(`${name}: unsupported storage type '${module}.${global}'`);
  return new StorageType(dtype);
}

function dtypeRecord(module: string, global: string): DtypeRecord | undefined {
  const dtype = global as StorageDtype;
  return module === 'torch' && dtype in STORAGE_CLASS ? Object.freeze({ kind: 'dtype' as const, dtype }) : undefined;
}

/** BUILD on an OrderedDict: nn.Module.state_dict() sets `_metadata`; other attributes are dropped */
function restoreOrderedDictState(target: unknown, state: unknown, name: string): void {
  if (!isOrderedDict(target) || !(state instanceof Map)) fail(`${name}: refusing to set object state other than an OrderedDict's attributes`);
  if (state.has('_metadata')) metadataByDict.set(target, state.get('_metadata'));
}

function rebuildTensor(args: Tuple, name: string): TensorRecord {
  const [storage, storageOffset, size, stride, requiresGrad = false] = args;
  if (!isStorageRecord(storage)) fail(`${name}: tensor rebuilt from something that is not a storage`);
  return {
    kind: 'tensor',
    storage,
    storageOffset: count(storageOffset, 'storage offset', name),
    shape: items(size, name).map((n) => count(n, 'size', name)),
    strides: items(stride, name).map((n) => count(n, 'stride', name)),
    requiresGrad: flag(requiresGrad, name),
  };
}

function rebuildParameter(args: Tuple, name: string): TensorRecord {
  const [data, requiresGrad] = args;
  if (!isTensorRecord(data)) fail(`${name}: parameter rebuilt from something that is not a tensor`);
  return { ...data, requiresGrad: flag(requiresGrad, name) };
}

/** `_codecs.encode(text, 'latin1')`: how Python 3 pickles bytes with protocol 2 */
function encodeLatin1(args: Tuple, name: string): Uint8Array {
  const [text, encoding] = args;
  if (typeof text !== 'string' || (encoding !== 'latin1' && encoding !== 'latin-1')) {
    fail(`${name}: only _codecs.encode(str, 'latin1') is supported`);
  }
  const bytes = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code > 0xff) fail(`${name}: _codecs.encode: character U+${code.toString(16)} is not latin-1`);
    bytes[i] = code;
  }
  return bytes;
}

function items(value: unknown, name: string): unknown[] {
  if (Array.isArray(value) || value instanceof Set) return [...value];
  return fail(`${name}: expected a list or tuple, got ${typeof value}`);
}

function pairs(value: unknown, name: string): [unknown, unknown][] {
  if (value === undefined) return [];
  if (value instanceof Map) return [...value];
  return items(value, name).map((pair) => {
    if (!Array.isArray(pair) || pair.length !== 2) fail(`${name}: OrderedDict items must be pairs`);
    return [pair[0], pair[1]];
  });
}

function count(value: unknown, what: string, name: string): number {
  if (!isCount(value)) fail(`${name}: tensor ${what} must be a non-negative integer, got ${String(value)}`);
  return value;
}

function isCount(value: unknown): value is number {
  return Number.isSafeInteger(value) && (value as number) >= 0;
}

function flag(value: unknown, name: string): boolean {
  if (typeof value !== 'boolean') fail(`${name}: requires_grad must be a bool, got ${String(value)}`);
  return value;
}

// ---------------------------------------------------------------- storages and tensors

function storageLoader(name: string, pidLength: number, dataFor: (key: string, dtype: StorageDtype, numel: number) => Uint8Array) {
  const loaded = new Map<string, StorageRecord>();
  const load = (pid: unknown): StorageRecord => {
    const { dtype, key, numel } = parseStoragePid(pid, pidLength, name);
    const known = loaded.get(key);
    if (known && known.dtype !== dtype) fail(`${name}: storage '${key}' is used as both ${known.dtype} and ${dtype}`);
    if (known) return known;
    const storage: StorageRecord = { key, dtype, numel, data: dataFor(key, dtype, numel) };
    loaded.set(key, storage);
    return storage;
  };
  return { load, loaded };
}

/**
 * `('storage', storage_type, key, location, numel)`, plus a view description in the legacy
 * format. The location (cpu, cuda:0, …) is ignored: data always load into memory.
 */
function parseStoragePid(pid: unknown, pidLength: number, name: string): { dtype: StorageDtype; key: string; numel: number } {
  const typename = isTuple(pid) ? asText(pid[0]) : undefined;
  if (typename === 'module') fail(`${name}: the file pickles a whole nn.Module; only tensors and plain containers are supported (save its state_dict)`);
  if (!isTuple(pid) || typename !== 'storage' || pid.length !== pidLength) fail(`${name}: unexpected persistent id`);
  const [, type, key, , numel, view = null] = pid;
  if (!(type instanceof StorageType)) fail(`${name}: persistent id does not name a storage type`);
  const keyText = asText(key) ?? fail(`${name}: storage key must be a string`);
  if (!isCount(numel)) fail(`${name}: storage '${keyText}' has a bad element count`);
  if (view !== null) fail(`${name}: storage views (PyTorch < 0.4) are not supported`);
  return { dtype: type.dtype, key: keyText, numel };
}

/** Python 2 era files may hold these ids as bytes */
function asText(value: unknown): string | undefined {
  if (typeof value === 'string') return value;
  return value instanceof Uint8Array ? new TextDecoder().decode(value) : undefined;
}

function isStorageRecord(value: unknown): value is StorageRecord {
  const s = value as Partial<StorageRecord> | null;
  return typeof s === 'object' && s !== null && typeof s.key === 'string' && typeof s.numel === 'number'
    && s.data instanceof Uint8Array && typeof s.dtype === 'string' && s.dtype in STORAGE_CLASS;
}

/** anything claiming to be a tensor; validateTensor checks the rest */
function isTensorRecord(value: unknown): value is TensorRecord {
  return typeof value === 'object' && value !== null && (value as Partial<TensorRecord>).kind === 'tensor';
}

function isDtypeRecord(value: unknown): value is DtypeRecord {
  const d = value as Partial<DtypeRecord>;
  return d.kind === 'dtype' && typeof d.dtype === 'string' && d.dtype in STORAGE_CLASS;
}

function checkStorageSize(storage: StorageRecord, name: string): void {
  const expected = storage.numel * ELEMENT_SIZE[storage.dtype];
  if (!isCount(storage.numel) || storage.data.length !== expected) {
    fail(`${name}: storage '${storage.key}' (${storage.numel} × ${storage.dtype}) needs ${expected} bytes but has ${storage.data.length}`);
  }
}

/** Checks that the tensor at `where` is a well-formed view that fits inside its storage. */
function validateTensor(tensor: TensorRecord, where: string, name: string): void {
  const what = `${name}: tensor '${where}'`;
  const { storage, storageOffset, shape, strides } = tensor;
  if (!isStorageRecord(storage)) fail(`${what} has no valid storage`);
  checkStorageSize(storage, name);
  if (!Array.isArray(shape) || !Array.isArray(strides) || shape.length !== strides.length) fail(`${what} needs as many strides as sizes`);
  if (![storageOffset, ...shape, ...strides].every(isCount)) fail(`${what} has an offset, size or stride that is not a non-negative integer`);
  if (typeof tensor.requiresGrad !== 'boolean') fail(`${what} has a non-boolean requiresGrad`);
  if (shape.includes(0)) return; // an empty tensor touches no element
  const last = shape.reduce((at, size, i) => at + (size - 1) * strides[i]!, storageOffset);
  if (last >= storage.numel) {
    fail(`${what} (offset ${storageOffset}, shape [${shape.join(', ')}], strides [${strides.join(', ')}]) reaches element ${last}`
      + ` but storage '${storage.key}' has ${storage.numel} elements`);
  }
}

/** Calls `visit` once per distinct tensor record inside `root`, with a path such as `conv.weight` or `layers[2]`. */
function forEachTensor(root: unknown, visit: (tensor: TensorRecord, where: string) => void): void {
  const seen = new Set<object>();
  const pending: [unknown, string][] = [[root, '']];
  while (pending.length > 0) {
    const [value, where] = pending.pop()!;
    if (typeof value !== 'object' || value === null || seen.has(value)) continue;
    seen.add(value);
    if (isTensorRecord(value)) visit(value, where || '<root>');
    else for (const [key, child] of children(value)) pending.push([child, childPath(where, key)]);
  }
}

function children(value: object): Iterable<[unknown, unknown]> {
  if (value instanceof Map) return value.entries();
  if (Array.isArray(value) || value instanceof Set) return [...value].entries();
  if (value instanceof Uint8Array || value instanceof PyGlobal) return [];
  return Object.entries(value);
}

function childPath(parent: string, key: unknown): string {
  if (typeof key === 'number') return `${parent}[${key}]`;
  return parent === '' ? String(key) : `${parent}.${String(key)}`;
}

// ---------------------------------------------------------------- writing

/**
 * Writes `value` (typically a Map of names to TensorRecords) as torch.save would, atomically:
 * into `<path>.tmp-<pid>-<random>`, fsynced, renamed over `path`, directory fsynced. On any
 * error the temporary file is removed and an existing `path` is left untouched.
 */
export function writeTorchFile(filePath: string, value: unknown, options: WriteTorchFileOptions = {}): void {
  const records = archiveRecords(value, options, filePath);
  writeFileAtomic(filePath, (sink) => {
    const zip = new ZipWriter(options.onChunk ? (chunk) => (options.onChunk!(chunk), sink(chunk)) : sink);
    for (const [record, data] of records) zip.add(`${ARCHIVE_NAME}/${record}`, data);
    zip.finish();
  });
}

/** The archive's records in the order torch.save writes them. */
function archiveRecords(value: unknown, options: WriteTorchFileOptions, name: string): [string, Uint8Array][] {
  forEachTensor(value, (tensor, where) => validateTensor(tensor, where, name));
  const keys = new Map<StorageRecord, string>();
  const pickled = pickle(value, {
    persistentId: (v) => (isStorageRecord(v) ? storagePid(v, keys, name) : undefined),
    reduce: (v) => torchReduce(v, v === value && options.orderedDict === true),
  });
  // torch sorts storage keys as strings: 0, 1, 10, 11, …, 2
  const storages = [...keys].sort(([, a], [, b]) => (a < b ? -1 : 1));
  const ascii = (text: string) => new TextEncoder().encode(text);
  return [
    ['data.pkl', pickled],
    ['byteorder', ascii('little')],
    ...storages.map(([storage, key]): [string, Uint8Array] => [`data/${key}`, storage.data]),
    ['version', ascii(`${FORMAT_VERSION}\n`)],
  ];
}

/** storages are pickled by reference, numbered in the order they are met */
function storagePid(storage: StorageRecord, keys: Map<StorageRecord, string>, name: string): Tuple {
  let key = keys.get(storage);
  if (key === undefined) {
    checkStorageSize(storage, name);
    key = String(keys.size);
    keys.set(storage, key);
  }
  return tuple(['storage', new PyGlobal('torch', STORAGE_CLASS[storage.dtype]), key, 'cpu', storage.numel]);
}

function torchReduce(value: object, writeAsOrderedDict: boolean): PyReduce | PyGlobal | undefined {
  if (isTensorRecord(value)) {
    // torch.Tensor.__reduce_ex__: the trailing OrderedDict() stands for the (unsaved) backward hooks
    return new PyReduce(REBUILD_TENSOR_V2, tuple([
      value.storage, value.storageOffset, tuple(value.shape), tuple(value.strides), value.requiresGrad,
      new PyReduce(ORDERED_DICT, tuple()),
    ]));
  }
  if (isDtypeRecord(value)) return new PyGlobal('torch', value.dtype);
  if (value instanceof Map && (writeAsOrderedDict || isOrderedDict(value))) {
    const metadata = metadataByDict.get(value);
    return new PyReduce(ORDERED_DICT, tuple(), {
      dictItems: value,
      state: metadata === undefined ? undefined : new Map([['_metadata', metadata]]),
    });
  }
  return undefined;
}

/** Writes `target` through a temporary file, fsynced and renamed over it: a crash leaves the old file or the new one. */
export function writeFileAtomic(target: string, write: (sink: (chunk: Uint8Array) => void) => void): void {
  const temp = `${target}.tmp-${process.pid}-${randomBytes(6).toString('hex')}`;
  const fd = fs.openSync(temp, 'wx');
  let open = true;
  try {
    write((chunk) => writeAll(fd, chunk));
    fs.fsyncSync(fd);
    open = false;
    fs.closeSync(fd);
    fs.renameSync(temp, target);
  } catch (error) {
    if (open) closeQuietly(fd);
    fs.rmSync(temp, { force: true });
    throw error;
  }
  fsyncDirectory(path.dirname(target));
}

function writeAll(fd: number, chunk: Uint8Array): void {
  for (let at = 0; at < chunk.length;) at += fs.writeSync(fd, chunk, at, chunk.length - at);
}

/** makes the rename itself durable */
function fsyncDirectory(dir: string): void {
  const fd = fs.openSync(dir, 'r');
  try {
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

function closeQuietly(fd: number): void {
  try {
    fs.closeSync(fd);
  } catch {
    // already failing: the original error is the one to report
  }
}

function fail(message: string): never {
  throw new Error(message);
}

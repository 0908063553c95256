/**
 * torch.save reading/writing: zip layer, restricted pickle, torch files against PyTorch fixtures.
 *
 * Fixtures come from test/fixtures/make_serialization_fixtures.py (torch 1.13), except
 * ts_saved.pt and ts_saved_expected.json, which this file's own writer test regenerates when run
 * with UPDATE_FIXTURES=1 (then check them with /usr/bin/python3 test/fixtures/check_ts_saved.py).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { fixturePath } from './helpers.js';
import { crc32, readZip, writeZip, type ZipEntry } from '../src/torch/serialization/zip.js';
import { isTuple, pickle, PyGlobal, PyReduce, tuple, unpickle, type PyCallable, type UnpickleOptions } from '../src/torch/serialization/pickle.js';
import { asOrderedDict, isOrderedDict, orderedDictMetadata, readTorchFile, writeTorchFile } from '../src/torch/serialization/torch-file.js';
import { ELEMENT_SIZE, type StorageDtype, type StorageRecord, type TensorRecord } from '../src/torch/serialization/records.js';

// ---------------------------------------------------------------- helpers

const ascii = (text: string): Uint8Array => Uint8Array.from(text, (c) => c.charCodeAt(0));

/** concatenates latin-1 strings and byte lists into one pickle */
const bytesOf = (...parts: (string | number[])[]): Uint8Array =>
  Uint8Array.from(parts.flatMap((part) => (typeof part === 'string' ? [...ascii(part)] : part)));

const le32 = (n: number): number[] => [n & 0xff, (n >> 8) & 0xff, (n >> 16) & 0xff, (n >>> 24) & 0xff];
const le64 = (n: number): number[] => [...le32(n), 0, 0, 0, 0];

function tempDir(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'serialization-test-'));
}

function halfToNumber(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exponent = (bits >> 10) & 0x1f;
  const fraction = bits & 0x3ff;
  if (exponent === 0) return sign * fraction * 2 ** -24;
  if (exponent === 31) return fraction ? NaN : sign * Infinity;
  return sign * (1 + fraction / 1024) * 2 ** (exponent - 15);
}

function bfloat16ToNumber(bits: number): number {
  return new Float32Array(Uint32Array.of(bits << 16).buffer)[0]!;
}

function elementAt(storage: StorageRecord, index: number): number {
  const view = new DataView(storage.data.buffer, storage.data.byteOffset, storage.data.byteLength);
  const at = index * ELEMENT_SIZE[storage.dtype];
  switch (storage.dtype) {
    case 'float64': return view.getFloat64(at, true);
    case 'float32': return view.getFloat32(at, true);
    case 'float16': return halfToNumber(view.getUint16(at, true));
    case 'bfloat16': return bfloat16ToNumber(view.getUint16(at, true));
    case 'int64': return Number(view.getBigInt64(at, true));
    case 'int32': return view.getInt32(at, true);
    case 'int16': return view.getInt16(at, true);
    case 'int8': return view.getInt8(at);
    case 'uint8': case 'bool': return view.getUint8(at);
  }
}

/** the tensor's elements in row-major order, following its strides */
function tensorValues(tensor: TensorRecord): number[] {
  const numel = tensor.shape.reduce((a, b) => a * b, 1);
  const index = tensor.shape.map(() => 0);
  const values: number[] = [];
  for (let n = 0; n < numel; n++) {
    values.push(elementAt(tensor.storage, index.reduce((at, i, d) => at + i * tensor.strides[d]!, tensor.storageOffset)));
    for (let d = index.length - 1; d >= 0 && ++index[d]! === tensor.shape[d]; d--) index[d] = 0;
  }
  return values;
}

function isTensor(value: unknown): value is TensorRecord {
  return typeof value === 'object' && value !== null && (value as TensorRecord).kind === 'tensor';
}

function contiguousStrides(shape: number[]): number[] {
  return shape.map((_, i) => shape.slice(i + 1).reduce((a, b) => a * b, 1));
}

function makeTensor(storage: StorageRecord, shape: number[], strides = contiguousStrides(shape), storageOffset = 0): TensorRecord {
  return { kind: 'tensor', storage, storageOffset, shape, strides, requiresGrad: false };
}

function makeStorage(dtype: StorageDtype, numel: number, write: (view: DataView, i: number) => void): StorageRecord {
  const data = new Uint8Array(numel * ELEMENT_SIZE[dtype]);
  const view = new DataView(data.buffer);
  for (let i = 0; i < numel; i++) write(view, i);
  return { key: 'unused', dtype, numel, data };
}

const float32Storage = (values: number[]) => makeStorage('float32', values.length, (v, i) => v.setFloat32(4 * i, values[i]!, true));

interface ExpectedTensor {
  dtype: StorageDtype;
  shape: number[];
  strides: number[];
  offset: number;
  requires_grad: boolean;
  values: number[];
}

const expectedTensors = JSON.parse(fs.readFileSync(fixturePath('pt_expected.json'), 'utf8')) as Record<string, Record<string, ExpectedTensor>>;

function assertTensorsMatch(value: unknown, file: string): void {
  assert.ok(value instanceof Map);
  for (const [key, want] of Object.entries(expectedTensors[file]!)) {
    const tensor = value.get(key);
    assert.ok(isTensor(tensor), `${file}: ${key} is not a tensor`);
    assert.equal(tensor.storage.dtype, want.dtype, key);
    assert.deepEqual(tensor.shape, want.shape, key);
    assert.deepEqual(tensor.strides, want.strides, key);
    assert.equal(tensor.storageOffset, want.offset, key);
    assert.equal(tensor.requiresGrad, want.requires_grad, key);
    assert.deepEqual(tensorValues(tensor), want.values, key);
  }
}

/** enough of a whitelist for plain Python values (sets and protocol-2 bytes) */
const plainGlobals: Record<string, PyCallable> = {
  'builtins.set': (args) => new Set(args[0] as unknown[]),
  'builtins.frozenset': (args) => new Set(args[0] as unknown[]),
  'builtins.bytes': () => new Uint8Array(0),
  '_codecs.encode': (args) => ascii(args[0] as string),
};

function plainOptions(extra: Partial<UnpickleOptions> = {}): UnpickleOptions {
  return { source: 'test.pkl', findGlobal: (module, name) => plainGlobals[`${module}.${name}`], ...extra };
}

// ---------------------------------------------------------------- zip

test('crc32 matches the standard check value', () => {
  assert.equal(crc32(ascii('123456789')), 0xcbf43926);
  assert.equal(crc32(new Uint8Array(0)), 0);
});

const sampleEntries: ZipEntry[] = [
  { name: 'archive/data.pkl', data: ascii('pickled bytes') },
  { name: 'archive/data/0', data: Uint8Array.from({ length: 1000 }, (_, i) => (i * 7) & 0xff) },
  { name: 'archive/empty', data: new Uint8Array(0) },
  { name: 'archive/version', data: ascii('3\n') },
];

function assertSameEntries(actual: ZipEntry[], expected: ZipEntry[]): void {
  assert.deepEqual(actual.map((e) => e.name), expected.map((e) => e.name));
  actual.forEach((entry, i) => assert.deepEqual([...entry.data], [...expected[i]!.data], entry.name));
}

test('zip round trip keeps names and data, with data aligned to 64 bytes', () => {
  const archive = writeZip(sampleEntries);
  const entries = readZip(archive, 'sample.zip');
  assertSameEntries(entries, sampleEntries);
  for (const entry of entries) assert.equal((entry.data.byteOffset - archive.byteOffset) % 64, 0, entry.name);
});

test('zip writer reproduces the archive layout of torch.save', () => {
  const original = fs.readFileSync(fixturePath('pt_state_dict.pt'));
  const rewritten = writeZip(readZip(original, 'pt_state_dict.pt'));
  assert.ok(Buffer.from(rewritten).equals(original));
});

test('zip reader detects a flipped data byte by its CRC', () => {
  const archive = writeZip(sampleEntries);
  const entries = readZip(archive, 'sample.zip');
  archive[entries[1]!.data.byteOffset + 10] ^= 0x01;
  assert.throws(() => readZip(archive, 'flipped.zip'), /^Error: flipped\.zip: CRC mismatch in 'archive\/data\/0'/);
});

test('zip reader reports truncated and corrupt archives', () => {
  const archive = writeZip(sampleEntries);
  assert.throws(() => readZip(archive.subarray(0, archive.length - 30), 'cut.zip'),
    /cut\.zip: truncated zip \(no end of central directory record in \d+ bytes\)/);
  assert.throws(() => readZip(ascii('hello world, this is not an archive'), 'text.txt'), /text\.txt: not a zip archive/);

  // a central directory that points past the end, as when the file lost its middle part
  const moved = archive.slice();
  const view = new DataView(moved.buffer);
  const zip64Eocd = moved.length - 22 - 20 - 56;
  view.setBigUint64(zip64Eocd + 48, BigInt(moved.length + 100), true);
  assert.throws(() => readZip(moved, 'model.pt'), new RegExp(`model\\.pt: truncated zip \\(central directory at ${moved.length + 100} beyond end of file ${moved.length}\\)`));

  const compressed = archive.slice();
  new DataView(compressed.buffer).setUint16(8, 8, true); // method of the first local header: deflate
  assert.throws(() => readZip(compressed, 'deflated.zip'), /deflated\.zip: entry 'archive\/data\.pkl' is compressed \(method 8\)/);
});

test('zip64 records are written and read when forced', () => {
  const archive = writeZip(sampleEntries, { forceZip64: true });
  const view = new DataView(archive.buffer, archive.byteOffset, archive.byteLength);
  const eocd = archive.length - 22;
  assert.equal(view.getUint16(eocd + 10, true), 0xffff, 'entry count deferred to the zip64 record');
  assert.equal(view.getUint32(eocd + 16, true), 0xffffffff, 'directory offset deferred to the zip64 record');
  const firstCentral = Number(view.getBigUint64(eocd - 20 - 56 + 48, true));
  assert.equal(view.getUint32(firstCentral + 24, true), 0xffffffff, 'size deferred to the zip64 extra field');
  assertSameEntries(readZip(archive, 'zip64.zip'), sampleEntries);
});

// ---------------------------------------------------------------- pickle

test('pickle round trip of plain containers', () => {
  const shared = [1, 'two'];
  const recursive: unknown[] = [];
  recursive.push(recursive);
  const value = new Map<unknown, unknown>([
    ['ints', [0, 255, 256, 65535, 65536, -1, -(2 ** 31), 2 ** 31, Number.MAX_SAFE_INTEGER, 2n ** 64n, -(2n ** 100n)]],
    ['floats', [0.5, -1e300, Infinity, -0]],
    ['text', ['', 'héllo ✓', 'x'.repeat(300)]],
    ['tuples', [tuple(), tuple([1]), tuple([1, 2]), tuple([1, 2, 3]), tuple([1, 2, 3, 4])]],
    ['bytes', [new Uint8Array(0), Uint8Array.of(0, 1, 128, 255)]],
    [7, null],
    [tuple(['a', 1]), true],
    ['set', new Set([1, 'x'])],
    ['object', { plain: 'object', nested: new Map([['deep', [false]]]) }],
    ['shared_a', shared],
    ['shared_b', shared],
    ['recursive', recursive],
    ['many', Array.from({ length: 2500 }, (_, i) => i)],
  ]);
  const back = unpickle(pickle(value), plainOptions()) as Map<unknown, unknown>;
  // plain objects come back as dicts
  assert.deepEqual(back, new Map([...value].map(([k, v]) => [k, k === 'object' ? new Map(Object.entries(v as object)) : v])));
  assert.ok((back.get('tuples') as unknown[]).every(isTuple));
  assert.equal(back.get('shared_a'), back.get('shared_b'));
  const recursiveBack = back.get('recursive') as unknown[];
  assert.equal(recursiveBack[0], recursiveBack);
  assert.ok(Object.is((back.get('floats') as number[])[3], -0));
});

const protocolFixture = JSON.parse(fs.readFileSync(fixturePath('pickle_protocols.json'), 'utf8')) as {
  protocols: Record<string, string>;
  protocol2_without_frozenset: string;
};

function expectedProtocolValue(): Map<unknown, unknown> {
  const recursive: unknown[] = [];
  recursive.push(recursive);
  return new Map<unknown, unknown>([
    ['int', 1], ['neg', -5], ['i16', 40000], ['i32', -70000], ['big', 2n ** 64n + 1n], ['negbig', -(2n ** 63n)],
    ['float', 2.5], ['str', 'h\u00e9llo \u2713'], ['bytes', Uint8Array.of(0, 1, 255)], ['list', [1, [2, 3]]],
    ['tuple', tuple([1, 2, 3, 4])], ['single', tuple([1])], ['empty_tuple', tuple()], ['set', new Set([1, 2])],
    ['frozenset', new Set([3])], ['none', null], ['bools', [true, false]],
    ['nested', new Map([['a', new Map([['b', [null]]])]])], [7, 'int key'], ['shared_a', [1]], ['shared_b', [1]],
    ['recursive', recursive],
  ]);
}

test('unpickle reads what Python pickles with protocols 0 to 5', () => {
  for (const [protocol, hex] of Object.entries(protocolFixture.protocols)) {
    const value = unpickle(Buffer.from(hex, 'hex'), plainOptions()) as Map<unknown, unknown>;
    assert.deepEqual(value, expectedProtocolValue(), `protocol ${protocol}`);
    assert.ok(isTuple(value.get('tuple')) && isTuple(value.get('empty_tuple')), `protocol ${protocol}`);
    assert.equal(value.get('shared_a'), value.get('shared_b'), `protocol ${protocol}`);
  }
});

test('pickle writes the same protocol-2 bytes as Python', () => {
  const reference = Buffer.from(protocolFixture.protocol2_without_frozenset, 'hex');
  const value = unpickle(reference, plainOptions());
  assert.equal(Buffer.from(pickle(value)).toString('hex'), reference.toString('hex'));
});

test('unpickle handles protocol-0 text opcodes, stack and memo operations', () => {
  const data = bytesOf(
    '(', "S'a\\x41\\n\\'q'\n", 'T', le32(3), 'abc', 'U', [2], 'hi', 'L-123456789012345678901234567890L\n', 'I01\n', 'I-42\n',
    'F1.5\n', 'p7\n', '0', 'g7\n', '2', '(K', [9], '1', '\x8d', le64(2), 'ok', '\x8e', le64(1), 'z', '\x96', le64(1), 'y',
    '\x8b', le32(2), [0xff, 0x7f], 'l', '.',
  );
  assert.deepEqual(unpickle(data, plainOptions()), [
    "aA\n'q", 'abc', 'hi', -123456789012345678901234567890n, true, -42, 1.5, 1.5, 'ok', ascii('z'), ascii('y'), 32767,
  ]);
});

test('unpickle calls only whitelisted callables and the given hooks', () => {
  const made: unknown[] = [];
  const options = plainOptions({
    findGlobal: (module, name) => (module === 'app' && name === 'Point' ? ((args, kwargs) => ({ args, kwargs })) as PyCallable : undefined),
    persistentLoad: (pid) => `loaded ${String(pid)}`,
    build: (target, state) => void made.push([target, state]),
  });
  const data = bytesOf('\x80\x04(', 'capp\nPoint\n', 'K', [1], '\x85', '\x81', 'capp\nPoint\n', ')', '}', '\x92', 'Pkey\n', 'N', 'b', 'l.');
  const [newobj, newobjEx, persistent] = unpickle(data, options) as [{ args: unknown[] }, { kwargs: Map<unknown, unknown> }, unknown];
  assert.deepEqual(newobj.args, [1]);
  assert.deepEqual(newobjEx.kwargs, new Map());
  assert.equal(persistent, 'loaded key');
  assert.deepEqual(made, [['loaded key', null]]);
});

test('unpickle refuses globals outside the whitelist, naming them', () => {
  const refuse = plainOptions({ source: 'evil.pkl' });
  const cases: [Uint8Array, string][] = [
    [bytesOf('\x80\x02csubprocess\nPopen\n)R.'), 'subprocess.Popen'],
    [bytesOf('\x80\x02cos\nsystem\n)R.'), 'os.system'],
    [bytesOf('c__builtin__\neval\n(S\'1\'\ntR.'), 'builtins.eval'],
    [fs.readFileSync(fixturePath('pt_malicious_builtins.pkl')), 'builtins.eval'],
  ];
  for (const [data, global] of cases) {
    assert.throws(() => unpickle(data, refuse),
      { message: `evil.pkl: refusing to load global '${global}': only tensors and plain containers are allowed` });
  }
});

test('unpickle reports bad and truncated data clearly', () => {
  const options = plainOptions({ source: 'bad.pkl' });
  assert.throws(() => unpickle(Uint8Array.of(0x80, 2, 0xff), options), { message: 'bad.pkl: unknown pickle opcode 0xff at offset 2' });
  assert.throws(() => unpickle(bytesOf('i__main__\nX\n.'), options), /bad\.pkl: unsupported pickle opcode INST \(0x69\) at offset 0/);
  assert.throws(() => unpickle(bytesOf('h', [5], '.'), options), /bad\.pkl: memo key 5 is missing/);
  assert.throws(() => unpickle(bytesOf('a.'), options), /bad\.pkl: stack underflow at offset 0/);
  assert.throws(() => unpickle(bytesOf('NR.'), options), /bad\.pkl: stack underflow/);
  assert.throws(() => unpickle(bytesOf('N)R.'), options), /bad\.pkl: cannot call a None/);
  assert.throws(() => unpickle(bytesOf('}Nb.'), options), /bad\.pkl: refusing to set object state \(BUILD\)/);
  assert.throws(() => unpickle(bytesOf('\x8e', [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f], '.'), options), /bad\.pkl: truncated pickle/);
  assert.throws(() => unpickle(bytesOf('\x80\x09N.'), options), /bad\.pkl: unsupported pickle protocol 9/);
  // huge integers: binary ones decode in linear time, decimal ones are capped as in Python 3.11
  const long4 = bytesOf('\x8b', le32(1 << 20), new Array<number>(1 << 20).fill(0x11), '.');
  assert.equal(typeof unpickle(long4, options), 'bigint');
  assert.throws(() => unpickle(bytesOf(`I${'9'.repeat(5000)}\n.`), options), /bad\.pkl: integer literal of 5000 digits at offset 0 is too long/);
  // every prefix of a real pickle fails with an error, never hangs or crashes
  const full = Buffer.from(protocolFixture.protocols['4']!, 'hex');
  for (let n = 0; n < full.length; n++) {
    assert.throws(() => unpickle(full.subarray(0, n), options), /^Error: bad\.pkl: (truncated pickle|stack underflow|MARK missing)/);
  }
});

// ---------------------------------------------------------------- torch files

test('reads a PyTorch state dict: values, OrderedDict metadata, shared and strided storages', () => {
  const state = readTorchFile(fixturePath('pt_state_dict.pt'));
  assert.ok(isOrderedDict(state));
  assert.deepEqual([...state.keys()], Object.keys(expectedTensors['pt_state_dict.pt']!));
  assertTensorsMatch(state, 'pt_state_dict.pt');
  const metadata = orderedDictMetadata(state) as Map<string, Map<string, unknown>>;
  assert.deepEqual([...metadata.keys()], ['', 'conv', 'bn', 'fc']);
  assert.equal(metadata.get('bn')!.get('version'), 2);

  const [viewA, viewB, transposed] = ['extra.view_a', 'extra.view_b', 'extra.transposed'].map((k) => state.get(k) as TensorRecord);
  assert.equal(viewA!.storage, viewB!.storage);
  assert.equal(viewB!.storageOffset, 6);
  assert.deepEqual(transposed!.strides, [1, 3]);
  const storages = [...state.values()].map((t) => (t as TensorRecord).storage);
  assert.equal(new Set(storages).size, storages.length - 1, 'only the two views share');
  assert.equal(storages[0]!.data.byteOffset % 64, 0, 'storage data stay aligned');
});

test('reads a plain dict with every dtype, a Parameter and plain values', () => {
  const value = readTorchFile(fixturePath('pt_plain_dict.pt')) as Map<unknown, unknown>;
  assert.equal(isOrderedDict(value), false);
  assertTensorsMatch(value, 'pt_plain_dict.pt');
  assert.equal((value.get('param') as TensorRecord).requiresGrad, true);
  assert.deepEqual(
    [...value].filter(([, v]) => !isTensor(v)),
    [
      ['epoch', 3], ['lr', 0.1], ['name', 'tiny'], ['big', 2n ** 60n], ['neg_big', -(2n ** 70n)], ['flag', true], ['nothing', null],
      ['nested', new Map<unknown, unknown>([
        ['list', [1, 2.5, 'x']], ['tuple', tuple([1, 'a'])], ['bytes', Uint8Array.of(0, 255, 97, 98)],
        ['set', new Set([1, 2])], ['frozen', new Set(['a'])], [7, 'int key'],
      ])],
      ['dtype', { kind: 'dtype', dtype: 'float16' }],
    ],
  );
  assert.ok(isTuple((value.get('nested') as Map<string, unknown>).get('tuple')));
});

test('reads the legacy (pre-1.6) torch.save format', () => {
  const value = readTorchFile(fixturePath('pt_legacy.pt')) as Map<string, TensorRecord>;
  assertTensorsMatch(value, 'pt_legacy.pt');
  assert.equal(value.get('a')!.storage, value.get('a_tail')!.storage);
});

test('refuses a malicious torch file without running anything', () => {
  const marker = '/tmp/arcface_pwned';
  fs.rmSync(marker, { force: true });
  const file = fixturePath('pt_malicious.pt');
  assert.throws(() => readTorchFile(file),
    { message: `${file}: refusing to load global 'posix.system': only tensors and plain containers are allowed` });
  const evalPickle = fs.readFileSync(fixturePath('pt_malicious_builtins.pkl'));
  const archive = writeZip([{ name: 'x/data.pkl', data: evalPickle }, { name: 'x/version', data: ascii('3\n') }]);
  assert.throws(() => readTorchFile({ buffer: archive, name: 'eval.pt' }), /^Error: eval\.pt: refusing to load global 'builtins\.eval'/);
  assert.equal(fs.existsSync(marker), false);
});

/** a torch archive whose data.pkl holds {'w': tensor(storage '0', shape)} and the given data records */
function craftedTorchFile(shape: number[], records: Record<string, Uint8Array>): Uint8Array {
  const storage = {};
  const tensor = new PyReduce(new PyGlobal('torch._utils', '_rebuild_tensor_v2'), tuple([
    storage, 0, tuple(shape), tuple(contiguousStrides(shape)), false, new PyReduce(new PyGlobal('collections', 'OrderedDict'), tuple()),
  ]));
  const pickled = pickle(new Map([['w', tensor]]), {
    persistentId: (v) => (v === storage ? tuple(['storage', new PyGlobal('torch', 'FloatStorage'), '0', 'cpu', 4]) : undefined),
  });
  const entries = Object.entries(records).map(([name, data]) => ({ name: `bad/${name}`, data }));
  return writeZip([{ name: 'bad/data.pkl', data: pickled }, ...entries, { name: 'bad/version', data: ascii('3\n') }]);
}

test('rejects tensors that do not fit their storage and broken storage records', () => {
  const fits = readTorchFile({ buffer: craftedTorchFile([2, 2], { 'data/0': new Uint8Array(16) }), name: 'ok.pt' }) as Map<string, TensorRecord>;
  assert.deepEqual(fits.get('w')!.shape, [2, 2]);
  assert.throws(() => readTorchFile({ buffer: craftedTorchFile([5], { 'data/0': new Uint8Array(16) }), name: 'bad.pt' }),
    { message: "bad.pt: tensor 'w' (offset 0, shape [5], strides [1]) reaches element 4 but storage '0' has 4 elements" });
  assert.throws(() => readTorchFile({ buffer: craftedTorchFile([4], {}), name: 'bad.pt' }),
    { message: "bad.pt: storage '0' has no 'bad/data/0' record" });
  assert.throws(() => readTorchFile({ buffer: craftedTorchFile([4], { 'data/0': new Uint8Array(12) }), name: 'bad.pt' }),
    { message: "bad.pt: storage '0' (4 × float32) needs 16 bytes but has 12" });
  const file = fs.readFileSync(fixturePath('pt_state_dict.pt'));
  assert.throws(() => readTorchFile({ buffer: file.subarray(0, file.length - 100), name: 'cut.pt' }), /^Error: cut\.pt: truncated zip/);
  assert.throws(() => readTorchFile({ buffer: ascii('not a model'), name: 'x.pt' }), /^Error: x\.pt: not a torch\.save file/);
});

/** the state dict of check_ts_saved.py's Tiny module, with deterministic values, two views of one storage and a transposed weight */
function deterministicStateDict(): Map<string, TensorRecord> {
  const wave = (n: number, seed: number) => Array.from({ length: n }, (_, i) => Math.fround(Math.sin(i * 0.731 + seed) / 2));
  const runningStats = float32Storage([...wave(4, 2), ...wave(4, 3).map((v) => Math.fround(1 + Math.abs(v)))]);
  const steps = makeStorage('int64', 1, (v) => v.setBigInt64(0, 42n, true));
  const metadata = asOrderedDict(new Map(
    [['', 1], ['conv', 1], ['bn', 2], ['fc', 1]].map(([prefix, version]) => [prefix, new Map([['version', version]])]),
  ));
  return asOrderedDict(new Map([
    ['conv.weight', makeTensor(float32Storage(wave(108, 1)), [4, 3, 3, 3])],
    ['bn.weight', makeTensor(float32Storage(wave(4, 5)), [4])],
    ['bn.bias', makeTensor(float32Storage(wave(4, 6)), [4])],
    ['bn.running_mean', makeTensor(runningStats, [4])],
    ['bn.running_var', makeTensor(runningStats, [4], [1], 4)],
    ['bn.num_batches_tracked', makeTensor(steps, [])],
    ['fc.weight', makeTensor(float32Storage(wave(12, 4)), [3, 4], [1, 3])],
    ['fc.bias', makeTensor(float32Storage(wave(3, 7)), [3])],
  ]), metadata);
}

/** what check_ts_saved.py compares torch.load's result with */
function expectedJson(state: Map<string, TensorRecord>): string {
  const tensors = Object.fromEntries([...state].map(([key, t]) => [key, {
    dtype: t.storage.dtype, shape: t.shape, strides: t.strides, offset: t.storageOffset, values: tensorValues(t),
  }]));
  const metadata = orderedDictMetadata(state) as Map<string, Map<string, number>>;
  return `${JSON.stringify({
    tensors,
    shared: [['bn.running_mean', 'bn.running_var']],
    metadata: Object.fromEntries([...metadata].map(([k, v]) => [k, Object.fromEntries(v)])),
  }, null, 1)}\n`;
}

test('writer output is byte-identical to the committed ts_saved.pt', (t) => {
  const dir = tempDir();
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const written = path.join(dir, 'ts_saved.pt');
  writeTorchFile(written, deterministicStateDict());
  if (process.env['UPDATE_FIXTURES']) {
    fs.copyFileSync(written, fixturePath('ts_saved.pt'));
    fs.writeFileSync(fixturePath('ts_saved_expected.json'), expectedJson(deterministicStateDict()));
  }
  assert.ok(fs.readFileSync(written).equals(fs.readFileSync(fixturePath('ts_saved.pt'))));
  assert.equal(fs.readFileSync(fixturePath('ts_saved_expected.json'), 'utf8'), expectedJson(deterministicStateDict()));
  assert.deepEqual(fs.readdirSync(dir), ['ts_saved.pt'], 'no temporary file is left behind');
});

test('writer output of a torch-written state dict has the same data.pkl as torch.save', (t) => {
  const dir = tempDir();
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const source = fixturePath('pt_state_dict.pt');
  const copy = path.join(dir, 'copy.pt');
  writeTorchFile(copy, readTorchFile(source));
  const pickleOf = (file: string) => readZip(fs.readFileSync(file), file).find((e) => e.name.endsWith('/data.pkl'))!.data;
  assert.ok(Buffer.from(pickleOf(copy)).equals(pickleOf(source)));
  const names = readZip(fs.readFileSync(copy), copy).map((e) => e.name);
  assert.deepEqual(names.slice(0, 5), ['archive/data.pkl', 'archive/byteorder', 'archive/data/0', 'archive/data/1', 'archive/data/10']);
  assert.equal(names.at(-1), 'archive/version');
});

test('writer round trip: every dtype, shared storages, empty and scalar tensors, plain values', (t) => {
  const dir = tempDir();
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const dtypes = Object.keys(ELEMENT_SIZE) as StorageDtype[];
  const storages = dtypes.map((dtype) => makeStorage(dtype, 6, (v, i) => v.setUint8(i * ELEMENT_SIZE[dtype], dtype === 'bool' ? i % 2 : i + 1)));
  const value = new Map<string, unknown>([
    ...dtypes.map((dtype, i): [string, unknown] => [dtype, makeTensor(storages[i]!, [2, 3])]),
    ['float32_tail', makeTensor(storages[1]!, [2], [2], 3)],
    ['scalar', makeTensor(storages[0]!, [], [], 5)],
    ['empty', makeTensor(makeStorage('float32', 0, () => {}), [0, 4])],
    ['config', new Map<string, unknown>([['lr', 0.5], ['dtype', { kind: 'dtype', dtype: 'bfloat16' }], ['layers', [1, tuple([2, 'x'])]]])],
  ]);
  const file = path.join(dir, 'all.pt');
  writeTorchFile(file, value, { orderedDict: true });
  const back = readTorchFile(file) as Map<string, unknown>;
  assert.ok(isOrderedDict(back));
  assert.deepEqual([...back.keys()], [...value.keys()]);
  for (const [key, original] of value) {
    const loaded = back.get(key);
    if (!isTensor(original)) {
      assert.deepEqual(loaded, original, key);
      continue;
    }
    assert.ok(isTensor(loaded), key);
    assert.deepEqual({ ...loaded, storage: null }, { ...original, storage: null }, key);
    assert.equal(loaded.storage.dtype, original.storage.dtype, key);
    assert.deepEqual([...loaded.storage.data], [...original.storage.data], key);
  }
  assert.equal((back.get('float32_tail') as TensorRecord).storage, (back.get('float32') as TensorRecord).storage);
  writeTorchFile(file, new Map([['a', 1]]));
  assert.equal(isOrderedDict(readTorchFile(file)), false, 'plain Maps stay dicts by default');
});

test('atomic write leaves an existing file untouched when writing fails', (t) => {
  const dir = tempDir();
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const target = path.join(dir, 'model.pt');
  fs.writeFileSync(target, 'previous checkpoint');
  assert.throws(() => writeTorchFile(target, new Map([['bad', () => 0]])), /cannot pickle a value of type function/);
  const tensor = makeTensor(float32Storage([1, 2]), [3]);
  assert.throws(() => writeTorchFile(target, new Map([['w', tensor]])), new RegExp(`${target}: tensor 'w' .* reaches element 2`));
  assert.equal(fs.readFileSync(target, 'utf8'), 'previous checkpoint');

  const occupied = path.join(dir, 'occupied');
  fs.mkdirSync(path.join(occupied, 'child'), { recursive: true }); // renaming over a non-empty directory fails
  assert.throws(() => writeTorchFile(occupied, new Map([['a', 1]])));
  assert.deepEqual(fs.readdirSync(dir).sort(), ['model.pt', 'occupied'], 'the temporary file is removed');
});

test('torch.load accepts a freshly written state dict (check_ts_saved.py)', (t) => {
  const python = '/usr/bin/python3';
  if (spawnSync(python, ['-c', 'import torch'], { stdio: 'ignore', timeout: 120_000 }).status !== 0) {
    t.skip(`${python} cannot import torch`);
    return;
  }
  const dir = tempDir();
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'fresh.pt');
  const expected = path.join(dir, 'fresh.json');
  writeTorchFile(file, deterministicStateDict());
  fs.writeFileSync(expected, expectedJson(deterministicStateDict()));
  const run = spawnSync(python, [fixturePath('check_ts_saved.py'), file, expected], { encoding: 'utf8', timeout: 300_000 });
  assert.equal(run.status, 0, run.stderr);
  assert.match(run.stdout, /^OK$/m);
});

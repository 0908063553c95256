/**
 * torch.save / torch.load for Tensors: files Python's `torch.load` reads, and files Python's
 * `torch.save` wrote (a plain dict or a real `state_dict()` OrderedDict), through the restricted
 * unpickler of ./serialization (nothing in a file is ever executed). Saving is atomic.
 *
 * Tensors are saved as data (requires_grad False), the way `state_dict()` hands them to torch.save.
 */
import { aten } from './dispatch.js';
import { native } from './native.js';
import { tidy } from './scope.js';
import { Tensor } from './tensor.js';
import { asOrderedDict, readTorchFile, writeTorchFile } from './serialization/torch-file.js';
import { ELEMENT_SIZE, type StorageDtype, type StorageRecord, type TensorRecord } from './serialization/records.js';

const _asStrided = aten('as_strided');

/**
 * A Map (written as a collections.OrderedDict, like state_dict()), plain object, array, tensor,
 * number or string. `onChunk` sees the file's bytes as they are written.
 */
export function save(value: unknown, path: string, { onChunk }: { onChunk?: (chunk: Uint8Array) => void } = {}): void {
  const storages = new Map<string, StorageRecord>();
  const toRecords = (v: unknown): unknown => {
    if (v instanceof Tensor) return tensorRecord(v, storages);
    if (v instanceof Map) return new Map([...v].map(([k, x]) => [k, toRecords(x)]));
    if (Array.isArray(v)) return v.map(toRecords);
    if (v !== null && typeof v === 'object' && Object.getPrototypeOf(v) === Object.prototype) {
      return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, toRecords(x)]));
    }
    return v;
  };
  const records = toRecords(value);
  writeTorchFile(path, records instanceof Map ? asOrderedDict(records) : records, { onChunk });
}

function tensorRecord(t: Tensor, storages: Map<string, StorageRecord>): TensorRecord {
  const dtype = t.dtype as StorageDtype;
  const { key, nbytes } = t.storageKey();
  let storage = storages.get(key);
  if (!storage) {
    // The whole storage, as torch.save writes it (views of one tensor share it in the file too).
    const numel = nbytes / ELEMENT_SIZE[dtype];
    const data = tidy(() => new Uint8Array((_asStrided(t, [numel], [1], 0) as Tensor).toBuffer()));
    storage = { key: String(storages.size), dtype, numel, data };
    storages.set(key, storage);
  }
  return { kind: 'tensor', storage, storageOffset: t.storageOffset(), shape: t.shape, strides: t.strides(), requiresGrad: false };
}

/**
 * Reads a torch.save file. Tensors come back as Tensors (views of one storage stay views of one
 * tensor), dicts as Maps, lists as arrays. The caller owns the tensors (see tidy/keep/dispose).
 */
export function load(path: string): unknown {
  const storageTensors = new Map<StorageRecord, Tensor>();
  const fromRecords = (v: unknown): unknown => {
    if (isTensorRecord(v)) return tensorFromRecord(v, storageTensors);
    if (v instanceof Map) return new Map([...v].map(([k, x]) => [k, fromRecords(x)]));
    if (Array.isArray(v)) return v.map(fromRecords);
    return v;
  };
  try {
    return fromRecords(readTorchFile(path));
  } finally {
    for (const t of storageTensors.values()) t.dispose();
  }
}

/** Reads a state dict (name → tensor) saved by torch.save(module.state_dict()) or by save(). */
export function loadStateDict(path: string): Map<string, Tensor> {
  const value = load(path);
  if (!(value instanceof Map)) throw new Error(`${path}: expected a state dict (a dict of tensors), found ${typeof value}`);
  for (const [key, v] of value) {
    if (!(v instanceof Tensor)) {
      for (const t of value.values()) if (t instanceof Tensor) t.dispose();
      throw new Error(`${path}: state dict entry '${String(key)}' is not a tensor`);
    }
  }
  return value as Map<string, Tensor>;
}

function isTensorRecord(v: unknown): v is TensorRecord {
  return typeof v === 'object' && v !== null && (v as TensorRecord).kind === 'tensor' && 'storage' in v;
}

function tensorFromRecord(r: TensorRecord, storageTensors: Map<StorageRecord, Tensor>): Tensor {
  let storage = storageTensors.get(r.storage);
  if (!storage) {
    storage = native.fromBuffer(r.storage.data, r.storage.dtype, [r.storage.numel]) as Tensor;
    storageTensors.set(r.storage, storage);
  }
  const view: Tensor = _asStrided(storage, r.shape, r.strides, r.storageOffset);
  return r.requiresGrad ? view.requiresGrad_(true) : view;
}

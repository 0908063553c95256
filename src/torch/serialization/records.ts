/**
 * Plain-data form of what a torch.save file holds, independent of the tensor engine:
 * the (un)pickler and zip layers speak these records; src/torch/save.ts turns them into Tensors.
 */

export type StorageDtype =
  | 'float64' | 'float32' | 'float16' | 'bfloat16'
  | 'int64' | 'int32' | 'int16' | 'int8' | 'uint8' | 'bool';

/** One storage (a flat buffer), shared by every tensor that views it. */
export interface StorageRecord {
  /** key of the record in the archive (`archive/data/<key>`) */
  key: string;
  dtype: StorageDtype;
  /** number of elements */
  numel: number;
  /** little-endian raw bytes, numel × element size */
  data: Uint8Array;
}

/** A tensor as a view into a storage. Sizes, strides and offset are in elements. */
export interface TensorRecord {
  kind: 'tensor';
  storage: StorageRecord;
  storageOffset: number;
  shape: number[];
  strides: number[];
  requiresGrad: boolean;
}

/** Bytes per element of each storage dtype. */
export const ELEMENT_SIZE: Readonly<Record<StorageDtype, number>> = {
  float64: 8, float32: 4, float16: 2, bfloat16: 2,
  int64: 8, int32: 4, int16: 2, int8: 1, uint8: 1, bool: 1,
};

/** A torch.dtype object stored as a value of its own (e.g. in a saved config), not a tensor's dtype. */
export interface DtypeRecord {
  kind: 'dtype';
  dtype: StorageDtype;
}

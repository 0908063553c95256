/** Element types and the typed arrays that carry them in JS. */

export type Dtype = 'float32' | 'float64' | 'float16' | 'bfloat16' | 'int64' | 'int32' | 'int16' | 'int8' | 'uint8' | 'bool';
export type Device = 'cpu' | `cuda` | `cuda:${number}`;
export type MemoryFormat = 'contiguous' | 'channels_last' | 'preserve';

export type TypedArray =
  | Float32Array | Float64Array | BigInt64Array | Int32Array | Int16Array | Int8Array | Uint8Array | Uint16Array;

export const FLOAT_DTYPES: readonly Dtype[] = ['float32', 'float64', 'float16', 'bfloat16'];

export function isFloatingDtype(dtype: string): boolean {
  return (FLOAT_DTYPES as readonly string[]).includes(dtype);
}

/** The dtype a typed array holds (Uint16Array is taken as raw float16 bits only when asked). */
export function dtypeOfArray(data: TypedArray): Dtype {
  if (data instanceof Float32Array) return 'float32';
  if (data instanceof Float64Array) return 'float64';
  if (data instanceof BigInt64Array) return 'int64';
  if (data instanceof Int32Array) return 'int32';
  if (data instanceof Int16Array) return 'int16';
  if (data instanceof Int8Array) return 'int8';
  if (data instanceof Uint8Array) return 'uint8';
  throw new TypeError(`tensor(): ${data.constructor.name} has no dtype of its own; pass { dtype }`);
}

/** A typed array over `buffer` for reading elements of `dtype` (16-bit floats come back as raw bits). */
export function typedArrayOf(dtype: Dtype, buffer: ArrayBuffer): TypedArray {
  switch (dtype) {
    case 'float32': return new Float32Array(buffer);
    case 'float64': return new Float64Array(buffer);
    case 'int64': return new BigInt64Array(buffer);
    case 'int32': return new Int32Array(buffer);
    case 'int16': return new Int16Array(buffer);
    case 'int8': return new Int8Array(buffer);
    case 'uint8': case 'bool': return new Uint8Array(buffer);
    case 'float16': case 'bfloat16': return new Uint16Array(buffer);
  }
}

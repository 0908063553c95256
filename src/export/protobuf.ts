/**
 * Protocol-buffer wire format, writing only: the little the ONNX writer and TensorBoard's event
 * files (../train/tensorboard.ts) need. A message is a list
 * of byte chunks; a nested message is appended by reference (its length is known once it is
 * complete), so hundreds of megabytes of weights are copied once, when the file is assembled.
 */
const WIRE_VARINT = 0, WIRE_FIXED64 = 1, WIRE_BYTES = 2, WIRE_FIXED32 = 5;

const encoder = new TextEncoder();

export class ProtoWriter {
  private readonly chunks: Uint8Array[] = [];
  /** total bytes written so far */
  length = 0;

  private push(bytes: Uint8Array): void {
    this.chunks.push(bytes);
    this.length += bytes.length;
  }

  private tag(field: number, wire: number): void {
    this.push(varint((field << 3) | wire));
  }

  /** int32/int64/enum/bool field (negative values as 10-byte two's complement, as protobuf does). */
  int(field: number, value: number | bigint): this {
    this.tag(field, WIRE_VARINT);
    this.push(varint(value));
    return this;
  }

  /** float field (fixed32, little-endian). */
  float(field: number, value: number): this {
    this.tag(field, WIRE_FIXED32);
    const b = new Uint8Array(4);
    new DataView(b.buffer).setFloat32(0, value, true);
    this.push(b);
    return this;
  }

  /** double field (fixed64, little-endian). */
  double(field: number, value: number): this {
    this.tag(field, WIRE_FIXED64);
    const b = new Uint8Array(8);
    new DataView(b.buffer).setFloat64(0, value, true);
    this.push(b);
    return this;
  }

  bytes(field: number, value: Uint8Array): this {
    this.tag(field, WIRE_BYTES);
    this.push(varint(value.length));
    this.push(value);
    return this;
  }

  string(field: number, value: string): this {
    return this.bytes(field, encoder.encode(value));
  }

  /** An embedded message; its chunks are shared, not copied. */
  message(field: number, value: ProtoWriter): this {
    this.tag(field, WIRE_BYTES);
    this.push(varint(value.length));
    for (const chunk of value.chunks) this.push(chunk);
    return this;
  }

  /** The serialised message, chunk by chunk (no copy into one buffer). */
  writeTo(sink: (chunk: Uint8Array) => void): void {
    for (const chunk of this.chunks) sink(chunk);
  }

  /** The serialised message in one buffer. */
  finish(): Uint8Array {
    const out = new Uint8Array(this.length);
    let at = 0;
    for (const chunk of this.chunks) {
      out.set(chunk, at);
      at += chunk.length;
    }
    return out;
  }
}

/** Base-128 varint; negative numbers as their 64-bit two's complement. */
export function varint(value: number | bigint): Uint8Array {
  let v = BigInt.asUintN(64, BigInt(value));
  const out: number[] = [];
  while (v >= 0x80n) {
    out.push(Number(v & 0x7fn) | 0x80);
    v >>= 7n;
  }
  out.push(Number(v));
  return Uint8Array.from(out);
}

/**
 * TensorBoard event files, written without TensorFlow: TFRecord framing (uint64 length, masked
 * CRC32C of it, the data, masked CRC32C of the data) around protobuf `Event`s
 * (tensorflow/core/util/event.proto): first `file_version: "brain.Event:2"`, then one
 * `Event{wall_time, step, summary{value{tag, simple_value}}}` per scalar, flushed as written.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ProtoWriter } from '../export/protobuf.js';

/** CRC32C (Castagnoli, reflected polynomial 0x82F63B78), table-driven. */
const CRC32C_TABLE = (() => {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
    table[n] = c >>> 0;
  }
  return table;
})();

export function crc32c(data: Uint8Array): number {
  let crc = 0xffffffff;
  for (let i = 0; i < data.length; i++) crc = CRC32C_TABLE[(crc ^ data[i]) & 0xff] ^ (crc >>> 8);
  return (crc ^ 0xffffffff) >>> 0;
}

/** TFRecord's masked CRC: rotated right by 15 bits plus a constant, so CRCs of CRCs stay unlikely. */
export function maskedCrc32c(data: Uint8Array): number {
  const crc = crc32c(data);
  return ((((crc >>> 15) | (crc << 17)) >>> 0) + 0xa282ead8) >>> 0;
}

/** One TFRecord: length, its masked CRC, the data, its masked CRC. */
export function tfRecord(data: Uint8Array): Uint8Array {
  const out = new Uint8Array(8 + 4 + data.length + 4);
  const view = new DataView(out.buffer);
  view.setBigUint64(0, BigInt(data.length), true);
  view.setUint32(8, maskedCrc32c(out.subarray(0, 8)), true);
  out.set(data, 12);
  view.setUint32(12 + data.length, maskedCrc32c(data), true);
  return out;
}

/** Event field numbers (event.proto, summary.proto). */
const EVENT_WALL_TIME = 1, EVENT_STEP = 2, EVENT_FILE_VERSION = 3, EVENT_SUMMARY = 5;
const SUMMARY_VALUE = 1, VALUE_TAG = 1, VALUE_SIMPLE_VALUE = 2;

export function fileVersionEvent(wallTime: number): Uint8Array {
  return new ProtoWriter().double(EVENT_WALL_TIME, wallTime).string(EVENT_FILE_VERSION, 'brain.Event:2').finish();
}

export function scalarsEvent(wallTime: number, step: number, scalars: Record<string, number>): Uint8Array {
  const summary = new ProtoWriter();
  for (const [tag, value] of Object.entries(scalars)) {
    summary.message(SUMMARY_VALUE, new ProtoWriter().string(VALUE_TAG, tag).float(VALUE_SIMPLE_VALUE, value));
  }
  return new ProtoWriter().double(EVENT_WALL_TIME, wallTime).int(EVENT_STEP, step).message(EVENT_SUMMARY, summary).finish();
}

const EVENT_FILE = /^events\.out\.tfevents\.\d+\..+$/;

/**
 * The run's event file in `dir`. A resumed run appends to the file it found (and the trainer cuts
 * it back to its length at the checkpoint, as it does training.log and metrics.jsonl) rather than
 * starting a second file and relying on TensorBoard's purge of out-of-order steps: one file, each
 * step once, whichever reader (TensorBoard, tbparse, EventAccumulator with purging off) looks.
 */
export class EventFileWriter {
  private readonly fd: number;
  /** the file's name in its folder (the key of its length in a checkpoint manifest) */
  readonly name: string;

  constructor(readonly dir: string) {
    fs.mkdirSync(dir, { recursive: true });
    const existing = fs.readdirSync(dir).filter((f) => EVENT_FILE.test(f)).sort();
    if (existing.length > 1) throw new Error(`${dir}: several event files (${existing.join(', ')}); keep one to resume into`);
    const now = Date.now() / 1000;
    this.name = existing[0] ?? `events.out.tfevents.${Math.floor(now)}.${os.hostname()}`;
    this.fd = fs.openSync(path.join(dir, this.name), 'a');
    if (fs.fstatSync(this.fd).size === 0) this.write(fileVersionEvent(now));
  }

  private write(event: Uint8Array): void {
    fs.writeSync(this.fd, tfRecord(event));
  }

  scalars(step: number, scalars: Record<string, number>, wallTime = Date.now() / 1000): void {
    this.write(scalarsEvent(wallTime, step, scalars));
  }

  size(): number {
    return fs.fstatSync(this.fd).size;
  }

  /** Cuts the file back to `length` (a resume); false if it is shorter (left as it is). */
  truncate(length: number): boolean {
    if (this.size() < length) return false;
    fs.ftruncateSync(this.fd, length);
    return true;
  }

  close(): void {
    fs.closeSync(this.fd);
  }
}

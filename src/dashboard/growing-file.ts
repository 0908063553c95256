/**
 * A log file read as it grows: each read takes only the bytes appended since the previous one, up
 * to the last complete line (a line being written is read next time). A file cut back — a resumed
 * run truncates its logs to the checkpoint's step, then appends again — is noticed because it got
 * shorter or because the bytes just before the last offset changed, and is read again from the start.
 * Symlinks are not read (they could point out of the run folder).
 */
import fs from 'node:fs';

const WITNESS_BYTES = 64;

export class GrowingFile {
  private offset = 0;
  /** the bytes just before `offset`, as last read */
  private witness = Buffer.alloc(0);

  constructor(readonly file: string) {}

  /** Complete lines appended since the last read; `restarted` when they start from the file's beginning again. */
  read(): { lines: string[]; restarted: boolean } {
    let fd: number;
    try {
      if (fs.lstatSync(this.file).isSymbolicLink()) return { lines: [], restarted: false };
      fd = fs.openSync(this.file, 'r');
    } catch {
      return { lines: [], restarted: false };
    }
    try {
      const size = fs.fstatSync(fd).size;
      const restarted = this.offset > 0 && (size < this.offset || !this.witnessHolds(fd));
      if (restarted) {
        this.offset = 0;
        this.witness = Buffer.alloc(0);
      }
      if (size === this.offset) return { lines: [], restarted };
      const bytes = Buffer.alloc(size - this.offset);
      const got = fs.readSync(fd, bytes, 0, bytes.length, this.offset);
      const end = bytes.lastIndexOf(0x0a, got - 1) + 1;
      if (end === 0) return { lines: [], restarted };
      const lines = bytes.subarray(0, end - 1).toString('utf8').split('\n');
      this.offset += end;
      this.witness = Buffer.from(Buffer.concat([this.witness, bytes.subarray(Math.max(0, end - WITNESS_BYTES), end)]).subarray(-WITNESS_BYTES));
      return { lines, restarted };
    } finally {
      fs.closeSync(fd);
    }
  }

  private witnessHolds(fd: number): boolean {
    const now = Buffer.alloc(this.witness.length);
    fs.readSync(fd, now, 0, now.length, this.offset - this.witness.length);
    return now.equals(this.witness);
  }
}

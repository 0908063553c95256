/**
 * Errors about data name the file and, where there is one, the record (or image) index, so that a
 * bad sample among millions can be found: `train.rec: record 1234: bad magic 0x00000000 …`.
 */
export class DataError extends Error {
  constructor(
    readonly file: string,
    readonly record: number | undefined,
    readonly reason: string,
  ) {
    super(record === undefined ? `${file}: ${reason}` : `${file}: record ${record}: ${reason}`);
    this.name = 'DataError';
  }
}

/** The `property` file beside an insightface pack: `numClasses,height,width` on one line. */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { DataError } from './errors.js';

export interface PackProperty {
  numClasses: number;
  height: number;
  width: number;
}

export function readProperty(root: string): PackProperty | undefined {
  const file = path.join(root, 'property');
  if (!existsSync(file)) return undefined;
  const fields = readFileSync(file, 'utf8').trim().split(',').map((f) => Number(f.trim()));
  if (fields.length !== 3 || !fields.every((f) => Number.isInteger(f) && f > 0)) {
    throw new DataError(file, undefined, "expected 'numClasses,height,width' (three positive integers)");
  }
  return { numClasses: fields[0], height: fields[1], width: fields[2] };
}

export function writeProperty(root: string, p: PackProperty): void {
  writeFileSync(path.join(root, 'property'), `${p.numClasses},${p.height},${p.width}\n`);
}

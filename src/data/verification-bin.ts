/**
 * insightface verification sets (`lfw.bin`, `cfp_fp.bin`, `agedb_30.bin`, …): a pickle of
 * `(list of encoded images, list of issame bools)`; images 2i and 2i+1 form pair i
 * (eval/verification.py load_bin). Read with the restricted unpickler: the originals are Python 2
 * pickles whose images are `str` (read as bytes, as `pickle.load(f, encoding='bytes')`), newer
 * ones Python 3 pickles with `bytes`. Written as Python 3's `pickle.dump(..., protocol=2)` writes.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { pickle, tuple, unpickle, type Tuple } from '../torch/serialization/pickle.js';
import { DataError } from './errors.js';

export interface VerificationSet {
  /** encoded images (JPEG or PNG), two per pair */
  images: Uint8Array[];
  /** per pair: the same identity or not */
  issame: boolean[];
}

/** Globals a .bin may use: how Python 3 spells bytes in protocol 2 (nothing is ever executed). */
function findGlobal(module: string, name: string): unknown {
  if (module === '_codecs' && name === 'encode') {
    return (args: Tuple) => {
      const [text, encoding] = args;
      if (typeof text !== 'string' || (encoding !== 'latin1' && encoding !== 'latin-1')) {
        throw new Error("_codecs.encode is only accepted as encode(str, 'latin1')");
      }
      const out = new Uint8Array(text.length);
      for (let i = 0; i < text.length; i++) {
        const c = text.charCodeAt(i);
        if (c > 0xff) throw new Error('_codecs.encode: character outside latin-1');
        out[i] = c;
      }
      return out;
    };
  }
  if ((module === 'builtins' || module === '__builtin__') && name === 'bytes') {
    return (args: Tuple) => {
      if (args.length !== 0) throw new Error('bytes(...) is only accepted without arguments');
      return new Uint8Array(0);
    };
  }
  return undefined;
}

/** Parses the bytes of a .bin file; `name` starts every error message. */
export function parseVerificationBin(bytes: Uint8Array, name: string): VerificationSet {
  let value: unknown;
  try {
    value = unpickle(bytes, { source: name, findGlobal, py2Strings: 'bytes' });
  } catch (error) {
    throw new DataError(name, undefined, `not a verification .bin pickle (${(error as Error).message.replace(`${name}: `, '')})`);
  }
  if (!Array.isArray(value) || value.length !== 2 || !Array.isArray(value[0]) || !Array.isArray(value[1])) {
    throw new DataError(name, undefined, 'expected a pickled pair (list of images, list of issame flags)');
  }
  const [images, issame] = value as [unknown[], unknown[]];
  images.forEach((image, i) => {
    if (!(image instanceof Uint8Array)) throw new DataError(name, i, 'image is not a bytes object');
  });
  const flags = issame.map((flag, i) => {
    if (typeof flag === 'boolean') return flag;
    if (flag === 0 || flag === 1) return flag === 1;
    throw new DataError(name, i, `issame flag is ${typeof flag}, not a bool`);
  });
  if (images.length < 2 * flags.length) {
    throw new DataError(name, undefined, `${flags.length} pairs need ${2 * flags.length} images, the file has ${images.length}`);
  }
  return { images: images as Uint8Array[], issame: flags };
}

export function readVerificationBin(file: string): VerificationSet {
  return parseVerificationBin(readFileSync(file), path.basename(file));
}

export function encodeVerificationBin(set: VerificationSet): Uint8Array {
  if (set.images.length !== 2 * set.issame.length) {
    throw new Error(`a verification set has two images per pair: ${set.issame.length} pairs, ${set.images.length} images`);
  }
  return pickle(tuple([set.images, set.issame]));
}

export function writeVerificationBin(file: string, set: VerificationSet): void {
  writeFileSync(file, encodeVerificationBin(set));
}

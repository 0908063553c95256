/**
 * A verification `.bin` (lfw.bin, cfp_fp.bin, agedb_30.bin, …) decoded for evaluation: the images
 * as RGB uint8 N×3×112×112 (other sizes resized), normalised per batch when embedded.
 */
import os from 'node:os';
import path from 'node:path';
import { DataError, ImageDecoder, readVerificationBin } from '../data/index.js';
import type { VerificationSet } from './verify-backbone.js';

export interface LoadedVerificationSet extends VerificationSet {
  /** the file name without `.bin` (insightface's name for the set) */
  name: string;
  /** how many images were not 112×112 and were resized */
  resized: number;
}

export async function loadVerificationSet(file: string, { threads = os.availableParallelism() }: { threads?: number } = {}): Promise<LoadedVerificationSet> {
  const { images, issame } = readVerificationBin(file);
  const encoded = images.slice(0, 2 * issame.length);
  const decoder = new ImageDecoder({ threads });
  try {
    const batch = await decoder.decode({ encoded }, encoded.map((_, i) => i), { dtype: 'uint8' });
    const failed = batch.errors.findIndex((e) => e !== null);
    if (failed >= 0) {
      batch.images.dispose();
      throw new DataError(path.basename(file), failed, `image cannot be decoded (${batch.errors[failed]})`);
    }
    return { name: path.basename(file, '.bin'), images: batch.images, issame, resized: batch.resized };
  } finally {
    decoder.close();
  }
}

/** What the loader needs from a dataset: its size, its labels' range, and where each image is. */
import type { ImageSource } from './decode.js';

export interface FaceDataset {
  /** number of samples */
  readonly length: number;
  /** labels lie in [0, numClasses), when the dataset knows it */
  readonly numClasses: number | undefined;
  /**
   * Where the images of these samples are, for the decoder; `labels` when the dataset knows them
   * without reading the images (a .rec file carries them in its records instead).
   */
  source(indices: ArrayLike<number>): { source: ImageSource; labels?: Float64Array };
  /** the file (and record) an error about sample i names */
  describe(index: number): { file: string; record?: number };
}

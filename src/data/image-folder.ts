/**
 * torchvision's ImageFolder: `root/<identity>/<image>`, identities numbered in sorted order of
 * their folder names, images in sorted order of their paths (subfolders included), with the same
 * extensions torchvision accepts. JPEG and PNG are decoded; other formats give a clear error.
 */
import { readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { DataError } from './errors.js';
import type { FaceDataset } from './dataset.js';
import type { ImageSource } from './decode.js';

export const IMG_EXTENSIONS = ['.jpg', '.jpeg', '.png', '.ppm', '.bmp', '.pgm', '.tif', '.tiff', '.webp'];

const byCodeUnit = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

export class ImageFolder implements FaceDataset {
  readonly classes: string[];
  readonly classToIdx: Map<string, number>;
  /** [path, class index] in sample order */
  readonly samples: Array<[string, number]> = [];

  constructor(readonly root: string) {
    let entries: string[];
    try {
      entries = readdirSync(root);
    } catch (error) {
      throw new DataError(root, undefined, `cannot read the image folder (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`);
    }
    this.classes = entries.filter((name) => isDirectory(path.join(root, name))).sort(byCodeUnit);
    if (this.classes.length === 0) throw new DataError(root, undefined, 'no identity folders (expected root/<identity>/<image>)');
    this.classToIdx = new Map(this.classes.map((c, i) => [c, i]));
    const empty: string[] = [];
    for (const [i, name] of this.classes.entries()) {
      const before = this.samples.length;
      for (const file of walk(path.join(root, name))) this.samples.push([file, i]);
      if (this.samples.length === before) empty.push(name);
    }
    if (empty.length > 0) {
      throw new DataError(root, undefined, `no images in ${empty.slice(0, 5).join(', ')}${empty.length > 5 ? ', …' : ''} (extensions: ${IMG_EXTENSIONS.join(' ')})`);
    }
  }

  get length(): number {
    return this.samples.length;
  }

  get numClasses(): number {
    return this.classes.length;
  }

  get targets(): number[] {
    return this.samples.map(([, label]) => label);
  }

  source(indices: ArrayLike<number>): { source: ImageSource; labels: Float64Array } {
    const files = Array.from(indices, (i) => this.samples[i][0]);
    return { source: { files }, labels: Float64Array.from(indices, (i) => this.samples[i][1]) };
  }

  describe(index: number): { file: string } {
    return { file: this.samples[index][0] };
  }
}

function isDirectory(p: string): boolean {
  try {
    return statSync(p).isDirectory(); // follows symbolic links, as os.scandir's is_dir()
  } catch {
    return false;
  }
}

/** os.walk(followlinks=True), directories in sorted order of their paths, files sorted within each. */
function walk(top: string): string[] {
  const dirs: Array<[string, string[]]> = [];
  const visit = (dir: string) => {
    const files: string[] = [];
    for (const name of readdirSync(dir)) {
      const full = path.join(dir, name);
      if (isDirectory(full)) visit(full);
      else if (IMG_EXTENSIONS.some((ext) => name.toLowerCase().endsWith(ext))) files.push(name);
    }
    dirs.push([dir, files.sort(byCodeUnit)]);
  };
  visit(top);
  dirs.sort((a, b) => byCodeUnit(a[0], b[0]));
  return dirs.flatMap(([dir, files]) => files.map((f) => path.join(dir, f)));
}

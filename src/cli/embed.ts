/**
 * `arcface embed`: face embeddings of image files (aligned 112×112 crops, JPEG or PNG).
 *
 *   arcface embed --model model.pt --network r50 --images a.jpg b.png faces/ --out embeddings.json [--raw] [--flip] [--batch-size 64]
 *   arcface embed --onnx model.onnx --images faces/ --out embeddings.npy
 *
 * Folders are searched recursively for .jpg/.jpeg/.png, in sorted order. Embeddings are
 * L2-normalised unless --raw; --flip adds the mirror image's embedding first (the flip test).
 * JSON output is {"files": [...], "embeddings": [[...], ...]} in input order; .npy a float32
 * N×E array (NumPy format 1.0) whose rows follow the same order.
 */
import { readdirSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import os from 'node:os';
import * as torch from '../torch/index.js';
import { ImageDecoder } from '../data/index.js';
import { embedImages, writeNpy, type Embedder } from '../eval/index.js';
import { intOption, listOption, parseOptions, UsageError } from './args.js';
import { openEmbedder } from './eval.js';

const EXTENSIONS = new Set(['.jpg', '.jpeg', '.png']);

/** Files as given; folders expanded to their JPEG/PNG files, recursively, sorted. */
export function imageFiles(inputs: string[]): string[] {
  const walk = (dir: string): string[] =>
    readdirSync(dir)
      .sort()
      .flatMap((name) => {
        const full = path.join(dir, name);
        if (statSync(full).isDirectory()) return walk(full);
        return EXTENSIONS.has(path.extname(name).toLowerCase()) ? [full] : [];
      });
  return inputs.flatMap((input) => {
    let isDirectory;
    try {
      isDirectory = statSync(input).isDirectory();
    } catch {
      throw new Error(`${input}: no such file or folder`);
    }
    return isDirectory ? walk(input) : [input];
  });
}

/** Embeddings of the files, `batchSize` images at a time; rows in file order. */
async function embedFiles(embedder: Embedder, files: string[], o: { batchSize: number; flip: boolean; raw: boolean }) {
  const decoder = new ImageDecoder({ threads: os.availableParallelism() });
  const rows: Float32Array[] = [];
  const resized: string[] = [];
  let dim = 0;
  try {
    for (let start = 0; start < files.length; start += o.batchSize) {
      const batchFiles = files.slice(start, start + o.batchSize);
      const batch = await decoder.decode({ files: batchFiles }, batchFiles.map((_, i) => start + i), { dtype: 'uint8' });
      try {
        const failed = batch.errors.findIndex((e) => e !== null);
        if (failed >= 0) throw new Error(`${batchFiles[failed]}: ${batch.errors[failed]}`);
        batchFiles.forEach((f, i) => {
          const [w, h] = [batch.sizes[2 * i], batch.sizes[2 * i + 1]];
          if (w !== 112 || h !== 112) resized.push(`${f} (${w}×${h})`);
        });
        const { plain, flipped } = await embedImages(embedder, batch.images, { batchSize: o.batchSize, flip: o.flip });
        const data = torch.tidy(() => {
          const e = flipped ? plain.add(flipped) : plain;
          return (o.raw ? e : torch.normalize(e, 2, 1)).data() as Float32Array;
        });
        torch.dispose(plain, flipped);
        dim = data.length / batchFiles.length;
        rows.push(data);
      } finally {
        batch.images.dispose();
      }
    }
  } finally {
    decoder.close();
  }
  const embeddings = new Float32Array(files.length * dim);
  rows.reduce((at, r) => (embeddings.set(r, at), at + r.length), 0);
  return { embeddings, dim, resized };
}

export async function embed(args: string[]): Promise<number> {
  const command = 'arcface embed';
  const [inputs, rest] = listOption(args, 'images');
  const o = parseOptions(rest, { values: ['model', 'network', 'onnx', 'batch-size', 'out', 'device'], flags: ['raw', 'flip'] }, command);
  const out = o.get('out');
  if (inputs.length === 0 || typeof out !== 'string') throw new UsageError(`${command}: needs --images <files or folders> and --out <embeddings.json|.npy>`);
  const format = path.extname(out).toLowerCase();
  if (format !== '.json' && format !== '.npy') throw new UsageError(`${command}: --out must end in .json or .npy, got '${out}'`);
  const files = imageFiles(inputs);
  if (files.length === 0) throw new Error(`no .jpg/.jpeg/.png images in ${inputs.join(', ')}`);
  const batchSize = intOption(o, 'batch-size', 64);

  const { embedder } = await openEmbedder(o, command);
  let result;
  try {
    result = await embedFiles(embedder, files, { batchSize, flip: o.has('flip'), raw: o.has('raw') });
  } finally {
    await embedder.dispose();
  }
  const { embeddings, dim, resized } = result;
  if (resized.length > 0) {
    console.error(`warning: ${resized.length} of ${files.length} images are not 112×112 and were resized (embeddings expect aligned 112×112 face crops): ${resized.slice(0, 5).join(', ')}${resized.length > 5 ? ', …' : ''}`);
  }
  if (format === '.npy') writeNpy(out, embeddings, [files.length, dim]);
  else {
    const rows = files.map((_, i) => Array.from(embeddings.subarray(i * dim, (i + 1) * dim)));
    writeFileSync(out, `${JSON.stringify({ files, embeddings: rows })}\n`);
  }
  console.log(`${out}: ${files.length} ${o.has('raw') ? 'raw' : 'normalised'} embeddings of size ${dim}${o.has('flip') ? ' (flip test)' : ''}`);
  return 0;
}

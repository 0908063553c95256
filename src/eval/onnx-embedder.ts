/**
 * An ONNX model (ours, or insightface's / torch2onnx.py's) as an Embedder, run by onnxruntime on
 * the CPU. Input and output are found by position, not name: exporters name them differently
 * ('input.1', 'data'; '683', 'embedding', …). A model with a fixed batch size is fed that many
 * images at a time, one that fails for a batch of several one image at a time.
 */
import { existsSync } from 'node:fs';
import type { InferenceSession } from 'onnxruntime-node';
import * as torch from '../torch/index.js';
import type { Embedder } from './embedder.js';

export class OnnxEmbedder implements Embedder {
  private constructor(
    private readonly ort: typeof import('onnxruntime-node'),
    private readonly session: InferenceSession,
    readonly file: string,
    /** images per run: the model's fixed batch size, 1 once a symbolic batch failed for more, or undefined (any) */
    private batch: number | undefined,
  ) {}

  static async create(file: string, { threads }: { threads?: number } = {}): Promise<OnnxEmbedder> {
    if (!existsSync(file)) throw new Error(`${file}: no such ONNX file`);
    // loaded on first use: the rest of the library does not need onnxruntime
    const ort = await import('onnxruntime-node');
    let session: InferenceSession;
    try {
      // errors come back as exceptions; onnxruntime's own log would print them a second time
      session = await ort.InferenceSession.create(file, { intraOpNumThreads: threads ?? 0, graphOptimizationLevel: 'all', logSeverityLevel: 4 });
    } catch (error) {
      throw new Error(`${file}: onnxruntime cannot load it (${(error as Error).message})`);
    }
    const input = session.inputMetadata[0];
    if (session.inputNames.length !== 1 || !input?.isTensor || input.shape.length !== 4) {
      await session.release();
      throw new Error(`${file}: expected one N×3×H×W image input, found ${session.inputNames.join(', ') || 'none'}`);
    }
    const batch = input.shape[0];
    return new OnnxEmbedder(ort, session, file, typeof batch === 'number' && batch > 0 ? batch : undefined);
  }

  /** Images per run: the model's fixed batch, 1 after a symbolic batch failed for more, undefined while any batch works. */
  get imagesPerRun(): number | undefined {
    return this.batch;
  }

  async embed(images: torch.Tensor): Promise<torch.Tensor> {
    const data = torch.tidy(() => images.float().contiguous().data() as Float32Array);
    const [n, ...rest] = images.shape;
    if (this.batch === undefined && n > 1) {
      try {
        return await this.run(data, n, rest, n);
      } catch (error) {
        // torch2onnx.py files may declare a symbolic batch yet work for 1 only (arcface_torch's
        // MobileFaceNet flattens with x.view(x.size(0), -1), traced into a Reshape to [1, -1])
        this.batch = 1;
        return this.run(data, n, rest, 1).catch(() => Promise.reject(error));
      }
    }
    return this.run(data, n, rest, this.batch ?? n);
  }

  /** Runs the images `step` at a time (a fixed-batch model gets its last chunk padded with zeros). */
  private async run(data: Float32Array, n: number, imageShape: number[], step: number): Promise<torch.Tensor> {
    const perImage = data.length / n;
    const chunks: Float32Array[] = [];
    let width = 0;
    for (let start = 0; start < n; start += step) {
      const chunk = new Float32Array(step * perImage);
      chunk.set(data.subarray(start * perImage, Math.min(n, start + step) * perImage));
      const feeds = { [this.session.inputNames[0]]: new this.ort.Tensor('float32', chunk, [step, ...imageShape]) };
      const output = (await this.session.run(feeds))[this.session.outputNames[0]];
      if (output.dims.length !== 2) throw new Error(`${this.file}: the output is [${output.dims.join(', ')}], not batch × embedding`);
      width = output.dims[1];
      chunks.push((output.data as Float32Array).subarray(0, Math.min(step, n - start) * width));
    }
    const out = new Float32Array(n * width);
    chunks.reduce((at, c) => (out.set(c, at), at + c.length), 0);
    return torch.keep(torch.tensor(out, { shape: [n, width] }));
  }

  async dispose(): Promise<void> {
    await this.session.release();
  }
}

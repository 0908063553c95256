/**
 * ONNX export of the ViTs, checked by running the files in onnxruntime-node: vit_t with random
 * weights (attention far from uniform) and the two scaled-down arcface_torch models of
 * test/fixtures/make_vit_fixtures.py (LayerNorm with qkv bias; the per-patch BatchNorm variant)
 * give libtorch's eval-mode embeddings at batch sizes 1 and 7 from one file, with batch norms kept
 * and folded, and the small models PyTorch's own eval embeddings (computed live on this machine by
 * arcface_torch's traced graphs: test/reference/torch_reference.py vit); the default opsets; the CLI.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { format } from 'node:util';
import * as torch from '../src/torch/index.js';
import * as nn from '../src/nn/index.js';
import { getModel, VisionTransformer } from '../src/models/index.js';
import { exportOnnx, writeOnnx } from '../src/export/index.js';
import { exportCommand } from '../src/cli/export.js';
import { fixturePath } from './helpers.js';
import { deterministicInput } from './backbone-weights.js';
import { torchReference, torchReferenceSkip } from './torch-reference.js';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'export-onnx-vit-'));
after(() => fs.rmSync(dir, { recursive: true, force: true }));

/** Weights that make q·kᵀ O(1) per head (attention far from uniform) and norms far from the identity. */
function randomize(model: VisionTransformer): void {
  torch.noGrad(() => {
    model.posEmbed.normal_(0, 0.5);
    for (const m of model.modules()) {
      if (m instanceof nn.Conv2d) m.weight.normal_(0, Math.sqrt(1 / (m.weight.shape[1] * m.kernelSize[0] * m.kernelSize[1])));
      else if (m instanceof nn.Linear) {
        m.weight.normal_(0, Math.sqrt(1 / m.inFeatures));
        m.bias?.normal_(0, 0.1);
      } else if (m instanceof nn.LayerNorm || m instanceof nn.BatchNorm) {
        m.weight?.uniform_(0.5, 1.5);
        m.bias?.normal_(0, 0.2);
        if (m instanceof nn.BatchNorm) {
          m.runningMean!.normal_(0, 0.2);
          m.runningVar!.uniform_(0.5, 2);
        }
      }
    }
  });
}

/** The scaled-down fixture model with the weights PyTorch saved. */
function fixtureModel(key: 'small_ln' | 'small_bn'): VisionTransformer {
  const c = JSON.parse(fs.readFileSync(fixturePath('vit_small.json'), 'utf8'))[key];
  const model = new VisionTransformer({
    imgSize: 112, patchSize: 9, embeddingSize: c.num_classes, embedDim: c.embed_dim, depth: c.depth, numHeads: c.num_heads,
    qkvBias: c.qkv_bias, dropPathRate: c.drop_path_rate, normLayer: c.norm_layer, maskRatio: c.mask_ratio,
  });
  torch.tidy(() => model.loadStateDict(torch.loadStateDict(fixturePath(`vit_${key}.pt`)), { strict: true }));
  return model;
}

/**
 * onnxruntime's output for the whole batch in one run (OnnxEmbedder would fall back to one image
 * at a time if the batch failed, hiding a baked-in batch size).
 */
async function runOnnx(file: string, x: torch.Tensor): Promise<torch.Tensor> {
  const ort = await import('onnxruntime-node');
  const session = await ort.InferenceSession.create(file);
  try {
    const data = torch.tidy(() => x.contiguous().data() as Float32Array);
    const output = (await session.run({ [session.inputNames[0]]: new ort.Tensor('float32', data, x.shape) }))[session.outputNames[0]];
    return torch.tensor(Float32Array.from(output.data as Float32Array), { shape: output.dims.map(Number) });
  } finally {
    await session.release();
  }
}

const evalForward = (model: VisionTransformer, x: torch.Tensor) => torch.noGrad(() => model.eval().forward(x));
const maxAbs = (t: torch.Tensor) => torch.tidy(() => t.abs().max().item());
const maxDiff = (a: torch.Tensor, b: torch.Tensor) => torch.tidy(() => a.sub(b).abs().max().item());

/** Exports with batch norms kept and folded; each file's embeddings of batches of 1 and 7 equal libtorch's within 1e-4. */
async function assertExportMatches(name: string, model: VisionTransformer, expected: { opset: number; folded: number; batchNorms: number }): Promise<void> {
  const inputs = [torch.randn([1, 3, 112, 112]), torch.randn([7, 3, 112, 112])];
  const ours = inputs.map((x) => evalForward(model, x));
  try {
    for (const simplifyBn of [false, true]) {
      const file = path.join(dir, `${name}-${simplifyBn}.onnx`);
      const summary = writeOnnx(file, model, { simplifyBn });
      assert.equal(summary.opset, expected.opset);
      assert.deepEqual(summary.outputShape, ['None', ours[0].shape[1]]);
      assert.equal(summary.foldedBatchNorms, simplifyBn ? expected.folded : 0);
      assert.equal(summary.ops.BatchNormalization, expected.batchNorms - summary.foldedBatchNorms || undefined);
      for (const [i, x] of inputs.entries()) {
        const theirs = await runOnnx(file, x);
        assert.deepEqual(theirs.shape, ours[i].shape);
        assert.ok(maxAbs(ours[i]) > 0.1 && maxAbs(ours[i]) < 100, `embedding scale ${maxAbs(ours[i])}`);
        assert.ok(maxDiff(ours[i], theirs) <= 1e-4, `${name}, folded ${simplifyBn}, batch ${x.shape[0]}: max |difference| ${maxDiff(ours[i], theirs)}`);
        theirs.dispose();
      }
    }
  } finally {
    torch.dispose(inputs, ours);
  }
}

test('vit_t: onnxruntime\'s embeddings equal libtorch\'s within 1e-4 (batch 1 and 7, feature batch norms kept and folded), opset 17', async () => {
  torch.manualSeed(11);
  const model = getModel('vit_t', { embeddingSize: 128 }) as VisionTransformer;
  try {
    randomize(model);
    await assertExportMatches('vit_t', model, { opset: 17, folded: 2, batchNorms: 2 });
    assert.throws(() => exportOnnx(model, { opset: 16 }), /blocks\.0\.norm1: LayerNormalization needs opset 17 or later \(exporting opset 16\)/);
  } finally {
    model.dispose();
  }
});

for (const [key, expected] of [
  ['small_ln', { opset: 17, folded: 2, batchNorms: 2 }],
  // 2 blocks × 2 per-patch norms + the final norm stay (they follow an Add)
  ['small_bn', { opset: 13, folded: 2, batchNorms: 7 }],
] as const) {
  test(`${key} (arcface_torch's weights): onnxruntime gives libtorch's embeddings (batch 1 and 7) and PyTorch's within 1e-4, opset ${expected.opset}`, async (t) => {
    torch.manualSeed(12);
    const model = fixtureModel(key);
    try {
      await assertExportMatches(key, model, expected);
      await t.test('onnxruntime gives PyTorch\'s eval embedding (live reference)', { skip: torchReferenceSkip }, async () => {
        const pytorchEval = torchReference<Record<typeof key, { eval: number[] }>>('vit')[key].eval;
        const x = deterministicInput(4);
        const got = await runOnnx(path.join(dir, `${key}-false.onnx`), x);
        const want = torch.tensor(Float32Array.from(pytorchEval), { shape: got.shape });
        assert.ok(maxDiff(got, want) <= 1e-4, `${key}: onnxruntime vs PyTorch max |difference| ${maxDiff(got, want)}`);
        torch.dispose(x, got, want);
      });
    } finally {
      model.dispose();
    }
  });
}

test('arcface export onnx --network vit_t: opset 17 by default, --check passes; a wrong image size is an error', async () => {
  torch.manualSeed(13);
  const modelFile = path.join(dir, 'vit_t.pt'), out = path.join(dir, 'vit_t.onnx');
  const model = getModel('vit_t', { embeddingSize: 64 });
  torch.tidy(() => torch.save(model.stateDict(), modelFile));
  assert.throws(() => exportOnnx(model, { imageShape: [3, 96, 96] }), /patch_embed: input image size \(96\*96\) doesn't match model \(112\*112\)/);
  model.dispose();

  const stdout: string[] = [];
  const log = console.log;
  console.log = (...a: unknown[]) => stdout.push(format(...a));
  const live = torch.liveTensors();
  try {
    assert.equal(await exportCommand(['onnx', '--model', modelFile, '--network', 'vit_t', '--out', out, '--check']), 0);
  } finally {
    console.log = log;
  }
  assert.ok(torch.liveTensors() <= live, `left ${torch.liveTensors() - live} tensors`);
  assert.match(stdout[0], /vit_t\.onnx: vit_t, opset 17, \d+ nodes \(Conv 1, Reshape 26, Transpose 37, Add 61, .*LayerNormalization 25, .*Softmax 12, .*\), output \[None, 64\]/);
  assert.match(stdout[1], /onnxruntime check: max \|difference\| \d\.\d+e-\d+ over embeddings up to/);
  await assert.rejects(exportCommand(['onnx', '--model', modelFile, '--network', 'vit_t', '--out', out, '--opset', '13']), /LayerNormalization needs opset 17/);
});

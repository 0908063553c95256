/**
 * ONNX export, checked by running the files in onnxruntime-node: the backbones' embeddings equal
 * libtorch's (eval mode, float32, random weights and batch-norm statistics) at batch sizes 1 and 7,
 * with batch norms kept or folded; the generic layers; the file's header; the emitter registry.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as torch from '../src/torch/index.js';
import * as nn from '../src/nn/index.js';
import { getModel, type Backbone } from '../src/models/index.js';
import { exportOnnx, registerEmitter, torchOutputName, writeOnnx, type OnnxExportOptions } from '../src/export/index.js';
import { OnnxEmbedder, TorchEmbedder } from '../src/eval/index.js';
import { fixturePath } from './helpers.js';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'export-onnx-'));
after(() => fs.rmSync(dir, { recursive: true, force: true }));

/**
 * Random weights at a scale that keeps embeddings O(1–10) through 50 layers, and batch norms
 * whose running statistics and affine parameters are far from the identity.
 */
function randomize(model: nn.Module): void {
  torch.noGrad(() => {
    for (const [, m] of model.namedModules()) {
      if (m instanceof nn.Conv2d) m.weight.normal_(0, Math.sqrt(0.5 / (m.weight.shape[1] * m.kernelSize[0] * m.kernelSize[1])));
      else if (m instanceof nn.Linear) m.weight.normal_(0, Math.sqrt(1 / m.inFeatures));
      else if (m instanceof nn.PReLU) m.weight.uniform_(0, 0.5);
      else if (m instanceof nn.BatchNorm) {
        m.runningMean!.normal_(0, 0.2);
        m.runningVar!.uniform_(0.5, 2);
        // IResNet's `features` keeps its weight at 1 (not trained)
        if (m.weight?.requiresGrad) m.weight.uniform_(0.5, 1.5);
        m.bias?.normal_(0, 0.2);
      }
    }
  });
}

/** Embeddings of each input by libtorch (eval mode) and by onnxruntime running each file. */
async function embeddings(model: nn.Module, files: string[], inputs: torch.Tensor[]): Promise<{ ours: torch.Tensor[]; theirs: torch.Tensor[][] }> {
  const torchEmbedder = new TorchEmbedder(model as Backbone);
  const ours = [];
  for (const x of inputs) ours.push(await torchEmbedder.embed(x));
  const theirs = [];
  for (const file of files) {
    const onnx = await OnnxEmbedder.create(file);
    const out = [];
    for (const x of inputs) out.push(await onnx.embed(x));
    assert.equal(onnx.imagesPerRun, undefined, `${file} ran the batch of ${inputs.at(-1)!.shape[0]} whole, without falling back to one image at a time`);
    theirs.push(out);
    await onnx.dispose();
  }
  return { ours, theirs };
}

const maxAbs = (t: torch.Tensor) => torch.tidy(() => t.abs().max().item());
const maxDiff = (a: torch.Tensor, b: torch.Tensor) => torch.tidy(() => a.sub(b).abs().max().item());

for (const network of ['r18', 'mbf', 'r50']) {
  test(`${network}: onnxruntime's embeddings equal libtorch's within 1e-4 (batch 1 and 7, batch norms kept and folded)`, async () => {
    torch.manualSeed(1);
    const model = getModel(network, { embeddingSize: 128 });
    randomize(model);
    const inputs = [torch.randn([1, 3, 112, 112]), torch.randn([7, 3, 112, 112])];
    try {
      const files = [false, true].map((simplifyBn) => {
        const file = path.join(dir, `${network}-${simplifyBn}.onnx`);
        const summary = writeOnnx(file, model, { simplifyBn });
        assert.equal(summary.foldedBatchNorms > 0, simplifyBn);
        // every batch norm of MobileFaceNet follows a conv or linear layer; IResNet's pre-activation ones do not
        if (simplifyBn) assert.equal(summary.ops.BatchNormalization, network === 'mbf' ? undefined : network === 'r18' ? 9 : 25);
        return file;
      });
      const { ours, theirs } = await embeddings(model, files, inputs);
      ours.forEach((a, i) => {
        assert.deepEqual(a.shape, [inputs[i].shape[0], 128]);
        assert.ok(maxAbs(a) > 0.5 && maxAbs(a) < 100, `embedding scale ${maxAbs(a)}`);
        theirs.forEach((b, f) => {
          assert.deepEqual(b[i].shape, a.shape);
          assert.ok(maxDiff(a, b[i]) <= 1e-4, `${files[f]}, batch ${a.shape[0]}: max |difference| ${maxDiff(a, b[i])} (embeddings up to ${maxAbs(a)})`);
        });
      });
      torch.dispose(ours, theirs);
    } finally {
      model.dispose();
      torch.dispose(inputs);
    }
  });
}

/** The ModelProto's ir_version (field 1) and opset_import version (field 8 → 2), read from the bytes. */
function header(bytes: Uint8Array): { irVersion: number; opset: number } {
  let at = 0;
  const varint = () => {
    let v = 0, shift = 1;
    for (;;) {
      const c = bytes[at++];
      v += (c & 0x7f) * shift;
      shift *= 128;
      if (c < 0x80) return v;
    }
  };
  const out = { irVersion: 0, opset: 0 };
  while (at < bytes.length) {
    const key = varint(), field = key >> 3;
    if ((key & 7) === 0) {
      const v = varint();
      if (field === 1) out.irVersion = v;
    } else {
      const length = varint();
      if (field === 8) out.opset = bytes[at + length - 1]; // …, 0x10 (field 2, varint), version < 128
      at += length;
    }
  }
  return out;
}

test('the file: IR version matching the opset, input.1 as [None, 3, 112, 112], the output name asked for', async () => {
  torch.manualSeed(2);
  const model = getModel('mbf', { embeddingSize: 64 });
  try {
    for (const [opset, irVersion] of [[13, 7], [17, 8]]) {
      const file = path.join(dir, `mbf-opset${opset}.onnx`);
      writeOnnx(file, model, { opset, outputName: '553' });
      assert.deepEqual(header(fs.readFileSync(file)), { irVersion, opset });
      const session = await OnnxEmbedder.create(file);
      await session.dispose();
    }
    const ort = await import('onnxruntime-node');
    const session = await ort.InferenceSession.create(path.join(dir, 'mbf-opset13.onnx'));
    assert.deepEqual(session.inputNames, ['input.1']);
    assert.deepEqual(session.outputNames, ['553']);
    const [input] = session.inputMetadata, [output] = session.outputMetadata;
    assert.ok(input.isTensor && output.isTensor);
    assert.deepEqual(input.shape, ['None', 3, 112, 112]);
    assert.deepEqual(output.shape, ['None', 64]);
    await session.release();
    assert.throws(() => exportOnnx(model, { opset: 12 }), /opset 12 is not supported/);
  } finally {
    model.dispose();
  }
});

test('generic layers: Conv (same/groups/bias), BatchNorm without affine, activations, Flatten/Reshape, Linear on 2-D and 3-D, LayerNorm', async () => {
  torch.manualSeed(3);
  const convNet = new nn.Sequential(
    new nn.Conv2d(3, 8, 3, { padding: 'same' }),
    new nn.BatchNorm2d(8, { affine: false }),
    new nn.ReLU(),
    new nn.Conv2d(8, 8, 3, { stride: 2, padding: 1, groups: 2, bias: false }),
    new nn.PReLU(8),
    new nn.ReLU6(),
    new nn.Dropout(0.3),
    new nn.Identity(),
    new nn.Conv2d(8, 4, 4, { stride: 4, dilation: 1 }),
    new nn.Flatten(),
    new nn.Linear(4 * 14 * 14, 16),
    new nn.BatchNorm1d(16),
    new nn.Sigmoid(),
  );
  // patches → tokens, as a ViT stem: Flatten(2) is a Reshape, Linear on N×T×D a MatMul
  const tokenNet = new nn.Sequential(new nn.Conv2d(3, 4, 16, { stride: 16 }), new nn.Flatten(2), new nn.Linear(49, 8), new nn.LayerNorm(8), new nn.Flatten(), new nn.Linear(32, 5));
  try {
    for (const [name, model, options] of [['conv', convNet, {}], ['tokens', tokenNet, { opset: 17 }]] as [string, nn.Module, OnnxExportOptions][]) {
      randomize(model);
      const file = path.join(dir, `${name}.onnx`);
      writeOnnx(file, model, options);
      const x = torch.randn([3, 3, 112, 112]);
      const { ours, theirs } = await embeddings(model, [file], [x]);
      assert.ok(maxDiff(ours[0], theirs[0][0]) <= 1e-5 * Math.max(1, maxAbs(ours[0])), `${name}: max |difference| ${maxDiff(ours[0], theirs[0][0])}`);
      torch.dispose(x, ours, theirs);
    }
    assert.throws(() => exportOnnx(tokenNet, { opset: 13 }), /3: LayerNormalization needs opset 17 or later/);
    assert.throws(() => exportOnnx(new nn.Sequential(new nn.BatchNorm2d(3, { trackRunningStats: false }))), /0 has no running statistics/);
  } finally {
    convNet.dispose();
    tokenNet.dispose();
  }
});

class Doubler extends nn.Module {
  forward(x: torch.Tensor): torch.Tensor {
    return x.mul(2);
  }
}

test('a module without an emitter is an error naming it; registering one makes it exportable', async () => {
  const model = new nn.Sequential(new nn.Conv2d(3, 2, 1), new Doubler(), new nn.Flatten());
  try {
    assert.throws(() => exportOnnx(model), /no emitter for Doubler at '1' \(add one with registerEmitter\)/);
    registerEmitter(Doubler, (m, x, g) => g.node('Mul', [x.name, g.constant(`${g.path(m)}.two`, Float32Array.of(2), [])], x.shape, { name: g.path(m) }));
    const file = path.join(dir, 'doubler.onnx');
    writeOnnx(file, model);
    const x = torch.randn([2, 3, 112, 112]);
    const { ours, theirs } = await embeddings(model, [file], [x]);
    assert.ok(maxDiff(ours[0], theirs[0][0]) <= 1e-6);
    torch.dispose(x, ours, theirs);
  } finally {
    model.dispose();
  }
});

test('output names are torch.onnx.export\'s for arcface_torch\'s networks at opsets 13–17 (PyTorch 1.13 fixture)', () => {
  const fixture = fixturePath('onnx_output_names.json');
  const { names } = JSON.parse(fs.readFileSync(fixture, 'utf8')) as { names: Record<string, Record<string, [string, string]>> };
  for (const [network, byOpset] of Object.entries(names)) {
    for (const opset of ['13', '14', '15', '16', '17']) {
      assert.deepEqual(byOpset[opset], ['input.1', torchOutputName(network)], `${network} at opset ${opset}`);
    }
  }
  assert.equal(torchOutputName('vit_t'), undefined);
});

test('an ONNX file written as torch2onnx.py writes them runs: input "data", a numeric output, a batch of 1 only', async () => {
  const file = fixturePath('torch_reshape.onnx');
  const expected = JSON.parse(fs.readFileSync(fixturePath('torch_reshape.json'), 'utf8')) as { shape: number[]; embeddings: number[] };
  const n = 3 * 3 * 112 * 112;
  const images = torch.tensor(Float32Array.from({ length: n }, (_, i) => ((i * 7919) % 255) / 127.5 - 1), { shape: [3, 3, 112, 112] });
  // the file declares a symbolic batch, but its traced Reshape only takes one image
  const ort = await import('onnxruntime-node');
  const session = await ort.InferenceSession.create(file);
  assert.deepEqual(session.inputNames, ['data']);
  assert.match(session.outputNames[0], /^\d+$/);
  await assert.rejects(session.run({ data: new ort.Tensor('float32', new Float32Array(n), [3, 3, 112, 112]) }));
  await session.release();

  const onnx = await OnnxEmbedder.create(file);
  const out = await onnx.embed(images);
  await onnx.dispose();
  assert.deepEqual(out.shape, expected.shape);
  Array.from(out.data() as Float32Array).forEach((v, i) => assert.ok(Math.abs(v - expected.embeddings[i]) < 1e-5, `[${i}] ${v} vs ${expected.embeddings[i]}`));
  torch.dispose(images, out);
});

/**
 * Devices: every layer on the device under test, against the same work on the CPU.
 *
 * The device is ARCFACE_TEST_DEVICE (default 'cpu'; the GPU check runs this file with 'cuda'). On
 * the CPU the comparisons are exact and check the device plumbing (Module.to keeps its objects, the
 * device-generic Partial FC against the fused kernel, the image table against the loader); on a GPU
 * the same assertions hold with the tolerances named in each test. Whatever the device, asking for
 * one this build or machine cannot use is one clear line, tested for the build at hand.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as torch from '../src/torch/index.js';
import type { Tensor } from '../src/torch/index.js';
import { native } from '../src/torch/native.js';
import { Conv2d, BatchNorm2d, PReLU, Flatten, Linear, Sequential } from '../src/nn/index.js';
import { CombinedMarginLoss, PartialFC, type PartialFCOptions } from '../src/heads/index.js';
import { DataLoader, SyntheticDataset, normaliseImages } from '../src/data/index.js';
import { SGD } from '../src/optim/index.js';
// not train/index.js: its config loader needs the typescript package, which the GPU check does not carry
import { ConfigError, resolveConfig } from '../src/train/config.js';
import { train } from '../src/train/trainer.js';
import { setDir } from '../src/train/checkpoint-set.js';
import { relativeError } from './heads-reference.js';

const device = torch.resolveDevice(process.env.ARCFACE_TEST_DEVICE ?? 'cpu', 'ARCFACE_TEST_DEVICE');
const onCpu = device === 'cpu';
const info = native.info();
const floats = (t: Tensor) => torch.tidy(() => Array.from(t.detach().to('cpu').float().data() as Float32Array));
/** GPU kernels (cuDNN convolutions in TF32, other reduction orders) round differently; the CPU is exact. */
const tolerance = (gpu: number) => (onCpu ? 0 : gpu);

test('a device this build or machine cannot use is one clear line, wherever it is asked for', () => {
  const why = !info.cudaBuild
    ? /is not available: the addon is built without CUDA \(rebuild it with ARCFACE_TORCH_DIR=.* ARCFACE_CUDA=1 bash scripts\/setup.sh\)/
    : torch.cudaDeviceCount() === 0
      ? /is not available: the addon is built with CUDA, but no CUDA device is visible here/
      : /is not available: \d+ CUDA device\(s\) visible/;
  const unusable = info.cudaBuild && torch.cudaDeviceCount() > 0 ? `cuda:${torch.cudaDeviceCount()}` : 'cuda';
  const named = unusable === 'cuda' ? 'cuda:0' : unusable;
  const cases: [string, () => unknown][] = [
    ['device', () => torch.resolveDevice(unusable)],
    ['aten::zeros', () => torch.zeros([2], { device: unusable })],
    ['Sequential.to', () => new Sequential(new Linear(2, 2)).to(unusable)],
    ['PartialFC', () => new PartialFC({ marginLoss: new CombinedMarginLoss({ s: 64, m1: 1, m2: 0.5, m3: 0 }), embeddingSize: 4, numClasses: 8, optimizer: { type: 'sgd', lr: 0.1 }, device: unusable })],
    ['getRngState', () => torch.getRngState(unusable)],
  ];
  // what resolves the name ('cuda' → cuda:LOCAL_RANK) reports the device it resolved to
  const resolving = new Set(['device', 'Sequential.to', 'PartialFC', 'getRngState']);
  for (const [where, fn] of cases) {
    const shown = resolving.has(where) ? named : unusable;
    assert.throws(fn, (e: Error) => e.message.startsWith(`${where}: device '${shown}'`) && why.test(e.message), `${where}: ${(() => { try { fn(); } catch (e) { return (e as Error).message; } })()}`);
  }
  assert.throws(() => torch.resolveDevice('tpu'), /^Error: device: 'tpu' is not a device \(use 'cpu', 'cuda' or 'cuda:N'\)$/);
  assert.throws(() => resolveConfig({ rec: 'synthetic', numClasses: 2, numImage: 8, numEpoch: 1, device: 'gpu' }), (e: Error) =>
    e instanceof ConfigError && /'device' must be 'cpu', 'cuda' or 'cuda:N', got "gpu"/.test(e.message));
});

function smallNet(): Sequential {
  torch.manualSeed(11);
  return new Sequential(new Conv2d(3, 8, 3, { padding: 1, bias: false }), new BatchNorm2d(8), new PReLU(8), new Flatten(), new Linear(8 * 6 * 6, 5));
}

test(`Module.to('${device}') moves parameters, gradients and buffers in place; training there matches the CPU`, () => {
  const [cpuNet, net] = [smallNet(), smallNet()];
  try {
    const objects = [...net.parameters(), ...net.buffers()];
    net.to(device);
    assert.equal(net.device, device);
    assert.ok([...net.parameters(), ...net.buffers()].every((t, i) => t === objects[i] && t.device === device), 'the same Tensor objects, now on the device');
    assert.ok(net.parameters().every((p) => p.requiresGrad));
    const optimizers = [new SGD(cpuNet.parameters(), { lr: 0.1, momentum: 0.9 }), new SGD(net.parameters(), { lr: 0.1, momentum: 0.9 })];
    torch.manualSeed(12);
    const x = torch.randn([4, 3, 6, 6]), y = torch.tensor([0, 1, 2, 3], { dtype: 'int64' });
    for (let step = 0; step < 3; step++) {
      [cpuNet, net].forEach((m, i) =>
        torch.tidy(() => {
          const d = m.device;
          torch.crossEntropy(m.forward(x.to(d)), y.to(d)).backward();
          optimizers[i].step();
          optimizers[i].zeroGrad();
        }),
      );
    }
    cpuNet.namedParameters().forEach(([name, p], i) => {
      const e = relativeError(floats(net.parameters()[i]), floats(p));
      assert.ok(e <= tolerance(1e-3), `${name}: ${e}`);
    });
    const mean = relativeError(floats(net.buffers()[0]), floats(cpuNet.buffers()[0]));
    assert.ok(mean <= tolerance(1e-3), `running_mean: ${mean}`);
    // and back: a gradient moves with its parameter
    torch.tidy(() => torch.crossEntropy(net.forward(x.to(device)), y.to(device)).backward());
    net.to('cpu');
    assert.ok(net.parameters().every((p) => p.device === 'cpu' && p.grad!.device === 'cpu'));
    optimizers.forEach((o) => o.dispose());
  } finally {
    cpuNet.dispose();
    net.dispose();
  }
});

test(`uint8 images normalised on ${device} are the loader's float32 bits, (x / 255 − 0.5) / 0.5`, async () => {
  const batches = await Promise.all((['uint8', 'float32'] as const).map(async (dtype) => {
    const loader = new DataLoader(new SyntheticDataset({ length: 4, seed: 3 }), { batchSize: 4, seed: 1, dtype, augment: { flip: 0.5 } });
    try {
      return (await loader.next())!;
    } finally {
      await loader.close();
    }
  }));
  const [bytes, expected] = batches;
  torch.tidy(() => {
    const pixels = bytes.images.to(device);
    const normalised = normaliseImages(pixels);
    assert.equal(normalised.device, device);
    assert.equal(normalised.dtype, 'float32');
    assert.deepEqual(Buffer.from(normalised.to('cpu').toBuffer()), Buffer.from(expected.images.toBuffer()));
    // the table is the formula, every value of a byte, in float32
    const all = torch.arange(0, 256, 1, { dtype: 'uint8' });
    const formula = all.float().div(255).sub(0.5).div(0.5);
    assert.deepEqual(Buffer.from(normaliseImages(all.to(device)).to('cpu').toBuffer()), Buffer.from(formula.toBuffer()));
  });
  for (const b of batches) torch.dispose([b.images, b.labels]);
});

test(`the ${device} generator's state replays its draws`, () => {
  torch.manualSeed(5);
  const state = torch.getRngState(onCpu ? undefined : device);
  const first = torch.tidy(() => floats(torch.randn([64], { device })));
  torch.randn([7], { device }).dispose();
  torch.setRngState(state, onCpu ? undefined : device);
  state.dispose();
  assert.deepEqual(torch.tidy(() => floats(torch.randn([64], { device }))), first);
});

const head = (o: Partial<PartialFCOptions>) =>
  new PartialFC({ marginLoss: new CombinedMarginLoss({ s: 64, m1: 1, m2: 0.5, m3: 0 }), embeddingSize: 16, numClasses: 3000, sampleRate: 0.3, tileRows: 256, optimizer: { type: 'sgd', lr: 0.1, momentum: 0.9, weightDecay: 5e-4 }, ...o });

test(`Partial FC on ${device} (device-generic) keeps the fused CPU kernel's sample, loss, gradients and updates`, () => {
  torch.manualSeed(21);
  const reference = head({});
  torch.manualSeed(21);
  const onDevice = head({ device });
  try {
    assert.equal(onDevice.implementation, onCpu ? 'fused' : 'ops');
    assert.equal(onDevice.weight.device, device);
    assert.ok([...onDevice.optimizer.state.values()].every((t) => t.device === device), 'optimizer state on the device');
    assert.deepEqual(floats(onDevice.weight), floats(reference.weight), 'the same initial centres (drawn on the CPU)');
    for (let step = 0; step < 3; step++) {
      torch.manualSeed(100 + step);
      const x = torch.randn([32, 16]), labels = torch.randint(0, 3000, [32]);
      const results = [reference, onDevice].map((pfc) =>
        torch.tidy(() => {
          torch.manualSeed(200 + step);  // the sample draws from the CPU generator, for both
          const e = x.detach().to(pfc.weight.device).requiresGrad_();  // a leaf of its own per head
          const loss = pfc.forward(e, labels);
          loss.backward();
          const out = { loss: loss.item(), grad: floats(e.grad!), index: Array.from(pfc.sampledIndex().data() as BigInt64Array, Number) };
          pfc.step();
          return out;
        }),
      );
      const [r, d] = results;
      assert.deepEqual(d.index, r.index, `step ${step}: the same sampled centres`);
      assert.ok(Math.abs(d.loss - r.loss) <= 1e-5 * Math.abs(r.loss), `step ${step}: loss ${d.loss} vs ${r.loss}`);
      assert.ok(relativeError(d.grad, r.grad) <= 2e-5, `step ${step}: embedding gradients`);
      torch.dispose([x, labels]);
    }
    assert.ok(relativeError(floats(onDevice.weight), floats(reference.weight)) <= 2e-5, 'centres after three steps');
    const momentum = (p: PartialFC) => floats(p.optimizer.state.get('momentum_buffer')!);
    assert.ok(relativeError(momentum(onDevice), momentum(reference)) <= 2e-5, 'momentum after three steps');
  } finally {
    reference.dispose();
    onDevice.dispose();
  }
});

test('16-bit shards start from the float32 draw, on any device (sliced initialisation = one draw)', () => {
  const weights = (['float32', 'bfloat16'] as const).map((storage) => {
    torch.manualSeed(9);
    // 2500 rows: two whole 1024-row slices and a partial one
    const pfc = head({ numClasses: 2500, storage, device });
    try {
      return floats(pfc.weight.to('bfloat16'));
    } finally {
      pfc.dispose();
    }
  });
  assert.deepEqual(weights[1], weights[0]);
});

test(`training with device '${device}': fp16 as arcface_torch on a GPU (float16 + GradScaler), the device's generator in the checkpoint`, async () => {
  const output = fs.mkdtempSync(path.join(os.tmpdir(), 'arcface-device-'));
  try {
    const config = resolveConfig({
      network: 'mbf', embeddingSize: 32, rec: 'synthetic', numClasses: 20, numImage: 48, numEpoch: 1, batchSize: 8,
      lr: 0.05, fp16: true, sampleRate: 0.5, frequent: 2, verbose: 1000, numWorkers: 1, output, device, saveAllStates: true,
    });
    const result = await train(config, { echo: false });
    assert.equal(result.globalStep, 6);
    assert.ok(Number.isFinite(result.loss), `loss ${result.loss}`);
    const log = fs.readFileSync(path.join(output, 'training.log'), 'utf8');
    if (onCpu) {
      assert.match(log, torch.cpuHasBf16Kernels()
        ? /fp16: the backbone body runs in bfloat16 autocast on the CPU, with the GradScaler/
        : /fp16: this CPU has no bfloat16 kernels \(no AVX-512\): the backbone runs in float32 on it, with the GradScaler/);
    }
    else assert.doesNotMatch(log, /bfloat16 autocast on the CPU/);
    const saved = torch.load(path.join(setDir(output, 6), 'checkpoint_gpu_0.pt')) as Map<string, unknown>;
    const tensors: Tensor[] = [];
    const collect = (v: unknown): void => void (v instanceof torch.Tensor ? tensors.push(v) : v instanceof Map ? v.forEach(collect) : Array.isArray(v) && v.forEach(collect));
    collect(saved);
    try {
      assert.equal(saved.has('cuda_rng_state'), !onCpu);
      assert.ok(saved.get('rng_state') instanceof torch.Tensor);
    } finally {
      torch.dispose(tensors);
    }
  } finally {
    fs.rmSync(output, { recursive: true, force: true });
  }
});

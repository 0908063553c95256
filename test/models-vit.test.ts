/**
 * ViT backbones against insightface arcface_torch's backbones/vit.py: state-dict names/shapes/dtypes,
 * parameter counts, MACs, drop-path and masking settings of every registered ViT (recorded by
 * test/fixtures/make_vit_fixtures.py: exact); two scaled-down models loaded from PyTorch-saved
 * state dicts give PyTorch's eval and train-mode embeddings (train mode: the same seed gives the
 * same random masking and drop-path draws) and gradients, with and without activation
 * checkpointing, and its bf16-autocast embedding; vit_t with deterministic weights gives PyTorch's
 * eval embedding. PyTorch's numbers are computed live on this machine by arcface_torch's traced
 * graphs (test/reference/torch_reference.py vit): they depend on the CPU kind.
 */
import { before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import * as torch from '../src/torch/index.js';
import { getModel, countComplexity, backwardCheckpoints, attentionBackend, VisionTransformer, vitModels } from '../src/models/index.js';
import { plainAttention, scaledDotProductAttention } from '../src/models/attention.js';
import { Block } from '../src/models/vit.js';
import { fixturePath, pythonHasTorch } from './helpers.js';
import { deterministicInput, deterministicStateDict } from './backbone-weights.js';
import { torchReference, torchReferenceSkip } from './torch-reference.js';

type Checksum = [number, number, number];
interface Structure {
  state_dict: [string, number[], string][];
  params: number;
  trainable_params: number;
  macs: number;
  mask_ratio: number;
  drop_path: number[];
  using_checkpoint: boolean;
}
interface SmallConfig {
  num_classes: number; embed_dim: number; depth: number; num_heads: number; qkv_bias: boolean; drop_path_rate: number; norm_layer: 'ln' | 'bn'; mask_ratio: number;
}
interface SmallOutputs {
  eval: number[];
  train: number[];
  grad_checksums: Record<string, Checksum | null>;
  after_train_checksums: Record<string, Checksum>;
}
const structure: Record<string, Structure> = JSON.parse(fs.readFileSync(fixturePath('vit_structure.json'), 'utf8'));
const smallConfigs = JSON.parse(fs.readFileSync(fixturePath('vit_small.json'), 'utf8')) as Record<'small_ln' | 'small_bn', SmallConfig>;
type Reference = Record<'small_ln' | 'small_bn', SmallOutputs> & { small_ln_bf16: { eval: number[] }; vit_t: { eval: number[] } };
let outputs: Reference;

function maxAbsDiff(got: ArrayLike<number>, want: ArrayLike<number>): number {
  assert.equal(got.length, want.length);
  let d = 0;
  for (let i = 0; i < got.length; i++) d = Math.max(d, Math.abs(got[i] - want[i]));
  return d;
}

/** [Σv, Σv², Σ v_i·cos(0.1 i)] in float64, as the reference script computes them. */
function checksum(t: torch.Tensor): Checksum {
  return torch.tidy(() => {
    const v = t.double().flatten();
    const w = torch.arange(0, v.numel, 1, { dtype: 'float64' }).mul(0.1).cos();
    return [v.sum().item(), v.square().sum().item(), v.mul(w).sum().item()];
  });
}

/**
 * Checksums compared as if each element had to be within δ = rtol·rms(v) + atol of the reference:
 * then ‖Δv‖ ≤ √n·δ bounds the sums by n·δ and Σv² by 2‖v‖·‖Δv‖ + ‖Δv‖². `atol` is for gradients
 * that are zero in exact arithmetic (a BatchNorm bias followed by a training-mode BatchNorm), where
 * float32 rounding — here the attention's scaling order — is all there is.
 */
function assertChecksum(key: string, n: number, got: Checksum, want: Checksum, atol = 0, rtol = 2e-5): void {
  const delta = rtol * Math.sqrt(want[1] / n) + atol;
  const norm = Math.sqrt(n) * delta;
  const sumTol = n * delta + 1e-12;
  assert.ok(Math.abs(got[1] - want[1]) <= 2 * Math.sqrt(want[1]) * norm + norm ** 2 + 1e-12, `${key} Σv²: ${got[1]} vs ${want[1]}`);
  assert.ok(Math.abs(got[0] - want[0]) <= sumTol, `${key} Σv: ${got[0]} vs ${want[0]}`);
  assert.ok(Math.abs(got[2] - want[2]) <= sumTol, `${key} Σv·cos: ${got[2]} vs ${want[2]}`);
}

/** Largest root-mean-square element of any checksummed tensor: the scale of float32 rounding. */
const largestRms = (checksums: Record<string, Checksum | null>, numel: Map<string, number>): number =>
  Math.max(...Object.entries(checksums).map(([k, c]) => (c ? Math.sqrt(c[1] / numel.get(k)!) : 0)));

function withOneThread<T>(fn: () => T): T {
  const threads = torch.getNumThreads();
  torch.setNumThreads(1);
  try {
    return fn();
  } finally {
    torch.setNumThreads(threads);
  }
}

/** The scaled-down fixture model, with arcface_torch's weights from the .pt written by PyTorch. */
function smallModel(key: 'small_ln' | 'small_bn', options: { usingCheckpoint?: boolean; bf16?: boolean } = {}): VisionTransformer {
  const c = smallConfigs[key];
  const model = new VisionTransformer({
    imgSize: 112, patchSize: 9, embeddingSize: c.num_classes, embedDim: c.embed_dim, depth: c.depth, numHeads: c.num_heads,
    qkvBias: c.qkv_bias, dropPathRate: c.drop_path_rate, normLayer: c.norm_layer, maskRatio: c.mask_ratio, ...options,
  });
  torch.tidy(() => model.loadStateDict(torch.loadStateDict(fixturePath(`vit_${key}.pt`)), { strict: true }));
  return model;
}

/** Train-mode step as the reference: seed 7, loss = Σ embedding · sin(0.37 i + 0.2), backward. */
function trainStep(model: VisionTransformer): Float32Array {
  return torch.tidy(() => {
    model.train();
    torch.manualSeed(7);
    const out = model.forward(deterministicInput(4));
    const w = torch.arange(0, out.numel, 1, { dtype: 'float64' }).mul(0.37).add(0.2).sin().float().reshape(out.shape);
    out.mul(w).sum().backward();
    backwardCheckpoints(model);
    return out.detach().data() as Float32Array;
  });
}

/** Counts the tokens block 0 sees in one forward (the blocks run on the kept patches only). */
function tokensSeenByFirstBlock(model: VisionTransformer, x: torch.Tensor): number {
  const block = model.blocks.at(0) as Block;
  let seen = -1;
  const original = block.forward;
  block.forward = (t: torch.Tensor, noise?) => {
    seen = t.shape[1];
    return original.call(block, t, noise);
  };
  try {
    torch.noGrad(() => torch.tidy(() => model.forward(x)));
  } finally {
    delete (block as { forward?: unknown }).forward;
  }
  return seen;
}

/** One float32 ulp at x (x ≠ 0). */
const ulp32 = (x: number) => 2 ** (Math.floor(Math.log2(Math.abs(x))) - 23);

/**
 * The drop-path rates against arcface_torch's, torch.linspace(0, rate, depth) in float32, recorded with
 * torch 1.13. Ours come from libtorch's linspace too: equal on 1.13. torch 2.x's float32 linspace rounds
 * some steps otherwise (measured, 2.13 and 2.14 alike against 1.13: vit_b/vit_l 3 of 24 values, by up to
 * 2 ulps; vit_h 7 of 48, by 1 ulp; arcface_torch on 2.x gets those), so on another libtorch each value
 * is checked to within 2 float32 ulps.
 */
function assertDropPaths(got: number[], want: number[]): void {
  if (torch.runtimeInfo().torchVersion.startsWith('1.13.')) {
    assert.deepEqual(got, want);
    return;
  }
  assert.equal(got.length, want.length, 'one drop path per block');
  got.forEach((g, i) => assert.ok(g === want[i] || Math.abs(g - want[i]) <= 2 * ulp32(want[i]), `drop path ${i}: ${g} vs ${want[i]}`));
}

describe('structure equals arcface_torch', () => {
  // vit_h's MACs take a 87-GMAC forward (~10 s here); its blocks are counted by the same code as vit_l's.
  const countMacs = (name: string) => name !== 'vit_h';
  for (const name of Object.keys(structure)) {
    test(`${name}: state-dict names, shapes and dtypes in order; parameter counts;${countMacs(name) ? ' MACs;' : ''} drop path, masking, checkpointing`, () => {
      const want = structure[name];
      const model = getModel(name) as VisionTransformer;
      try {
        torch.tidy(() => assert.deepEqual([...model.stateDict()].map(([k, v]) => [k, v.shape, v.dtype]), want.state_dict));
        const params = model.parameters();
        const count = (ps: torch.Tensor[]) => ps.reduce((a, p) => a + p.numel, 0);
        assert.deepEqual([count(params), count(params.filter((p) => p.requiresGrad))], [want.params, want.trainable_params]);
        if (countMacs(name)) assert.equal(countComplexity(model).macs, want.macs);
        assertDropPaths((model.blocks.children() as Block[]).map((b) => b.dropPath.p), want.drop_path);
        assert.equal(model.maskRatio, want.mask_ratio);
        assert.equal(model.usingCheckpoint, want.using_checkpoint);
      } finally {
        model.dispose();
      }
    });
  }

  test('every ViT name is registered', () => {
    assert.deepEqual(Object.keys(vitModels), Object.keys(structure));
  });
});

describe('embeddings and gradients equal PyTorch with the same weights (live reference)', { skip: torchReferenceSkip }, () => {
  before(() => {
    outputs = torchReference<Reference>('vit');
  });
  for (const key of ['small_ln', 'small_bn'] as const) {
    test(`${key}: a PyTorch-saved state dict loads strictly; eval embedding within 1e-4`, () => {
      const model = smallModel(key);
      try {
        model.eval();
        const got = withOneThread(() => torch.noGrad(() => torch.tidy(() => model.forward(deterministicInput(4)).data() as Float32Array)));
        assert.ok(maxAbsDiff(got, outputs[key].eval) <= 1e-4, `max diff ${maxAbsDiff(got, outputs[key].eval)}`);
      } finally {
        model.dispose();
      }
    });

    for (const usingCheckpoint of [false, true]) {
      test(`${key}${usingCheckpoint ? ' with activation checkpointing' : ''}: train mode (masking, drop path, batch statistics) — embedding, every gradient, running statistics`, () => {
        const model = smallModel(key, { usingCheckpoint });
        try {
          const want = outputs[key];
          const got = withOneThread(() => trainStep(model));
          assert.ok(maxAbsDiff(got, want.train) <= 1e-4, `train max diff ${maxAbsDiff(got, want.train)}`);
          const params = model.namedParameters();
          const atol = 1e-6 * largestRms(want.grad_checksums, new Map(params.map(([k, p]) => [k, p.numel])));
          for (const [name, p] of params) {
            const g = p.grad;
            const expected = want.grad_checksums[name];
            if (expected === null) {
              assert.equal(g, undefined, `${name} should get no gradient`);
              continue;
            }
            assert.ok(g, `${name} has no gradient`);
            assertChecksum(`grad ${name}`, p.numel, checksum(g), expected, atol);
            g.dispose();
          }
          torch.tidy(() => {
            for (const [name, t] of model.stateDict()) assertChecksum(name, t.numel, checksum(t), want.after_train_checksums[name]);
          });
        } finally {
          model.dispose();
        }
      });
    }
  }

  test('vit_t with deterministic weights: eval embedding within 1e-4', () => {
    const model = getModel('vit_t');
    try {
      torch.tidy(() => {
        // names prefixed as in the fixture script, so that every name has a module part
        const prefixed = new Map([...model.stateDict()].map(([k, v]) => [`model.${k}`, v]));
        model.loadStateDict(new Map([...deterministicStateDict(prefixed)].map(([k, v]) => [k.slice('model.'.length), v])), { strict: true });
      });
      model.eval();
      const got = withOneThread(() => torch.noGrad(() => torch.tidy(() => model.forward(deterministicInput(2)).data() as Float32Array)));
      assert.ok(maxAbsDiff(got, outputs.vit_t.eval) <= 1e-4, `max diff ${maxAbsDiff(got, outputs.vit_t.eval)}`);
    } finally {
      model.dispose();
    }
  });
});

describe('masking', () => {
  test('training keeps int(144·(1 − maskRatio)) patches (0.1 → 129, 0.05 → 136, 0 → all); eval keeps all', () => {
    // values of Python's int(144 * (1 - r)), as arcface_torch's random_masking computes len_keep
    for (const [maskRatio, kept] of [[0.1, 129], [0.05, 136], [0, 144]]) {
      const model = new VisionTransformer({ patchSize: 9, embedDim: 16, depth: 1, numHeads: 2, embeddingSize: 8, maskRatio });
      try {
        torch.tidy(() => {
          const x = torch.randn([2, 3, 112, 112]);
          model.train();
          assert.equal(tokensSeenByFirstBlock(model, x), kept, `maskRatio ${maskRatio}`);
          model.eval();
          assert.equal(tokensSeenByFirstBlock(model, x), 144);
        });
      } finally {
        model.dispose();
      }
    }
  });

  test('the removed positions hold the mask token, different ones per sample', () => {
    const model = new VisionTransformer({ patchSize: 9, embedDim: 16, depth: 1, numHeads: 2, embeddingSize: 8, maskRatio: 0.1 });
    try {
      torch.noGrad(() =>
        torch.tidy(() => {
          const tokens = model.forwardFeatures(torch.randn([3, 3, 112, 112])).reshape([3, 144, 16]);
          const rows = torch.aten('all.dim')(tokens.eq(model.maskToken), 2, false) as torch.Tensor; // [3, 144]: token == mask_token
          assert.deepEqual(rows.sum(1).toArray(), [15, 15, 15]);
          assert.ok(rows.select(0, 0).ne(rows.select(0, 1)).any().item(), 'samples share their removed patches');
        }),
      );
    } finally {
      model.dispose();
    }
  });
});

describe('activation checkpointing', () => {
  const vitSmall = (usingCheckpoint: boolean) =>
    new VisionTransformer({ patchSize: 9, embedDim: 64, depth: 4, numHeads: 4, embeddingSize: 32, dropPathRate: 0.2, maskRatio: 0.1, usingCheckpoint });

  test('same embeddings and gradients (bit for bit) as without; less memory held between forward and backward; nothing leaks', () => {
    const plain = vitSmall(false), checkpointed = vitSmall(true);
    try {
      torch.tidy(() => checkpointed.loadStateDict(plain.stateDict()));
      const x = torch.keep(torch.randn([8, 3, 112, 112]));
      const step = (model: VisionTransformer) => {
        model.zeroGrad();
        const before = torch.cpuCacheStats().liveBytes ?? 0;
        const live = torch.liveTensors();
        const { out, held } = torch.tidy(() => {
          torch.manualSeed(3);
          const y = model.forward(x);
          const heldBytes = (torch.cpuCacheStats().liveBytes ?? 0) - before;
          y.square().mean().backward();
          backwardCheckpoints(model);
          return { out: y.detach(), held: heldBytes };
        });
        const grads = model.parameters().map((p) => p.grad!);
        assert.equal(torch.liveTensors(), live + 1 + grads.length, 'tensors left behind');
        return { out, held, grads };
      };
      const a = step(plain), b = step(checkpointed);
      torch.tidy(() => {
        assert.equal(b.out.sub(a.out).abs().max().item(), 0);
        // the same kernels on the same values: bit for bit
        a.grads.forEach((g, i) => assert.equal(b.grads[i].sub(g).abs().max().item(), 0, `gradient ${i}`));
      });
      if (torch.cpuCacheStats().enabled) assert.ok(b.held < a.held / 2, `held ${b.held} vs ${a.held} bytes`);
      assert.equal(checkpointed.checkpoints.size, 0);
      torch.dispose(a, b, x);
    } finally {
      plain.dispose();
      checkpointed.dispose();
    }
  });

  test('only in training with gradients; a forward never backpropagated is freed by backwardCheckpoints', () => {
    const model = vitSmall(true);
    try {
      torch.tidy(() => {
        const x = torch.randn([2, 3, 112, 112]);
        torch.noGrad(() => model.forward(x));
        model.eval();
        model.forward(x);
        assert.equal(model.checkpoints.size, 0);
        model.train();
        model.forward(x);
        model.forward(x).sum().backward();
        assert.equal(model.checkpoints.size, 2);
        backwardCheckpoints(model);
        assert.equal(model.checkpoints.size, 0);
        assert.ok(model.patchEmbed.proj.weight.grad, 'the gradient reached the patch embedding');
      });
    } finally {
      model.dispose();
    }
  });
});

describe('attention and precision', () => {
  test(`libtorch's scaled-dot-product attention is used where it exists (here: ${attentionBackend()}) and equals the plain path with gradients`, () => {
    const runtime = torch.runtimeInfo().torchVersion;
    if (runtime.startsWith('1.13')) assert.equal(attentionBackend(), '_scaled_dot_product_attention');
    torch.tidy(() => {
      const [q, k, v] = [0, 1, 2].map(() => torch.randn([2, 4, 144, 32], { dtype: 'float64', requiresGrad: true }));
      const grads = (f: typeof plainAttention) => {
        const out = f(q, k, v);
        out.mul(torch.arange(0, out.numel, 1, { dtype: 'float64' }).reshape(out.shape).sin()).sum().backward();
        const g = [q, k, v].map((t) => t.grad!);
        [q, k, v].forEach((t) => (t.grad = undefined));
        return [out, ...g];
      };
      const fused = grads(scaledDotProductAttention), plain = grads(plainAttention);
      fused.forEach((t, i) => assert.ok(t.sub(plain[i]).abs().max().item() < 1e-12, `output/gradient ${i}`));
    });
  });

  // Against arcface_torch's small_ln traced with its autocast regions as CPU bfloat16 (live): the
  // same casts. Our own float32 model is ~1e-2 away: bf16 must be much closer to PyTorch's bf16.
  test('bf16 autocast: PyTorch\'s bf16-autocast embedding, not the float32 one; gradients flow with checkpointing; fp16 on the CPU is an error', { skip: torchReferenceSkip }, () => {
    const want = torchReference<Reference>('vit').small_ln_bf16.eval;
    const reference = smallModel('small_ln');
    const bf16 = smallModel('small_ln', { bf16: true, usingCheckpoint: true });
    try {
      reference.eval();
      bf16.eval();
      withOneThread(() => torch.noGrad(() =>
        torch.tidy(() => {
          const x = deterministicInput(2);
          const float32 = reference.forward(x).data() as Float32Array, out = bf16.forward(x);
          assert.equal(out.dtype, 'float32');
          const got = out.data() as Float32Array;
          const fromBf16 = maxAbsDiff(got, want), fromFloat32 = maxAbsDiff(got, float32);
          assert.ok(fromBf16 <= 1e-4, `bf16: max diff from PyTorch's bf16 autocast ${fromBf16}`);
          assert.ok(fromFloat32 > 10 * Math.max(fromBf16, 1e-5), `bf16 output is as close to float32 (${fromFloat32}) as to bf16 (${fromBf16})`);
        }),
      ));
      trainStep(bf16);
      for (const [name, p] of bf16.namedParameters()) {
        if (name === 'mask_token') continue;
        torch.tidy(() => {
          const g = p.grad;
          assert.ok(g && torch.isfinite(g).all().item() && g.abs().sum().item() > 0, `${name}: no finite non-zero gradient`);
        });
      }
    } finally {
      reference.dispose();
      bf16.dispose();
    }
    const fp16 = new VisionTransformer({ patchSize: 9, embedDim: 16, depth: 1, numHeads: 2, fp16: true });
    try {
      assert.throws(() => torch.tidy(() => fp16.forward(torch.zeros([2, 3, 112, 112]))), /fp16 autocast needs a CUDA device/);
    } finally {
      fp16.dispose();
    }
  });
});

describe('weights move to PyTorch', { skip: pythonHasTorch ? false : 'needs /usr/bin/python3 with torch' }, () => {
  test('small_ln: loaded from the PyTorch file and saved by us, PyTorch reads back the same names, shapes and values', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vit-test-'));
    const file = path.join(dir, 'ours.pt');
    const model = smallModel('small_ln');
    try {
      torch.tidy(() => torch.save(model.stateDict(), file));
    } finally {
      model.dispose();
    }
    const run = spawnSync('/usr/bin/python3', ['-c', `
import torch
ours, theirs = torch.load(${JSON.stringify(file)}), torch.load(${JSON.stringify(fixturePath('vit_small_ln.pt'))})
assert list(ours) == list(theirs)
assert all(ours[k].dtype == theirs[k].dtype and torch.equal(ours[k], theirs[k]) for k in theirs)
print('OK')`], { encoding: 'utf8' });
    fs.rmSync(dir, { recursive: true, force: true });
    assert.equal(run.status, 0, run.stderr);
    assert.equal(run.stdout.trim(), 'OK');
  });
});

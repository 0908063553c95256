/**
 * torch.save / torch.load on Tensors and modules (src/torch/save.ts): PyTorch's files load here with
 * equal values, ours load in PyTorch, nothing in a file is executed.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import * as torch from '../src/torch/index.js';
import * as nn from '../src/nn/index.js';
import { fixturePath, pythonHasTorch } from './helpers.js';

interface ExpectedTensor {
  dtype: string;
  shape: number[];
  values: number[];
}
const expected: Record<string, Record<string, ExpectedTensor>> = JSON.parse(fs.readFileSync(fixturePath('pt_expected.json'), 'utf8'));

/** check_ts_saved.py's Tiny module, in TypeScript. */
class Tiny extends nn.Module {
  readonly conv = this.registerModule('conv', new nn.Conv2d(3, 4, 3, { bias: false }));
  readonly bn = this.registerModule('bn', new nn.BatchNorm2d(4));
  readonly fc = this.registerModule('fc', new nn.Linear(4, 3));
  forward(x: torch.Tensor): torch.Tensor {
    return this.fc.forward(this.bn.forward(this.conv.forward(x)).mean([2, 3]));
  }
}

function tempFile(t: { after: (fn: () => void) => void }, name: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'torch-save-test-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  return path.join(dir, name);
}


test('a PyTorch state_dict() file loads into the same module, strict, with equal values', () => {
  torch.tidy(() => {
    const state = torch.loadStateDict(fixturePath('pt_state_dict.pt'));
    const want = expected['pt_state_dict.pt'];
    for (const [key, t] of state) {
      assert.equal(t.dtype, want[key].dtype, key);
      assert.deepEqual(t.shape, want[key].shape, key);
      assert.deepEqual(Array.from(t.contiguous().data() as ArrayLike<number | bigint>, Number), want[key].values, key);
    }
    const model = new Tiny();
    const own = new Map([...state].filter(([key]) => !key.startsWith('extra.')));
    model.loadStateDict(own, { strict: true });
    assert.deepEqual(Array.from(model.conv.weight.data() as Float32Array), want['conv.weight'].values.map(Math.fround));
    assert.equal(model.bn.numBatchesTracked!.item(), want['bn.num_batches_tracked'].values[0]);
    model.dispose();
  });
});

test('tensors that shared a storage in the file share it after loading', () => {
  torch.tidy(() => {
    const state = torch.loadStateDict(fixturePath('pt_state_dict.pt'));
    // view_a = base[:6].view(2, 3) and view_b = base[6:] of one 12-element storage
    const a = state.get('extra.view_a')!, b = state.get('extra.view_b')!;
    assert.equal(a.storageKey().key, b.storageKey().key);
    assert.equal(b.storageOffset(), 6);
    const whole = torch.aten('as_strided')(b, [12], [1], 0) as torch.Tensor;
    whole.fill_(7);
    assert.deepEqual(Array.from(a.data() as Float32Array), [7, 7, 7, 7, 7, 7], 'a write to the storage is seen through both views');
    assert.deepEqual(Array.from(b.data() as Float32Array), [7, 7, 7, 7, 7, 7]);
    assert.deepEqual(state.get('extra.transposed')!.strides(), [1, 3]);
  });
});

test('a state dict saved here loads back with identical values and dtypes', (t) => {
  const file = tempFile(t, 'round-trip.pt');
  torch.tidy(() => {
    const values = new Map<string, torch.Tensor>([
      ['f32', torch.randn([3, 5])],
      ['f32_transposed', torch.randn([4, 2]).t()],
      ['f16', torch.randn([7]).half()],
      ['bf16', torch.randn([2, 3]).bfloat16()],
      ['i64', torch.tensor([1, -2, 2 ** 40], { dtype: 'int64' })],
      ['u8', torch.tensor([0, 255, 7], { dtype: 'uint8' })],
      ['scalar', torch.tensor(3.5)],
    ]);
    torch.save(values, file);
    const loaded = torch.loadStateDict(file);
    assert.deepEqual([...loaded.keys()], [...values.keys()]);
    for (const [key, v] of values) {
      const l = loaded.get(key)!;
      assert.equal(l.dtype, v.dtype, key);
      assert.deepEqual(l.shape, v.shape, key);
      assert.deepEqual(l.strides(), v.strides(), key);
      assert.ok(torch.eq(l, v).all().item(), key);
      assert.equal(l.requiresGrad, false, key);
    }
  });
});

test('a module state dict saved here loads into PyTorch with load_state_dict(strict=True)', (t) => {
  if (!pythonHasTorch) {
    t.skip('/usr/bin/python3 cannot import torch (install python3-torch)');
    return;
  }
  const file = tempFile(t, 'tiny.pt');
  const valuesFile = file.replace(/\.pt$/, '.json');
  torch.manualSeed(3);
  const model = new Tiny();
  torch.tidy(() => {
    model.forward(torch.randn([2, 3, 5, 5]));  // training step: running stats and num_batches_tracked change
    const state = model.stateDict();
    torch.save(state, file);
    fs.writeFileSync(valuesFile, JSON.stringify(Object.fromEntries([...state].map(([k, v]) => [k, Array.from(v.contiguous().data() as ArrayLike<number | bigint>, Number)]))));
  });
  model.dispose();
  const script = `
import json, sys, torch
sys.path.insert(0, ${JSON.stringify(fixturePath(''))})
from check_ts_saved import Tiny
state = torch.load(${JSON.stringify(file)})
model = Tiny()
model.load_state_dict(state, strict=True)
want = json.load(open(${JSON.stringify(valuesFile)}))
got = {k: v.double().flatten().tolist() for k, v in model.state_dict().items()}
assert list(got) == list(want), (list(got), list(want))
for k in want:
    assert got[k] == want[k], k
print('OK')
`;
  const run = spawnSync('/usr/bin/python3', ['-c', script], { encoding: 'utf8' });
  assert.equal(run.status, 0, run.stderr);
  assert.equal(run.stdout.trim(), 'OK');
});

test('a malicious pickle is refused by torch.load with the global named, and nothing runs', () => {
  const marker = '/tmp/arcface_pwned';
  fs.rmSync(marker, { force: true });
  assert.throws(() => torch.load(fixturePath('pt_malicious.pt')), /refusing to load global '(posix|os)\.system'/);
  assert.equal(fs.existsSync(marker), false);
});

test('loadStateDict names the file when it holds something other than a dict of tensors', (t) => {
  const file = tempFile(t, 'list.pt');
  torch.tidy(() => torch.save([torch.ones([2])], file));
  assert.throws(() => torch.loadStateDict(file), new RegExp(`${file.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}: expected a state dict`));
  assert.throws(() => torch.load(path.join(path.dirname(file), 'missing.pt')), /missing\.pt/);
});

// The distributed sampler against PyTorch (torch.randperm under a seeded generator,
// torch.utils.data.DistributedSampler; fixture from test/fixtures/make_data_fixtures.py) and its
// properties: shards are disjoint, cover the dataset, and follow the epoch.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fixturePath } from './helpers.js';
import { DistributedSampler, randperm } from '../src/data/index.js';

const fixture = JSON.parse(readFileSync(fixturePath('data_sampler.json'), 'utf8'));

test('randperm equals torch.randperm(n, generator=Generator().manual_seed(seed))', () => {
  for (const { n, seed, perm } of fixture.randperm) assert.deepEqual(Array.from(randperm(n, seed)), perm, `n ${n} seed ${seed}`);
});

test('DistributedSampler gives each rank the indices PyTorch gives it', () => {
  for (const f of fixture.samplers) {
    const sampler = new DistributedSampler(f.length, { worldSize: f.worldSize, rank: f.rank, shuffle: f.shuffle, dropLast: f.dropLast, seed: f.seed });
    sampler.setEpoch(f.epoch);
    assert.deepEqual(Array.from(sampler.indices()), f.indices, JSON.stringify({ ...f, indices: undefined }));
  }
});

test('shards are disjoint, equal in size, and together cover the dataset each epoch', () => {
  const length = 1003;
  const worldSize = 4;
  for (const epoch of [0, 1, 7]) {
    const shards = Array.from({ length: worldSize }, (_, rank) => {
      const s = new DistributedSampler(length, { worldSize, rank, seed: 2048, dropLast: true });
      s.setEpoch(epoch);
      return Array.from(s.indices());
    });
    const all = shards.flat();
    assert.ok(shards.every((s) => s.length === Math.floor(length / worldSize)));
    assert.equal(new Set(all).size, all.length, 'no sample on two ranks');
    const padded = Array.from({ length: worldSize }, (_, rank) => {
      const s = new DistributedSampler(length, { worldSize, rank, seed: 2048 });
      s.setEpoch(epoch);
      return Array.from(s.indices());
    }).flat();
    assert.equal(new Set(padded).size, length, 'without dropLast every sample is seen');
    assert.equal(padded.length, Math.ceil(length / worldSize) * worldSize);
  }
  const a = new DistributedSampler(length, { seed: 1 });
  const first = a.indices();
  a.setEpoch(1);
  assert.notDeepEqual(first, a.indices(), 'a new epoch reshuffles');
  assert.deepEqual(first, new DistributedSampler(length, { seed: 1 }).indices(), 'the same epoch and seed repeat');
});

test('bad sampler settings are refused with the setting named', () => {
  assert.throws(() => new DistributedSampler(10, { worldSize: 2, rank: 2 }), /rank must be in \[0, 2\), got 2/);
  assert.throws(() => new DistributedSampler(10, { worldSize: 0 }), /worldSize must be a positive integer/);
  assert.throws(() => new DistributedSampler(10, { seed: -1 }), /seed must be a non-negative integer/);
});

/**
 * Verification sharded over the ranks of a process group (real processes on 127.0.0.1): every rank
 * embeds its share of the images and flips, the embeddings are all-gathered, and each rank's result
 * is the single-process verification of the same weights — the same fold accuracies, XNorm to
 * float tolerance — for two and three ranks (shares of 20 and of 14, 14, 12 images, in batches of 8
 * that do not line up with the one-process run's).
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as torch from '../src/torch/index.js';
import { generateIdentities } from '../src/data/index.js';
import { loadVerificationSet, verificationShare, verifyBackbone, type BackboneVerification } from '../src/eval/index.js';
import { getModel } from '../src/models/index.js';
import { repoRoot } from './helpers.js';

const worker = path.join(repoRoot, 'dist', 'test', 'verification-worker.js');
let dir: string;
let bin: string;
let reference: BackboneVerification;
let nextPort = 23000 + (process.pid % 4000);

before(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'arcface-sharded-verification-'));
  // 20 pairs (two per fold): 40 images
  bin = generateIdentities({ out: dir, seed: 3, identities: 2, imagesPerIdentity: 1, heldOutIdentities: 20, pairs: 20, quality: 90, threads: 1 }).bin;
  // the worker's seeded mbf, verified here in one process with the plain (unsharded) path
  torch.manualSeed(7);
  const backbone = getModel('mbf', { embeddingSize: 64, dropout: 0 });
  const set = await loadVerificationSet(bin, { threads: 1 });
  reference = verifyBackbone(backbone, set, { batchSize: 8 });
  set.images.dispose();
  backbone.dispose();
});
after(() => fs.rmSync(dir, { recursive: true, force: true }));

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function runWorkers(worldSize: number, batchSize: number): Promise<Run[]> {
  const port = String(nextPort++);
  return Promise.all(
    Array.from({ length: worldSize }, (_, rank) => new Promise<Run>((resolve) => {
      const env = { ...process.env, MASTER_ADDR: '127.0.0.1', MASTER_PORT: port, RANK: String(rank), WORLD_SIZE: String(worldSize), ARCFACE_NUM_THREADS: '1', ARCFACE_DIST_TIMEOUT_MS: '60000' };
      const child = spawn(process.execPath, [worker, bin, String(batchSize)], { env, cwd: repoRoot });
      let stdout = '', stderr = '';
      child.stdout.on('data', (d) => (stdout += d));
      child.stderr.on('data', (d) => (stderr += d));
      const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
      child.on('exit', (code) => {
        clearTimeout(timer);
        resolve({ code, stdout, stderr });
      });
    })),
  );
}

function assertSameAsOneProcess(r: BackboneVerification, what: string): void {
  // exact accuracies: the shares' other batch boundaries change the embeddings by GEMM rounding only
  for (const kind of ['plain', 'flip'] as const) {
    assert.deepEqual(r[kind].accuracy, reference[kind].accuracy, `${what}: ${kind} fold accuracies`);
    assert.equal(r[kind].accMean, reference[kind].accMean, `${what}: ${kind} accuracy`);
    assert.equal(r[kind].accStd, reference[kind].accStd, `${what}: ${kind} std`);
  }
  assert.ok(Math.abs(r.xnorm - reference.xnorm) <= 1e-5 * reference.xnorm, `${what}: XNorm ${r.xnorm}, one process ${reference.xnorm}`);
}

test('shares are contiguous, balanced, and cover every image once', () => {
  assert.deepEqual([0, 1].map((r) => verificationShare(80, 2, r)), [{ start: 0, size: 40, padded: 40 }, { start: 40, size: 40, padded: 40 }]);
  assert.deepEqual([0, 1, 2].map((r) => verificationShare(80, 3, r)), [{ start: 0, size: 27, padded: 27 }, { start: 27, size: 27, padded: 27 }, { start: 54, size: 26, padded: 27 }]);
  // fewer images than ranks: the last share is empty (and still padded for the all-gather)
  assert.deepEqual([0, 1, 2].map((r) => verificationShare(2, 3, r)).map((s) => s.size), [1, 1, 0]);
  // LFW: 12000 images over 4 ranks
  assert.deepEqual([0, 1, 2, 3].map((r) => verificationShare(12000, 4, r).size), [3000, 3000, 3000, 3000]);
});

for (const [worldSize, batchSize] of [[2, 8], [3, 8]] as const) {
  test(`${worldSize} ranks, batches of ${batchSize}: every rank gets the one-process verification`, async () => {
    const runs = await runWorkers(worldSize, batchSize);
    for (const [rank, run] of runs.entries()) {
      assert.equal(run.code, 0, `rank ${rank}: ${run.stderr}${run.stdout}`);
      const line = run.stdout.trim().split('\n').find((l) => l.startsWith('{'));
      assert.ok(line, `rank ${rank} printed no result: ${run.stdout}`);
      const r = JSON.parse(line) as BackboneVerification & { rank: number; worldSize: number };
      assert.deepEqual([r.rank, r.worldSize], [rank, worldSize]);
      assertSameAsOneProcess(r, `rank ${rank} of ${worldSize}`);
    }
  });
}

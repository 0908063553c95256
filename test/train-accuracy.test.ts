/**
 * The default job's model learns: `npm start`'s command (package.json: set-up, then `arcface start`
 * — configs/generated_mbf.ts: MobileFaceNet, ArcFace + Partial FC, bf16), run on a smaller generated
 * pack — 200 identities × 16 images, 100 steps of 32 — must lift the 10-fold flip accuracy on 300
 * held-out pairs of unseen identities well above the same network untrained (measured: ~60 % →
 * ~75 %; docs/training.md), print the before → after line and write model.pt.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { generateIdentities } from '../src/data/index.js';
import { repoRoot } from './helpers.js';

/** The arguments `npm start` gives node after the set-up script (`node bin/arcface.js start`). */
function npmStartArguments(): string[] {
  const script: string = JSON.parse(fs.readFileSync(path.join(repoRoot, 'package.json'), 'utf8')).scripts.start;
  const match = /^bash scripts\/setup\.sh && node (bin\/arcface\.js start)$/.exec(script);
  assert.ok(match, `npm start runs "${script}", not the set-up and then arcface start`);
  return match[1].split(' ');
}

/** Starts `arcface dashboard …` as a user would, reads /api/runs from the URL it prints, stops it. */
async function dashboardRuns(args: string[]): Promise<{ id: string; state: string; step: number }[]> {
  const child = spawn(process.execPath, args, { cwd: repoRoot, stdio: ['ignore', 'pipe', 'inherit'] });
  try {
    const url = await new Promise<string>((resolve, reject) => {
      let out = '';
      child.stdout.setEncoding('utf8').on('data', (c: string) => {
        out += c;
        const m = /(http:\/\/\S+)/.exec(out);
        if (m) resolve(m[1]);
      });
      child.once('exit', (code) => reject(new Error(`dashboard exited (${code}) before printing its URL: ${out}`)));
    });
    return (await (await fetch(new URL('/api/runs', url))).json()) as { id: string; state: string; step: number }[];
  } finally {
    child.kill('SIGINT');
  }
}

test('npm start (arcface start): held-out verification accuracy rises well above the untrained baseline; the dashboard it names shows the run', async () => {
  const [bin, ...command] = npmStartArguments();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'arcface-start-'));
  try {
    const data = path.join(dir, 'data');
    generateIdentities({ out: data, seed: 1, identities: 200, imagesPerIdentity: 16, heldOutIdentities: 100, pairs: 300, quality: 90 });
    const r = spawnSync(process.execPath, [
      path.join(repoRoot, bin), ...command,
      '--set', `rec=${data}`, '--set', 'numClasses=200', '--set', 'numImage=3200', '--set', 'batchSize=32', '--set', `output=${path.join(dir, 'out')}`,
    ], { encoding: 'utf8', cwd: repoRoot });
    assert.equal(r.status, 0, r.stderr + r.stdout);
    const evaluations = fs.readFileSync(path.join(dir, 'out', 'metrics.jsonl'), 'utf8').trim().split('\n')
      .map((l) => JSON.parse(l)).filter((m) => m.type === 'verification');
    assert.deepEqual(evaluations.map((e) => e.step), [0, 100]);
    const [untrained, trained] = evaluations.map((e) => e.accuracyFlip as number);
    console.log(`held-out accuracy: untrained ${untrained}, trained ${trained}`);
    assert.ok(trained >= untrained + 0.08, `trained ${trained} vs untrained ${untrained}`);
    assert.match(r.stdout, /heldout\.bin verification \(10-fold, flip\): untrained [\d.]+% → trained [\d.]+%/);
    assert.ok(fs.existsSync(path.join(dir, 'out', 'model.pt')));
    // its last line names the dashboard of the run's folder: that command serves this run, finished
    const shown = /^dashboard: +node (bin\/arcface\.js dashboard) (\S+) /m.exec(r.stdout);
    assert.ok(shown, `no dashboard line in ${r.stdout.slice(-400)}`);
    assert.equal(shown[2], dir);
    const runs = await dashboardRuns([path.join(repoRoot, shown[1].split(' ')[0]), 'dashboard', shown[2]]);
    assert.deepEqual(runs.map((x) => [x.id, x.state, x.step]), [['out', 'finished', 100]]);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

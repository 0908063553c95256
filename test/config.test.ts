/** Training configs: defaults, validation messages, overrides, TS config files, the ported arcface_torch configs. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { resolveConfig, applyOverrides, loadConfig, baseConfig, ConfigError } from '../src/train/index.js';
import { repoRoot } from './helpers.js';

const required = { rec: '/data/x', numClasses: 10, numImage: 100, numEpoch: 1 };

test('unset keys take arcface_torch base.py defaults', () => {
  const c = resolveConfig(required);
  assert.deepEqual(c.marginList, [1.0, 0.5, 0.0]);
  assert.equal(c.network, 'r50');
  assert.equal(c.batchSize, 128);
  assert.equal(c.lr, 0.1);
  assert.equal(c.weightDecay, 5e-4);
  assert.equal(c.seed, 2048);
  assert.equal(c.frequent, 10);
  assert.equal(c.verbose, 2000);
  assert.equal(c.warmupEpoch, 0);
  assert.deepEqual(c.valTargets, []);
  assert.equal(c.sampleRate, baseConfig.sampleRate);
  // not in arcface_torch: the fp16 divergence stop (docs/training.md, "Divergence")
  assert.deepEqual([c.gradScaleFloor, c.gradScaleFloorSteps], [1, 200]);
});

test('bad settings are one clear ConfigError naming the key', () => {
  const cases: [Record<string, unknown>, RegExp][] = [
    [{ ...required, netwrok: 'r50' }, /unknown key 'netwrok' \(did you mean 'network'\?\)/],
    [{ ...required, batchSize: '128' }, /'batchSize' must be a positive integer, got "128"/],
    [{ ...required, sampleRate: 1.5 }, /'sampleRate' must be a number in \[0, 1\], got 1.5/],
    [{ ...required, optimizer: 'adam' }, /'optimizer' must be one of 'sgd', 'adamw', got "adam"/],
    [{ ...required, marginList: [1, 0.5] }, /'marginList' must be three numbers/],
    [{ numClasses: 10, numImage: 100, numEpoch: 1 }, /'rec' is required/],
    [{ ...required, fp16: true, bf16: true }, /'fp16' and 'bf16' are exclusive/],
    [{ ...required, gradScaleFloor: -1 }, /'gradScaleFloor' must be a non-negative number, got -1/],
    [{ ...required, gradScaleFloorSteps: 0 }, /'gradScaleFloorSteps' must be a positive integer, got 0/],
  ];
  for (const [config, message] of cases) {
    assert.throws(() => resolveConfig(config, 'my.ts'), (e: Error) => e instanceof ConfigError && /^my\.ts: /.test(e.message) && message.test(e.message));
  }
});

test('--set overrides accept snake_case keys and JSON values', () => {
  const c = resolveConfig(applyOverrides(required, ['batch_size=64', 'network=r18', 'margin_list=[1,0,0.4]', 'fp16=true']));
  assert.equal(c.batchSize, 64);
  assert.equal(c.network, 'r18');
  assert.deepEqual(c.marginList, [1, 0, 0.4]);
  assert.equal(c.fp16, true);
  assert.throws(() => applyOverrides({}, ['novalue']), /--set novalue: expected key=value/);
});

test('every ported arcface_torch config loads and validates', async () => {
  const files = fs.readdirSync(path.join(repoRoot, 'configs')).filter((f) => f.endsWith('.ts'));
  assert.ok(files.length >= 40, `${files.length} configs`);
  for (const f of files) {
    const c = await loadConfig(path.join(repoRoot, 'configs', f));
    assert.equal(c.output, path.join('work_dirs', f.replace(/\.ts$/, '')), f);
  }
  const ms1mv3 = await loadConfig(path.join(repoRoot, 'configs', 'ms1mv3_r50.ts'));
  assert.equal(ms1mv3.numClasses, 93431);
  assert.equal(ms1mv3.numImage, 5179510);
  assert.equal(ms1mv3.fp16, true);
  assert.deepEqual(fs.readdirSync(path.join(repoRoot, 'configs')).filter((f) => f.endsWith('.mjs')), [], 'no temporary module is left');
});

test('a config file with a type error in its values, or none at all, is a ConfigError', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'config-test-'));
  try {
    const bad = path.join(dir, 'bad.ts');
    fs.writeFileSync(bad, "const lr: number = 0.1;\nexport default { rec: '/d', numClasses: 2, numImage: 4, numEpoch: 1, lr, batchSize: 0 };\n");
    await assert.rejects(loadConfig(bad), /bad\.ts: 'batchSize' must be a positive integer, got 0/);
    await assert.rejects(loadConfig(path.join(dir, 'missing.ts')), /missing\.ts: config file not found/);
    const noDefault = path.join(dir, 'nodefault.ts');
    fs.writeFileSync(noDefault, 'export const x = 1;\n');
    await assert.rejects(loadConfig(noDefault), /no default export/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('arcface config exits 2 with one message for a bad config', () => {
  const run = spawnSync(process.execPath, [path.join(repoRoot, 'bin', 'arcface.js'), 'config', 'configs/ms1mv3_r50.ts', '--set', 'lr=-1'], { cwd: repoRoot, encoding: 'utf8' });
  assert.equal(run.status, 2);
  assert.equal(run.stderr.trim(), "arcface config: configs/ms1mv3_r50.ts: 'lr' must be a positive number, got -1");
});

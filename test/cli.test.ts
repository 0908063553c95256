/** The `arcface` command: --version, doctor, demo (as the README's `npm start` runs it). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { repoRoot } from './helpers.js';

const arcface = (...args: string[]) =>
  spawnSync(process.execPath, [path.join(repoRoot, 'bin', 'arcface.js'), ...args], { encoding: 'utf8', cwd: repoRoot });

test('arcface --version prints the package version', () => {
  const run = arcface('--version');
  assert.equal(run.status, 0, run.stderr);
  const pkg = JSON.parse(fs.readFileSync(path.join(repoRoot, 'package.json'), 'utf8'));
  assert.equal(run.stdout.trim(), pkg.version);
});

test('arcface doctor reports libtorch 1.13+, OpenBLAS, threads and Gloo', () => {
  const run = arcface('doctor', '--json');
  assert.equal(run.status, 0, run.stdout + run.stderr);
  const facts = JSON.parse(run.stdout);
  assert.match(facts.libtorch, /^\d+\.\d+/);
  assert.match(facts.blas, /openblas/i);
  assert.ok(facts['intra-op threads'] >= 1);
  assert.equal(facts.gloo, true);
  assert.equal(typeof facts['cuda available'], 'boolean');
  assert.deepEqual(facts.problems, []);
});

test('arcface with an unknown command or bad option exits non-zero with a message', () => {
  const unknown = arcface('frobnicate');
  assert.equal(unknown.status, 2);
  assert.match(unknown.stderr, /unknown command 'frobnicate'/);
  const bad = arcface('demo', '--steps', 'many');
  assert.equal(bad.status, 1);
  assert.match(bad.stderr, /--steps needs a positive integer, got many/);
});

test('arcface demo trains and its loss falls', () => {
  const run = arcface('demo', '--steps', '100', '--batch', '16');
  assert.equal(run.status, 0, run.stdout + run.stderr);
  const losses = [...run.stdout.matchAll(/step +\d+ +loss (\d+\.\d+)/g)].map((m) => Number(m[1]));
  assert.ok(losses.length >= 4, run.stdout);
  assert.ok(losses.at(-1)! < losses[0] / 2, `loss did not fall: ${losses.join(' ')}`);
});

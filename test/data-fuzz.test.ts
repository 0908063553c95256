// Fuzzing the parsers of untrusted files: .rec/.idx (TypeScript and native readers) and
// verification .bin pickles. Thousands of truncated and bit-flipped variants of valid files, from a
// fixed seed: each must end in valid data or a DataError (never another exception, a hang or a crash).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fixturePath } from './helpers.js';
import {
  DataError, ImageDecoder, MT19937, PackWriter, encodeVerificationBin, memorySource, parseIndex, parseVerificationBin, readRecord, unpackIR,
} from '../src/data/index.js';
import { native } from '../src/torch/native.js';

const rng = new MT19937(20240611);
const below = (n: number) => rng.next() % n;

/** A copy cut at a random length (half the time) with 1–4 random bytes changed. */
function mutate(bytes: Uint8Array): Uint8Array {
  const out = Uint8Array.from(bytes.subarray(0, below(2) ? below(bytes.length + 1) : bytes.length));
  for (let k = 1 + below(4); k > 0 && out.length > 0; k--) out[below(out.length)] ^= 1 + below(255);
  return out;
}

function expectCleanOutcome(fn: () => void, what: string): 'ok' | 'error' {
  try {
    fn();
    return 'ok';
  } catch (error) {
    assert.ok(error instanceof DataError, `${what}: ${(error as Error)?.stack ?? error}`);
    return 'error';
  }
}

test('RecordIO and .idx parsers: 4000 corrupted files give records or DataErrors', () => {
  const rec = readFileSync(fixturePath('data_small.rec'));
  const idx = readFileSync(fixturePath('data_small.idx'));
  const offsets = Array.from(parseIndex(idx, 'train.idx', rec.length).offsets);
  const tally = { ok: 0, error: 0 };
  for (let c = 0; c < 4000; c++) {
    const bytes = mutate(rec);
    const source = memorySource(bytes, 'train.rec');
    const starts = [...offsets, below(rec.length)];
    for (const offset of starts) {
      tally[expectCleanOutcome(() => {
        const { data, end } = readRecord(source, offset, 7);
        assert.ok(end <= bytes.length && data.length <= bytes.length);
        const { header, image } = unpackIR(data, 'train.rec', 7);
        assert.ok(image.length <= data.length && header.flag >= 0);
      }, `case ${c} offset ${offset}`)]++;
    }
    tally[expectCleanOutcome(() => void parseIndex(mutate(idx), 'train.idx', bytes.length), `idx case ${c}`)]++;
  }
  // both outcomes must actually occur for the fuzzing to mean anything
  assert.ok(tally.ok > 1000 && tally.error > 1000, JSON.stringify(tally));
});

test('verification .bin parser: 4000 corrupted pickles give a set or a DataError', () => {
  const py3 = encodeVerificationBin({ images: [Uint8Array.of(1, 2, 3), new Uint8Array(300).fill(7), new Uint8Array(0), Uint8Array.of(255)], issame: [true, false] });
  const py2 = readFileSync(fixturePath('data_verification_py2.bin'));
  const tally = { ok: 0, error: 0 };
  for (let c = 0; c < 4000; c++) {
    const bytes = mutate(c % 2 ? py2 : py3);
    tally[expectCleanOutcome(() => {
      const set = parseVerificationBin(bytes, 'lfw.bin');
      assert.ok(set.images.every((i) => i instanceof Uint8Array) && set.issame.every((f) => typeof f === 'boolean'));
      assert.ok(set.images.length >= 2 * set.issame.length);
    }, `case ${c}`)]++;
  }
  assert.ok(tally.ok > 200 && tally.error > 1000, JSON.stringify(tally));
});

test('native reader and decoder: 300 corrupted .rec files give images or per-sample errors', async () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'arcface-fuzz-'));
  const pack = new PackWriter(path.join(dir, 'base'));
  const faces = native.renderFaces({ seed: 3, identities: Float64Array.from([0, 0, 1, 1, 2, 2]), images: Float64Array.from([0, 1, 0, 1, 0, 1]), quality: 80, threads: 2 });
  faces.forEach((jpeg, i) => pack.add(Math.floor(i / 2), jpeg));
  pack.close();
  const rec = readFileSync(path.join(dir, 'base', 'train.rec'));
  const offsets = Float64Array.from(parseIndex(readFileSync(path.join(dir, 'base', 'train.idx')), 'train.idx', rec.length).offsets.subarray(0, 6));
  const decoder = new ImageDecoder({ threads: 2 });
  let failed = 0;
  let decoded = 0;
  for (let c = 0; c < 300; c++) {
    // a new file per case: the decoder keeps the .rec files it reads open
    const file = path.join(dir, `case${c}.rec`);
    writeFileSync(file, mutate(rec));
    const result = await decoder.decode({ rec: { path: file, offsets } }, [0, 1, 2, 3, 4, 5], { augment: { flip: 0.5, dali: true } });
    const pixels = result.images.data() as Float32Array;
    assert.ok(pixels.every((v) => v >= -1 && v <= 1), `case ${c}: pixels outside [-1, 1]`);
    result.images.dispose();
    for (const error of result.errors) {
      if (error === null) decoded++;
      else {
        failed++;
        assert.equal(typeof error, 'string');
        assert.ok(error.length > 0);
      }
    }
  }
  decoder.close();
  rmSync(dir, { recursive: true, force: true });
  assert.ok(failed > 100 && decoded > 100, `failed ${failed}, decoded ${decoded}`);
});

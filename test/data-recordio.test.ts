// RecordIO and insightface packs: byte-exact against MXNet's format rules (fixture written by
// test/fixtures/make_data_fixtures.py), the insightface layout, folder → pack → reader round trips,
// `arcface pack`, and errors that name the file and record.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync, mkdirSync, copyFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fixturePath, repoRoot } from './helpers.js';
import {
  DataError, IndexedRecordIO, IndexedRecordIOWriter, MXFaceDataset, ImageFolder, PackWriter, checkPack, encodeRecord, imageLabel,
  memorySource, packFolder, packIR, parseIndex, readRecord, unpackIR, decodeImage, encodeJpeg,
} from '../src/data/index.js';
import { native } from '../src/torch/native.js';
import { run } from '../src/cli/main.js';

interface FixtureRecord {
  key: number;
  label: number | number[];
  image: string;
}
const fixture: { records: FixtureRecord[]; numClasses: number } = JSON.parse(readFileSync(fixturePath('data_small.json'), 'utf8'));
const root = mkdtempSync(path.join(os.tmpdir(), 'arcface-data-'));
test.after(() => rmSync(root, { recursive: true, force: true }));
let dirCount = 0;
const tmp = () => mkdtempSync(path.join(root, `${dirCount++}-`));

function packOf(r: FixtureRecord): Uint8Array {
  return packIR({ label: r.label, id: r.key }, Buffer.from(r.image, 'base64'));
}

test('writer produces the bytes of MXNet IndexedRecordIO (magic splitting, padding, .idx lines)', () => {
  const dir = tmp();
  const writer = new IndexedRecordIOWriter(path.join(dir, 'a.idx'), path.join(dir, 'a.rec'));
  for (const r of fixture.records) writer.write(r.key, packOf(r));
  writer.close();
  assert.deepEqual(readFileSync(path.join(dir, 'a.rec')), readFileSync(fixturePath('data_small.rec')));
  assert.equal(readFileSync(path.join(dir, 'a.idx'), 'utf8'), readFileSync(fixturePath('data_small.idx'), 'utf8'));
});

test('reader returns the records MXNet wrote, IRHeaders included', () => {
  const rec = new IndexedRecordIO(fixturePath('data_small.idx'), fixturePath('data_small.rec'));
  assert.deepEqual(Array.from(rec.keys), fixture.records.map((r) => r.key));
  for (const r of fixture.records) {
    const { header, image } = unpackIR(rec.read(r.key), 'data_small.rec', r.key);
    assert.deepEqual(Buffer.from(image), Buffer.from(r.image, 'base64'), `record ${r.key}`);
    if (typeof r.label === 'number') {
      assert.equal(header.flag, 0);
      assert.equal(imageLabel(header), r.label);
    } else {
      assert.equal(header.flag, r.label.length);
      assert.deepEqual(Array.from(header.label as Float32Array), r.label);
    }
    assert.equal(header.id, r.key);
  }
  rec.close();
});

test('encodeRecord splits at aligned magics only and readRecord joins the parts back', () => {
  const magic = [0x0a, 0x23, 0xd7, 0xce];
  const cases = [[], [1], [...magic], [...magic, ...magic], [0, ...magic, 0, 0, 0], [0, 0, 0, 0, ...magic, 9]].map((a) => Uint8Array.from(a));
  for (const data of cases) {
    const framed = encodeRecord(data);
    assert.equal(framed.length % 4, 0);
    const { data: back, end } = readRecord(memorySource(framed), 0);
    assert.deepEqual(Array.from(back), Array.from(data));
    assert.equal(end, framed.length);
  }
  // an unaligned magic stays inside one part: the record is 8 bytes of header + 9 bytes + 3 padding
  assert.equal(encodeRecord(Uint8Array.from([0, ...magic, 0, 0, 0, 0])).length, 20);
});

test('MXFaceDataset reads the insightface layout: header record, image range, identity records', () => {
  const dir = tmp();
  copyFileSync(fixturePath('data_small.rec'), path.join(dir, 'train.rec'));
  copyFileSync(fixturePath('data_small.idx'), path.join(dir, 'train.idx'));
  const ds = new MXFaceDataset(dir);
  assert.deepEqual(ds.header0, [6, 9]);
  assert.deepEqual(Array.from(ds.imgidx), [1, 2, 3, 4, 5]);
  assert.equal(ds.numClasses, 3); // no property file: counted from the identity records
  assert.deepEqual(ds.identityRanges(), [[1, 3], [3, 5], [5, 6]]);
  const images = fixture.records.filter((r) => r.key >= 1 && r.key <= 5);
  images.forEach((r, i) => {
    const { label, image } = ds.read(i);
    assert.equal(label, r.label);
    assert.deepEqual(Buffer.from(image), Buffer.from(r.image, 'base64'));
  });
  ds.close();
});

test('MXFaceDataset without a header record (rec_builder layout) uses every indexed record', () => {
  const dir = tmp();
  const writer = new IndexedRecordIOWriter(path.join(dir, 'train.idx'), path.join(dir, 'train.rec'));
  for (let key = 0; key < 4; key++) writer.write(key, packIR({ label: key % 2, id: key }, Uint8Array.of(key)));
  writer.close();
  writeFileSync(path.join(dir, 'property'), '2,112,112\n');
  const ds = new MXFaceDataset(dir);
  assert.equal(ds.header0, undefined);
  assert.equal(ds.length, 4);
  assert.equal(ds.numClasses, 2);
  assert.deepEqual([0, 1, 2, 3].map((i) => ds.read(i).label), [0, 1, 0, 1]);
  ds.close();
});

/** A folder of identities with JPEG and PNG faces rendered by the generator. */
function makeFolder(dir: string): Map<string, Uint8Array> {
  const files = new Map<string, Uint8Array>();
  const people = ['zoe', 'adam', 'Bob', 'mia'];
  const faces = native.renderFaces({ seed: 5, identities: Float64Array.from([0, 0, 1, 1, 1, 2, 3, 3]), images: Float64Array.from([0, 1, 0, 1, 2, 0, 0, 1]), quality: 0, threads: 1 });
  faces.forEach((rgb, i) => {
    const person = people[[0, 0, 1, 1, 1, 2, 3, 3][i]];
    const sub = i === 4 ? 'nested' : '';
    mkdirSync(path.join(dir, person, sub), { recursive: true });
    const file = path.join(dir, person, sub, `img${i}.jpg`);
    const bytes = encodeJpeg(rgb, 112, 112, 92);
    writeFileSync(file, bytes);
    files.set(file, bytes);
  });
  writeFileSync(path.join(dir, 'mia', 'notes.txt'), 'not an image');
  return files;
}

test('ImageFolder numbers identities in sorted order, as torchvision', () => {
  const src = tmp();
  makeFolder(src);
  const folder = new ImageFolder(src);
  assert.deepEqual(folder.classes, ['Bob', 'adam', 'mia', 'zoe']); // code-unit order: uppercase first
  assert.deepEqual(folder.targets, [0, 1, 1, 1, 2, 2, 3, 3]);
  assert.deepEqual(
    folder.samples.map(([file]) => path.relative(src, file)),
    ['Bob/img5.jpg', 'adam/img2.jpg', 'adam/img3.jpg', 'adam/nested/img4.jpg', 'mia/img6.jpg', 'mia/img7.jpg', 'zoe/img0.jpg', 'zoe/img1.jpg'],
  );
});

test('image folder → pack → reader gives back the same images and labels; pack --check agrees', async () => {
  const src = tmp();
  const files = makeFolder(src);
  const out = path.join(tmp(), 'pack');
  const progress: number[] = [];
  const result = packFolder(src, out, (done) => progress.push(done));
  assert.deepEqual(result, { images: 8, identities: 4 });
  assert.equal(progress.at(-1), 8);
  assert.equal(readFileSync(path.join(out, 'property'), 'utf8'), '4,112,112\n');
  const folder = new ImageFolder(src);
  const ds = new MXFaceDataset(out);
  assert.equal(ds.length, folder.length);
  assert.deepEqual(ds.identityRanges(), [[1, 2], [2, 5], [5, 7], [7, 9]]);
  folder.samples.forEach(([file, label], i) => {
    const { label: packed, image } = ds.read(i);
    assert.equal(packed, label);
    assert.deepEqual(Buffer.from(image), Buffer.from(files.get(file)!));
    assert.equal(decodeImage(image).width, 112);
  });
  ds.close();
  const report = await checkPack(out, { threads: 2 });
  assert.deepEqual(report, { images: 8, identities: 4, numClasses: 4, layout: 'header', sizes: { '112x112': 8 }, problems: [] });
  // a broken image is reported with its record, the rest still checked
  const rec = readFileSync(path.join(out, 'train.rec'));
  const idx = new IndexedRecordIO(path.join(out, 'train.idx'), path.join(out, 'train.rec'));
  rec[idx.offset(3) + 8 + 24] = 0; // the JPEG signature of record 3
  idx.close();
  writeFileSync(path.join(out, 'train.rec'), rec);
  const broken = await checkPack(out);
  assert.deepEqual(broken.problems, ['train.rec: record 3: not a JPEG or PNG image (unrecognised signature)']);
  assert.deepEqual(broken.sizes, { '112x112': 7 });
});

test('arcface pack writes and checks a pack from the command line', async () => {
  const src = tmp();
  makeFolder(src);
  const out = path.join(tmp(), 'cli-pack');
  const made = spawnSync(process.execPath, [path.join(repoRoot, 'bin', 'arcface.js'), 'pack', '--src', src, '--out', out], { encoding: 'utf8' });
  assert.equal(made.status, 0, made.stderr);
  assert.match(made.stdout, /8 images of 4 identities/);
  const printed: string[] = [];
  const log = console.log, error = console.error;
  console.log = console.error = (line: string) => void printed.push(line);
  try {
    assert.equal(await run(['pack', '--check', out, '--json']), 0);
    assert.equal(JSON.parse(printed[0]).images, 8);
    assert.equal(await run(['pack', '--src', src]), 2);
    assert.match(printed[1], /usage: arcface pack/);
  } finally {
    console.log = log;
    console.error = error;
  }
});

test('PackWriter refuses identities out of order', () => {
  const pack = new PackWriter(tmp());
  pack.add(0, Uint8Array.of(1));
  assert.throws(() => pack.add(2, Uint8Array.of(1)), /grouped by identity/);
});

test('bad files: errors name the file and the record', () => {
  const dir = tmp();
  copyFileSync(fixturePath('data_small.idx'), path.join(dir, 'train.idx'));
  const rec = readFileSync(fixturePath('data_small.rec'));
  const save = (bytes: Uint8Array) => writeFileSync(path.join(dir, 'train.rec'), bytes);
  const expectError = (fn: () => unknown, pattern: RegExp) =>
    assert.throws(fn, (e: unknown) => e instanceof DataError && pattern.test(e.message), String(pattern));

  // truncated inside record 0 (the header, at offset 272)
  const lines = readFileSync(fixturePath('data_small.idx'), 'utf8').split('\n');
  writeFileSync(path.join(dir, 'train.idx'), `${lines.slice(0, 6).join('\n')}\n`);
  save(rec.subarray(0, 300));
  expectError(() => new MXFaceDataset(dir), /^train\.rec: record 0: truncated record: the file ends inside the record at offset 272$/);
  // an .idx line that points past the end: names the .idx file, the key and the line
  writeFileSync(path.join(dir, 'train.idx'), lines.join('\n'));
  expectError(() => new MXFaceDataset(dir), /^train\.idx: record 6: offset 312 \(line 7\) points past the end of the \.rec file \(300 bytes\)$/);
  copyFileSync(fixturePath('data_small.idx'), path.join(dir, 'train.idx'));
  // a bad magic in record 2 (offset 72)
  const flipped = Buffer.from(rec);
  flipped[72] ^= 0xff;
  save(flipped);
  const ds = new MXFaceDataset(dir);
  expectError(() => ds.read(1), /^train\.rec: record 2: bad magic 0xced723f5 at offset 72 \(expected 0xced7230a\)$/);
  ds.close();
  // a record cut by the end of the file
  const idx = new IndexedRecordIO(fixturePath('data_small.idx'), fixturePath('data_small.rec'));
  const source = memorySource(rec.subarray(0, 100), 'train.rec');
  expectError(() => readRecord(source, idx.offset(2), 2), /^train\.rec: record 2: truncated record/);
  idx.close();
  // a malformed .idx line
  expectError(() => parseIndex(Buffer.from('1\t0\nfoo\n'), 'train.idx', 100), /^train\.idx: line 2: expected 'key<TAB>offset', got 'foo'$/);
});

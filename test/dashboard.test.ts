/**
 * `arcface dashboard`'s HTTP API against run folders written by TrainingLog (the trainer's exact
 * metrics.jsonl/training.log format): run list and state rule, live metrics, and the refusals.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import type { AddressInfo } from 'node:net';
import { createDashboardServer } from '../src/dashboard/server.js';
import { GrowingFile } from '../src/dashboard/growing-file.js';
import { launchChromium, noChromium } from './browser.js';
import { TrainingLog } from '../src/train/training-log.js';

function writeRun(dir: string, steps: number[], totalStep: number): TrainingLog {
  const log = new TrainingLog(dir, true, false);
  log.info(`: output                   ${JSON.stringify(dir)}`);
  log.info(`: totalStep                ${totalStep} (${totalStep} per epoch, 0 warm-up)`);
  for (const step of steps) log.logPoint({ step, epoch: 0, loss: 20 - step, lr: 0.1, samplesPerSec: 50, hoursLeft: 0 });
  log.evaluation({ step: steps.at(-1)!, name: 'lfw', accuracyFlip: 0.61, stdFlip: 0.01, accuracy: 0.6, std: 0.01, xnorm: 1, highest: 0.61 });
  log.evaluation({ step: steps.at(-1)!, name: 'lfw', accuracyFlip: 0.55, stdFlip: 0.01, accuracy: 0.55, std: 0.01, xnorm: 1, highest: 0.61 });
  return log;
}

/** Raw GET (no URL normalisation by a client), answering status and body. */
function get(port: number, target: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    http.get({ host: '127.0.0.1', port, path: target }, (res) => {
      let body = '';
      res.on('data', (c) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode!, body }));
    }).on('error', reject);
  });
}

test('dashboard API: runs, state rule, live metrics, and refusals', async (t) => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'dashboard-'));
  const outside = fs.mkdtempSync(path.join(os.tmpdir(), 'dashboard-outside-'));
  fs.writeFileSync(path.join(outside, 'secret.txt'), 'secret');
  writeRun(path.join(outside, 'hidden'), [1], 1).close();
  const live = writeRun(path.join(root, 'live'), [2, 4], 10);
  const done = writeRun(path.join(root, 'done'), [5, 10], 10);
  done.close();
  fs.writeFileSync(path.join(root, 'done', 'model.pt'), 'x');
  const old = writeRun(path.join(root, 'old'), [3], 10);
  old.close();
  const past = new Date(Date.now() - 3600_000);
  for (const f of ['metrics.jsonl', 'training.log']) fs.utimesSync(path.join(root, 'old', f), past, past);
  fs.symlinkSync(path.join(outside, 'hidden'), path.join(root, 'linked'));
  fs.writeFileSync(path.join(root, 'done', 'eval-lfw.json'), JSON.stringify({ accuracies: { lfw: 0.7 }, tarAtFar: { '1e-4': 0.3 }, roc: { far: [1e-4, 1], tar: [0.3, 1] } }));

  const server = createDashboardServer([root]);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  t.after(() => { live.close(); server.closeAllConnections(); server.close(); });

  const runs = JSON.parse((await get(port, '/api/runs')).body) as { id: string; state: string; step: number; loss: number; bestAccuracy: Record<string, number> }[];
  const byId = new Map(runs.map((r) => [r.id, r]));
  assert.deepEqual([...byId.keys()].sort(), ['done', 'live', 'old'], 'the symlinked run is not listed');
  assert.equal(byId.get('live')!.state, 'running');
  assert.equal(byId.get('done')!.state, 'finished');
  assert.equal(byId.get('old')!.state, 'stopped');
  assert.equal(byId.get('live')!.step, 4);
  assert.equal(byId.get('live')!.loss, 16);
  assert.equal(byId.get('done')!.bestAccuracy.lfw, 0.61, 'best, not last, accuracy');

  const detail = JSON.parse((await get(port, '/api/runs/done')).body);
  assert.equal(detail.config.totalStep, '10 (10 per epoch, 0 warm-up)');
  assert.equal(detail.metrics.filter((r: { type: string }) => r.type === 'train').length, 2);
  assert.deepEqual(detail.evaluations[0].tarAtFar, { '1e-4': 0.3 });

  for (const target of ['/api/runs/..%2f..%2fetc', '/api/runs/%2e%2e/%2e%2e/etc/passwd', '/..%2fsecret.txt', '/api/runs/linked', '/api/runs/' + encodeURIComponent(path.join(outside, 'hidden')), '/etc/passwd', '/api/runs/live/../../secret.txt']) {
    const { status, body } = await get(port, target);
    assert.ok(status === 403 || status === 404, `${target} → ${status}`);
    assert.ok(!body.includes('secret') && !body.includes('"type"'), `${target} leaked ${body.slice(0, 80)}`);
  }
  assert.equal((await get(port, '/uPlot.iife.min.js')).status, 200, 'uPlot served from node_modules');

  // server-sent events: a point appended while the client listens arrives
  const event = new Promise<Record<string, unknown>>((resolve, reject) => {
    http.get({ host: '127.0.0.1', port, path: '/api/runs/live/events?from=4' }, (res) => {
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        const m = /^data: (.*)$/m.exec(chunk);
        if (m) { resolve(JSON.parse(m[1])); res.destroy(); }
      });
    }).on('error', reject);
  });
  live.logPoint({ step: 6, epoch: 0, loss: 14, lr: 0.1, samplesPerSec: 50, hoursLeft: 0 });
  const got = await event;
  assert.equal(got.type, 'train');
  assert.equal(got.step, 6);
});

test('GrowingFile: only appended bytes, complete lines only, a cut-back file read again', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'growing-'));
  const file = path.join(dir, 'metrics.jsonl');
  const reader = new GrowingFile(file);
  assert.deepEqual(reader.read(), { lines: [], restarted: false }, 'a missing file is empty');
  fs.writeFileSync(file, 'a1\nb2\nc');
  assert.deepEqual(reader.read(), { lines: ['a1', 'b2'], restarted: false }, 'the line being written waits');
  fs.appendFileSync(file, 'é3\n');  // a two-byte character right after the unfinished part
  assert.deepEqual(reader.read(), { lines: ['cé3'], restarted: false });
  assert.deepEqual(reader.read(), { lines: [], restarted: false });
  // a resume: cut back to the first line, then more written than there was
  fs.truncateSync(file, 3);
  fs.appendFileSync(file, 'x2\ny3\nz4\n');
  assert.deepEqual(reader.read(), { lines: ['a1', 'x2', 'y3', 'z4'], restarted: true }, 'rewritten past the old end: noticed');
  fs.truncateSync(file, 3);
  assert.deepEqual(reader.read(), { lines: ['a1'], restarted: true }, 'shorter: noticed');
  fs.rmSync(dir, { recursive: true, force: true });
});

test('dashboard ids: a run folder given itself is named by its folder; several roots by theirs', async (t) => {
  const a = fs.mkdtempSync(path.join(os.tmpdir(), 'dashboard-a-'));
  const b = fs.mkdtempSync(path.join(os.tmpdir(), 'dashboard-b-'));
  writeRun(path.join(a, 'r50'), [1], 1).close();
  writeRun(path.join(b, 'mbf'), [1], 1).close();
  const ids = async (roots: string[]) => {
    const server = createDashboardServer(roots);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const runs = JSON.parse((await get((server.address() as AddressInfo).port, '/api/runs')).body) as { id: string }[];
      return runs.map((r) => r.id).sort();
    } finally { server.close(); }
  };
  t.after(() => [a, b].forEach((d) => fs.rmSync(d, { recursive: true, force: true })));
  assert.deepEqual(await ids([path.join(a, 'r50')]), ['r50']);
  assert.deepEqual(await ids([a]), ['r50']);
  assert.deepEqual(await ids([a, b]), [`${path.basename(a)}/r50`, `${path.basename(b)}/mbf`]);
  assert.deepEqual(await ids([path.join(a, 'r50'), path.join(a, 'r50')]), ['r50', 'r50~2'], 'the same name twice');
});

test('dashboard events follow a resumed run: the cut-back metrics.jsonl is sent again after a reset', async (t) => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'dashboard-resume-'));
  const run = writeRun(path.join(root, 'run'), [1, 2], 10);
  const atStep2 = run.lengths();
  run.logPoint({ step: 3, epoch: 0, loss: 17, lr: 0.1, samplesPerSec: 50, hoursLeft: 0 });
  const server = createDashboardServer([root]);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(() => { run.close(); server.closeAllConnections(); server.close(); fs.rmSync(root, { recursive: true, force: true }); });
  const events: string[] = [];
  let buffer = '';
  const request = http.get({ host: '127.0.0.1', port: (server.address() as AddressInfo).port, path: '/api/runs/run/events' }, (res) => {
    res.setEncoding('utf8');
    res.on('data', (chunk: string) => {
      buffer += chunk;
      for (let end = buffer.indexOf('\n\n'); end >= 0; end = buffer.indexOf('\n\n')) {
        const message = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const data = JSON.parse(/^data: (.*)$/m.exec(message)![1]);
        events.push(message.startsWith('event: reset') ? 'reset' : `${data.type}:${data.step ?? ''}`);
      }
    });
  });
  t.after(() => request.destroy());
  const until = async (what: string) => {
    for (const start = Date.now(); !events.includes(what); await new Promise((r) => setTimeout(r, 50))) {
      if (Date.now() - start > 10_000) assert.fail(`no ${what} event in ${JSON.stringify(events)}`);
    }
  };
  await until('train:3');
  assert.deepEqual(events, ['train:1', 'train:2', 'verification:2', 'verification:2', 'train:3']);
  // resumed from the checkpoint at step 2: step 3 runs again, and on
  run.truncate(atStep2);
  for (const step of [3, 4, 5]) run.logPoint({ step, epoch: 0, loss: 30 - step, lr: 0.1, samplesPerSec: 50, hoursLeft: 0 });
  await until('train:5');
  assert.deepEqual(events.slice(5), ['reset', 'train:1', 'train:2', 'verification:2', 'verification:2', 'train:3', 'train:4', 'train:5']);
});

if (noChromium) console.log(`# ${noChromium}`);

test('the page in headless chromium: runs listed, charts with every point, a point appended by a running run appears, a screenshot', { skip: noChromium, timeout: 120_000 }, async (t) => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'dashboard-page-'));
  const done = writeRun(path.join(root, 'done'), [1, 2, 3, 4, 5], 5);
  done.close();
  fs.writeFileSync(path.join(root, 'done', 'model.pt'), 'x');
  fs.writeFileSync(path.join(root, 'done', 'eval-ijbc.json'), JSON.stringify({ tarAtFar: { '1e-5': 0.81, '1e-4': 0.9 }, roc: { far: [1e-6, 1e-5, 1e-4, 1e-2, 1], tar: [0.7, 0.81, 0.9, 0.97, 1] } }));
  const live = writeRun(path.join(root, 'live'), [1, 2, 3], 10);
  const server = createDashboardServer([root]);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
  t.after(() => {
    live.close();
    server.closeAllConnections();
    server.close();
    fs.rmSync(root, { recursive: true, force: true });
  });
  const browser = await launchChromium();
  t.after(() => browser.close());
  const page = await browser.newPage({ viewport: { width: 1300, height: 1000 } });
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(e.message));
  await page.goto(url);

  // both runs listed with their state; the first (done) selected: its loss chart holds its 5 points
  await page.waitForFunction("document.querySelectorAll('tr.run').length === 2");
  const rows = await page.$$eval('tr.run', (trs) => trs.map((tr) => [tr.getAttribute('data-run'), tr.children[2].textContent]));
  assert.deepEqual(rows.sort(), [['done', 'finished'], ['live', 'running']]);
  const points = (chart: string) => page.$eval(`.chart[data-chart="${chart}"]`, (e) => Number(e.getAttribute('data-points'))).catch(() => -1);
  await page.waitForSelector('.chart[data-chart="loss"] canvas');
  assert.equal(await points('loss'), 5);
  assert.equal(await points('accuracyFlip'), 2, 'two verification points');
  assert.ok(await page.$('.chart[data-chart="roc"] canvas'), 'the ROC of eval-ijbc.json is drawn');
  assert.match(await page.textContent('#details') ?? '', /1e-5\s*81\.00%/);

  // select the running run too: 5 + 3 loss points, and a step it logs now appears without a reload
  await page.check('input[data-run="live"]');
  const lossPointsAre = (n: number) => `document.querySelector('.chart[data-chart="loss"]')?.getAttribute('data-points') === '${n}'`;
  await page.waitForFunction(lossPointsAre(8));
  live.logPoint({ step: 4, epoch: 0, loss: 16, lr: 0.1, samplesPerSec: 50, hoursLeft: 0 });
  await page.waitForFunction(lossPointsAre(9), undefined, { timeout: 10_000 });
  const screenshot = path.join(os.tmpdir(), 'arcface-dashboard.png');
  await page.screenshot({ path: screenshot, fullPage: true });
  console.log(`# screenshot: ${screenshot}`);
  assert.deepEqual(errors, [], 'no script errors on the page');
});

/**
 * `arcface dashboard`'s HTTP server (node:http): the page from this package's dashboard/ folder,
 * uPlot from node_modules, and a read-only JSON API over the run folders it was given.
 *   GET /api/runs                → RunSummary[]
 *   GET /api/runs/<id>           → { summary, config, metrics, evaluations }
 *   GET /api/runs/<id>/events    → server-sent events: new metrics.jsonl records as they are appended,
 *                                  and `reset` when a resume cut the file back (the records follow again)
 * Anything else outside the static files is 404; ids are looked up, never joined to a path.
 */
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { readEvaluations, RunIndex, summarize, type RunFolder } from './runs.js';

const pageDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../dashboard');
const types: Record<string, string> = { '.html': 'text/html; charset=utf-8', '.js': 'text/javascript', '.css': 'text/css' };

function uplotFile(name: string): string {
  const require = createRequire(import.meta.url);
  return path.join(path.dirname(require.resolve('uplot/package.json')), 'dist', name);
}

const staticFiles: Record<string, () => string> = {
  '/': () => path.join(pageDir, 'index.html'),
  '/app.js': () => path.join(pageDir, 'app.js'),
  '/style.css': () => path.join(pageDir, 'style.css'),
  '/uPlot.iife.min.js': () => uplotFile('uPlot.iife.min.js'),
  '/uPlot.min.css': () => uplotFile('uPlot.min.css'),
};

function send(res: http.ServerResponse, status: number, body: unknown): void {
  const text = typeof body === 'string' ? body : JSON.stringify(body);
  res.writeHead(status, { 'content-type': typeof body === 'string' ? 'text/plain' : 'application/json', 'cache-control': 'no-store' });
  res.end(text);
}

export function createDashboardServer(roots: string[]): http.Server {
  const index = new RunIndex(roots);
  return http.createServer((req, res) => {
    if (req.method !== 'GET' && req.method !== 'HEAD') return send(res, 405, 'read-only\n');
    const url = new URL(req.url ?? '/', 'http://localhost');
    let pathname: string;
    try { pathname = decodeURIComponent(url.pathname); } catch { return send(res, 400, 'bad path\n'); }
    if (pathname.split('/').includes('..') || pathname.includes('\0') || pathname.includes('\\')) return send(res, 403, 'forbidden\n');
    const file = staticFiles[pathname];
    if (file) {
      fs.readFile(file(), (error, data) => {
        if (error) return send(res, 404, 'not found\n');
        res.writeHead(200, { 'content-type': types[path.extname(file())] ?? 'application/octet-stream' });
        res.end(data);
      });
      return;
    }
    if (pathname === '/api/runs') return send(res, 200, [...index.all()].map(([id, run]) => summarize(id, run)));
    const m = /^\/api\/runs\/(.+?)(\/events)?$/.exec(pathname);
    if (!m) return send(res, 404, 'not found\n');
    const run = index.get(m[1]);
    if (!run) return send(res, 404, 'no such run\n');
    if (!m[2]) return send(res, 200, { summary: summarize(m[1], run), config: run.config, metrics: run.metrics, evaluations: readEvaluations(run.dir) });
    streamMetrics(req, res, run, Number(url.searchParams.get('from') ?? 0));
  });
}

/** Once a second, sends the records appended since the last tick, one event each. */
function streamMetrics(req: http.IncomingMessage, res: http.ServerResponse, run: RunFolder, from: number): void {
  res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store', connection: 'keep-alive' });
  let sent = from;  // records the client has (it says how many it got with the run's details)
  let generation = run.generation;
  const tick = () => {
    run.refresh();
    if (run.generation !== generation) {
      res.write('event: reset\ndata: {}\n\n');
      generation = run.generation;
      sent = 0;
    }
    for (const r of run.metrics.slice(sent)) res.write(`data: ${JSON.stringify(r)}\n\n`);
    sent = Math.max(sent, run.metrics.length);
  };
  tick();
  const timer = setInterval(tick, 1000);
  req.on('close', () => clearInterval(timer));
}

export function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\./.test(host);
}

/**
 * `arcface dashboard`'s HTTP server (node:http): the page from this package's dashboard/ folder,
 * uPlot from node_modules, and a read-only JSON API over the run folders it was given.
 *   GET /api/runs                → RunSummary[]
 *   GET /api/runs/<id>           → { summary, config, metrics, evaluations }
 *   GET /api/runs/<id>/events    → server-sent events: new metrics.jsonl records as they are appended
 * Anything else outside the static files is 404; ids are looked up, never joined to a path.
 */
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { discoverRuns, readConfig, readEvaluations, readMetrics, summarize } from './runs.js';

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
    if (pathname === '/api/runs') return send(res, 200, [...discoverRuns(roots)].map(([id, dir]) => summarize(id, dir)));
    const m = /^\/api\/runs\/(.+?)(\/events)?$/.exec(pathname);
    if (!m) return send(res, 404, 'not found\n');
    const dir = discoverRuns(roots).get(m[1]);
    if (!dir) return send(res, 404, 'no such run\n');
    if (!m[2]) return send(res, 200, { summary: summarize(m[1], dir), config: readConfig(dir), metrics: readMetrics(dir), evaluations: readEvaluations(dir) });
    streamMetrics(req, res, dir, Number(url.searchParams.get('from') ?? 0));
  });
}

/** Polls metrics.jsonl's length and sends each complete new line as one event. */
function streamMetrics(req: http.IncomingMessage, res: http.ServerResponse, dir: string, from: number): void {
  res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store', connection: 'keep-alive' });
  let sent = 0;  // records already sent (the client says how many it has)
  const tick = () => {
    const records = readMetrics(dir);
    if (records.length < sent) sent = 0;  // truncated by a resume
    const skip = Math.max(sent, from);
    for (const r of records.slice(skip)) res.write(`data: ${JSON.stringify(r)}\n\n`);
    sent = Math.max(records.length, skip);
  };
  tick();
  const timer = setInterval(tick, 1000);
  req.on('close', () => clearInterval(timer));
}

export function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\./.test(host);
}

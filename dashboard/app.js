// The dashboard page: run list, charts of the selected runs (uPlot), updated by server-sent events.
'use strict';
const selected = new Map();  // id -> { metrics, source }
const series = [
  ['loss', 'train', 'loss'], ['learning rate', 'train', 'lr'], ['samples/s', 'train', 'samplesPerSec'],
  ['grad scale', 'train', 'gradScale'], ['verification accuracy', 'verification', 'accuracyFlip'],
];
const colours = ['#07a', '#c40', '#080', '#808', '#a80', '#444'];

function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  for (const c of children) e.append(c);
  return e;
}

async function loadRuns() {
  const runs = await (await fetch('/api/runs')).json();
  const body = document.querySelector('#runs tbody');
  body.replaceChildren(...runs.map((r) => {
    const box = el('input', { type: 'checkbox', 'data-run': r.id });
    box.checked = selected.has(r.id);
    box.onchange = () => (box.checked ? select(r.id) : unselect(r.id));
    const best = Object.entries(r.bestAccuracy).map(([k, v]) => `${k} ${(v * 100).toFixed(2)}%`).join(', ');
    return el('tr', { class: 'run', 'data-run': r.id }, el('td', {}, box), el('td', {}, `${r.name} (${r.id})`),
      el('td', { class: r.state }, r.state), el('td', {}, `${r.step}${r.totalStep ? ' / ' + r.totalStep : ''}`),
      el('td', {}, r.loss === undefined ? '' : r.loss.toFixed(4)), el('td', {}, best));
  }));
  if (selected.size === 0 && runs.length > 0) { body.querySelector('input').checked = true; select(runs[0].id); }
}

async function select(id) {
  const run = await (await fetch(`/api/runs/${encodeURIComponent(id)}`)).json();
  const entry = { run, metrics: run.metrics };
  selected.set(id, entry);
  entry.source = new EventSource(`/api/runs/${encodeURIComponent(id)}/events?from=${run.metrics.length}`);
  entry.source.onmessage = (m) => { entry.metrics.push(JSON.parse(m.data)); drawSoon(); };
  // a resumed run cut its logs back: the records follow again from the first
  entry.source.addEventListener('reset', () => { entry.metrics = []; drawSoon(); });
  draw();
}

function unselect(id) {
  selected.get(id)?.source?.close();
  selected.delete(id);
  draw();
}

// once per frame however many records arrive (a reset resends a whole run)
let drawPending = false;
function drawSoon() {
  if (drawPending) return;
  drawPending = true;
  requestAnimationFrame(() => { drawPending = false; draw(); });
}

// One chart per quantity; each selected run is one series, joined on the step axis.
function draw() {
  const charts = document.getElementById('charts');
  charts.replaceChildren();
  const runs = [...selected.entries()];
  for (const [title, type, key] of series) {
    const names = type === 'verification'
      ? [...new Set(runs.flatMap(([, e]) => e.metrics.filter((r) => r.type === type).map((r) => r.name)))] : [undefined];
    const lines = [];
    for (const [id, e] of runs) for (const name of names) {
      const points = e.metrics.filter((r) => r.type === type && (name === undefined || r.name === name) && typeof r[key] === 'number');
      if (points.length) lines.push({ label: name ? `${id} ${name}` : id, points });
    }
    if (!lines.length) continue;
    const steps = [...new Set(lines.flatMap((l) => l.points.map((p) => p.step)))].sort((a, b) => a - b);
    const data = [steps, ...lines.map((l) => { const at = new Map(l.points.map((p) => [p.step, p[key]])); return steps.map((s) => at.get(s) ?? null); })];
    const box = el('div', { class: 'chart', 'data-chart': key, 'data-points': String(lines.reduce((n, l) => n + l.points.length, 0)) }, el('h3', {}, title));
    charts.append(box);
    new uPlot({ width: 420, height: 220, spanGaps: true, scales: { x: { time: false } }, series: [{ label: 'step' }, ...lines.map((l, i) => ({ label: l.label, stroke: colours[i % colours.length], points: { show: true } }))] }, data, box);
  }
  drawDetails(runs);
}

function drawDetails(runs) {
  const details = document.getElementById('details');
  details.replaceChildren(...runs.map(([id, e]) => {
    const part = el('section', { 'data-run': id }, el('h2', {}, `${id}: config`), el('pre', {}, JSON.stringify(e.run.config, null, 1)));
    for (const ev of e.run.evaluations) {
      part.append(el('h3', {}, `evaluation ${ev.file}`));
      if (ev.tarAtFar) part.append(table(['FAR', 'TAR'], Object.entries(ev.tarAtFar).map(([f, t]) => [f, (t * 100).toFixed(2) + '%'])));
      if (ev.accuracies) part.append(table(['set', 'accuracy'], Object.entries(ev.accuracies).map(([s, a]) => [s, (a * 100).toFixed(2) + '%'])));
      if (ev.roc && ev.roc.far && ev.roc.far.length) {
        const box = el('div', { class: 'chart', 'data-chart': 'roc' }, el('h3', {}, 'ROC (log FAR)'));
        part.append(box);
        const keep = ev.roc.far.map((f, i) => [f, ev.roc.tar[i]]).filter(([f]) => f > 0);
        // log FAR axis: ticks as 1e-6 … 1 (the default format rounds them to 0)
        const exponent = (u, values) => values.map((v) => (v == null ? '' : v >= 0.01 ? String(v) : v.toExponential(0)));
        new uPlot({ width: 420, height: 220, scales: { x: { time: false, distr: 3 } }, axes: [{ values: exponent }, {}], series: [{ label: 'FAR', value: (u, v) => (v == null ? '--' : v.toExponential(1)) }, { label: 'TAR', stroke: '#07a' }] },
          [keep.map((p) => p[0]), keep.map((p) => p[1])], box);
      }
    }
    return part;
  }));
}

function table(head, rows) {
  return el('table', {}, el('tr', {}, ...head.map((h) => el('th', {}, h))), ...rows.map((r) => el('tr', {}, ...r.map((c) => el('td', {}, c)))));
}

loadRuns();
setInterval(loadRuns, 5000);

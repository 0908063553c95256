/**
 * `arcface eval verification | ijb | roc`: insightface's evaluation protocols on a model.pt
 * (--model + --network, run by libtorch) or an ONNX file (--onnx, run by onnxruntime).
 *
 *   arcface eval verification --model model.pt --network r50 --bin lfw.bin [--bin cfp_fp.bin …] [--batch-size 64] [--json]
 *   arcface eval ijb --onnx model.onnx --root IJBC --target IJBC [--no-flip] [--no-detector-score] [--batch-size 128] [--save-scores s.npy] [--json]
 *   arcface eval roc --scores scores.txt --labels labels.txt [--json]
 */
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import * as torch from '../torch/index.js';
import { evaluateIjb, IJB_FARS, loadBackbone, loadVerificationSet, OnnxEmbedder, readNpy, rocAuc, rocCurve, tarAtFar, TorchEmbedder, verifyEmbedder, writeNpy, type Embedder } from '../eval/index.js';
import { rocPoints, tarTable, writeEvalResultIfAsked } from '../eval/result-file.js';
import { intOption, listOption, parseOptions, UsageError } from './args.js';
import { progressBar } from './progress.js';
import { usage } from './help.js';

const MODEL_VALUES = ['model', 'network', 'onnx', 'batch-size', 'device'];

/** The model to evaluate: `--onnx file`, or `--model model.pt --network name`. */
export async function openEmbedder(o: Map<string, string | true>, command: string): Promise<{ embedder: Embedder; label: string }> {
  const onnx = o.get('onnx'), model = o.get('model'), network = o.get('network'), device = o.get('device');
  if (typeof onnx === 'string') {
    if (model !== undefined || network !== undefined) throw new UsageError(`${command}: give either --onnx or --model with --network, not both`);
    if (device !== undefined) throw new UsageError(`${command}: --device is for --model (an ONNX file runs on onnxruntime's CPU provider)`);
    return { embedder: await OnnxEmbedder.create(onnx), label: onnx };
  }
  if (typeof model !== 'string' || typeof network !== 'string') throw new UsageError(`${command}: needs --model <model.pt> --network <name>, or --onnx <model.onnx>`);
  const where = torch.resolveDevice(typeof device === 'string' ? device : 'cpu', '--device');  // before the weights load
  return { embedder: new TorchEmbedder(loadBackbone(model, network).to(where)), label: `${model} (${network}${where === 'cpu' ? '' : `, ${where}`})` };
}

async function verification(args: string[]): Promise<number> {
  const command = 'arcface eval verification';
  const [bins, rest] = listOption(args, 'bin');
  const o = parseOptions(rest, { values: [...MODEL_VALUES, 'out'], flags: ['json'] }, command);
  if (bins.length === 0) throw new UsageError(`${command}: needs at least one --bin <set.bin>`);
  const batchSize = intOption(o, 'batch-size', 64);
  const { embedder, label } = await openEmbedder(o, command);
  const results = [];
  try {
    for (const file of bins) {
      const set = await loadVerificationSet(file);
      try {
        if (set.resized > 0) console.error(`warning: ${file}: ${set.resized} images were not 112×112 and were resized`);
        const r = await verifyEmbedder(embedder, set, batchSize);
        results.push({ name: set.name, file, pairs: set.issame.length, xnorm: r.xnorm, plain: r.plain, flip: r.flip });
      } finally {
        set.images.dispose();
      }
      if (!o.has('json')) {
        const r = results[results.length - 1];
        // insightface's verification.py lines
        console.log(`[${r.name}]XNorm: ${r.xnorm.toFixed(6)}`);
        console.log(`[${r.name}]Accuracy: ${r.plain.accMean.toFixed(5)}+-${r.plain.accStd.toFixed(5)}`);
        console.log(`[${r.name}]Accuracy-Flip: ${r.flip.accMean.toFixed(5)}+-${r.flip.accStd.toFixed(5)}`);
      }
    }
  } finally {
    await embedder.dispose();
  }
  if (o.has('json')) console.log(JSON.stringify({ model: label, sets: results }));
  writeEvalResultIfAsked(o, { kind: 'verification', model: label, accuracies: Object.fromEntries(results.map((r) => [r.name, r.flip.accMean])) });
  return 0;
}

/** 1e-06, 1e-05, 0.0001, …: how eval_ijbc.py's table labels the FARs (Python's str). */
const farLabel = (far: number) => (far < 1e-4 ? far.toExponential().replace(/e-(\d)$/, 'e-0$1') : String(far));

function printTar(title: string, rows: { far: number; tar: number }[]): void {
  const labels = rows.map((r) => farLabel(r.far));
  const values = rows.map((r) => (r.tar * 100).toFixed(2));
  const widths = labels.map((l, i) => Math.max(l.length, values[i].length));
  const first = Math.max(title.length, 'FAR'.length);
  console.log(`${'FAR'.padEnd(first)} | ${labels.map((l, i) => l.padStart(widths[i])).join(' | ')}`);
  console.log(`${title.padEnd(first)} | ${values.map((v, i) => v.padStart(widths[i])).join(' | ')}`);
}

async function ijb(args: string[]): Promise<number> {
  const command = 'arcface eval ijb';
  const o = parseOptions(args, { values: [...MODEL_VALUES, 'root', 'target', 'save-scores', 'out'], flags: ['no-flip', 'no-detector-score', 'json'] }, command);
  const root = o.get('root'), target = String(o.get('target') ?? 'IJBC').toUpperCase();
  if (typeof root !== 'string') throw new UsageError(`${command}: needs --root <IJB folder with loose_crop/ and meta/>`);
  if (target !== 'IJBC' && target !== 'IJBB') throw new UsageError(`${command}: --target must be IJBC or IJBB, got '${o.get('target')}'`);
  const flip = !o.has('no-flip'), detectorScore = !o.has('no-detector-score');
  const batchSize = intOption(o, 'batch-size', 128);
  const { embedder, label } = await openEmbedder(o, command);
  let result;
  try {
    result = await evaluateIjb(embedder, { root, target, flip, detectorScore, batchSize, onProgress: progressBar(`embedding ${target}`) });
  } finally {
    await embedder.dispose();
  }
  const saveTo = o.get('save-scores');
  if (typeof saveTo === 'string') {
    if (saveTo.endsWith('.npy')) writeNpy(saveTo, result.scores, [result.scores.length]);
    else writeTextNumbers(saveTo, result.scores);
  }
  if (o.has('json')) {
    const { roc, scores, labels, ...summary } = result;
    console.log(JSON.stringify({ model: label, flip, detectorScore, ...summary }));
  } else {
    console.log(`${target}: ${result.images} images, ${result.templates} templates, ${result.pairs} pairs; flip ${flip ? 'on' : 'off'}, detector score ${detectorScore ? 'on' : 'off'}; AUC ${(result.auc * 100).toFixed(4)} %`);
    printTar(`TAR (%) ${target}`, result.tarAtFar);
  }
  writeEvalResultIfAsked(o, { kind: 'ijb', model: label, auc: result.auc, tarAtFar: tarTable(result.tarAtFar), roc: rocPoints(result.roc) });
  return 0;
}

/** One value per line, as np.savetxt writes a vector. */
function writeTextNumbers(file: string, values: ArrayLike<number>): void {
  writeFileSync(file, `${Array.from(values, String).join('\n')}\n`);
}

/** Numbers from a .npy file, or from a text file (whitespace-separated, one or more per line). */
export function readNumbers(file: string): Float64Array {
  if (file.endsWith('.npy')) return readNpy(file).data;
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    throw new Error(`${file}: cannot read it (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`);
  }
  const out: number[] = [];
  text.split('\n').forEach((line, i) => {
    for (const field of line.trim().split(/\s+/).filter(Boolean)) {
      const v = Number(field);
      if (!Number.isFinite(v)) throw new Error(`${file}:${i + 1}: '${field}' is not a number`);
      out.push(v);
    }
  });
  return Float64Array.from(out);
}

async function roc(args: string[]): Promise<number> {
  const command = 'arcface eval roc';
  const o = parseOptions(args, { values: ['scores', 'labels', 'out'], flags: ['json'] }, command);
  const scoresFile = o.get('scores'), labelsFile = o.get('labels');
  if (typeof scoresFile !== 'string' || typeof labelsFile !== 'string') throw new UsageError(`${command}: needs --scores <file> --labels <file> (text or .npy)`);
  const scores = readNumbers(scoresFile), labels = readNumbers(labelsFile);
  if (scores.length !== labels.length) throw new Error(`${scoresFile} has ${scores.length} scores, ${labelsFile} ${labels.length} labels`);
  const curve = rocCurve(labels, scores);
  const rows = tarAtFar(curve, IJB_FARS);
  if (o.has('json')) console.log(JSON.stringify({ pairs: scores.length, positives: labels.filter((l) => l === 1).length, auc: rocAuc(curve), tarAtFar: rows }));
  else {
    console.log(`${scores.length} pairs; AUC ${(rocAuc(curve) * 100).toFixed(4)} %`);
    printTar(`TAR (%) ${path.basename(scoresFile)}`, rows);
  }
  writeEvalResultIfAsked(o, { kind: 'roc', auc: rocAuc(curve), tarAtFar: tarTable(rows), roc: rocPoints(curve) });
  return 0;
}

const subcommands: Record<string, (args: string[]) => Promise<number>> = { verification, ijb, roc };

export async function evalCommand(args: string[]): Promise<number> {
  const [name, ...rest] = args;
  const run = subcommands[name];
  if (!run) throw new UsageError(`${usage('eval')}${name ? `\n(unknown protocol '${name}')` : ''}`);
  return run(rest);
}

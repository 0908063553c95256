/**
 * `arcface pack --src <folder-per-identity> --out <dir>`: an insightface pack (train.rec,
 * train.idx, property) from root/<identity>/<image> folders, identities in sorted order.
 * `arcface pack --check <dir>`: reads and decodes every record, checks labels and identity records.
 */
import os from 'node:os';
import { checkPack, packFolder } from '../data/pack.js';
import { intOption, parseOptions, UsageError } from './args.js';
import { progressBar } from './progress.js';
import { usage } from './help.js';

const USAGE = usage('pack');

export async function pack(args: string[]): Promise<number> {
  let o: Map<string, string | true>;
  try {
    o = parseOptions(args, { values: ['src', 'out', 'check', 'threads'], flags: ['json'] }, 'arcface pack');
    if (o.has('check') === (o.has('src') || o.has('out')) || (!o.has('check') && !(o.has('src') && o.has('out')))) {
      throw new UsageError(USAGE);
    }
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    console.error(error.message);
    return 2;
  }
  if (o.has('check')) {
    const dir = String(o.get('check'));
    const report = await checkPack(dir, { threads: intOption(o, 'threads', os.availableParallelism()), onProgress: progressBar('checking') });
    if (o.get('json')) {
      console.log(JSON.stringify(report));
    } else {
      console.log(`${dir}: ${report.images} images, ${report.identities} identities (numClasses ${report.numClasses ?? 'unknown'}), ${report.layout === 'header' ? 'insightface header and identity records' : 'no header record'}`);
      console.log(`image sizes: ${Object.entries(report.sizes).map(([size, n]) => `${size} ×${n}`).join(', ') || 'none'}`);
      for (const problem of report.problems.slice(0, 20)) console.log(`problem: ${problem}`);
      if (report.problems.length > 20) console.log(`… and ${report.problems.length - 20} more problems`);
      console.log(report.problems.length === 0 ? 'ok' : `${report.problems.length} problems`);
    }
    return report.problems.length === 0 ? 0 : 1;
  }
  const src = String(o.get('src'));
  const out = String(o.get('out'));
  const started = Date.now();
  const { images, identities } = packFolder(src, out, progressBar('packing'));
  console.log(`${out}: ${images} images of ${identities} identities packed in ${((Date.now() - started) / 1000).toFixed(1)} s (train.rec, train.idx, property)`);
  return 0;
}

/**
 * `arcface generate --out <dir>`: the generated-identities dataset (a training pack and a held-out
 * verification .bin), reproducible from --seed.
 */
import { defaultGenerateOptions, generateIdentities } from '../data/generated.js';
import { intOption, parseOptions, UsageError } from './args.js';
import { progressBar } from './progress.js';
import { usage } from './help.js';

export async function generate(args: string[]): Promise<number> {
  const d = defaultGenerateOptions;
  let options;
  try {
    const o = parseOptions(args, { values: ['out', 'seed', 'identities', 'images', 'held-out', 'pairs', 'quality', 'threads'] }, 'arcface generate');
    if (!o.has('out')) {
      throw new UsageError(usage('generate'));
    }
    options = {
      out: String(o.get('out')),
      seed: intOption(o, 'seed', d.seed, 0),
      identities: intOption(o, 'identities', d.identities),
      imagesPerIdentity: intOption(o, 'images', d.imagesPerIdentity),
      heldOutIdentities: intOption(o, 'held-out', d.heldOutIdentities, 20),
      pairs: intOption(o, 'pairs', d.pairs, 10),
      quality: intOption(o, 'quality', d.quality),
      threads: o.has('threads') ? intOption(o, 'threads', 1) : undefined,
    };
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    console.error(error.message);
    return 2;
  }
  const started = Date.now();
  const result = generateIdentities({ ...options, onProgress: progressBar('generating') });
  console.log(
    `${result.dir}: ${result.images} images of ${result.identities} identities (train.rec), ` +
      `${result.pairs} held-out pairs (heldout.bin), in ${((Date.now() - started) / 1000).toFixed(1)} s`,
  );
  return 0;
}

/**
 * `arcface start` (`npm start`): the default job. Generates the generated-identities dataset if it
 * is absent, trains configs/generated_mbf.ts (MobileFaceNet, ArcFace + Partial FC) on it, and
 * reports the held-out verification accuracy before training (the untrained baseline) and after.
 */
import fs from 'node:fs';
import path from 'node:path';
import { packagePath } from '../package.js';
import { defaultGenerateOptions, generateIdentities } from '../data/generated.js';
import { cpuHasBf16Kernels } from '../torch/index.js';
import { loadConfig } from '../train/load-config.js';
import { train } from '../train/trainer.js';
import { parseOptions } from './args.js';
import { takeOverrides } from './config.js';
import { progressBar } from './progress.js';


export async function start(args: string[]): Promise<number> {
  const { overrides, rest } = takeOverrides(args);
  const o = parseOptions(rest, { values: ['config'] }, 'arcface start');
  const configFile = String(o.get('config') ?? packagePath('configs', 'generated_mbf.ts'));
  let config = await loadConfig(configFile, overrides);
  // the default job's bfloat16 is a speed lever only where the CPU has bfloat16 kernels (src/torch/cpu.ts)
  if (config.bf16 && config.device === 'cpu' && !cpuHasBf16Kernels() && !overrides.some((o) => o.startsWith('bf16='))) {
    console.log('this CPU has no bfloat16 kernels (no AVX-512): training in float32 (--set bf16=true to insist)');
    config = { ...config, bf16: false };
  }

  if (!fs.existsSync(path.join(config.rec, 'train.rec'))) {
    // the pack the config describes; 1000 held-out pairs keep each verification under a minute
    const identities = config.numClasses, imagesPerIdentity = Math.floor(config.numImage / config.numClasses);
    console.log(`generating ${identities} identities × ${imagesPerIdentity} images and 1000 held-out pairs in ${config.rec} (once)`);
    generateIdentities({ ...defaultGenerateOptions, identities, imagesPerIdentity, pairs: 1000, out: config.rec, onProgress: progressBar('generating') });
  }
  const result = await train(config, { evaluateAtStart: true, onProgress: progressBar('training') });

  const pct = (x: number) => `${(x * 100).toFixed(2)}%`;
  console.log('');
  for (const after of result.final) {
    const before = result.baseline.find((b) => b.name === after.name);
    console.log(`${after.name}.bin verification (10-fold, flip): untrained ${before ? pct(before.accuracyFlip) : '?'} → trained ${pct(after.accuracyFlip)} ± ${pct(after.stdFlip)}`);
  }
  console.log(`model:      ${result.modelPath}`);
  console.log(`log:        ${path.join(result.output, 'training.log')}`);
  console.log(`metrics:    ${path.join(result.output, 'metrics.jsonl')}`);
  console.log(`data:       ${config.rec}`);
  console.log(`dashboard:  node bin/arcface.js dashboard ${path.dirname(result.output)}   (then open the URL it prints)`);
  const improved = result.final.every((a) => a.accuracyFlip > (result.baseline.find((b) => b.name === a.name)?.accuracyFlip ?? 0));
  return result.interrupted || improved ? 0 : 1;
}

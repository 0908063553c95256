/**
 * `arcface train <config.ts> [--set key=value …] [--nproc-per-node N [--nnodes M --node-rank R
 * --master-addr A --master-port P]]`: train_v2.py. With launch flags (and not already a worker),
 * starts this node's workers through the launcher, each running `arcface train` on the same config.
 */
import { packagePath } from '../package.js';
import { distEnv } from '../distributed/index.js';
import { launch, parseLaunchArgs } from '../distributed/launcher.js';
import { loadConfig } from '../train/load-config.js';
import { train } from '../train/trainer.js';
import { UsageError } from './args.js';
import { takeOverrides } from './config.js';
import { progressBar } from './progress.js';
import { usage } from './help.js';

const USAGE = usage('train');

/** Launch flags may come before or after the config: they are the ones the launcher knows. */
function splitLaunchFlags(args: string[]): { launchArgs: string[]; rest: string[] } {
  const launchArgs: string[] = [], rest: string[] = [];
  const names = new Set(['nproc-per-node', 'nnodes', 'node-rank', 'master-addr', 'master-port']);
  for (let i = 0; i < args.length; i++) {
    const [name, inline] = args[i].replace(/^--/, '').replace(/_/g, '-').split('=', 2);
    if (args[i].startsWith('--') && names.has(name)) {
      launchArgs.push(args[i]);
      if (inline === undefined) launchArgs.push(args[++i]);
    } else rest.push(args[i]);
  }
  return { launchArgs, rest };
}

export async function trainCommand(args: string[]): Promise<number> {
  const { launchArgs, rest } = splitLaunchFlags(args);
  const { overrides, rest: positional } = takeOverrides(rest);
  if (positional.length !== 1 || positional[0].startsWith('--')) throw new UsageError(USAGE);
  const config = await loadConfig(positional[0], overrides);  // config errors stop here, before any worker starts

  if (launchArgs.length > 0 && !distEnv()) {
    const { options, rest: leftover } = parseLaunchArgs(launchArgs);
    if (leftover.length > 0) throw new UsageError(`${USAGE}\nunexpected: ${leftover.join(' ')}`);
    const arcface = packagePath('bin', 'arcface.js');
    return launch({ ...options, command: [process.execPath, arcface, 'train', ...rest] });
  }

  const result = await train(config, { onProgress: progressBar('training') });
  if (result.modelPath) {
    const accuracy = result.final.map((e) => `${e.name} ${(e.accuracyFlip * 100).toFixed(2)}%`).join(', ');
    console.log(
      `${result.interrupted ? 'interrupted' : 'done'} at step ${result.globalStep}/${result.totalStep}: ` +
        `model ${result.modelPath}, log ${result.output}/training.log${accuracy ? `, verification ${accuracy}` : ''}`,
    );
  }
  return 0;
}

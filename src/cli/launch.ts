/**
 * `arcface launch [--nproc-per-node N] [--nnodes M] [--node-rank R] [--master-addr A] [--master-port P] -- <command…>`
 * Starts this node's workers with the torchrun environment (see src/distributed/launcher.ts). A command
 * starting with `arcface` runs this same CLI (`arcface launch --nproc-per-node 2 -- arcface train x.ts`).
 */
import { packagePath } from '../package.js';
import { launch, parseLaunchArgs } from '../distributed/launcher.js';
import { usage } from './help.js';
import { UsageError } from './args.js';

export async function launchCommand(args: string[]): Promise<number> {
  const { options, rest } = parseLaunchArgs(args);
  if (rest.length === 0) throw new UsageError(usage('launch'));
  const arcfaceBin = packagePath('bin', 'arcface.js');
  const command = rest[0] === 'arcface' ? [process.execPath, arcfaceBin, ...rest.slice(1)] : rest[0] === 'node' ? [process.execPath, ...rest.slice(1)] : rest;
  return launch({ ...options, command });
}

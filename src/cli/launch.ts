/**
 * `arcface launch [--nproc-per-node N] [--nnodes M] [--node-rank R] [--master-addr A] [--master-port P] -- <command…>`
 * Starts this node's workers with the torchrun environment (see src/dist/launcher.ts). A command
 * starting with `arcface` runs this same CLI (`arcface launch --nproc-per-node 2 -- arcface train x.ts`).
 */
import { fileURLToPath } from 'node:url';
import { launch, parseLaunchArgs } from '../dist/launcher.js';

export async function launchCommand(args: string[]): Promise<number> {
  const { options, rest } = parseLaunchArgs(args);
  if (rest.length === 0) throw new Error('usage: arcface launch [--nproc-per-node N] [--nnodes M] [--node-rank R] [--master-addr A] [--master-port P] -- <command…>');
  const arcfaceBin = fileURLToPath(new URL('../../../bin/arcface.js', import.meta.url));
  const command = rest[0] === 'arcface' ? [process.execPath, arcfaceBin, ...rest.slice(1)] : rest[0] === 'node' ? [process.execPath, ...rest.slice(1)] : rest;
  return launch({ ...options, command });
}

/** Runs an `arcface` command module in this process (tests that need no child process). */
import assert from 'node:assert/strict';
import { format } from 'node:util';
import * as torch from '../src/torch/index.js';

/**
 * Runs a command in this process as bin/arcface.js runs it: what it printed, and its exit status
 * (1 for an error, 2 for a usage error, with the message on stderr). Checks it leaves no tensor behind.
 */
export async function arcface(command: (args: string[]) => Promise<number>, name: string, args: string[]) {
  const stdout: string[] = [], stderr: string[] = [];
  const saved = [console.log, console.error];
  console.log = (...a: unknown[]) => stdout.push(`${format(...a)}\n`);
  console.error = (...a: unknown[]) => stderr.push(`${format(...a)}\n`);
  const live = torch.liveTensors();
  let status: number;
  try {
    status = await command(args);
  } catch (error) {
    stderr.push(`arcface ${name}: ${(error as Error).message}\n`);
    status = (error as Error).name === 'UsageError' ? 2 : 1;
  } finally {
    [console.log, console.error] = saved;
  }
  assert.ok(torch.liveTensors() <= live, `arcface ${name} ${args.join(' ')} left ${torch.liveTensors() - live} tensors undisposed`);
  return { status, stdout: stdout.join(''), stderr: stderr.join('') };
}

/** `arcface checkpoint merge <output> [--out <dir>] [--json]`: one process's set and the whole class-centre matrix from a run's newest complete set. */
import path from 'node:path';
import { mergeCheckpointSet } from '../train/merge.js';
import { parseOptions, UsageError } from './args.js';
import { usage } from './help.js';

export async function checkpointCommand(args: string[]): Promise<number> {
  const [sub, output, ...rest] = args;
  if (sub !== 'merge' || !output || output.startsWith('--')) throw new UsageError(usage('checkpoint'));
  const options = parseOptions(rest, { values: ['out'], flags: ['json'] }, 'checkpoint merge');
  const out = typeof options.get('out') === 'string' ? (options.get('out') as string) : path.join(output, 'merged');
  const r = mergeCheckpointSet(output, out);
  if (options.has('json')) {
    console.log(JSON.stringify(r));
  } else {
    for (const s of r.skipped) console.log(`skipped ${s}`);
    console.log(`merged ${r.from} (step ${r.step}, ${r.worldSize} processes)`);
    console.log(`training state: ${r.checkpoint} (resume it with output: '${out}', on any number of processes with the same global batch)`);
    console.log(`class centres:  ${r.centres}`);
  }
  return 0;
}

/** `arcface flops <network> [--embedding-size N] [--json]`: MACs and parameters, as arcface_torch's flops.py. */
import { getModel, countComplexity } from '../models/index.js';
import { usage } from './help.js';
import { UsageError } from './args.js';

export async function flops(args: string[]): Promise<number> {
  const name = args.find((a) => !a.startsWith('--'));
  if (!name) throw new UsageError(usage('flops'));
  const sizeAt = args.indexOf('--embedding-size');
  const embeddingSize = sizeAt >= 0 ? Number(args[sizeAt + 1]) : 512;
  if (!Number.isInteger(embeddingSize) || embeddingSize <= 0) throw new UsageError(`--embedding-size needs a positive integer, got ${args[sizeAt + 1]}`);
  const model = getModel(name, { embeddingSize });
  try {
    const c = countComplexity(model);
    if (args.includes('--json')) {
      console.log(JSON.stringify({ network: name, embeddingSize, gmacs: c.macs / 1e9, mparams: c.params / 1e6, trainableParams: c.trainableParams }));
    } else {
      // arcface_torch prints multiply-accumulates as "GFLOPs"; so do we, to keep the figures comparable.
      console.log(`${(c.macs / 1e9).toFixed(3)} GFLOPs`);
      console.log(`${(c.params / 1e6).toFixed(3)} Mparams`);
    }
  } finally {
    model.dispose();
  }
  return 0;
}

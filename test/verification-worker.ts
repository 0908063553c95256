/**
 * Worker process for test/verification-sharded.test.ts: started with the torchrun environment (or
 * none: a world of one), verifies a seeded mbf on a verification .bin, sharded over the group, and
 * prints one JSON line with the result.
 *   node dist/test/verification-worker.js <file.bin> <batchSize>
 */
import * as torch from '../src/torch/index.js';
import { initProcessGroup } from '../src/distributed/index.js';
import { loadVerificationSet, verifyBackbone } from '../src/eval/index.js';
import { getModel } from '../src/models/index.js';

const [bin, batchSize] = process.argv.slice(2);
const group = initProcessGroup();
torch.manualSeed(7);  // the same weights in every process, and in the test's own reference
const backbone = getModel('mbf', { embeddingSize: 64, dropout: 0 });
const set = await loadVerificationSet(bin, { threads: 1 });
const started = performance.now();
const result = verifyBackbone(backbone, set, { batchSize: Number(batchSize), ...(group.worldSize > 1 ? { group } : {}) });
console.log(JSON.stringify({ rank: group.rank, worldSize: group.worldSize, ms: performance.now() - started, ...result }));
set.images.dispose();
backbone.dispose();
group.destroy();

/**
 * A long training loop keeps its memory flat: 2,000 SGD steps of a small conv net, each inside a
 * tidy() scope. Checked two ways:
 *  - exactly: the number of live JS tensors after step 2,000 equals that after step 200 (any
 *    tensor a step forgot to free would add one per step);
 *  - in bytes: resident memory grows by less than 24 MB from step 200 to step 2,000. The model and
 *    optimizer state are made before step 200 and activations are reused from the caching
 *    allocator, so growth can only come from allocator/V8 heap noise; 24 MB is ~3× the noise seen
 *    here (≤ 8 MB) while one leaked 32×16×16×16 activation per step would add 190 MB.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as torch from '../src/torch/index.js';
import * as nn from '../src/nn/index.js';
import { SGD } from '../src/optim/index.js';

const gc = (globalThis as { gc?: () => void }).gc;

function rssMb(): number {
  gc?.();
  return process.memoryUsage().rss / 2 ** 20;
}

test('2,000 training steps in scopes keep live tensors and resident memory flat', () => {
  torch.manualSeed(0);
  const model = new nn.Sequential(
    new nn.Conv2d(3, 16, 3, { padding: 1 }),
    new nn.BatchNorm2d(16),
    new nn.PReLU(16),
    new nn.Flatten(),
    new nn.Linear(16 * 16 * 16, 10),
  );
  const optimizer = new SGD(model.parameters(), { lr: 0.01, momentum: 0.9, weightDecay: 5e-4 });
  const x = torch.keep(torch.randn([32, 3, 16, 16]));
  const y = torch.keep(torch.randint(0, 10, [32]));

  let liveAt200 = 0;
  let rssAt200 = 0;
  const losses: number[] = [];
  for (let step = 1; step <= 2000; step++) {
    const loss = torch.tidy(() => {
      const l = torch.crossEntropy(model.forward(x), y);
      optimizer.zeroGrad();
      l.backward();
      optimizer.step();
      return l.item();
    });
    losses.push(loss);
    if (step === 200) {
      liveAt200 = torch.liveTensors();
      rssAt200 = rssMb();
    }
  }
  const liveAt2000 = torch.liveTensors();
  const growth = rssMb() - rssAt200;

  assert.equal(liveAt2000, liveAt200, 'live tensor count changed between step 200 and 2000');
  assert.ok(growth < 24, `resident memory grew ${growth.toFixed(1)} MB from step 200 to 2000`);
  assert.ok(losses.at(-1)! < losses[0] / 10, `loss did not fall: ${losses[0]} → ${losses.at(-1)}`);

  model.dispose();
  optimizer.dispose();
  torch.dispose(x, y);
});

/**
 * `arcface demo`: the engine alone, without the trainer (that is `arcface start`). A tiny conv net learns to tell
 * generated "identities" apart (each a fixed random pattern, each sample a noisy, shifted,
 * brightness-jittered copy), with SGD + momentum, the polynomial warm-up schedule and scoped memory.
 */
import * as torch from '../torch/index.js';
import * as nn from '../nn/index.js';
import { SGD, PolynomialLRWarmup } from '../optim/index.js';

interface DemoOptions {
  steps: number;
  classes: number;
  batch: number;
  seed: number;
}

function parseArgs(args: string[]): DemoOptions {
  const options: DemoOptions = { steps: 300, classes: 10, batch: 32, seed: 0 };
  for (let i = 0; i < args.length; i++) {
    const key = args[i].replace(/^--/, '') as keyof DemoOptions;
    if (!(key in options)) throw new Error(`unknown option ${args[i]} (expected --steps, --classes, --batch, --seed)`);
    const value = Number(args[++i]);
    if (!Number.isInteger(value) || value <= 0) throw new Error(`--${key} needs a positive integer, got ${args[i]}`);
    options[key] = value;
  }
  return options;
}

/** A batch of noisy, shifted copies of the class patterns, normalised like face crops. */
function makeBatch(patterns: torch.Tensor, batch: number): { images: torch.Tensor; labels: torch.Tensor } {
  return torch.tidy(() => {
    const labels = torch.randint(0, patterns.shape[0], [batch]);
    const clean = torch.indexSelect(patterns, 0, labels);
    const shift = torch.randint(1, 4, [1]).item();
    const shifted = torch.cat([torch.narrow(clean, 3, shift, 16 - shift), torch.narrow(clean, 3, 0, shift)], 3);
    const brightness = torch.rand([batch, 1, 1, 1]).mul(0.6).add(0.7);
    const images = shifted.mul(brightness).add(torch.randn(shifted.shape).mul(0.6));
    return { images, labels };
  });
}

export async function demo(args: string[]): Promise<number> {
  const o = parseArgs(args);
  torch.manualSeed(o.seed);
  const patterns = torch.keep(torch.randn([o.classes, 3, 16, 16]));
  const model = new nn.Sequential(
    new nn.Conv2d(3, 16, 3, { stride: 2, padding: 1, bias: false }),
    new nn.BatchNorm2d(16),
    new nn.PReLU(16),
    new nn.Conv2d(16, 32, 3, { stride: 2, padding: 1, bias: false }),
    new nn.BatchNorm2d(32),
    new nn.PReLU(32),
    new nn.Flatten(),
    new nn.Linear(32 * 4 * 4, o.classes),
  );
  const optimizer = new SGD(model.parameters(), { lr: 0.05, momentum: 0.9, weightDecay: 5e-4 });
  const scheduler = new PolynomialLRWarmup(optimizer, { warmupIters: Math.ceil(o.steps / 10), totalIters: o.steps });
  console.log(`demo: ${o.classes} generated identities, batch ${o.batch}, ${o.steps} steps, ${torch.getNumThreads()} threads`);

  const started = Date.now();
  let window = 0;
  let first = NaN;
  let last = NaN;
  for (let step = 1; step <= o.steps; step++) {
    const loss = torch.tidy(() => {
      const { images, labels } = makeBatch(patterns, o.batch);
      const l = torch.crossEntropy(model.forward(images), labels);
      optimizer.zeroGrad();
      l.backward();
      optimizer.step();
      scheduler.step();
      return l.item();
    });
    window += loss;
    if (step % 25 === 0) {
      const avg = window / 25;
      window = 0;
      if (Number.isNaN(first)) first = avg;
      last = avg;
      const lr = optimizer.paramGroups[0].lr;
      console.log(`step ${String(step).padStart(4)}  loss ${avg.toFixed(4)}  lr ${lr.toFixed(5)}  ${((Date.now() - started) / step).toFixed(1)} ms/step`);
    }
  }

  model.eval();
  const accuracy = torch.noGrad(() =>
    torch.tidy(() => {
      const { images, labels } = makeBatch(patterns, 512);
      return torch.argmax(model.forward(images), 1).eq(labels).float().mean().item();
    }),
  );
  console.log(`loss ${first.toFixed(3)} → ${last.toFixed(3)}; held-out accuracy ${(accuracy * 100).toFixed(1)}% (chance ${(100 / o.classes).toFixed(1)}%)`);
  model.dispose();
  optimizer.dispose();
  patterns.dispose();
  return last < first ? 0 : 1;
}

// The default job (`npm start`): MobileFaceNet with ArcFace + Partial FC on the generated
// identities (`arcface start` makes them: numClasses identities × numImage/numClasses images, and
// heldout.bin from unseen identities), about four minutes of training on a 2-core CPU.
import { defineConfig } from 'arcface-ts/train';

export default defineConfig({
  network: 'mbf',
  embeddingSize: 512,
  marginList: [1.0, 0.5, 0.0],
  sampleRate: 0.5,
  bf16: true,
  channelsLast: true,
  batchSize: 64,
  lr: 0.1,
  momentum: 0.9,
  weightDecay: 5e-4,
  rec: 'work_dirs/generated',
  numClasses: 500,
  numImage: 8000,
  numEpoch: 1,
  warmupEpoch: 0,
  valTargets: ['heldout'],
  frequent: 20,
  verbose: 2000,
  numWorkers: 2,
});

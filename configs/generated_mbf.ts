// The default job (`npm start`): MobileFaceNet with ArcFace + Partial FC on the generated
// identities (`arcface generate --out work_dirs/generated`), a few minutes on a 2-core CPU.
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
  numClasses: 1000,
  numImage: 20000,
  numEpoch: 2,
  warmupEpoch: 0,
  valTargets: ['heldout'],
  frequent: 20,
  verbose: 2000,
  numWorkers: 2,
});

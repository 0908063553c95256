// Ported from insightface arcface_torch configs/3millions.py (tools/port_arcface_configs.py).
import { defineConfig } from 'arcface-ts/train';

export default defineConfig({
  marginList: [1.0, 0.0, 0.4],
  network: "mbf",
  resume: false,
  output: null,
  embeddingSize: 512,
  sampleRate: 0.1,
  fp16: true,
  momentum: 0.9,
  weightDecay: 0.0005,
  batchSize: 512,
  lr: 0.1,
  rec: "synthetic",
  numClasses: 300000,
  numImage: 100000,
  numEpoch: 30,
  warmupEpoch: -1,
  valTargets: [],
});

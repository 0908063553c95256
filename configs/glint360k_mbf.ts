// Ported from insightface arcface_torch configs/glint360k_mbf.py (tools/port_arcface_configs.py).
import { defineConfig } from 'arcface-ts/train';

export default defineConfig({
  marginList: [1.0, 0.0, 0.4],
  network: "mbf",
  resume: false,
  output: null,
  embeddingSize: 512,
  sampleRate: 1.0,
  fp16: true,
  momentum: 0.9,
  weightDecay: 0.0001,
  batchSize: 128,
  lr: 0.1,
  verbose: 2000,
  rec: "/train_tmp/glint360k",
  numClasses: 360232,
  numImage: 17091657,
  numEpoch: 20,
  warmupEpoch: 0,
  valTargets: ["lfw", "cfp_fp", "agedb_30"],
});

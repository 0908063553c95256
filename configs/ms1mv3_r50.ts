// Ported from insightface arcface_torch configs/ms1mv3_r50.py (tools/port_arcface_configs.py).
import { defineConfig } from 'arcface-ts/train';

export default defineConfig({
  marginList: [1.0, 0.5, 0.0],
  network: "r50",
  resume: false,
  output: null,
  embeddingSize: 512,
  sampleRate: 1.0,
  fp16: true,
  momentum: 0.9,
  weightDecay: 0.0005,
  batchSize: 128,
  lr: 0.1,
  verbose: 2000,
  rec: "/train_tmp/ms1m-retinaface-t1",
  numClasses: 93431,
  numImage: 5179510,
  numEpoch: 20,
  warmupEpoch: 0,
  valTargets: ["lfw", "cfp_fp", "agedb_30"],
});

// Ported from insightface arcface_torch configs/wf12m_conflict_r50.py (tools/port_arcface_configs.py).
import { defineConfig } from 'arcface-ts/train';

export default defineConfig({
  marginList: [1.0, 0.0, 0.4],
  network: "r50",
  resume: false,
  output: null,
  embeddingSize: 512,
  sampleRate: 1.0,
  interclassFilteringThreshold: 0,
  fp16: true,
  weightDecay: 0.0005,
  batchSize: 128,
  optimizer: "sgd",
  lr: 0.1,
  verbose: 2000,
  rec: "/train_tmp/WebFace12M_Conflict",
  numClasses: 1017970,
  numImage: 12720066,
  numEpoch: 20,
  warmupEpoch: 2,
  valTargets: [],
});

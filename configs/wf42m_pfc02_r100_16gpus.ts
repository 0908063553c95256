// Ported from insightface arcface_torch configs/wf42m_pfc02_r100_16gpus.py (tools/port_arcface_configs.py).
import { defineConfig } from 'arcface-ts/train';

export default defineConfig({
  marginList: [1.0, 0.0, 0.4],
  network: "r100",
  resume: false,
  output: null,
  embeddingSize: 512,
  sampleRate: 0.2,
  fp16: true,
  momentum: 0.9,
  weightDecay: 0.0005,
  batchSize: 128,
  lr: 0.2,
  verbose: 10000,
  rec: "/train_tmp/WebFace42M",
  numClasses: 2059906,
  numImage: 42474557,
  numEpoch: 20,
  warmupEpoch: 2,
  valTargets: ["lfw", "cfp_fp", "agedb_30"],
});

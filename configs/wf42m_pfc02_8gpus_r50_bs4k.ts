// Ported from insightface arcface_torch configs/wf42m_pfc02_8gpus_r50_bs4k.py (tools/port_arcface_configs.py).
import { defineConfig } from 'arcface-ts/train';

export default defineConfig({
  marginList: [1.0, 0.0, 0.4],
  network: "r50",
  resume: false,
  output: null,
  embeddingSize: 512,
  sampleRate: 0.2,
  fp16: true,
  momentum: 0.9,
  weightDecay: 0.0005,
  batchSize: 512,
  lr: 0.4,
  verbose: 10000,
  rec: "/train_tmp/WebFace42M",
  numClasses: 2059906,
  numImage: 42474557,
  numEpoch: 20,
  warmupEpoch: 2,
  valTargets: ["lfw", "cfp_fp", "agedb_30"],
});

// Ported from insightface arcface_torch configs/wf42m_pfc02_16gpus_mbf_bs8k.py (tools/port_arcface_configs.py).
import { defineConfig } from 'arcface-ts/train';

export default defineConfig({
  marginList: [1.0, 0.0, 0.4],
  network: "mbf",
  resume: false,
  output: null,
  embeddingSize: 512,
  sampleRate: 0.2,
  fp16: true,
  momentum: 0.9,
  weightDecay: 0.0001,
  batchSize: 512,
  lr: 0.4,
  verbose: 10000,
  rec: "/train_tmp/WebFace42M",
  numClasses: 2059906,
  numImage: 42474557,
  numEpoch: 20,
  warmupEpoch: 2,
  valTargets: [],
});

// Ported from insightface arcface_torch configs/wf42m_pfc03_40epoch_64gpu_vit_t.py (tools/port_arcface_configs.py).
import { defineConfig } from 'arcface-ts/train';

export default defineConfig({
  marginList: [1.0, 0.0, 0.4],
  network: "vit_t_dp005_mask0",
  resume: false,
  output: null,
  embeddingSize: 512,
  sampleRate: 0.3,
  fp16: true,
  weightDecay: 0.1,
  batchSize: 384,
  optimizer: "adamw",
  lr: 0.001,
  verbose: 2000,
  rec: "/train_tmp/WebFace42M",
  numClasses: 2059906,
  numImage: 42474557,
  numEpoch: 40,
  warmupEpoch: 4,
  valTargets: [],
});

/** arcface-ts: `import { torch, nn, optim, models } from 'arcface-ts'` (or the subpaths 'arcface-ts/torch', …). */
export * as torch from './torch/index.js';
export * as nn from './nn/index.js';
export * as optim from './optim/index.js';
export * as models from './models/index.js';
export * as data from './data/index.js';
export * as heads from './heads/index.js';
export * as distributed from './distributed/index.js';
export * as train from './train/index.js';
// `eval` and `export` cannot be binding names, so these two take the noun of what they hold:
export * as evaluation from './eval/index.js';
export * as onnx from './export/index.js';

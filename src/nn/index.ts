/**
 * The module layer, as torch.nn: `import * as nn from 'arcface-ts/nn'` (or src/nn/index.js), then
 * `new nn.Conv2d(3, 64, 3)`, `nn.init.kaimingNormal_(w)`.
 */
export { Module, type IncompatibleKeys, type LoadStateDictOptions } from './module.js';
export { parameter, type Parameter } from './parameter.js';
export { Conv2d, type Conv2dOptions } from './conv.js';
export { Linear, Identity } from './linear.js';
export { BatchNorm, BatchNorm1d, BatchNorm2d, type BatchNormOptions, type SumOverProcesses } from './batchnorm.js';
export { LayerNorm, type LayerNormOptions } from './normalization.js';
export { PReLU, ReLU, ReLU6, Sigmoid } from './activation.js';
export { Dropout } from './dropout.js';
export { Flatten } from './flatten.js';
export { Sequential } from './container.js';
export * as init from './init.js';

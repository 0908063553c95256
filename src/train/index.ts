/** Training: configs (defineConfig) and, with the trainer issue, the loop, callbacks and checkpoints. */
export { defineConfig, resolveConfig, applyOverrides, baseConfig, configKeys, ConfigError, type TrainConfig, type UserConfig } from './config.js';
export { loadConfig } from './load-config.js';

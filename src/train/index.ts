/** Training: configs (defineConfig), the loop (train), its log, verification callback and checkpoints. */
export { defineConfig, resolveConfig, applyOverrides, baseConfig, configKeys, ConfigError, type TrainConfig, type UserConfig } from './config.js';
export { loadConfig } from './load-config.js';
export { train, schedule, TrainingError, type TrainOptions, type TrainResult } from './trainer.js';
export { TrainingLog, type LogPoint, type EvaluationPoint } from './training-log.js';
export { VerificationCallback, type TargetResult } from './verification-targets.js';
export { saveModel, saveTrainingState, loadTrainingState, checkpointFile, modelFile, type TrainingParts } from './checkpoint.js';
export { saveCheckpointSet, loadCheckpointSet, setDir, setsDir, type Manifest } from './checkpoint-set.js';
export { openTrainingData } from './training-data.js';

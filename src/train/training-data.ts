/**
 * The training set a config names, as arcface_torch's get_dataloader picks it: `rec: 'synthetic'`
 * is the synthetic set, a folder with train.rec/train.idx an insightface pack, any other folder
 * an image folder (one sub-folder per identity).
 */
import fs from 'node:fs';
import path from 'node:path';
import { ImageFolder, MXFaceDataset, SyntheticDataset, type FaceDataset } from '../data/index.js';
import { ConfigError, type TrainConfig } from './config.js';

export function openTrainingData(config: Pick<TrainConfig, 'rec' | 'numClasses' | 'numImage'>): FaceDataset {
  const { rec } = config;
  if (rec === 'synthetic') return new SyntheticDataset({ length: config.numImage, numClasses: config.numClasses });
  if (!fs.existsSync(rec)) throw new ConfigError(`rec: '${rec}' does not exist (a folder with train.rec/train.idx, an image folder, or 'synthetic')`);
  const dataset = fs.existsSync(path.join(rec, 'train.rec')) ? new MXFaceDataset(rec) : new ImageFolder(rec);
  if (dataset.numClasses !== undefined && dataset.numClasses > config.numClasses) {
    throw new ConfigError(`numClasses: ${config.numClasses}, but ${rec} has ${dataset.numClasses} identities`);
  }
  return dataset;
}

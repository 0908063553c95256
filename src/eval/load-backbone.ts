/**
 * A backbone from a PyTorch state-dict file (arcface_torch's model.pt, or ours): the network by
 * name, the embedding size read from the weights, every key and shape checked (strict).
 */
import { existsSync } from 'node:fs';
import * as torch from '../torch/index.js';
import { getModel, type Backbone } from '../models/index.js';

/** The embedding size: the first dimension of the last weight in the file (the embedding layer). */
export function embeddingSizeOf(weights: ReadonlyMap<string, torch.Tensor>, file: string): number {
  const last = [...weights].reverse().find(([key, t]) => /(^|\.)weight$/.test(key) && t.ndim >= 1);
  if (!last) throw new Error(`${file}: no '….weight' entry to read the embedding size from`);
  return last[1].shape[0];
}

const some = (keys: string[]) => `'${keys.slice(0, 3).join("', '")}'${keys.length > 3 ? ` and ${keys.length - 3} more` : ''}`;

export function loadBackbone(file: string, network: string): Backbone {
  if (!existsSync(file)) throw new Error(`${file}: no such model file`);
  const weights = torch.loadStateDict(file);
  try {
    const model = getModel(network, { embeddingSize: embeddingSizeOf(weights, file) });
    try {
      const expected = torch.tidy(() => new Map([...model.stateDict()].map(([k, t]) => [k, t.shape])));
      const missing = [...expected.keys()].filter((k) => !weights.has(k));
      const unexpected = [...weights.keys()].filter((k) => !expected.has(k));
      const resized = [...expected].filter(([k, shape]) => weights.has(k) && weights.get(k)!.shape.join() !== shape.join()).map(([k]) => k);
      const problems = [
        missing.length > 0 && `missing ${some(missing)}`,
        unexpected.length > 0 && `unexpected ${some(unexpected)}`,
        resized.length > 0 && `other shapes at ${resized.slice(0, 3).map((k) => `'${k}' ([${weights.get(k)!.shape}] in the file, [${expected.get(k)}] in ${network})`).join(', ')}`,
      ].filter(Boolean);
      if (problems.length > 0) throw new Error(`${file}: not the weights of a '${network}' backbone: ${problems.join('; ')} (is --network right?)`);
      model.loadStateDict(weights);
      return model;
    } catch (error) {
      model.dispose();
      throw error;
    }
  } finally {
    torch.dispose([...weights.values()]);
  }
}

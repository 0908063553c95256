/**
 * Training configuration: arcface_torch's settings in camelCase (`margin_list` → `marginList`),
 * written as TypeScript, like Vite's:
 *
 *   import { defineConfig } from 'arcface-ts/train';
 *   export default defineConfig({ network: 'r50', rec: '/data/ms1m-retinaface-t1', numClasses: 93431, ... });
 *
 * Everything not set takes arcface_torch's base.py default. Validation names the bad key.
 */

export interface TrainConfig {
  /** (m1, m2, m3) of the combined margin: ArcFace (1, 0.5, 0), CosFace (1, 0, 0.4) */
  marginList: [number, number, number];
  /** backbone name: r18 r34 r50 r100 r200 mbf mbf_large vit_t … vit_h (src/models) */
  network: string;
  resume: boolean;
  saveAllStates: boolean;
  /** output folder; default work_dirs/<config file name> */
  output: string | null;
  embeddingSize: number;
  /** Partial FC: fraction of class centres per step (1 = all; 0 = the batch's positives only, as arcface_torch) */
  sampleRate: number;
  interclassFilteringThreshold: number;
  /** float16 autocast + GradScaler (CUDA) */
  fp16: boolean;
  /** bfloat16 autocast of the backbone body (CPU or CUDA), no scaler */
  bf16: boolean;
  /** Partial FC shard storage */
  storage: 'float32' | 'bfloat16' | 'float16';
  /** per-process batch size */
  batchSize: number;
  optimizer: 'sgd' | 'adamw';
  lr: number;
  momentum: number;
  weightDecay: number;
  /** evaluate on valTargets every `verbose` steps */
  verbose: number;
  /** log every `frequent` steps */
  frequent: number;
  /** also write the logged scalars as a TensorBoard event file under <output>/tensorboard/ */
  tensorboard: boolean;
  /** arcface_torch's DALI augmentation set (random resize, blur, HSV, greyscale) on our native loader */
  daliAug: boolean;
  gradientAcc: number;
  seed: number;
  numWorkers: number;
  /** folder with train.rec/train.idx, a folder per identity, or 'synthetic' */
  rec: string;
  numClasses: number;
  numImage: number;
  numEpoch: number;
  /** epochs of linear warm-up (negative or 0: none) */
  warmupEpoch: number;
  /** verification sets (<name>.bin next to the data) */
  valTargets: string[];
  /** run the backbone on channels-last activations */
  channelsLast: boolean;
  /** BatchNorm statistics over the global batch (SyncBatchNorm), not each process's own (docs/training.md) */
  syncBn: boolean;
  /** also write every rank's full state every this many steps (0: only at epoch ends, with saveAllStates) */
  checkpointSteps: number;
  /** a bad record is skipped (logged with its file and record) instead of ending the run */
  skipCorrupt: boolean;
  /** with skipCorrupt: the most records each rank may skip over the run; one more stops it */
  maxSkipped: number;
  /** where the run trains: 'cpu', or 'cuda' (cuda:LOCAL_RANK, as torchrun's workers) or 'cuda:N' */
  device: string;
  /** fp16: a grad scale below this for `gradScaleFloorSteps` consecutive steps stops the run (docs/training.md) */
  gradScaleFloor: number;
  gradScaleFloorSteps: number;
}

export type UserConfig = Partial<TrainConfig>;

/** arcface_torch configs/base.py. */
export const baseConfig: Omit<TrainConfig, 'rec' | 'numClasses' | 'numImage' | 'numEpoch' | 'warmupEpoch' | 'valTargets'> &
  Partial<TrainConfig> = {
  marginList: [1.0, 0.5, 0.0],
  network: 'r50',
  resume: false,
  saveAllStates: false,
  output: null,
  embeddingSize: 512,
  sampleRate: 1,
  interclassFilteringThreshold: 0,
  fp16: false,
  bf16: false,
  storage: 'float32',
  batchSize: 128,
  optimizer: 'sgd',
  lr: 0.1,
  momentum: 0.9,
  weightDecay: 5e-4,
  verbose: 2000,
  frequent: 10,
  tensorboard: true,
  daliAug: false,
  gradientAcc: 1,
  seed: 2048,
  numWorkers: 2,
  channelsLast: false,
  syncBn: false,
  checkpointSteps: 0,
  skipCorrupt: false,
  maxSkipped: 1000,
  device: 'cpu',
  // not in arcface_torch (its runs go on with a scale collapsing to 0): the scale starts at 2^16 and
  // halves per overflow, so below 1 the unscaled gradients overflow float16; skipped steps leave the
  // weights alone, and 200 steps are two growth intervals (100) in which the scale never recovered
  gradScaleFloor: 1,
  gradScaleFloorSteps: 200,
};

/** Thrown for an invalid config; the CLI prints its message and exits with code 2. */
export class ConfigError extends Error {
  override name = 'ConfigError';
}

type Check = (value: unknown) => string | undefined;
const isNumber: Check = (v) => (typeof v === 'number' && Number.isFinite(v) ? undefined : 'a number');
const positiveInt: Check = (v) => (Number.isInteger(v) && (v as number) > 0 ? undefined : 'a positive integer');
const nonNegativeInt: Check = (v) => (Number.isInteger(v) && (v as number) >= 0 ? undefined : 'a non-negative integer');
const isBool: Check = (v) => (typeof v === 'boolean' ? undefined : 'true or false');
const isString: Check = (v) => (typeof v === 'string' && v.length > 0 ? undefined : 'a non-empty string');
const oneOf = (...options: string[]): Check => (v) => (options.includes(v as string) ? undefined : `one of ${options.map((o) => `'${o}'`).join(', ')}`);
const inRange = (lo: number, hi: number): Check => (v) => (typeof v === 'number' && v >= lo && v <= hi ? undefined : `a number in [${lo}, ${hi}]`);

const schema: Record<keyof TrainConfig, Check> = {
  marginList: (v) => (Array.isArray(v) && v.length === 3 && v.every((x) => typeof x === 'number') ? undefined : 'three numbers [m1, m2, m3]'),
  network: isString,
  resume: isBool,
  saveAllStates: isBool,
  output: (v) => (v === null || isString(v) === undefined ? undefined : 'a folder path or null'),
  embeddingSize: positiveInt,
  sampleRate: inRange(0, 1),
  interclassFilteringThreshold: inRange(0, 1),
  fp16: isBool,
  bf16: isBool,
  storage: oneOf('float32', 'bfloat16', 'float16'),
  batchSize: positiveInt,
  optimizer: oneOf('sgd', 'adamw'),
  lr: (v) => (typeof v === 'number' && v > 0 ? undefined : 'a positive number'),
  momentum: inRange(0, 1),
  weightDecay: (v) => (typeof v === 'number' && v >= 0 ? undefined : 'a non-negative number'),
  verbose: positiveInt,
  frequent: positiveInt,
  tensorboard: isBool,
  daliAug: isBool,
  gradientAcc: positiveInt,
  seed: nonNegativeInt,
  numWorkers: nonNegativeInt,
  rec: isString,
  numClasses: positiveInt,
  numImage: positiveInt,
  numEpoch: positiveInt,
  warmupEpoch: isNumber,
  valTargets: (v) => (Array.isArray(v) && v.every((x) => typeof x === 'string') ? undefined : 'an array of names'),
  channelsLast: isBool,
  syncBn: isBool,
  checkpointSteps: nonNegativeInt,
  skipCorrupt: isBool,
  maxSkipped: nonNegativeInt,
  device: (v) => (typeof v === 'string' && /^(cpu|cuda(:\d+)?)$/.test(v) ? undefined : "'cpu', 'cuda' or 'cuda:N'"),
  gradScaleFloor: (v) => (typeof v === 'number' && v >= 0 ? undefined : 'a non-negative number'),
  gradScaleFloorSteps: positiveInt,
};

export const configKeys = Object.keys(schema) as (keyof TrainConfig)[];

const camel = (key: string) => key.replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase());

/** The closest known key, for "did you mean". */
function suggest(key: string): string | undefined {
  const distance = (a: string, b: string) => {
    const d = Array.from({ length: a.length + 1 }, (_, i) => [i, ...Array(b.length).fill(0)]);
    for (let j = 1; j <= b.length; j++) d[0][j] = j;
    for (let i = 1; i <= a.length; i++)
      for (let j = 1; j <= b.length; j++) d[i][j] = Math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
    return d[a.length][b.length];
  };
  const [best] = configKeys.map((k) => [k, distance(key.toLowerCase(), k.toLowerCase())] as const).sort((a, b) => a[1] - b[1]);
  return best && best[1] <= 3 ? best[0] : undefined;
}

/** Merges `user` over the base config and validates the result; `source` names where it came from. */
export function resolveConfig(user: Record<string, unknown>, source = 'config'): TrainConfig {
  if (user === null || typeof user !== 'object' || Array.isArray(user)) throw new ConfigError(`${source}: expected an object of settings`);
  for (const [key, value] of Object.entries(user)) {
    if (!(key in schema)) {
      const hint = key in schema ? '' : suggest(camel(key));
      throw new ConfigError(`${source}: unknown key '${key}'${hint ? ` (did you mean '${hint}'?)` : ''}`);
    }
    if (value === undefined) continue;
    const problem = schema[key as keyof TrainConfig](value);
    if (problem) throw new ConfigError(`${source}: '${key}' must be ${problem}, got ${JSON.stringify(value)}`);
  }
  const merged = { ...baseConfig, ...user } as Partial<TrainConfig>;
  for (const key of ['rec', 'numClasses', 'numImage', 'numEpoch'] as const) {
    if (merged[key] === undefined) throw new ConfigError(`${source}: '${key}' is required (arcface_torch's base config has no default for it)`);
  }
  merged.warmupEpoch ??= 0;
  merged.valTargets ??= [];
  if (merged.fp16 && merged.bf16) throw new ConfigError(`${source}: 'fp16' and 'bf16' are exclusive`);
  return merged as TrainConfig;
}

/** Typed identity for config files: `export default defineConfig({ ... })`. Validated when loaded. */
export function defineConfig(config: UserConfig): UserConfig {
  return config;
}

/** Applies `--set key=value` overrides (snake_case keys accepted; values parsed as JSON when they parse). */
export function applyOverrides(user: Record<string, unknown>, overrides: string[]): Record<string, unknown> {
  const out = { ...user };
  for (const item of overrides) {
    const eq = item.indexOf('=');
    if (eq <= 0) throw new ConfigError(`--set ${item}: expected key=value`);
    const key = camel(item.slice(0, eq));
    const raw = item.slice(eq + 1);
    let value: unknown = raw;
    try {
      value = JSON.parse(raw);
    } catch {
      // a bare string such as --set network=r18
    }
    out[key] = value;
  }
  return out;
}

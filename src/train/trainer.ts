/**
 * The training loop of arcface_torch's train_v2.py: backbone (data parallel) → Partial FC (model
 * parallel) → margin softmax loss; float16 autocast with a GradScaler or bfloat16 autocast;
 * gradient accumulation; gradient clipping at norm 5 on the backbone; SGD or AdamW (the Partial
 * FC shard in its own sparse optimizer, at the same lr); PolynomialLRWarmup stepped every
 * iteration. Logs, verifies and checkpoints as arcface_torch does (./training-log.ts,
 * ./verification-targets.ts, ./checkpoint.ts); resumes exactly; saves on SIGINT/SIGTERM.
 *
 *   const result = await train(await loadConfig('configs/ms1mv3_r50.ts'));
 */
import fs from 'node:fs';
import * as torch from '../torch/index.js';
import { DataLoader, normaliseImages } from '../data/index.js';
import { convertSyncBatchNorm, DistributedDataParallel, distEnv, initProcessGroup, type ProcessGroup } from '../distributed/index.js';
import { CombinedMarginLoss, PartialFC, shardGroupOf } from '../heads/index.js';
import { backwardCheckpoints, getModel } from '../models/index.js';
import { AdamW, GradScaler, PolynomialLRWarmup, SGD, clipGradNorm, type Optimizer } from '../optim/index.js';
import { saveModel, type TrainingParts } from './checkpoint.js';
import { hasCheckpointSets, loadCheckpointSet, saveCheckpointSet } from './checkpoint-set.js';
import { ConfigError, configKeys, type TrainConfig } from './config.js';
import { openTrainingData } from './training-data.js';
import { TrainingLog, type EvaluationPoint } from './training-log.js';
import { VerificationCallback } from './verification-targets.js';
import { DivergenceWatch } from './divergence.js';

export interface TrainOptions {
  /** the process group (default: from the launcher's environment, or a world of one) */
  group?: ProcessGroup;
  /** print log lines on stdout (rank 0; default true); training.log gets them regardless */
  echo?: boolean;
  /** called after every step with the global step and the run's total (a progress bar) */
  onProgress?: (step: number, total: number) => void;
  /** called after every step with its wall time (benchmarks) */
  onStep?: (step: number, ms: number) => void;
  /** stop after this many global steps (benchmarks, tests), as if the schedule ended there */
  maxSteps?: number;
  /** verify once before training: the untrained baseline */
  evaluateAtStart?: boolean;
}

export interface TrainResult {
  output: string;
  globalStep: number;
  totalStep: number;
  /** mean loss of the last log window (NaN if no step ran) */
  loss: number;
  /** verification before training (evaluateAtStart) and at the end, per set (every rank gets it) */
  baseline: EvaluationPoint[];
  final: EvaluationPoint[];
  modelPath?: string;
  /** stopped by SIGINT/SIGTERM, after saving */
  interrupted: boolean;
}

/** A non-finite loss without a GradScaler, diverged weights or grad scale (./divergence.ts), or another reason to stop a run. */
export class TrainingError extends Error {
  override name = 'TrainingError';
}

/** Iterations per epoch, warm-up and total, as train_v2.py derives them from numImage. */
export function schedule(config: TrainConfig, worldSize: number) {
  const totalBatch = config.batchSize * worldSize;
  const stepsPerEpoch = Math.floor(config.numImage / totalBatch);
  const totalStep = stepsPerEpoch * config.numEpoch;
  if (totalStep <= 0) {
    throw new ConfigError(`numImage ${config.numImage} is less than one global batch (${config.batchSize} × ${worldSize} processes): no steps to train`);
  }
  return { totalBatch, stepsPerEpoch, warmupStep: stepsPerEpoch * Math.max(0, config.warmupEpoch), totalStep };
}

function makeOptimizer(config: TrainConfig, params: torch.Tensor[]): Optimizer {
  if (config.optimizer === 'adamw') return new AdamW(params, { lr: config.lr, weightDecay: config.weightDecay });
  return new SGD(params, { lr: config.lr, momentum: config.momentum, weightDecay: config.weightDecay });
}

/** Each flag: true on any rank → true on all (so every rank stops at the same step), in one all-reduce. */
function anyRank(group: ProcessGroup, flags: boolean[]): boolean[] {
  if (group.worldSize === 1) return flags;
  return torch.tidy(() => {
    const t = torch.tensor(flags.map((f) => (f ? 1 : 0)), { dtype: 'float32' });
    group.allReduce(t, 'max');
    return Array.from(t.data() as Float32Array, (f) => f > 0);
  });
}

/**
 * Whether `resume: true` finds something to resume. Under torchrun (TORCHELASTIC_RESTART_COUNT set)
 * one command line starts the run and each of its restarts, so there it means "resume if a
 * checkpoint set has been started": none is a fresh start. Elsewhere a missing set is
 * loadCheckpointSet's error.
 */
function checkpointToResume(output: string, group: ProcessGroup, log: TrainingLog): boolean {
  const restarts = distEnv()?.restartCount;
  if (restarts === undefined) return true;
  const [some] = anyRank(group, [hasCheckpointSets(output)]);
  if (!some) log.info(`resume: no checkpoint in ${output} yet; torchrun attempt ${restarts} starts from step 0`);
  return some;
}

export async function train(config: TrainConfig, options: TrainOptions = {}): Promise<TrainResult> {
  const output = config.output ?? 'work_dirs/run';
  // an unusable device stops the run here, before anything is built; CUDA tensors travel over NCCL,
  // host tensors (flags, losses, labels) over its side Gloo group
  const device = torch.resolveDevice(config.device, `config 'device'`);
  const group = options.group ?? initProcessGroup(device === 'cpu' ? {} : { backend: 'nccl' });
  const { rank, worldSize } = group;
  const log = new TrainingLog(output, rank === 0, options.echo ?? true, config.tensorboard);
  const disposers: (() => void | Promise<void>)[] = [() => log.close()];
  if (!options.group) disposers.unshift(() => group.destroy());  // ours: gone after everything else
  let stopSignal: string | undefined;
  const onSignal = (signal: string) => {
    stopSignal = signal;
  };
  process.on('SIGINT', onSignal).on('SIGTERM', onSignal);
  disposers.push(() => void process.off('SIGINT', onSignal).off('SIGTERM', onSignal));
  try {
    fs.mkdirSync(output, { recursive: true });
    torch.manualSeed(config.seed);
    const { stepsPerEpoch, warmupStep, totalStep } = schedule(config, worldSize);
    const dataset = openTrainingData(config);  // a missing or mismatched data folder fails before any model is built

    // fp16 is CUDA's float16 autocast with the GradScaler, as arcface_torch. On the CPU the body runs
    // in bfloat16 instead where the CPU has bfloat16 kernels (float32 where it has not), and the
    // GradScaler still runs (harmless with bfloat16's range), so fp16 configs train unchanged there.
    const onCpu = device === 'cpu';
    const cpuBf16 = onCpu && torch.cpuHasBf16Kernels();
    // said after a resume has cut the logs back to its checkpoint
    const precisionNotes: string[] = [];
    if (config.fp16 && onCpu) {
      precisionNotes.push(cpuBf16
        ? 'fp16: the backbone body runs in bfloat16 autocast on the CPU, with the GradScaler'
        : 'fp16: this CPU has no bfloat16 kernels (no AVX-512): the backbone runs in float32 on it, with the GradScaler');
    }
    if (config.bf16 && onCpu && !cpuBf16) {
      precisionNotes.push('bf16: this CPU has no bfloat16 kernels (no AVX-512): libtorch runs its reference kernels, many times slower than float32 (bf16: false trains faster here)');
    }
    const backbone = getModel(config.network, {
      embeddingSize: config.embeddingSize,
      dropout: 0,
      fp16: config.fp16 && !onCpu,
      bf16: config.bf16 || (config.fp16 && cpuBf16),
      channelsLast: config.channelsLast,
    });
    disposers.push(() => backbone.dispose());
    backbone.to(device).train();
    if (config.syncBn) convertSyncBatchNorm(backbone, group);
    // arcface_torch: bucket_cap_mb=16 and fp16_compress_hook on the gradient buckets
    const ddp = new DistributedDataParallel(backbone, group, { bucketCapMb: 16, compression: 'float16' });
    disposers.push(() => ddp.dispose());

    const [m1, m2, m3] = config.marginList;
    const head = new PartialFC({
      marginLoss: new CombinedMarginLoss({ s: 64, m1, m2, m3, interclassFilteringThreshold: config.interclassFilteringThreshold }),
      embeddingSize: config.embeddingSize,
      numClasses: config.numClasses,
      sampleRate: config.sampleRate,
      storage: config.storage,
      optimizer:
        config.optimizer === 'adamw'
          ? { type: 'adamw', lr: config.lr, weightDecay: config.weightDecay }
          : { type: 'sgd', lr: config.lr, momentum: config.momentum, weightDecay: config.weightDecay },
      ...(worldSize > 1 ? { group: shardGroupOf(group) } : {}),
      device,
    });
    disposers.push(() => head.dispose());
    const params = backbone.parameters();
    const optimizer = makeOptimizer(config, params);
    disposers.push(() => optimizer.dispose());
    const scheduler = new PolynomialLRWarmup(optimizer, { warmupIters: warmupStep, totalIters: totalStep });
    const scaler = new GradScaler({ growthInterval: 100, enabled: config.fp16 });
    const divergence = new DivergenceWatch(config.gradScaleFloor, config.gradScaleFloorSteps);

    const loader = new DataLoader(dataset, {
      batchSize: config.batchSize,
      rank,
      worldSize,
      seed: config.seed,
      threads: Math.max(1, config.numWorkers),
      augment: { flip: 0.5, dali: config.daliAug },
      // for a GPU: uint8 pixels in page-locked memory, copied without waiting and normalised there
      ...(onCpu ? {} : { dtype: 'uint8' as const, pinMemory: true }),
      numClasses: config.numClasses,
      skipCorrupt: config.skipCorrupt,
      maxSkipped: config.maxSkipped,
      onWarning: (message) => log.info(message),
    });
    disposers.push(() => loader.close());
    const parts: TrainingParts = { backbone, head, optimizer, scheduler, scaler, loader, device };

    let globalStep = 0;
    let startEpoch = 0;
    const runShape = { numClasses: config.numClasses, globalBatch: config.batchSize * worldSize };
    let savedStep = -1;  // a step is saved once (checkpointSteps and the epoch's end can coincide)
    if (config.resume && checkpointToResume(output, group, log)) {
      const resumed = loadCheckpointSet(output, group, parts, { ...runShape, worldSize });
      globalStep = savedStep = resumed.position.globalStep;
      startEpoch = loader.state().epoch;
      // the logs continue from the checkpoint: what the lost steps logged goes
      const kept = log.truncate(resumed.manifest.logs);
      for (const skipped of resumed.skipped) log.info(`resume: skipped ${skipped}`);
      for (const name of kept) log.info(`resume: ${name} is shorter than at the checkpoint; left as it is`);
      const from = resumed.manifest.worldSize === worldSize ? '' : `, re-sharded from ${resumed.manifest.worldSize} processes`;
      log.info(`resumed from step ${globalStep} (epoch ${startEpoch}, batch ${loader.state().batch}${from}) of ${resumed.dir}`);
    }
    for (const key of configKeys) log.info(`: ${key}${' '.repeat(Math.max(1, 25 - key.length))}${JSON.stringify(config[key])}`);
    log.info(`: worldSize                ${worldSize}`);
    log.info(`: totalStep                ${totalStep} (${stepsPerEpoch} per epoch, ${warmupStep} warm-up)`);
    for (const note of precisionNotes) log.info(note);

    // every rank loads the sets and embeds its share of them: no rank waits in a collective while
    // another verifies alone (LFW on a CPU takes minutes; the collective timeout is 300 s)
    const verification = await VerificationCallback.load(config.valTargets, config.rec);
    disposers.push(() => verification.dispose());
    let latest: EvaluationPoint[] = [];
    const evaluate = (step: number): EvaluationPoint[] => {
      latest = verification.evaluate(backbone, group).map((r) => {
        const point = { step, name: r.name, accuracyFlip: r.flip.accMean, stdFlip: r.flip.accStd, accuracy: r.plain.accMean, std: r.plain.accStd, xnorm: r.xnorm, highest: r.highest };
        log.evaluation(point);
        return point;
      });
      return latest;
    };
    const baseline = options.evaluateAtStart ? evaluate(globalStep) : [];

    // As train_v2.py, the loop runs whole epochs (the lr is 0 past totalStep when numImage undercounts).
    const lastStep = Math.min(config.numEpoch * loader.length, options.maxSteps ?? Infinity);
    const startStep = globalStep;
    const started = Date.now();
    let windowStart = Date.now();
    let windowLoss = 0;
    let windowSteps = 0;
    let lastLoss = NaN;
    let interrupted = false;
    const checkpoint = () => {
      if (savedStep === globalStep) return;
      saveCheckpointSet(output, group, parts, { epoch: loader.state().epoch, globalStep }, runShape, log.lengths());
      savedStep = globalStep;
    };
    const saveAll = () => {
      checkpoint();
      if (rank === 0) saveModel(output, backbone);
    };

    epochs: for (let epoch = startEpoch; epoch < config.numEpoch && globalStep < lastStep; epoch++) {
      loader.setEpoch(epoch);
      for (;;) {
        const batch = await loader.next();
        if (!batch) break;
        const stepStart = performance.now();
        globalStep += 1;
        // the step's last micro-batch syncs; the backward of the others only accumulates (DDP's no_sync)
        const syncStep = globalStep % config.gradientAcc === 0;
        const loss = torch.tidy(() => {
          // labels stay on the host: Partial FC validates and samples them there
          const images = onCpu ? batch.images : normaliseImages(batch.images.to(device, { nonBlocking: true }));
          const forward = () => ddp.forward(images);
          const embeddings = syncStep ? forward() : ddp.noSync(forward);
          const l = head.forward(embeddings, batch.labels);
          scaler.scale(l).backward();
          backwardCheckpoints(backbone);  // the activation-checkpointed blocks of a ViT (a no-op otherwise)
          return l.item();
        });
        batch.images.dispose();
        batch.labels.dispose();
        if (!Number.isFinite(loss) && !config.fp16) {
          throw new TrainingError(`step ${globalStep}: the loss is ${loss}; stopped without saving (the last checkpoint in ${output} is intact)`);
        }

        if (syncStep) {
          ddp.syncGradients();
          const lr = optimizer.paramGroups[0].lr;
          if (scaler.isEnabled()) {
            scaler.unscale_(optimizer);
            clipGradNorm(params, 5).dispose();
            if (scaler.step(optimizer)) {
              head.scaleGrad(Math.fround(1 / scaler.getScale()));
              head.step(lr);
            } else {
              head.discardGrad();
            }
            scaler.update();
          } else {
            clipGradNorm(params, 5).dispose();
            optimizer.step();
            head.step(lr);
          }
          optimizer.zeroGrad();
        } else {
          head.accumulateGrad();
        }
        scheduler.step();
        // inf/NaN weights after the step, or a collapsed grad scale: stop before anything is saved
        const diverged = syncStep ? divergence.check(params, [head.weight], scaler.isEnabled() ? scaler.getScale() : undefined) : undefined;
        // Ready batches resolve as microtasks: yield to the event loop so a signal's handler runs.
        await new Promise(setImmediate);
        // one all-reduce per step: a signal, and the divergence flags (the head's per rank, to name it)
        const [signalled, backboneBad, scaleLow, ...headBad] = anyRank(group, [
          stopSignal !== undefined,
          diverged?.backbone ?? false,
          diverged?.scale ?? false,
          ...Array.from({ length: worldSize }, (_, r) => r === rank && (diverged?.head ?? false)),
        ]);
        const headRanks = headBad.flatMap((bad, r) => (bad ? [r] : []));
        if (backboneBad || scaleLow || headRanks.length > 0) {
          throw new TrainingError(divergence.message(globalStep, { backbone: backboneBad, headRanks, scale: scaleLow }, scaler.getScale(), output));
        }
        if (signalled) {
          saveAll();
          log.info(`stopped by ${stopSignal ?? 'a signal on another rank'} at step ${globalStep}: state saved to ${output}; resume with resume: true`);
          interrupted = true;
          break epochs;
        }
        options.onStep?.(globalStep, performance.now() - stepStart);
        options.onProgress?.(globalStep, lastStep);

        if (Number.isFinite(loss)) {
          windowLoss += loss;
          windowSteps += 1;
        }
        if (globalStep % config.frequent === 0) {
          const now = Date.now();
          const perStep = (now - started) / 1000 / (globalStep - startStep);
          lastLoss = windowLoss / Math.max(1, windowSteps);
          log.logPoint({
            step: globalStep,
            epoch,
            loss: lastLoss,
            lr: scheduler.getLastLr()[0],
            samplesPerSec: (windowSteps * config.batchSize * worldSize) / Math.max(1e-9, (now - windowStart) / 1000),
            hoursLeft: Math.max(0, perStep * (totalStep - globalStep)) / 3600,
            ...(scaler.isEnabled() ? { gradScale: scaler.getScale() } : {}),
          });
          windowStart = now;
          windowLoss = 0;
          windowSteps = 0;
        }
        if (globalStep % config.verbose === 0) evaluate(globalStep);
        if (config.checkpointSteps > 0 && globalStep % config.checkpointSteps === 0) checkpoint();
        if (globalStep >= lastStep) break;
      }
      if (loader.state().epoch > epoch) {  // the epoch ran to its end
        if (config.saveAllStates) checkpoint();
        if (rank === 0) saveModel(output, backbone);
      }
    }
    if (windowSteps > 0) lastLoss = windowLoss / windowSteps;
    // the last collective (the final verification) first: no rank then waits while rank 0 writes model.pt
    const final = interrupted || latest[0]?.step === globalStep ? latest : evaluate(globalStep);
    const modelPath = rank === 0 ? saveModel(output, backbone) : undefined;
    return { output, globalStep, totalStep, loss: lastLoss, baseline, final, modelPath, interrupted };
  } finally {
    for (const dispose of disposers.reverse()) await dispose();
  }
}

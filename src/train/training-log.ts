/**
 * What a run reports, on rank 0 only (other ranks stay quiet, as arcface_torch's): lines in
 * arcface_torch's format ("Training: <time>-<message>") on the console and in
 * <output>/training.log, and one JSON object per log point and per evaluation in
 * <output>/metrics.jsonl, for plotting without parsing text, and the scalars arcface_torch's
 * callbacks give its SummaryWriter in a TensorBoard event file under <output>/tensorboard/
 * (./tensorboard.ts).
 */
import fs from 'node:fs';
import path from 'node:path';
import { EventFileWriter } from './tensorboard.js';

export interface LogPoint {
  step: number;
  epoch: number;
  loss: number;
  lr: number;
  /** samples/s over all ranks since the previous log point */
  samplesPerSec: number;
  /** hours left at the run's average speed */
  hoursLeft: number;
  /** GradScaler scale (fp16 runs) */
  gradScale?: number;
}

export interface EvaluationPoint {
  step: number;
  name: string;
  /** 10-fold accuracy of the flip-summed embeddings, its std, and the highest so far */
  accuracyFlip: number;
  stdFlip: number;
  accuracy: number;
  std: number;
  xnorm: number;
  highest: number;
}

/** Python logging's asctime: 2026-11-27 23:59:59,123 (local time). */
function asctime(d = new Date()): string {
  const p = (n: number, w = 2) => String(n).padStart(w, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())},${p(d.getMilliseconds(), 3)}`;
}

export class TrainingLog {
  private readonly logFile?: number;
  private readonly metricsFile?: number;
  private readonly events?: EventFileWriter;

  /**
   * Writes nothing unless `active` (rank 0); `echo` prints lines on stdout too; `tensorboard`
   * (config key of that name) writes the event file.
   */
  constructor(output: string, readonly active: boolean, private readonly echo = true, tensorboard = true) {
    if (!active) return;
    fs.mkdirSync(output, { recursive: true });
    this.logFile = fs.openSync(path.join(output, 'training.log'), 'a');
    this.metricsFile = fs.openSync(path.join(output, 'metrics.jsonl'), 'a');
    if (tensorboard) this.events = new EventFileWriter(path.join(output, 'tensorboard'));
  }

  info(message: string): void {
    if (!this.active) return;
    const line = `Training: ${asctime()}-${message}`;
    if (this.echo) console.log(line);
    fs.writeSync(this.logFile!, `${line}\n`);
  }

  /** arcface_torch's CallBackLogging line, and its metrics record. */
  logPoint(p: LogPoint): void {
    if (!this.active) return;
    const scale = p.gradScale !== undefined ? `Fp16 Grad Scale: ${p.gradScale.toFixed(0)}   ` : '';
    this.info(
      `Speed ${p.samplesPerSec.toFixed(2)} samples/sec   Loss ${p.loss.toFixed(4)}   LearningRate ${p.lr.toFixed(6)}   ` +
        `Epoch: ${p.epoch}   Global Step: ${p.step}   ${scale}Required: ${p.hoursLeft.toFixed(0)} hours`,
    );
    this.metric({ type: 'train', ...p });
    // arcface_torch's CallBackLogging tags, then ours
    this.events?.scalars(p.step, {
      time_for_end: p.hoursLeft,
      learning_rate: p.lr,
      loss: p.loss,
      samples_per_sec: p.samplesPerSec,
      ...(p.gradScale !== undefined ? { grad_scale: p.gradScale } : {}),
    });
  }

  /** CallBackVerification's three lines per set, and the metrics record. */
  evaluation(e: EvaluationPoint): void {
    if (!this.active) return;
    this.info(`[${e.name}][${e.step}]XNorm: ${e.xnorm.toFixed(6)}`);
    this.info(`[${e.name}][${e.step}]Accuracy-Flip: ${e.accuracyFlip.toFixed(5)}+-${e.stdFlip.toFixed(5)}`);
    this.info(`[${e.name}][${e.step}]Accuracy-Highest: ${e.highest.toFixed(5)}`);
    this.metric({ type: 'verification', ...e });
    // CallBackVerification: the set's name, its flip accuracy
    this.events?.scalars(e.step, { [e.name]: e.accuracyFlip });
  }

  metric(record: Record<string, unknown>): void {
    if (!this.active) return;
    fs.writeSync(this.metricsFile!, `${JSON.stringify({ time: Date.now() / 1000, ...record })}\n`);
  }

  /** Byte lengths of training.log, metrics.jsonl and the event file (recorded with each checkpoint set). */
  lengths(): Record<string, number> {
    if (!this.active) return {};
    return {
      'training.log': fs.fstatSync(this.logFile!).size,
      'metrics.jsonl': fs.fstatSync(this.metricsFile!).size,
      ...(this.events ? { [this.eventsKey()]: this.events.size() } : {}),
    };
  }

  private eventsKey(): string {
    return `tensorboard/${this.events!.name}`;
  }

  /**
   * Cuts the logs back to lengths() of a checkpoint (a resume: the steps after it are run again and
   * logged anew). A log shorter than recorded (edited or replaced) is left as it is; says which.
   */
  truncate(lengths: Record<string, number>): string[] {
    if (!this.active) return [];
    const kept: string[] = [];
    for (const [name, fd] of [['training.log', this.logFile!], ['metrics.jsonl', this.metricsFile!]] as const) {
      const length = lengths[name];
      if (length === undefined) continue;
      if (fs.fstatSync(fd).size >= length) fs.ftruncateSync(fd, length);
      else kept.push(name);
    }
    const events = this.events && lengths[this.eventsKey()];
    if (events !== undefined && !this.events!.truncate(events)) kept.push(this.eventsKey());
    return kept;
  }

  close(): void {
    if (this.logFile !== undefined) fs.closeSync(this.logFile);
    if (this.metricsFile !== undefined) fs.closeSync(this.metricsFile);
    this.events?.close();
  }
}

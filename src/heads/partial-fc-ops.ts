/**
 * Partial FC's device-generic implementation: the fused CPU kernel's contract
 * (native/src/heads/partial_fc/kernel.h, the PartialFcKernelHandle phases) written only from
 * libtorch tensor ops, so that it runs wherever libtorch's ops do (CUDA, and the CPU, where the
 * tests hold it equal to the fused kernel). `new PartialFC({ implementation: 'ops', … })` uses it.
 *
 * The same steps, in the same tiles of `tileRows` sampled centres, with the same numerics:
 *
 *   sample    ./sampler.ts: positives + uniform negatives, the kernel's rule and random stream
 *   logits    per tile: index_select the rows, float32 (math dtype), normalise (× 1/max(‖w‖, eps)),
 *             mm x̂·ŵᵀ, clamp, inter-class filter, margin on the targets, ×s; exp(x − tile max)
 *             and its row sums (accumulated in float64, as the kernel's); the exp values are stored
 *             in the storage dtype, negated where the entry passes no gradient (the kernel's sign bit)
 *   expSums   tile sums rescaled to the global row max; exp of the target logit
 *   loss      −mean log max(p_target, 1e-30); then ∂loss/∂x̂ = Σ_tiles G·ŵ (G = ∂loss/∂logits from
 *             the stored exp values) — computed here, where the global statistics are known, and
 *             handed to autograd through a surrogate term (below)
 *   step      per tile: G again, Gᵀ·x̂, F.normalize's backward → ∂loss/∂w; the rows and their
 *             optimizer state gathered, updated in the math dtype, written back with index_copy_
 *             (gradient accumulation sums rows with index_add_ into a sampled-size accumulator)
 *
 * `logits: 'keep'` holds the stored exp tiles (B × S in the storage dtype) and the [S] norms from
 * forward to step; `'recompute'` holds neither and recomputes each tile's forward (the same ops on
 * the same inputs: the same values) in loss() and in step().
 *
 * Autograd without a custom Function: loss() returns value + (a − a.detach()) + probe, where
 * a = Σ x̂(embeddings)·Gx is built with autograd from the embeddings and Gx = ∂loss/∂x̂ is a
 * constant; so the value is the loss exactly, ∂/∂embeddings is F.normalize's backward of
 * Gx·∂loss, and the scalar leaf `probe` receives ∂loss (the factor the step's row gradients need,
 * e.g. a GradScaler's scale). The next forward modifies Gx in place, so autograd refuses the
 * backward of a stale loss ("modified by an inplace operation").
 *
 * Nothing class-centre-sized is allocated: every temporary is tile-sized ([B, tileRows],
 * [tileRows, D]) or sampled-size ([S] index, [B, S] kept tiles); the shard and its optimizer state
 * are read and written at the sampled rows only. All tensors it creates live on the shard's device.
 */
import * as torch from '../torch/index.js';
import type { Tensor } from '../torch/index.js';
import type { MarginParams, PartialFcKernelHandle, PartialFcKernelOptions } from '../torch/native.js';
import { ELEMENT_SIZE } from '../torch/serialization/records.js';
import { sampleCentres } from './sampler.js';

const NORM_EPS = 1e-12;  // F.normalize's eps, as the kernel's kNormEps

type Phase = 'idle' | 'sampled' | 'logits' | 'sums' | 'loss';

/** Rows of the shard that one piece of work touches: `count` rows from `start` (every row sampled), or `index`. */
interface RowSet {
  start: number;
  count: number;
  index?: Tensor;
}

/** A new tensor holding those rows of t in `dtype` (the caller may change it in place). */
function copyRows(t: Tensor, rows: RowSet, dtype: torch.Dtype): Tensor {
  if (rows.index) return torch.indexSelect(t, 0, rows.index).to(dtype);  // index_select copies; to() of a new tensor is that tensor or a new one
  const view = t.narrow(0, rows.start, rows.count);
  return view.dtype === dtype ? view.clone() : view.to(dtype);
}

function writeRows(t: Tensor, rows: RowSet, values: Tensor): void {
  if (rows.index) torch.inplace.indexCopy(t, 0, rows.index, values);
  else t.narrow(0, rows.start, rows.count).copy_(values);
}

/** A tile's rows of the shard in the math dtype: as stored, normalised, and their norms. */
interface TileRows {
  /** the rows [cols, D] (a copy: the update may change it in place) */
  rows: Tensor;
  /** rows × 1/max(‖w‖, eps) */
  rowsHat: Tensor;
  /** ‖w‖ [cols] */
  norms: Tensor;
}

/** One tile of the forward: its stored exp values and its rows. */
interface ForwardTile extends TileRows {
  /** exp(x − tile max) [B, cols] in the storage dtype, negative where no gradient passes */
  exp: Tensor;
}

/** The batch entries whose target centre is in one tile: row i, column j of the tile. */
interface TileTargets {
  count: number;
  rows?: Tensor;
  cols?: Tensor;
}

/**
 * What a step does to some rows: grad = ∂loss/∂w of those rows (math dtype, not to be changed),
 * w = a copy of the rows in the math dtype (the update may change it), position = where the first
 * is in the sample (or the accumulator).
 */
type Update = (rows: RowSet, grad: Tensor, w: Tensor, position: number) => void;

/** Runs fn with autocast off on every device: the math is float32 (or float64) as the kernel's. */
const noAutocast = <T>(fn: () => T): T =>
  torch.autocast({ deviceType: 'cpu', enabled: false }, () => torch.autocast({ deviceType: 'cuda', enabled: false }, fn));

export class OpsKernel implements PartialFcKernelHandle {
  private readonly dim: number;
  private readonly math: 'float32' | 'float64';
  private readonly tileRows: number;
  private readonly recompute: boolean;

  private phase: Phase = 'idle';
  private generation = 0;
  private margin: MarginParams = { s: 64, m1: 1, m2: 0.5, m3: 0, filter: 0 };
  private batch = 0;
  private numLocal = 0;
  private numSampled = 0;
  private device = 'cpu';
  private weight?: Tensor;  // the shard of the current step (not owned)
  // held from phase to phase (owned: kept out of the caller's scopes, disposed here)
  private index?: Tensor;  // int64 [S] rows of the sample; undefined when every row is in
  private indexRows: Int32Array | null = null;
  private targetsJs: Int32Array = new Int32Array(0);
  private targetTensor?: Tensor;  // int64 [B]
  private tileTargets: TileTargets[] = [];
  private xhat?: Tensor;  // [B, D] normalised embeddings, math dtype, no grad
  private kept: { exp: Tensor; norms: Tensor }[] = [];  // 'keep': per tile
  private tileMax?: Tensor;  // [tiles, B]
  private tileSum?: Tensor;  // [tiles, B]
  private targetLogit?: Tensor;  // [B]
  private rowMax?: Tensor;  // [B] global
  private rowSum?: Tensor;  // [B] global
  private probe?: Tensor;  // scalar leaf: its grad is ∂loss of the backward
  private gradXhat?: Tensor;  // [B, D] ∂loss/∂x̂ for ∂loss = 1, saved by the loss's graph
  private gradFactor = 1;  // scaleGrad() of the pending backward
  // gradient accumulation: shard row → slot in accGrad
  private accRows: number[] = [];
  private accSlot = new Map<number, number>();
  private accGrad?: Tensor;  // [capacity, D] math dtype

  constructor(o: PartialFcKernelOptions) {
    if (o.dtype !== 'float32' && o.dtype !== 'float64') throw new TypeError('Partial FC: math dtype must be float32 or float64');
    if (!(o.embeddingSize > 0 && o.tileRows > 0)) throw new RangeError('Partial FC: embedding size and tile rows must be positive');
    const mode = o.logits ?? 'keep';
    if (mode !== 'keep' && mode !== 'recompute') throw new TypeError("PartialFcKernel: option 'logits' must be 'keep' or 'recompute'");
    this.dim = o.embeddingSize;
    this.math = o.dtype;
    this.tileRows = o.tileRows;
    this.recompute = mode === 'recompute';
  }

  // ------------------------------------------------------------------ phases

  sample(labels: Tensor, classStart: number, numLocal: number, numSample: number): number {
    const s = sampleCentres(labels, classStart, numLocal, numSample);
    this.endStep();
    // a loss of an earlier forward must not backward into this step: its saved ∂loss/∂x̂ changes
    if (this.gradXhat) torch.noGrad(() => this.gradXhat!.zero_());
    this.drop('gradXhat', 'probe', 'targetTensor', 'index');
    for (const t of this.tileTargets) torch.dispose(t.rows, t.cols);
    this.tileTargets = [];
    this.batch = labels.shape[0];
    this.numLocal = numLocal;
    this.numSampled = s.numSampled;
    this.indexRows = s.index;
    this.targetsJs = s.targets;
    this.place(labels.device);
    this.phase = 'sampled';
    this.generation++;
    return this.numSampled;
  }

  /** The sample's tensors on `device` (the shard's): index, targets, and the targets of each tile. */
  private place(device: string): void {
    if (this.targetTensor && this.device === device) return;
    this.drop('targetTensor', 'index');
    for (const t of this.tileTargets) torch.dispose(t.rows, t.cols);
    this.device = device;
    torch.tidy(() => {
      if (this.indexRows) this.index = torch.keep(torch.tensor(this.indexRows, { dtype: 'int64', device }));
      this.targetTensor = torch.keep(torch.tensor(this.targetsJs, { dtype: 'int64', device }));
      // the batch entries whose target falls in each tile, for the margin and the one-hot
      const perTile = Array.from({ length: this.numTiles() }, () => ({ rows: [] as number[], cols: [] as number[] }));
      this.targetsJs.forEach((col, i) => {
        if (col < 0) return;
        const t = Math.floor(col / this.tileRows);
        perTile[t].rows.push(i);
        perTile[t].cols.push(col - t * this.tileRows);
      });
      this.tileTargets = perTile.map(({ rows, cols }) =>
        rows.length === 0
          ? { count: 0 }
          : {
              count: rows.length,
              rows: torch.keep(torch.tensor(rows, { dtype: 'int64', device })),
              cols: torch.keep(torch.tensor(cols, { dtype: 'int64', device })),
            },
      );
    });
  }

  logits(embeddings: Tensor, weight: Tensor, margin: MarginParams): Tensor {
    this.expect('sampled', 'Logits');
    const e = embeddings.shape, w = weight.shape;
    if (e.length !== 2 || e[1] !== this.dim) throw new Error(`Partial FC: embeddings must be [B, ${this.dim}], got [${e.join(', ')}]`);
    if (e[0] !== this.batch) throw new Error(`Partial FC: ${e[0]} embeddings for ${this.batch} labels`);
    if (w.length !== 2 || w[0] !== this.numLocal || w[1] !== this.dim || !weight.isContiguous()) {
      throw new Error(`Partial FC: the shard must be a contiguous [${this.numLocal}, ${this.dim}] tensor, got [${w.join(', ')}]`);
    }
    if (!((margin.m1 === 1 && margin.m3 === 0) || margin.m3 > 0)) {
      throw new Error('Partial FC: unsupported margin (ArcFace needs m1 = 1 and m3 = 0, CosFace m3 > 0)');
    }
    if (embeddings.device !== weight.device) {
      throw new Error(`Partial FC: embeddings on ${embeddings.device}, the shard on ${weight.device} (move the embeddings to the shard's device)`);
    }
    this.place(weight.device);
    this.weight = weight;
    this.margin = { ...margin };
    return this.run(() => {
      // F.normalize(embeddings) in the math dtype
      const x = embeddings.to(this.math).contiguous();
      this.xhat = torch.keep(x.div(torch.clamp(torch.norm(x, 2, 1), NORM_EPS).unsqueeze(1)));
      const tiles = this.numTiles();
      this.targetLogit = torch.keep(torch.zeros([this.batch], { dtype: this.math, device: this.device }));
      const maxes: Tensor[] = [], sums: Tensor[] = [];
      for (let t = 0; t < tiles; t++) {
        const tile = this.forwardTile(t, undefined, maxes, sums);
        if (!this.recompute) this.kept.push({ exp: torch.keep(tile.exp), norms: torch.keep(tile.norms) });
      }
      const empty = () => torch.empty([0, this.batch], { dtype: this.math, device: this.device });
      this.tileMax = torch.keep(tiles > 0 ? torch.stack(maxes) : empty());
      this.tileSum = torch.keep(tiles > 0 ? torch.stack(sums) : empty());
      this.phase = 'logits';
      if (tiles === 0) return torch.full([this.batch], -Infinity, { dtype: this.math, device: this.device });
      return torch.max(this.tileMax, 0).values;
    });
  }

  expSums(rowMax: Tensor): Tensor {
    this.expect('logits', 'ExpSums');
    if (rowMax.numel !== this.batch) throw new Error(`Partial FC: row max has ${rowMax.numel} entries for a batch of ${this.batch}`);
    return this.run(() => {
      const m = torch.keep(rowMax.to(this.math).contiguous().clone());
      this.rowMax = m;
      // Σ_tiles tile sum · exp(tile max − M), in float64 as the kernel's
      const scale = torch.exp(this.tileMax!.sub(m).to('float64'));
      const sum = scale.mul(this.tileSum!.to('float64')).sum(0).to(this.math);
      const target = torch.where(torch.ge(this.targetTensor!, 0), torch.exp(this.targetLogit!.sub(m)), 0);
      this.phase = 'sums';
      return torch.stack([sum, target], 1);
    });
  }

  loss(embeddings: Tensor, sums: Tensor): Tensor {
    this.expect('sums', 'Loss');
    if (sums.shape.length !== 2 || sums.shape[0] !== this.batch || sums.shape[1] !== 2) throw new Error(`Partial FC: sums must be [${this.batch}, 2]`);
    const withGrad = torch.isGradEnabled();
    return noAutocast(() => {
      const value = torch.noGrad(() =>
        torch.tidy(() => {
          const s = sums.to(this.math).contiguous();
          this.rowSum = torch.keep(s.select(1, 0).contiguous());
          // DistCrossEntropy: log of the target probability clamped at 1e-30, summed in float64
          const logP = torch.log(torch.clamp(s.select(1, 1).div(this.rowSum), 1e-30));
          return torch.sum(logP, undefined, { dtype: 'float64' }).neg().div(this.batch).to(this.math);
        }),
      );
      this.phase = 'loss';
      if (!withGrad) return value;
      this.gradXhat = torch.keep(this.run(() => this.gradOfXhat()));
      this.probe = torch.keep(torch.zeros([], { dtype: this.math, device: this.device }).requiresGrad_());
      return torch.tidy(() => {
        // the surrogate: value exactly, ∂/∂embeddings through F.normalize's backward, ∂loss into probe
        const x = embeddings.to(this.math);
        const xhat = x.div(torch.clamp(torch.norm(x, 2, 1), NORM_EPS).unsqueeze(1));
        const a = xhat.mul(this.gradXhat!).sum();
        return value.add(a.sub(a.detach())).add(this.probe!);
      });
    });
  }

  rowGrads(): Tensor {
    const out = torch.empty([this.numSampled, this.dim], { dtype: this.math, device: this.device });
    this.forEachSampledRow('rowGrads()', (rows, grad, _w, position) => out.narrow(0, position, rows.count).copy_(grad));
    return out;
  }

  accumulate(): number {
    this.expectGradient('accumulateGrad()');
    const have = this.accRows.length;
    const slots = new Float64Array(this.numSampled);
    for (let pos = 0; pos < this.numSampled; pos++) {
      const row = this.indexRows ? this.indexRows[pos] : pos;
      let slot = this.accSlot.get(row);
      if (slot === undefined) {
        slot = this.accRows.length;
        this.accSlot.set(row, slot);
        this.accRows.push(row);
      }
      slots[pos] = slot;
    }
    const need = this.accRows.length;
    torch.tidy(() => {
      if (!this.accGrad || this.accGrad.shape[0] < need) {
        const grown = torch.keep(torch.empty([Math.max(need, 2 * have), this.dim], { dtype: this.math, device: this.device }));
        if (have > 0) grown.narrow(0, 0, have).copy_(this.accGrad!.narrow(0, 0, have));
        this.drop('accGrad');
        this.accGrad = grown;
      }
      if (need > have) this.accGrad.narrow(0, have, need - have).zero_();  // fresh slots: 0 + g = g
      const slotIndex = torch.tensor(slots, { dtype: 'int64', device: this.device });
      this.forEachSampledRow('accumulateGrad()', (rows, grad, _w, position) =>
        torch.inplace.indexAdd(this.accGrad!, 0, slotIndex.narrow(0, position, rows.count), grad),
      );
    });
    this.endStep();
    return this.accRows.length;
  }

  discardGrad(): void {
    this.accRows = [];
    this.accSlot.clear();
    if (this.pendingBackward()) this.endStep();
  }

  scaleGrad(factor: number): void {
    if (this.pendingBackward()) this.gradFactor *= factor;
    if (this.accRows.length > 0) torch.noGrad(() => torch.tidy(() => this.accGrad!.narrow(0, 0, this.accRows.length).mul_(factor)));
  }

  sgdStep(momentumBuffer: Tensor | undefined, o: { lr: number; momentum: number; weightDecay: number }): void {
    if (this.accRows.length === 0) this.expectGradient('step()');
    const momentum = o.momentum !== 0;
    if (momentum && !(momentumBuffer && this.likeShard(momentumBuffer))) {
      throw new Error('PartialFC.step(): the momentum buffer must be a contiguous tensor shaped and typed like the shard');
    }
    this.forEachUpdateRow('step()', (rows, grad, w) => {
      const weight = this.weight!;
      // torch.optim.SGD on these rows (dampening 0): d = g + wd·w; buf = mu·buf + d; w −= lr·buf
      let b = grad.add(w, o.weightDecay);
      if (momentum) {
        b = copyRows(momentumBuffer!, rows, this.math).mul_(o.momentum).add_(b);
        writeRows(momentumBuffer!, rows, b.to(weight.dtype));
      }
      writeRows(weight, rows, w.sub_(b, o.lr).to(weight.dtype));
    });
    this.endStep();
  }

  adamwStep(
    expAvg: Tensor, expAvgSq: Tensor, steps: Tensor,
    o: { lr: number; beta1: number; beta2: number; eps: number; weightDecay: number },
  ): void {
    if (this.accRows.length === 0) this.expectGradient('step()');
    if (!this.likeShard(expAvg) || !this.likeShard(expAvgSq)) {
      throw new Error('PartialFC.step(): AdamW moments must be contiguous tensors shaped and typed like the shard');
    }
    if (steps.ndim !== 1 || steps.shape[0] !== this.numLocal || steps.dtype !== 'int32' || !steps.isContiguous()) {
      throw new Error(`PartialFC.step(): AdamW step counts must be int32 [${this.numLocal}]`);
    }
    this.forEachUpdateRow('step()', (rows, grad, w) => {
      const weight = this.weight!, store = weight.dtype;
      // each row counts its own updates: its bias corrections, in float64 then rounded, as the kernel's
      const n = copyRows(steps, rows, 'int32').add_(1);
      writeRows(steps, rows, n);
      const t = n.to('float64');
      const stepSize = torch.rsub(torch.scalarPow(o.beta1, t), 1).reciprocal().mul(o.lr).to(this.math).unsqueeze(1);
      const bc2Sqrt = torch.sqrt(torch.rsub(torch.scalarPow(o.beta2, t), 1)).to(this.math).unsqueeze(1);
      // m = β1·m + (1 − β1)·g; v = β2·v + (1 − β2)·g²; w = w·(1 − lr·wd) − lr/(1 − β1ᵗ) · m / (√v / √(1 − β2ᵗ) + eps)
      const m = copyRows(expAvg, rows, this.math).mul_(o.beta1).add_(grad, 1 - o.beta1);
      const v = torch.inplace.addcmul(copyRows(expAvgSq, rows, this.math).mul_(o.beta2), grad, grad, 1 - o.beta2);
      writeRows(expAvg, rows, m.to(store));
      writeRows(expAvgSq, rows, v.to(store));
      const update = m.div(torch.sqrt(v).div_(bc2Sqrt).add_(o.eps)).mul_(stepSize);
      writeRows(weight, rows, w.mul_(1 - o.lr * o.weightDecay).sub_(update).to(store));
    });
    this.endStep();
  }

  sampledIndex(): Tensor {
    if (this.generation === 0) throw new Error('Partial FC: nothing sampled yet');
    return this.index ? this.index.clone() : torch.arange(0, this.numSampled, 1, { device: this.device });
  }

  targets(): Tensor {
    if (!this.targetTensor) throw new Error('Partial FC: nothing sampled yet');
    return this.targetTensor.clone();
  }

  /** Bytes held from phase to phase: sample index and targets, x̂ and ∂loss/∂x̂, kept tiles and norms, row statistics, accumulator. */
  bufferBytes(): number {
    const held = [
      this.index, this.targetTensor, this.xhat, this.gradXhat, this.tileMax, this.tileSum, this.targetLogit, this.rowMax, this.rowSum, this.accGrad,
      ...this.kept.flatMap((k) => [k.exp, k.norms]),
      ...this.tileTargets.flatMap((t) => [t.rows, t.cols]),
    ];
    return held.reduce((sum, t) => sum + (t && !t.isDisposed ? t.numel * ELEMENT_SIZE[t.dtype] : 0), 0);
  }

  dispose(): void {
    this.endStep();
    this.drop('gradXhat', 'probe', 'targetTensor', 'index', 'accGrad');
    for (const t of this.tileTargets) torch.dispose(t.rows, t.cols);
    this.tileTargets = [];
    this.accRows = [];
    this.accSlot.clear();
  }

  // ------------------------------------------------------------------ tiles

  private numTiles(): number {
    return Math.ceil(this.numSampled / this.tileRows);
  }

  private tileCols(t: number): number {
    return Math.min(this.tileRows, this.numSampled - t * this.tileRows);
  }

  private tileRowSet(t: number): RowSet {
    const start = t * this.tileRows, count = this.tileCols(t);
    return this.index ? { start, count, index: this.index.narrow(0, start, count) } : { start, count };
  }

  /** Tile t's rows of the shard in the math dtype, and normalised: w × 1/max(‖w‖, eps); the norms are computed unless given. */
  private gatherTile(t: number, norms?: Tensor): TileRows {
    const rows = copyRows(this.weight!, this.tileRowSet(t), this.math);
    const n = norms ?? torch.norm(rows, 2, 1);
    return { rows, rowsHat: rows.mul(torch.reciprocal(torch.clamp(n, NORM_EPS)).unsqueeze(1)), norms: n };
  }

  /**
   * Tile t's logits → exp values: the forward's math, which recompute runs again (the same ops on
   * the same rows give the same values). With `maxes`, `sums` (the forward) it also records the
   * tile's row max and Σ exp, and the target logits.
   */
  private forwardTile(t: number, norms?: Tensor, maxes?: Tensor[], sums?: Tensor[]): ForwardTile {
    const { s, m2, m3, filter } = this.margin;
    const arcface = this.margin.m1 === 1 && m3 === 0;
    const tile = this.gatherTile(t, norms);
    const cosine = torch.mm(this.xhat!, tile.rowsHat.t());
    // non-target entries: clamp to [−1, 1], inter-class filtering (above the threshold → 0), × s
    const clamped = torch.clamp(cosine, -1, 1);
    let zero = torch.logicalOr(torch.lt(cosine, -1), torch.gt(cosine, 1));  // entries that pass no gradient
    let logit = clamped;
    if (filter > 0) {
      const filtered = torch.gt(clamped, filter);
      zero = torch.logicalOr(zero, filtered);
      logit = torch.maskedFill(clamped, filtered, 0);
    }
    logit = logit.mul(s);
    // the targets: not filtered; the margin through acos/cos (ArcFace) or − m3 (CosFace)
    const at = this.tileTargets[t];
    if (at.count > 0) {
      const where = [at.rows!, at.cols!];
      const c = torch.index(cosine, where), cc = torch.clamp(c, -1, 1);
      const target = (arcface ? torch.cos(torch.acos(cc).add(m2)) : cc.sub(m3)).mul(s);
      torch.inplace.indexPut(logit, where, target);
      torch.inplace.indexPut(zero, where, torch.logicalNot(torch.logicalAnd(torch.ge(c, -1), torch.le(c, 1))));
      if (maxes) torch.inplace.indexPut(this.targetLogit!, [at.rows!], target);
    }
    const tileMax = torch.max(logit, 1).values;
    const e = torch.exp(logit.sub(tileMax.unsqueeze(1)));
    if (maxes && sums) {
      maxes.push(tileMax);
      sums.push(torch.sum(e, 1, { dtype: 'float64' }).to(this.math));
    }
    // the sign marks the entries that pass no gradient (exp values are never negative)
    const exp = torch.where(zero, torch.neg(e), e).to(this.weight!.dtype);
    return { exp, ...tile };
  }

  /** Tile t's exp values and normalised rows, kept or recomputed. */
  private tileValues(t: number): ForwardTile {
    if (this.recompute) return this.forwardTile(t);
    const { exp, norms } = this.kept[t];
    return { exp, ...this.gatherTile(t, norms) };
  }

  /** G = ∂loss/∂logits of a tile: coef·(p − onehot), p = e·exp(tile max − M)/S; zero where marked. */
  private tileGrad(t: number, exp: Tensor, coef: number): Tensor {
    const factor = torch.exp(this.tileMax!.select(0, t).sub(this.rowMax!).to('float64')).div(this.rowSum!.to('float64')).mul(coef).to(this.math);
    const e = exp.to(this.math);
    const g = torch.clamp(e, 0).mul(factor.unsqueeze(1));
    const at = this.tileTargets[t];
    if (at.count > 0) {
      const where = [at.rows!, at.cols!];
      const here = torch.logicalNot(torch.signbit(torch.index(exp, where)));  // the target passes a gradient
      torch.inplace.indexPut(g, where, here.to(this.math).mul(-coef), true);
    }
    return g;
  }

  /** ∂loss/∂x̂ [B, D] for ∂loss = 1: Σ_tiles G·ŵ. */
  private gradOfXhat(): Tensor {
    const out = torch.zeros([this.batch, this.dim], { dtype: this.math, device: this.device });
    const coef = this.margin.s / this.batch;
    for (let t = 0; t < this.numTiles(); t++) {
      torch.tidy(() => {
        const { exp, rowsHat } = this.tileValues(t);
        torch.inplace.addmm(out, this.tileGrad(t, exp, coef), rowsHat);
      });
    }
    return out;
  }

  // ------------------------------------------------------------------ updates

  /**
   * Runs update(rows, ∂loss/∂w of those rows, a copy of the rows in the math dtype, position of the
   * first in the sample) tile by tile over the sampled rows; the gradient is F.normalize's backward
   * of Gᵀ·x̂ (scaled by the backward's ∂loss).
   */
  private forEachSampledRow(what: string, update: Update): void {
    this.expectGradient(what);
    const coef = (this.margin.s * this.backwardScale()! * this.gradFactor) / this.batch;
    this.run(() => {
      for (let t = 0; t < this.numTiles(); t++) {
        torch.tidy(() => {
          const { exp, rows, rowsHat, norms } = this.tileValues(t);
          const gradHat = torch.mm(this.tileGrad(t, exp, coef).t(), this.xhat!);
          // (g − ŵ(ŵ·g)) / ‖w‖ where ‖w‖ ≥ eps; g / eps below (clamp_min passes no gradient to the norm)
          const small = torch.lt(norms, NORM_EPS).unsqueeze(1);
          const dot = torch.maskedFill(rowsHat.mul(gradHat).sum(1, { keepdim: true }), small, 0);
          const grad = torch.inplace.addcmul(gradHat, rowsHat, dot, -1).mul_(torch.reciprocal(torch.clamp(norms, NORM_EPS)).unsqueeze(1));
          update(this.tileRowSet(t), grad, rows, t * this.tileRows);
        });
      }
    });
  }

  /** The same over the accumulated rows (in tiles), then empties the accumulator. */
  private forEachAccumulatedRow(update: Update): void {
    const n = this.accRows.length;
    this.run(() => {
      for (let start = 0; start < n; start += this.tileRows) {
        torch.tidy(() => {
          const count = Math.min(this.tileRows, n - start);
          const index = torch.tensor(this.accRows.slice(start, start + count), { dtype: 'int64', device: this.device });
          const rows = { start, count, index };
          update(rows, this.accGrad!.narrow(0, start, count), copyRows(this.weight!, rows, this.math), start);
        });
      }
    });
    this.accRows = [];
    this.accSlot.clear();
  }

  /** What a step updates: the accumulated rows if any (the pending backward folded in), else the sample. */
  private forEachUpdateRow(what: string, update: Update): void {
    if (this.accRows.length === 0) return this.run(() => this.forEachSampledRow(what, update));
    if (this.pendingBackward()) this.accumulate();
    this.forEachAccumulatedRow(update);
  }

  // ------------------------------------------------------------------ bookkeeping

  /** The kernel's own ops: no autograd recording, no autocast, temporaries freed. */
  private run<T>(fn: () => T): T {
    return noAutocast(() => torch.noGrad(() => torch.tidy(fn)));
  }

  /** ∂loss/∂loss of the backward of this step's loss; undefined before that backward. */
  private backwardScale(): number | undefined {
    if (this.phase !== 'loss' || !this.probe) return undefined;
    const grad = this.probe.grad;
    if (!grad) return undefined;
    try {
      return grad.item();
    } finally {
      grad.dispose();
    }
  }

  private pendingBackward(): boolean {
    const grad = this.phase === 'loss' ? this.probe?.grad : undefined;
    grad?.dispose();
    return grad !== undefined;
  }

  private expect(phase: Phase, call: string): void {
    if (this.phase !== phase) {
      throw new Error(`Partial FC kernel: ${call} out of order (after the ${this.phase} phase, expected the ${phase} phase)`);
    }
  }

  private expectGradient(what: string): void {
    if (!this.pendingBackward()) {
      throw new Error(
        `PartialFC.${what}: no gradient to apply; call loss.backward() after forward()` +
          (this.phase === 'idle' ? ' (each step needs a new forward and backward)' : ''),
      );
    }
  }

  private likeShard(t: Tensor): boolean {
    const w = this.weight!;
    return t.shape.join() === w.shape.join() && t.dtype === w.dtype && t.isContiguous() && t.device === w.device;
  }

  /** Ends the step: the per-step buffers go (the sample stays for sampledIndex()/targets()). */
  private endStep(): void {
    for (const k of this.kept) torch.dispose(k.exp, k.norms);
    this.kept = [];
    this.drop('xhat', 'tileMax', 'tileSum', 'targetLogit', 'rowMax', 'rowSum');
    if (this.probe) this.probe.grad = undefined;
    this.gradFactor = 1;
    this.phase = 'idle';
  }

  private drop(...names: ('index' | 'targetTensor' | 'xhat' | 'tileMax' | 'tileSum' | 'targetLogit' | 'rowMax' | 'rowSum' | 'probe' | 'gradXhat' | 'accGrad')[]): void {
    for (const name of names) {
      this[name]?.dispose();
      this[name] = undefined;
    }
  }
}

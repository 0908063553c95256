/**
 * MobileFaceNet (insightface arcface_torch `backbones/mobilefacenet.py`): depthwise-separable
 * blocks and a global depthwise (GDC) head. State-dict names follow arcface_torch
 * (`layers.3.layers.0.layers.1.layers.0.weight`, `features.layers.2.weight`, …).
 */
import { tidy, type Tensor } from '../torch/index.js';
import { Module, Conv2d, BatchNorm1d, BatchNorm2d, Flatten, PReLU, Linear, Sequential, init } from '../nn/index.js';
import { bodyPrecision, runBody, type BackboneOptions, type BodyPrecision } from './precision.js';

type Pair = [number, number];

interface ConvOptions {
  kernel?: Pair;
  stride?: Pair;
  padding?: Pair;
  groups?: number;
}

/** Modules whose only child is a Sequential named `layers` (arcface_torch's naming). */
abstract class LayersModule extends Module {
  protected readonly layers: Sequential;
  constructor(...modules: Module[]) {
    super();
    this.layers = this.registerModule('layers', new Sequential(...modules));
  }
  forward(x: Tensor): Tensor {
    return this.layers.forward(x);
  }
}

const conv = (inC: number, outC: number, { kernel = [1, 1], stride = [1, 1], padding = [0, 0], groups = 1 }: ConvOptions) =>
  new Conv2d(inC, outC, kernel, { stride, padding, groups, bias: false });

/** conv → BN → PReLU */
export class ConvBlock extends LayersModule {
  constructor(inC: number, outC: number, o: ConvOptions = {}) {
    super(conv(inC, outC, o), new BatchNorm2d(outC), new PReLU(outC));
  }
}

/** conv → BN (no activation) */
export class LinearBlock extends LayersModule {
  constructor(inC: number, outC: number, o: ConvOptions = {}) {
    super(conv(inC, outC, o), new BatchNorm2d(outC));
  }
}

/** 1×1 expand → depthwise k×k → 1×1 project, with an optional residual connection. */
export class DepthWise extends LayersModule {
  constructor(inC: number, outC: number, readonly residual: boolean, o: Required<Omit<ConvOptions, 'groups'>> & { groups: number }) {
    super(
      new ConvBlock(inC, o.groups),
      new ConvBlock(o.groups, o.groups, { groups: o.groups, kernel: o.kernel, padding: o.padding, stride: o.stride }),
      new LinearBlock(o.groups, outC),
    );
  }
  override forward(x: Tensor): Tensor {
    return tidy(() => {
      const y = super.forward(x);
      return this.residual ? x.add(y) : y;
    });
  }
}

/** `numBlock` residual DepthWise blocks at constant width. */
export class Residual extends LayersModule {
  constructor(c: number, numBlock: number, groups: number, kernel: Pair = [3, 3], stride: Pair = [1, 1], padding: Pair = [1, 1]) {
    super(...Array.from({ length: numBlock }, () => new DepthWise(c, c, true, { kernel, stride, padding, groups })));
  }
}

/** Global depthwise convolution head: 7×7 depthwise → flatten → Linear (no bias) → BatchNorm1d. */
export class GDC extends LayersModule {
  constructor(embeddingSize: number) {
    super(
      new LinearBlock(512, 512, { groups: 512, kernel: [7, 7] }),
      new Flatten(),
      new Linear(512, embeddingSize, { bias: false }),
      new BatchNorm1d(embeddingSize),
    );
  }
}

export class MobileFaceNet extends Module {
  readonly layers: Sequential;
  readonly convSep: ConvBlock;
  readonly features: GDC;
  readonly precision: BodyPrecision;
  readonly channelsLast: boolean;

  constructor(options: BackboneOptions & { blocks?: [number, number, number, number]; scale?: number } = {}) {
    super();
    const [b0, b1, b2, b3] = options.blocks ?? [1, 4, 6, 2];
    const s = options.scale ?? 2;
    this.precision = bodyPrecision(options);
    this.channelsLast = options.channelsLast ?? false;
    const k3: Pair = [3, 3], s1: Pair = [1, 1], s2: Pair = [2, 2], p1: Pair = [1, 1];
    this.layers = this.registerModule(
      'layers',
      new Sequential(
        new ConvBlock(3, 64 * s, { kernel: k3, stride: s2, padding: p1 }),
        b0 === 1
          ? new ConvBlock(64 * s, 64 * s, { kernel: k3, stride: s1, padding: p1, groups: 64 })
          : new Residual(64 * s, b0, 128, k3, s1, p1),
        new DepthWise(64 * s, 64 * s, false, { kernel: k3, stride: s2, padding: p1, groups: 128 }),
        new Residual(64 * s, b1, 128, k3, s1, p1),
        new DepthWise(64 * s, 128 * s, false, { kernel: k3, stride: s2, padding: p1, groups: 256 }),
        new Residual(128 * s, b2, 256, k3, s1, p1),
        new DepthWise(128 * s, 128 * s, false, { kernel: k3, stride: s2, padding: p1, groups: 512 }),
        new Residual(128 * s, b3, 256, k3, s1, p1),
      ),
    );
    this.convSep = this.registerModule('conv_sep', new ConvBlock(128 * s, 512));
    this.features = this.registerModule('features', new GDC(options.embeddingSize ?? 512));
    this.initializeWeights();
  }

  private initializeWeights(): void {
    for (const [, m] of this.namedModules()) {
      if (m instanceof Conv2d || m instanceof Linear) {
        init.kaimingNormal_(m.weight, { mode: 'fan_out', nonlinearity: 'relu' });
        if (m.bias) init.zeros_(m.bias);
      } else if (m instanceof BatchNorm2d) {
        init.ones_(m.weight!);
        init.zeros_(m.bias!);
      }
    }
  }

  /** x: N×3×112×112, RGB, normalised to [−1, 1]; returns N×embeddingSize (float32). */
  forward(x: Tensor): Tensor {
    return tidy(() => {
      const body = runBody(this.precision, x, () => this.layers.forward(this.channelsLast ? x.contiguous('channels_last') : x));
      return this.features.forward(this.convSep.forward(body.float()));
    });
  }
}

export const mobileFaceNet = (o?: BackboneOptions) => new MobileFaceNet(o);
export const mobileFaceNetLarge = (o?: BackboneOptions) => new MobileFaceNet({ ...o, blocks: [2, 8, 12, 4], scale: 4 });

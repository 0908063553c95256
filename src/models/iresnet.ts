/**
 * IResNet (insightface arcface_torch `backbones/iresnet.py`): the "improved" residual network of
 * ArcFace. Names, shapes and order of the state dict are arcface_torch's, so weights move both ways.
 *
 *   stem   conv3x3(3→64) → BN → PReLU                                   112×112
 *   body   4 stages of IBasicBlock (64, 128, 256, 512 channels), each starting with stride 2
 *   head   BN2d → flatten → dropout → Linear(512·7·7 → E) → BatchNorm1d (weight fixed at 1)
 */
import { tidy, flatten, dropout, type Tensor } from '../torch/index.js';
import { Module, Conv2d, BatchNorm1d, BatchNorm2d, PReLU, Linear, Sequential, init } from '../nn/index.js';
import { bodyPrecision, runBody, type BackboneOptions, type BodyPrecision } from './precision.js';

const conv3x3 = (inPlanes: number, outPlanes: number, stride = 1) =>
  new Conv2d(inPlanes, outPlanes, 3, { stride, padding: 1, bias: false });
const conv1x1 = (inPlanes: number, outPlanes: number, stride = 1) => new Conv2d(inPlanes, outPlanes, 1, { stride, bias: false });

/** BN → conv3x3 → BN → PReLU → conv3x3(stride) → BN, plus the shortcut. */
export class IBasicBlock extends Module {
  readonly bn1: BatchNorm2d;
  readonly conv1: Conv2d;
  readonly bn2: BatchNorm2d;
  readonly prelu: PReLU;
  readonly conv2: Conv2d;
  readonly bn3: BatchNorm2d;
  readonly downsample: Sequential | undefined;

  constructor(inPlanes: number, planes: number, stride = 1, downsample?: Sequential) {
    super();
    this.bn1 = this.registerModule('bn1', new BatchNorm2d(inPlanes, { eps: 1e-5 }));
    this.conv1 = this.registerModule('conv1', conv3x3(inPlanes, planes));
    this.bn2 = this.registerModule('bn2', new BatchNorm2d(planes, { eps: 1e-5 }));
    this.prelu = this.registerModule('prelu', new PReLU(planes));
    this.conv2 = this.registerModule('conv2', conv3x3(planes, planes, stride));
    this.bn3 = this.registerModule('bn3', new BatchNorm2d(planes, { eps: 1e-5 }));
    this.downsample = downsample && this.registerModule('downsample', downsample);
  }

  forward(x: Tensor): Tensor {
    return tidy(() => {
      const out = this.bn3.forward(this.conv2.forward(this.prelu.forward(this.bn2.forward(this.conv1.forward(this.bn1.forward(x))))));
      const identity = this.downsample ? this.downsample.forward(x) : x;
      return out.add_(identity);
    });
  }
}

export class IResNet extends Module {
  static readonly fcScale = 7 * 7;
  readonly conv1: Conv2d;
  readonly bn1: BatchNorm2d;
  readonly prelu: PReLU;
  readonly layer1: Sequential;
  readonly layer2: Sequential;
  readonly layer3: Sequential;
  readonly layer4: Sequential;
  readonly bn2: BatchNorm2d;
  readonly fc: Linear;
  readonly features: BatchNorm1d;
  readonly dropoutP: number;
  readonly precision: BodyPrecision;
  readonly channelsLast: boolean;
  private inPlanes = 64;

  constructor(layers: [number, number, number, number], options: BackboneOptions = {}) {
    super();
    const embeddingSize = options.embeddingSize ?? 512;
    this.dropoutP = options.dropout ?? 0;
    this.precision = bodyPrecision(options);
    this.channelsLast = options.channelsLast ?? false;
    this.conv1 = this.registerModule('conv1', new Conv2d(3, 64, 3, { stride: 1, padding: 1, bias: false }));
    this.bn1 = this.registerModule('bn1', new BatchNorm2d(64, { eps: 1e-5 }));
    this.prelu = this.registerModule('prelu', new PReLU(64));
    this.layer1 = this.registerModule('layer1', this.makeLayer(64, layers[0], 2));
    this.layer2 = this.registerModule('layer2', this.makeLayer(128, layers[1], 2));
    this.layer3 = this.registerModule('layer3', this.makeLayer(256, layers[2], 2));
    this.layer4 = this.registerModule('layer4', this.makeLayer(512, layers[3], 2));
    this.bn2 = this.registerModule('bn2', new BatchNorm2d(512, { eps: 1e-5 }));
    // arcface_torch's nn.Dropout has no state; it is applied functionally in forward.
    this.fc = this.registerModule('fc', new Linear(512 * IResNet.fcScale, embeddingSize));
    this.features = this.registerModule('features', new BatchNorm1d(embeddingSize, { eps: 1e-5 }));
    init.constant_(this.features.weight!, 1.0);
    this.features.weight!.requiresGrad = false;

    for (const [, m] of this.namedModules()) {
      if (m instanceof Conv2d) init.normal_(m.weight, 0, 0.1);
      else if (m instanceof BatchNorm2d) {
        init.constant_(m.weight!, 1);
        init.constant_(m.bias!, 0);
      }
    }
  }

  private makeLayer(planes: number, blocks: number, stride: number): Sequential {
    const downsample =
      stride !== 1 || this.inPlanes !== planes
        ? new Sequential(conv1x1(this.inPlanes, planes, stride), new BatchNorm2d(planes, { eps: 1e-5 }))
        : undefined;
    const layer = new Sequential(new IBasicBlock(this.inPlanes, planes, stride, downsample));
    this.inPlanes = planes;
    for (let i = 1; i < blocks; i++) layer.append(new IBasicBlock(this.inPlanes, planes));
    return layer;
  }

  /** x: N×3×112×112, RGB, normalised to [−1, 1]; returns N×embeddingSize (float32). */
  forward(x: Tensor): Tensor {
    return tidy(() => {
      const body = runBody(this.precision, x, () => {
        let y = this.channelsLast ? x.contiguous('channels_last') : x;
        y = this.prelu.forward(this.bn1.forward(this.conv1.forward(y)));
        y = this.layer4.forward(this.layer3.forward(this.layer2.forward(this.layer1.forward(y))));
        return dropout(flatten(this.bn2.forward(y), 1), this.dropoutP, this.training);
      });
      return this.features.forward(this.fc.forward(body.float()));
    });
  }
}

export const iresnet18 = (o?: BackboneOptions) => new IResNet([2, 2, 2, 2], o);
export const iresnet34 = (o?: BackboneOptions) => new IResNet([3, 4, 6, 3], o);
export const iresnet50 = (o?: BackboneOptions) => new IResNet([3, 4, 14, 3], o);
export const iresnet100 = (o?: BackboneOptions) => new IResNet([3, 13, 30, 3], o);
export const iresnet200 = (o?: BackboneOptions) => new IResNet([6, 26, 60, 6], o);

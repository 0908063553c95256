/**
 * Emitters of the CNN backbones (src/models): each mirrors its forward() in eval mode. The bf16/fp16
 * autocast around a body and channels-last layout change how libtorch computes, not what: the
 * graph is float32 either way. IResNet's dropout is the identity in eval.
 */
import { IBasicBlock, IResNet, MobileFaceNet } from '../models/index.js';
import { ConvBlock, DepthWise, GDC, LinearBlock, Residual } from '../models/mobilefacenet.js';
import { emit, emitChildren, flatten1, registerEmitter } from './emitters.js';
import type { Value } from './graph.js';

registerEmitter(IResNet, (m, x, g) => {
  let y = emit(m.prelu, emit(m.bn1, emit(m.conv1, x, g), g), g);
  for (const layer of [m.layer1, m.layer2, m.layer3, m.layer4]) y = emit(layer, y, g);
  y = emit(m.bn2, y, g);
  return emit(m.features, emit(m.fc, flatten1(y, g, 'flatten'), g), g);
});

registerEmitter(IBasicBlock, (m, x, g) => {
  let out = x;
  for (const layer of [m.bn1, m.conv1, m.bn2, m.prelu, m.conv2, m.bn3]) out = emit(layer, out, g);
  const identity: Value = m.downsample ? emit(m.downsample, x, g) : x;
  return g.node('Add', [out.name, identity.name], out.shape, { name: `${g.path(m)}.add` });
});

// ConvBlock, LinearBlock, Residual and GDC (7×7 depthwise, flatten, Linear, BatchNorm1d) run their `layers` Sequential
for (const type of [ConvBlock, LinearBlock, Residual, GDC]) registerEmitter(type, emitChildren);

registerEmitter(DepthWise, (m, x, g) => {
  const y = emitChildren(m, x, g);
  return m.residual ? g.node('Add', [x.name, y.name], y.shape, { name: `${g.path(m)}.add` }) : y;
});

registerEmitter(MobileFaceNet, (m, x, g) => emit(m.features, emit(m.convSep, emit(m.layers, x, g), g), g));

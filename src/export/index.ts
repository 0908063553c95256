/**
 * Export: backbones as ONNX models. `writeOnnx('model.onnx', backbone, { opset: 17 })`; new module
 * types become exportable with `registerEmitter` (see ./emitters.ts).
 */
export { exportOnnx, writeOnnx, defaultOpset, EXTERNAL_DATA_THRESHOLD, IR_VERSION_OF_OPSET, type OnnxExportOptions, type OnnxGraphSummary } from './onnx.js';
export { registerEmitter, emit, emitChildren, flatten1, type Emitter } from './emitters.js';
export { GraphBuilder, type Value } from './graph.js';
export { foldBatchNorms } from './fold-bn.js';
export { torchOutputName } from './torch-names.js';
export type { Dim, Attribute, NodeProto, TensorProto } from './onnx-proto.js';

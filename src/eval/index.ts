/**
 * Evaluation: verification sets (LFW-style 10-fold accuracy), IJB-B/C template verification
 * (TAR@FAR), ROC curves; embedders that run a libtorch backbone or an ONNX model.
 */
export { evaluatePairs, calculateRoc, calculateVal, calculateAccuracy, kFoldSplits, type VerificationResult } from './verification.js';
export { verifyBackbone, verifyEmbedder, verificationShare, pairDistances, type VerificationSet, type BackboneVerification, type VerificationGroup, type VerifyBackboneOptions } from './verify-backbone.js';
export { loadVerificationSet, type LoadedVerificationSet } from './verification-set.js';
export { TorchEmbedder, embedImages, normaliseImages, type Embedder, type EmbedOptions } from './embedder.js';
export { OnnxEmbedder } from './onnx-embedder.js';
export { loadBackbone, embeddingSizeOf } from './load-backbone.js';
export { rocCurve, tarAtFar, rocAuc, IJB_FARS, type RocCurve } from './roc.js';
export { ARCFACE_TEMPLATE, umeyama, alignmentMatrix, warpAffine, type Affine } from './align.js';
export { evaluateIjb, ijbImageFeatures, templateFeatures, pairScores, type IjbOptions, type IjbResult } from './ijb.js';
export { readFaceList, readTemplateMedia, readTemplatePairs, MetaError, type FaceList, type TemplateMediaList, type TemplatePairs } from './ijb-meta.js';
export { encodeNpy, writeNpy, readNpy } from './npy.js';

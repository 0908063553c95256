/** Evaluation: verification (LFW-style 10-fold accuracy). */
export { evaluatePairs, calculateRoc, calculateVal, calculateAccuracy, kFoldSplits, type VerificationResult } from './verification.js';
export { verifyBackbone, pairDistances, type VerificationSet, type BackboneVerification } from './verify-backbone.js';

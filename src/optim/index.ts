/** Optimizers, LR schedules, gradient clipping and loss scaling (torch.optim and friends). */
export {
  Optimizer,
  type BaseHyperParams,
  type ParamGroup,
  type ParamGroupInput,
  type Params,
  type StateValue,
  type OptimizerStateDict,
  type LoadedOptimizerStateDict,
} from './optimizer.js';
export { SGD, type SGDOptions, type SGDState } from './sgd.js';
export { AdamW, type AdamWOptions, type AdamWState } from './adamw.js';
export { LRScheduler, PolynomialLRWarmup, type PolynomialLRWarmupOptions, type LRSchedulerStateDict } from './lr-scheduler.js';
export { clipGradNorm } from './clip-grad.js';
export { GradScaler, type GradScalerOptions, type GradScalerStateDict } from './grad-scaler.js';

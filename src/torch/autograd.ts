/** Switches for gradient recording and mixed precision, as scopes that restore what they change. */
import { native } from './native.js';
import type { Dtype } from './dtype.js';

export const isGradEnabled = (): boolean => native.isGradEnabled();
export const setGradEnabled = (enabled: boolean): void => native.setGradEnabled(enabled);

function withGradMode<T>(enabled: boolean, fn: () => T): T {
  const previous = native.isGradEnabled();
  native.setGradEnabled(enabled);
  try {
    return fn();
  } finally {
    native.setGradEnabled(previous);
  }
}

/** Runs fn without recording operations for autograd (torch.no_grad). */
export const noGrad = <T>(fn: () => T): T => withGradMode(false, fn);
/** Runs fn with gradient recording on, even inside noGrad (torch.enable_grad). */
export const enableGrad = <T>(fn: () => T): T => withGradMode(true, fn);

export interface AutocastOptions {
  /** 'cpu' (bfloat16) or 'cuda' (float16 or bfloat16) */
  deviceType?: 'cpu' | 'cuda';
  dtype?: Dtype;
  enabled?: boolean;
}

/**
 * Runs fn under automatic mixed precision (torch.autocast): matmuls and convolutions run in the
 * lower precision, reductions and losses stay float32. Nested regions restore the outer state.
 */
export function autocast<T>(options: AutocastOptions, fn: () => T): T {
  const deviceType = options.deviceType ?? 'cpu';
  const dtype = options.dtype ?? (deviceType === 'cpu' ? 'bfloat16' : 'float16');
  if (deviceType === 'cpu' && dtype !== 'bfloat16') throw new Error(`autocast: CPU autocast supports bfloat16 only, got ${dtype}`);
  const previous = native.autocastState();
  const enabled = options.enabled ?? true;
  native.setAutocast(
    deviceType === 'cpu'
      ? { ...previous, cpu: enabled, cpuDtype: dtype }
      : { ...previous, cuda: enabled, cudaDtype: dtype },
  );
  native.autocastEnter();
  try {
    return fn();
  } finally {
    native.autocastExit();
    native.setAutocast(previous);
  }
}

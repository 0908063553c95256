/**
 * The tensor front door: `import * as torch from 'arcface-ts/torch'` (or src/torch/index.js).
 * Tensor creation, the ops of ./ops.ts, scopes, autograd and autocast switches, runtime settings.
 */
export { Tensor, type BackwardOptions } from './tensor.js';
export * from './ops.js';
export * from './creation.js';
export { tidy, keep, dispose, Scope, scopeDepth } from './scope.js';
export { noGrad, enableGrad, isGradEnabled, setGradEnabled, autocast, type AutocastOptions } from './autograd.js';
export { resolveDevice, cudaDeviceCount, deviceType, synchronize, deviceMemory } from './device.js';
export { cpuFlags, hasBf16Kernels, cpuHasBf16Kernels } from './cpu.js';
export { type Dtype, type Device, type MemoryFormat, type TypedArray, isFloatingDtype } from './dtype.js';
export { aten, type OpHandle } from './dispatch.js';
export { save, load, loadStateDict } from './save.js';
export { type RuntimeInfo, type CudaInfo, type CpuCacheStats, type DeviceMemory } from './native.js';
import { native } from './native.js';

/** Intra-op threads used by libtorch (defaults to the cores available). */
export const setNumThreads = (n: number): void => native.setNumThreads(n);
export const getNumThreads = (): number => native.getNumThreads();
export const runtimeInfo = () => native.info();
/** CUDA runtime, driver and devices (name, compute capability, memory); `{ built: false }` without CUDA. */
export const cudaInfo = () => native.cudaInfo();
/** Frees the large blocks the caching CPU allocator holds for reuse. */
export const emptyCpuCache = (): void => native.emptyCpuCache();
export const cpuCacheStats = () => native.cpuCacheStats();
/** Number of JS tensors not yet disposed: a leak check. */
export const liveTensors = (): number => native.liveTensors();

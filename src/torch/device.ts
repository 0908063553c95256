/**
 * Devices as users name them: 'cpu', 'cuda' (this process's GPU, cuda:LOCAL_RANK as torchrun's
 * workers use it) or 'cuda:N'. Every check goes through the addon's one check (native/src/core/device.cc),
 * so a CPU-only build, a CUDA build without a visible GPU and an index past the last GPU each get one
 * clear line, wherever the device came from.
 */
import { native, type DeviceMemory } from './native.js';
import type { Device } from './dtype.js';

/**
 * The device a process uses for `name`: 'cuda' becomes cuda:LOCAL_RANK; throws, naming `where` (who
 * asked: a config key, a flag), if it is not usable here.
 */
export function resolveDevice(name: string, where = 'device', localRank = Number(process.env.LOCAL_RANK ?? 0)): Device {
  const device = name === 'cuda' ? `cuda:${localRank}` : name;
  return native.checkDevice(device, where) as Device;
}

/** CUDA devices visible to this process (0 on a CPU-only build). */
export function cudaDeviceCount(): number {
  return native.cudaDeviceCount();
}

/** 'cpu' or 'cuda': what autocast and the kernels are chosen by. */
export function deviceType(device: string): 'cpu' | 'cuda' {
  return device.startsWith('cuda') ? 'cuda' : 'cpu';
}

/** Waits until the work queued on `device` is done (a GPU runs ops after they return); nothing on the CPU. */
export function synchronize(device = 'cpu'): void {
  native.synchronize(device);
}

/** A GPU's caching-allocator bytes (torch.cuda.memory_allocated and friends); undefined for the CPU. */
export function deviceMemory(device: string, { resetPeak = false }: { resetPeak?: boolean } = {}): DeviceMemory | undefined {
  return native.deviceMemory(device, resetPeak);
}

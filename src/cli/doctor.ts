/** `arcface doctor`: what the engine runs on, and whether it is set up the way it should be. */
import os from 'node:os';
import { runtimeInfo, cudaInfo, type CudaInfo } from '../torch/index.js';
import { ncclVersion } from '../distributed/index.js';
import { version } from '../package.js';

const gib = (bytes: number) => `${(bytes / 2 ** 30).toFixed(1)} GiB`;

/** The CUDA facts as lines of text: the runtime, then one line per device. */
function cudaLines(cuda: CudaInfo): Record<string, string> {
  if (!cuda.built) return { cuda: 'not built' };
  const devices = `${cuda.devices.length} device${cuda.devices.length === 1 ? '' : 's'}${cuda.error ? ` (${cuda.error})` : ''}`;
  const lines: Record<string, string> = { cuda: `runtime ${cuda.runtimeVersion}, driver ${cuda.driverVersion ?? 'none'}, ${devices}` };
  for (const d of cuda.devices) {
    lines[`cuda:${d.index}`] = `${d.name}, compute capability ${d.computeCapability}, ${gib(d.totalMemory)} (${gib(d.freeMemory)} free)`;
  }
  return lines;
}

export async function doctor(args: string[]): Promise<number> {
  const info = runtimeInfo();
  // Debian's libtorch calls the system libblas.so.3, which should be OpenBLAS (the reference BLAS is
  // ~8x slower); a pip libtorch carries MKL inside libtorch_cpu.
  const blasOk = /openblas/i.test(info.blasLibrary) || /libtorch_cpu/.test(info.blasLibrary);
  const facts: Record<string, string | number | boolean> = {
    'arcface-ts': version(),
    node: process.version,
    libtorch: info.torchVersion,
    blas: info.blasLibrary || 'not found',
    'openblas config': info.openblasConfig ?? '-',
    'openblas threads': info.openblasThreads ?? '-',
    'intra-op threads': info.numThreads,
    'inter-op threads': info.numInteropThreads,
    'cpu cores': os.availableParallelism(),
    mkldnn: info.mkldnnAvailable,
    gloo: info.glooAvailable,
    'cuda build': info.cudaBuild,
    'cuda available': info.cudaAvailable,
  };
  const cuda = cudaInfo();
  const ncclLoaded = ncclVersion();
  // NCCL can run here: the library is in (CUDA build) and a device is visible.
  const nccl = { available: ncclLoaded !== undefined && info.cudaAvailable, version: ncclLoaded ?? null };
  const problems: string[] = [];
  if (!blasOk) problems.push('BLAS is not OpenBLAS: matmuls run ~8x slower (install libopenblas0-pthread)');
  if (!info.glooAvailable) problems.push('Gloo is missing from libtorch: multi-process CPU training is unavailable');
  if (args.includes('--json')) {
    console.log(JSON.stringify({ ...facts, cuda, nccl, problems }));
  } else {
    const ncclLine = ncclLoaded === undefined ? 'not built' : `${ncclLoaded}${nccl.available ? '' : ' (no CUDA device visible)'}`;
    const lines = { ...facts, ...cudaLines(cuda), nccl: ncclLine };
    const width = Math.max(...Object.keys(lines).map((k) => k.length));
    for (const [k, v] of Object.entries(lines)) console.log(`${k.padEnd(width)}  ${v}`);
    if (args.includes('--verbose')) console.log(`\n${info.parallelInfo}\n${info.config}`);
    for (const p of problems) console.log(`problem: ${p}`);
    if (problems.length === 0) console.log('\nok');
  }
  return problems.length === 0 ? 0 : 1;
}

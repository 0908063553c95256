/** `arcface doctor`: what the engine runs on, and whether it is set up the way it should be. */
import os from 'node:os';
import { runtimeInfo } from '../torch/index.js';
import { version } from '../package.js';

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
  const problems: string[] = [];
  if (!blasOk) problems.push('BLAS is not OpenBLAS: matmuls run ~8x slower (install libopenblas0-pthread)');
  if (!info.glooAvailable) problems.push('Gloo is missing from libtorch: multi-process CPU training is unavailable');
  if (args.includes('--json')) {
    console.log(JSON.stringify({ ...facts, problems }));
  } else {
    const width = Math.max(...Object.keys(facts).map((k) => k.length));
    for (const [k, v] of Object.entries(facts)) console.log(`${k.padEnd(width)}  ${v}`);
    if (args.includes('--verbose')) console.log(`\n${info.parallelInfo}\n${info.config}`);
    for (const p of problems) console.log(`problem: ${p}`);
    if (problems.length === 0) console.log('\nok');
  }
  return problems.length === 0 ? 0 : 1;
}

/** `arcface <command>`: dispatches to the command modules of this folder. */
import { version } from '../package.js';
import { help, wantsHelp } from './help.js';
import { recordErrorForTorchelastic } from '../distributed/error-file.js';

interface Command {
  summary: string;
  run(args: string[]): Promise<number>;
}

const commands: Record<string, Command> = {
  doctor: { summary: 'check the engine: libtorch, BLAS, threads, Gloo, CUDA', run: async (a) => (await import('./doctor.js')).doctor(a) },
  launch: { summary: 'start this node\'s workers like torchrun (--nproc-per-node, --nnodes, --node-rank, --master-addr, --master-port)', run: async (a) => (await import('./launch.js')).launchCommand(a) },
  start: { summary: 'the default job (npm start): generate identities, train MobileFaceNet + ArcFace/Partial FC, verify before and after', run: async (a) => (await import('./start.js')).start(a) },
  train: { summary: 'train a config like arcface_torch\'s train_v2.py (--set key=value, --nproc-per-node N)', run: async (a) => (await import('./train.js')).trainCommand(a) },
  checkpoint: { summary: '`checkpoint merge <output>`: a run\'s newest complete checkpoint set as one process\'s set, and the whole class-centre matrix as softmax_fc.pt', run: async (a) => (await import('./checkpoint.js')).checkpointCommand(a) },
  config: { summary: 'print a training config resolved over the defaults and validated (--set key=value overrides)', run: async (a) => (await import('./config.js')).configCommand(a) },
  eval: { summary: 'evaluate a model.pt or ONNX file: `eval verification` (LFW-style .bin), `eval ijb` (IJB-B/C TAR@FAR), `eval roc` (scores + labels)', run: async (a) => (await import('./eval.js')).evalCommand(a) },
  embed: { summary: 'embeddings of aligned face images (files or folders) to .json or .npy', run: async (a) => (await import('./embed.js')).embed(a) },
  export: { summary: '`export onnx`: a model.pt backbone as an ONNX file (--simplify-bn, --opset, --check)', run: async (a) => (await import('./export.js')).exportCommand(a) },
  flops: { summary: 'MACs ("GFLOPs") and parameters of a backbone at 112×112', run: async (a) => (await import('./flops.js')).flops(a) },
  pack: { summary: 'pack an image folder into train.rec/train.idx (insightface layout), or --check a pack', run: async (a) => (await import('./pack.js')).pack(a) },
  generate: { summary: 'generate the seeded face-identities dataset: a training pack and a held-out .bin', run: async (a) => (await import('./generate.js')).generate(a) },
  demo: { summary: 'train a tiny conv net on generated data (the engine end to end)', run: async (a) => (await import('./demo.js')).demo(a) },
  dashboard: { summary: 'a local web page of training runs: curves updating live, configs, eval results (--host, --port)', run: async (a) => (await import('./dashboard.js')).dashboardCommand(a) },
  bench: { summary: 'benchmarks: `bench pfc` (Partial FC steps: memory per class, samples/s), `bench train` (the training step)', run: async (a) => (await import('./bench.js')).bench(a) },
};

function usage(): string {
  const width = Math.max(...Object.keys(commands).map((c) => c.length));
  const lines = Object.entries(commands).map(([name, c]) => `  ${name.padEnd(width)}  ${c.summary}`);
  return ['Usage: arcface <command> [options]', '', 'Commands:', ...lines, '', 'Options:', '  --version  print the version', '  --help     this text', '', '`arcface <command> --help` gives a command\'s usage and options.'].join('\n');
}

export async function run(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === '--version' || name === '-v') {
    console.log(version());
    return 0;
  }
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    console.log(usage());
    return 0;
  }
  const command = commands[name];
  if (!command) {
    console.error(`arcface: unknown command '${name}'\n\n${usage()}`);
    return 2;
  }
  if (wantsHelp(name, rest)) {
    console.log(`${command.summary}\n\n${help(name)}`);
    return 0;
  }
  try {
    return await command.run(rest);
  } catch (error) {
    console.error(`arcface ${name}: ${error instanceof Error ? error.message : String(error)}`);
    recordErrorForTorchelastic(error);
    // Bad configs and bad arguments exit with 2 (usage errors), everything else with 1.
    return error instanceof Error && (error.name === 'ConfigError' || error.name === 'UsageError') ? 2 : 1;
  }
}

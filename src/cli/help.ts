/**
 * Every command's usage and options, in one place: `arcface <command> --help` prints them, and the
 * commands' usage errors quote the same lines.
 */

interface Help {
  /** usage lines, without the leading "usage: " */
  usage: string[];
  /** [option, what it does] */
  options: [string, string][];
  notes?: string[];
}

const MODEL_OPTIONS: [string, string][] = [
  ['--model <model.pt> --network <name>', 'a backbone state dict (ours or arcface_torch\'s) and its network (r50, mbf, vit_t …)'],
  ['--onnx <model.onnx>', 'or an ONNX file (ours or insightface\'s), run by onnxruntime'],
  ['--batch-size <n>', 'images per forward pass'],
  ['--device cpu|cuda|cuda:N', 'where the backbone (--model) runs; default cpu'],
];

const LAUNCH_OPTIONS: [string, string][] = [
  ['--nproc-per-node <n>', 'workers on this node (default 1)'],
  ['--nnodes <m>', 'nodes in the run (default 1)'],
  ['--node-rank <r>', 'this node\'s index, 0 … m − 1 (default 0)'],
  ['--master-addr <host>', 'address of node 0\'s rendezvous store (default 127.0.0.1)'],
  ['--master-port <port>', 'its port (default 29500)'],
];

const HELP: Record<string, Help> = {
  dashboard: {
    usage: ['arcface dashboard [dir…] [--host <host>] [--port <port>]'],
    options: [['--host <host>', 'address to listen on (default 127.0.0.1; anything else is warned about)'], ['--port <port>', 'port (default: a free one)']],
    notes: ['Serves the run folders (with metrics.jsonl or training.log) under the folders given (default work_dirs/), read-only.', 'See docs/dashboard.md.'],
  },
  doctor: {
    usage: ['arcface doctor [--json] [--verbose]'],
    options: [['--json', 'one JSON object'], ['--verbose', 'also libtorch\'s parallel and build configuration']],
    notes: ['Exit code 1 when something is set up wrong (BLAS not OpenBLAS, Gloo missing).'],
  },
  launch: {
    usage: ['arcface launch [--nproc-per-node N] [--nnodes M] [--node-rank R] [--master-addr A] [--master-port P] -- <command…>'],
    options: LAUNCH_OPTIONS,
    notes: [
      'Starts this node\'s workers with torchrun\'s environment (RANK, LOCAL_RANK, WORLD_SIZE, MASTER_ADDR, …).',
      'A command starting with `arcface` runs this CLI: arcface launch --nproc-per-node 2 -- arcface train x.ts',
    ],
  },
  start: {
    usage: ['arcface start [--config <config.ts>] [--set key=value …]'],
    options: [
      ['--config <config.ts>', 'the job to run (default configs/generated_mbf.ts)'],
      ['--set key=value', 'override a config key (repeatable)'],
    ],
    notes: ['The default job (npm start): generates the dataset if absent, trains, verifies before and after.'],
  },
  train: {
    usage: ['arcface train <config.ts> [--set key=value ...] [--nproc-per-node N] [--nnodes M --node-rank R --master-addr A --master-port P]'],
    options: [['--set key=value', 'override a config key (repeatable): --set batchSize=64'], ...LAUNCH_OPTIONS],
    notes: ['arcface_torch\'s train_v2.py; config keys: docs/training.md.'],
  },
  config: {
    usage: ['arcface config <config.ts> [--set key=value ...]'],
    options: [['--set key=value', 'override a config key (repeatable)']],
    notes: ['Prints the config resolved over the defaults and validated, as JSON.'],
  },
  eval: {
    usage: [
      'arcface eval verification (--model <model.pt> --network <name> | --onnx <model.onnx>) --bin <set.bin> [--bin …] [--batch-size 64] [--device cpu|cuda] [--json]',
      'arcface eval ijb (--model … --network … | --onnx …) --root <IJB folder> --target IJBC|IJBB [--no-flip] [--no-detector-score] [--batch-size 128] [--save-scores s.npy] [--json]',
      'arcface eval roc --scores <scores.txt|.npy> --labels <labels.txt|.npy> [--json]',
    ],
    options: [
      ...MODEL_OPTIONS,
      ['--bin <set.bin>', 'verification: an insightface .bin (lfw, cfp_fp, agedb_30 …); several allowed'],
      ['--root <dir> --target IJBC|IJBB', 'ijb: the IJB-B/C folder (meta/, loose_crop/) and which set'],
      ['--no-flip, --no-detector-score', 'ijb: leave out the flip test / the detector-score weighting'],
      ['--save-scores <file.npy>', 'ijb: also write the pair scores'],
      ['--scores, --labels', 'roc: one score and one 0/1 label per pair, as text or .npy'],
      ['--json', 'JSON instead of the report'],
      ['--out <result.json>', 'also write accuracies / TAR@FAR / ROC points as JSON, atomically (the dashboard reads <run>/eval*.json)'],
    ],
  },
  embed: {
    usage: ['arcface embed (--model <model.pt> --network <name> | --onnx <model.onnx>) --images <file|folder> … --out <embeddings.json|.npy> [--raw] [--flip] [--batch-size 64] [--device cpu|cuda]'],
    options: [
      ...MODEL_OPTIONS,
      ['--images <file|folder> …', 'aligned 112×112 JPEG/PNG crops; folders are searched recursively, sorted'],
      ['--out <file>', '.json ({files, embeddings}) or .npy (float32 N × E)'],
      ['--raw', 'do not L2-normalise'],
      ['--flip', 'add the mirror image\'s embedding (the flip test)'],
    ],
  },
  export: {
    usage: ['arcface export onnx --model <model.pt> --network <name> --out <model.onnx> [--simplify-bn] [--opset N] [--input-name input.1] [--output-name NAME] [--external-data] [--check]'],
    options: [
      ['--model <model.pt> --network <name>', 'the backbone to export'],
      ['--out <model.onnx>', 'the file to write'],
      ['--simplify-bn', 'fold BatchNorms into the preceding convolutions'],
      ['--opset <n>', 'ONNX opset (default: 13, 17 for the ViTs)'],
      ['--input-name, --output-name', 'tensor names (default: as arcface_torch\'s torch2onnx.py)'],
      ['--external-data', 'weights in <out>.data (ONNX external data; always above 1920 MiB, e.g. vit_h)'],
      ['--check', 'run the file in onnxruntime and compare with libtorch'],
    ],
  },
  checkpoint: {
    usage: ['arcface checkpoint merge <output> [--out <dir>] [--json]'],
    options: [['--out <dir>', 'where the merged set and softmax_fc.pt go (default <output>/merged)'], ['--json', 'one JSON object']],
    notes: [
      'Takes the newest checkpoint set of <output>/checkpoints whose files match its manifest. Writes <dir>/checkpoints/step_<N>/checkpoint_gpu_0.pt',
      '(the whole training state, as one process) with its manifest, and <dir>/softmax_fc.pt ({weight: [numClasses, embeddingSize]}, for torch.load).',
      'Resuming from <dir> on any number of processes re-shards it, as long as batchSize × processes stays the global batch it was written with.',
    ],
  },
  flops: {
    usage: ['arcface flops <network> [--embedding-size N] [--json]'],
    options: [['--embedding-size <n>', 'embedding size (default 512)'], ['--json', 'one JSON object']],
    notes: ['MACs at 112×112 (printed as "GFLOPs", as arcface_torch\'s flops.py) and parameters.'],
  },
  pack: {
    usage: ['arcface pack --src <folder-per-identity> --out <dir>', 'arcface pack --check <dir> [--threads N] [--json]'],
    options: [
      ['--src <dir> --out <dir>', 'pack root/<identity>/<image> into train.rec, train.idx, property'],
      ['--check <dir>', 'read and decode every record; check labels and identity records'],
      ['--threads <n>', 'decoding threads for --check'],
      ['--json', 'the --check report as JSON'],
    ],
  },
  generate: {
    usage: ['arcface generate --out <dir> [--identities N] [--images N] [--held-out N] [--pairs N] [--seed S] [--quality Q] [--threads N]'],
    options: [
      ['--out <dir>', 'where train.rec/train.idx/property and heldout.bin go'],
      ['--identities <n>, --images <n>', 'training identities, images per identity'],
      ['--held-out <n>, --pairs <n>', 'unseen identities and pairs of heldout.bin'],
      ['--seed <s>, --quality <q>, --threads <n>', 'generator seed, JPEG quality, rendering threads'],
    ],
  },
  demo: {
    usage: ['arcface demo [--steps 300] [--classes 10] [--batch 32] [--seed 0]'],
    options: [['--steps, --classes, --batch, --seed', 'a tiny conv net on generated patterns: the engine without the trainer']],
  },
  bench: {
    usage: [
      'arcface bench pfc --num-classes N --sample-rate R --batch-size B --embedding-size D --steps S [--warmup W] [--storage float32|bfloat16|float16] [--optimizer sgd|adamw] [--logits keep|recompute] [--implementation fused|ops] [--device cpu|cuda] [--tile-rows T] [--json]',
      'arcface bench train --network <name> --batch-size B --num-classes C --sample-rate r --steps S [--warmup W] [--threads T] [--bf16|--fp16] [--channels-last] [--device cpu|cuda] [--nproc-per-node N] [--json]',
    ],
    options: [
      ['pfc', 'Partial FC steps on random embeddings: step time, throughput, memory per class'],
      ['train', 'the trainer\'s real step on the synthetic set: samples/s, step time, peak memory'],
      ['--device cpu|cuda|cuda:N', 'where the head (pfc) or the whole step (train) runs; on a GPU the peak of its allocator is reported too'],
      ['--json', 'one JSON line'],
    ],
    notes: ['Figures and how they were measured: docs/performance.md.'],
  },
};

/** The usage lines of a command ("usage: …"); `which` picks the line that starts with it. */
export function usage(command: string, which?: string): string {
  const lines = HELP[command].usage.filter((l) => which === undefined || l.startsWith(`arcface ${command} ${which}`));
  return lines.map((l, i) => `${i === 0 ? 'usage: ' : '       '}${l}`).join('\n');
}

/** The whole help text of a command, or undefined for an unknown one. */
export function help(command: string): string | undefined {
  const h = HELP[command];
  if (!h) return undefined;
  const width = Math.max(...h.options.map(([o]) => o.length));
  return [usage(command), '', 'Options:', ...h.options.map(([o, what]) => `  ${o.padEnd(width)}  ${what}`), '  -h, --help'.padEnd(width + 2) + '  this text', ...(h.notes ? ['', ...h.notes] : [])].join('\n');
}

/**
 * Whether the arguments ask for help: -h or --help before any `--`, which starts a worker's command
 * (as does, for `launch`, its first word that is not an option's value).
 */
export function wantsHelp(command: string, args: string[]): boolean {
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (a === '--help' || a === '-h') return true;
    if (a === '--') return false;
    if (command === 'launch') {
      if (!a.startsWith('--')) return false;
      if (!a.includes('=')) i++; // every launch option takes a value
    }
  }
  return false;
}

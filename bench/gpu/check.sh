#!/usr/bin/env bash
# The GPU check, in one go on a GPU machine with a CUDA PyTorch, g++ and nothing else (no node, npm or
# network; shared/DESIGN.md, "GPU"). What it needs comes along: bench/gpu/prepare.sh made .gpu-check/
# (node, headers, libjpeg-turbo/libpng, arcface_torch's modules) and dist/. Steps, each logged with its
# time into OUT/check.log, results as JSON lines into OUT/results.jsonl:
#   1. the addon built against the machine's torch with CUDA (native/build.sh, every core)
#   2. arcface doctor; test/device.test.ts with ARCFACE_TEST_DEVICE=cuda, then the engine, nn, optim and
#      heads test files (CPU paths on this libtorch) — TAP into OUT/tests.tap
#   3. interleaved, ROUNDS times: ours then arcface_torch's, same GPU, same sizes — r50 and mbf training
#      steps at batch 128 fp16, and the Partial FC head alone at 1M classes, r = 0.1
#
#   bash bench/gpu/check.sh OUT [--no-tests] [--no-bench]     (ROUNDS=2, PYTHON=python3, DEVICE=cuda)
# DEVICE=cpu is a dry run of the script itself on a CPU machine (small sizes; a CUDA build still needs CUDA's libtorch).
set -uo pipefail
cd "$(dirname "$0")/../.."
out=${1:?usage: bench/gpu/check.sh OUT [--no-tests] [--no-bench]}
shift
mkdir -p "$out"
run_tests=1 run_bench=1
for a in "$@"; do
  case $a in --no-tests) run_tests=0 ;; --no-bench) run_bench=0 ;; *) echo "check.sh: unknown option $a" >&2; exit 2 ;; esac
done
python=${PYTHON:-python3}
device=${DEVICE:-cuda}
rounds=${ROUNDS:-2}
here=$PWD/.gpu-check
log() { echo "[gpu-check $(date +%T)] $*" | tee -a "$out/check.log"; }
fail() { log "FAILED: $*"; exit 1; }

# ---- node, headers, libraries
[[ -f $here/node.xz ]] || fail "$here/node.xz missing: run bench/gpu/prepare.sh here first and carry .gpu-check and dist"
if [[ ! -x $here/bin/node ]]; then
  mkdir -p "$here/bin" && xz -dc "$here/node.xz" >"$here/bin/node" && chmod +x "$here/bin/node"
fi
ln -sf libturbojpeg.so.0 "$here/lib/libturbojpeg.so"
ln -sf libpng16.so.16 "$here/lib/libpng.so"
export PATH=$here/bin:$PATH
export CPATH=$here/include${CPATH:+:$CPATH} LIBRARY_PATH=$here/lib${LIBRARY_PATH:+:$LIBRARY_PATH}
export LD_LIBRARY_PATH=$here/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
log "node $(node --version), $(nproc) cores"

# ---- the machine's torch
torch_dir=$("$python" -c 'import os, torch; print(os.path.dirname(torch.__file__))') || fail "no torch for $python"
"$python" - >"$out/torch.json" <<'PY' || fail "torch does not report its devices"
import json, torch
print(json.dumps({'torch': torch.__version__, 'cuda': torch.version.cuda, 'devices': [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())],
                  'nccl': '.'.join(map(str, torch.cuda.nccl.version())) if torch.cuda.is_available() else None}))
PY
log "torch: $(cat "$out/torch.json")"

# ---- 1. build
cuda=1
[[ $device == cpu && ! -f $torch_dir/lib/libtorch_cuda.so ]] && cuda=0
start=$SECONDS
TORCH_DIR=$torch_dir CUDA=$cuda GLOO_INCLUDE=$here/include NODE_API_INCLUDE=$here/include/node:$here/include/node-addon-api \
  JOBS=$(nproc) bash native/build.sh >"$out/build.log" 2>&1 || { tail -30 "$out/build.log"; fail "build (OUT/build.log)"; }
log "built the addon (CUDA=$cuda) in $((SECONDS - start)) s"
arcface() { node bin/arcface.js "$@"; }
arcface doctor --json >"$out/doctor.json" 2>&1 || fail "arcface doctor: $(cat "$out/doctor.json")"
log "doctor: $(tr -d '\n' <"$out/doctor.json" | cut -c1-400)"

# ---- 2. tests
if ((run_tests)); then
  start=$SECONDS
  ARCFACE_TEST_DEVICE=$device ARCFACE_REFERENCE_PYTHON=$python node scripts/run-tests.js device.test >"$out/tests.tap" 2>&1
  device_rc=$?
  ARCFACE_REFERENCE_PYTHON=$python node scripts/run-tests.js torch- nn.test optim heads- >>"$out/tests.tap" 2>&1
  cpu_rc=$?
  log "tests: device.test on $device exit $device_rc, engine/nn/optim/heads exit $cpu_rc, in $((SECONDS - start)) s ($(grep -c '^not ok' "$out/tests.tap") failing; OUT/tests.tap)"
fi

# ---- 3. benchmarks, interleaved
if ((run_bench)); then
  if [[ $device == cpu ]]; then classes=20000 batch=16 steps=3 big=100000; else classes=93431 batch=128 steps=30 big=1000000; fi
  export ARCFACE_TORCH=$here/arcface_torch
  record() {  # one benchmark process: its last JSON line, tagged, into results.jsonl
    local side=$1 case=$2; shift 2
    local line
    line=$("$@" 2>>"$out/bench.err" | grep '^{' | tail -n 1)
    if [[ -n $line ]]; then
      echo "{\"side\":\"$side\",\"case\":\"$case\",\"round\":$round,${line#\{}" >>"$out/results.jsonl"
      log "$side $case: $(echo "$line" | cut -c1-300)"
    else
      log "$side $case: no result (OUT/bench.err)"
    fi
  }
  for ((round = 1; round <= rounds; round++)); do
    for network in r50 mbf; do
      record ours "$network" arcface bench train --network "$network" --batch-size "$batch" --fp16 --device "$device" \
        --num-classes "$classes" --sample-rate 1 --steps "$steps" --warmup 5 --json
      record arcface_torch "$network" "$python" bench/gpu/arcface_torch_step.py train --network "$network" --batch-size "$batch" \
        --num-classes "$classes" --sample-rate 1 --steps "$steps" --warmup 5 --device "$device"
    done
    record ours pfc arcface bench pfc --num-classes "$big" --sample-rate 0.1 --batch-size "$batch" --steps "$steps" --device "$device" --json
    record ours pfc-bf16 arcface bench pfc --num-classes "$big" --sample-rate 0.1 --batch-size "$batch" --steps "$steps" --device "$device" --storage bfloat16 --json
    record arcface_torch pfc "$python" bench/gpu/arcface_torch_step.py pfc --num-classes "$big" --sample-rate 0.1 --batch-size "$batch" \
      --steps "$steps" --device "$device"
  done
fi
log "done"

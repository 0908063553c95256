#!/usr/bin/env bash
# Tests the addon built on the pip libtorch variants (docs/engine.md, "Which libtorch"); `npm test` covers
# Debian's libtorch 1.13. For each variant:
#   - a venv in .venv/<variant> with that PyTorch, installed offline from the wheel sources pip is configured
#     with (`pip config list`); reused when complete (a second run starts at the build);
#   - the addon built with native/build.sh into native/build-<variant> (incremental);
#   - `arcface doctor --json` on it must name the venv PyTorch's own libtorch version, CUDA build and CUDA
#     availability (so the runs below are on that addon, and the CUDA build's "no device" checks apply);
#   - the variant's test files, with ARCFACE_ADDON pointing at the addon and the live references run by the
#     venv's python (ARCFACE_REFERENCE_PYTHON: the same PyTorch version).
#
#   scripts/test-variants.sh [torch2-cpu] [torch2-cuda]      (default: both)
#
# A failing variant is named on one line at the end and the exit status is 1. Without the wheel sources
# (another machine) a variant is skipped with one WARNING line, exit 0.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

# torch's own Python requirements (its metadata), without the CUDA Python packages (cuda-bindings,
# cuda-toolkit, triton: not on disk, and the addon does not use them); numpy for the live references.
python_deps=(numpy filelock typing-extensions sympy networkx jinja2 fsspec)
nvidia_cu13=(nvidia-cudnn-cu13 nvidia-nccl-cu13 nvidia-cusparselt-cu13 nvidia-nvshmem-cu13 nvidia-cublas
  nvidia-cuda-nvrtc nvidia-cuda-cupti nvidia-cufft nvidia-curand nvidia-cusolver nvidia-cusparse nvidia-nvjitlink
  nvidia-nvtx nvidia-cufile)

# The test files of each variant (substrings for scripts/run-tests.js). torch2-cpu: the engine (tensors, ops,
# autograd, scopes, checkpoints, the caching allocator over 2,000 steps), nn, the backbones (live references
# on 2.x), optim, the heads (margins, both Partial FC implementations) and distributed (Gloo, real processes).
# device.test on both: its CPU comparisons, and on the CUDA build the "no CUDA device is visible" lines.
# torch2-cuda runs the CPU paths of the CUDA build: the engine (incl. "asking for CUDA ... no device"), nn,
# optim (GradScaler), the fused Partial FC kernel and distributed (built with NCCL, run on Gloo); its
# models and ops-Partial-FC runs would repeat torch2-cpu's code paths at minutes each.
# Not on either: data, eval, export, train, cli, config: no libtorch-version-dependent code of their own
# beyond the engine tested here, and minutes each (`npm test` runs them on 1.13).
engine=(torch-ops.test torch-autograd.test torch-scope.test torch-save.test serialization.test)
cpu_tests=("${engine[@]}" device.test memory.test nn.test models.test models-vit.test optim.test optim- heads-margin.test
  heads-partial-fc.test heads-partial-fc-ops.test distributed.test)
cuda_tests=("${engine[@]}" device.test nn.test optim.test optim- heads-margin.test heads-partial-fc.test distributed.test)

say() { echo "test-variants: $*"; }

chosen=("$@")
((${#chosen[@]})) || chosen=(torch2-cpu torch2-cuda)
for name in "${chosen[@]}"; do
  [[ $name == torch2-cpu || $name == torch2-cuda ]] || { say "unknown variant '$name' (torch2-cpu, torch2-cuda)"; exit 2; }
done

# node_modules, dist/ and the Debian packages, python3-venv and pip among them (a no-op after `npm test`).
bash scripts/setup.sh --with-python-torch --with-variants

# pip options that keep installs on the local wheel sources pip is configured with: the first local index
# replaces the default one (pypi.org, unreachable offline: pip retries it for every package); the configured
# extra indexes and find-links still apply. Empty when pip names no source on this disk.
pip_sources() {
  local line key value source index=""
  local found=0
  while IFS= read -r line; do
    key=${line%%=*} value=${line#*=}
    case $key in *index-url | *find-links) ;; *) continue ;; esac
    value=${value//\'/}
    for source in $value; do
      [[ -e ${source#file://} ]] || continue
      found=1
      [[ $key == *index-url && -z $index ]] && index=$source
    done
  done < <(python3 -m pip config list 2>/dev/null || true)
  ((found)) || return 0
  if [[ -n $index ]]; then echo "--index-url $index"; else echo "--no-index"; fi
}
read -r -a sources <<<"$(pip_sources)"

# venv <dir> <no-deps packages...>: makes (or reuses) a venv holding those packages and python_deps.
# Returns 2 when the wheel sources lack them.
venv() {
  local dir=$1
  shift
  local want="$* + ${python_deps[*]}"
  [[ "$(cat "$dir/.arcface-complete" 2>/dev/null)" == "$want" ]] && return 0
  rm -rf "$dir"
  python3 -m venv "$dir"
  local log=$dir/pip-install.log
  if ! "$dir/bin/pip" install "${sources[@]}" --no-deps "$@" >"$log" 2>&1 ||
     ! "$dir/bin/pip" install "${sources[@]}" "${python_deps[@]}" >>"$log" 2>&1; then
    cat "$log"
    grep -q -E 'No matching distribution|Could not find a version|ResolutionImpossible' "$log" && return 2
    return 1
  fi
  echo "$want" >"$dir/.arcface-complete"
}

# variant <name> <cuda 0|1> <packages...> -- <test files...>
failed=() skipped=() passed=()
variant() {
  local name=$1 cuda=$2
  shift 2
  local packages=()
  while [[ $1 != -- ]]; do packages+=("$1"); shift; done
  shift
  local started=$SECONDS dir=$root/.venv/$name build=$root/native/build-$name
  say "$name: venv $dir (${packages[0]})"
  local status=0
  venv "$dir" "${packages[@]}" || status=$?
  if ((status == 2)); then
    say "WARNING: $name SKIPPED: the wheel sources pip is configured with lack ${packages[0]} or its wheels (pip config list; log above)"
    skipped+=("$name")
    return 0
  fi
  local python=$dir/bin/python torch_dir="" expected="" actual=""
  if ((status == 0)); then
    torch_dir=$("$python" -c 'import os, torch; print(os.path.dirname(torch.__file__))') || true
  fi
  if [[ -z $torch_dir ]]; then
    failed+=("$name (venv)")
    return 0
  fi

  say "$name: building the addon into $build"
  if ! TORCH_DIR=$torch_dir CUDA=$cuda BUILD_DIR=$build bash native/build.sh; then
    failed+=("$name (build)")
    return 0
  fi
  local addon=$build/Release/arcface_native.node

  # The addon must say what the venv's PyTorch (its python side) says about the same libtorch.
  expected=$("$python" -c 'import json, torch; print(json.dumps({"libtorch": torch.__version__.split("+")[0], "cuda build": torch.version.cuda is not None, "cuda available": torch.cuda.is_available()}, separators=(",", ":")))') || true
  actual=$(ARCFACE_ADDON=$addon node bin/arcface.js doctor --json | node -e '
    const f = JSON.parse(require("fs").readFileSync(0, "utf8"));
    console.log(JSON.stringify({ libtorch: f.libtorch, "cuda build": f["cuda build"], "cuda available": f["cuda available"] }));') || true
  say "$name: arcface doctor: $actual"
  if [[ -z $actual || $actual != "$expected" ]]; then
    say "$name: arcface doctor disagrees with the venv's PyTorch, which says $expected"
    failed+=("$name (doctor)")
    return 0
  fi

  say "$name: tests: $*"
  if ARCFACE_ADDON=$addon ARCFACE_REFERENCE_PYTHON=$python node scripts/run-tests.js "$@"; then passed+=("$name"); else failed+=("$name (tests)"); fi
  say "$name: done in $((SECONDS - started)) s"
}

if ((${#sources[@]} == 0)); then
  say "WARNING: pip torch 2.x variants SKIPPED: pip names no wheel source on this disk (pip config list: index-url, extra-index-url, find-links)"
  exit 0
fi

for name in "${chosen[@]}"; do
  case $name in
    torch2-cpu) variant torch2-cpu 0 torch==2.13.0+cpu -- "${cpu_tests[@]}" ;;
    torch2-cuda) variant torch2-cuda 1 torch==2.14.1 "${nvidia_cu13[@]}" -- "${cuda_tests[@]}" ;;
  esac
done

for f in "${failed[@]}"; do say "FAILED variant $f"; done
((${#failed[@]} == 0)) || exit 1
say "variants passed: ${passed[*]:-none}; skipped: ${skipped[*]:-none}; $SECONDS s"

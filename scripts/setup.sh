#!/usr/bin/env bash
# Sets up arcface-ts on a fresh Debian 12 machine: system packages, npm packages, the native addon,
# the TypeScript build. Idempotent: each step runs only when its result is missing or stale.
#   --with-python-torch   also install Debian's python3-torch (PyTorch 1.13), python3-sklearn and python3-pil, used by
#                         the tests that compute PyTorch's side live (test/reference/) or check our files
#                         in PyTorch, and by the fixture scripts (test/fixtures/make_*.py).
#   --with-variants       also python3-venv and python3-pip, for scripts/test-variants.sh (pip PyTorch 2.x venvs).
# The addon links Debian's libtorch (1.13) unless asked for another one (nothing is picked up on its own):
#   ARCFACE_TORCH_DIR=<site-packages>/torch   the libtorch inside an installed PyTorch 2.x (CPU or CUDA)
#   ARCFACE_CUDA=1                            with a CUDA PyTorch there: the CUDA build
# e.g. ARCFACE_TORCH_DIR=$(python3 -c 'import os, torch; print(os.path.dirname(torch.__file__))') ARCFACE_CUDA=1.
# A change of variant rebuilds the addon (native/build/torch-dir records the one built). The live
# references of the tests then need that PyTorch's python: ARCFACE_REFERENCE_PYTHON=<venv>/bin/python.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(libtorch-dev libopenblas0-pthread libgloo-dev libturbojpeg0-dev libpng-dev g++ make python3)
# the tests' references: Debian's torch (and torchrun), a venv for tensorboard, chromium for the dashboard's page
[[ " $* " == *" --with-python-torch "* ]] && packages+=(python3-torch python3-sklearn python3-pil python3-venv chromium)
[[ " $* " == *" --with-variants "* ]] && packages+=(python3-venv python3-pip)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  sudo=""
  [[ $(id -u) -ne 0 ]] && sudo="sudo"
  echo "setup: installing ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# Debian's libtorch resolves libblas.so.3 through alternatives; the reference BLAS is ~8x slower.
blas=$(readlink -f /usr/lib/x86_64-linux-gnu/libblas.so.3 || true)
if [[ "$blas" != *openblas* ]]; then
  echo "setup: warning: libblas.so.3 is $blas, not OpenBLAS (update-alternatives --config libblas.so.3-x86_64-linux-gnu)"
fi

# onnxruntime-node's postinstall would download a CUDA provider from outside; the CPU runtime needs nothing.
export ONNXRUNTIME_NODE_INSTALL=skip
if [[ ! -d node_modules || package-lock.json -nt node_modules/.package-lock.json ]]; then
  npm ci --no-audit --no-fund
fi

export ARCFACE_TORCH_DIR=${ARCFACE_TORCH_DIR:-} ARCFACE_CUDA=${ARCFACE_CUDA:-0}
# tensorboard 2.21 for test/tensorboard.test.ts (EventAccumulator reads our event files), in its own venv
if [[ " $* " == *" --with-python-torch "* ]]; then
  tb_venv=$HOME/.cache/arcface-ts/tensorboard-venv
  [[ -x $tb_venv/bin/python ]] || /usr/bin/python3 -m venv "$tb_venv"
  "$tb_venv/bin/python" -c 'import tensorboard' 2>/dev/null || "$tb_venv/bin/pip" install -q 'tensorboard==2.21.*'
fi

variant=$(sh native/torch-config.sh variant)
addon=native/build/Release/arcface_native.node
built_for=native/build/torch-dir
if [[ ! -f $addon ]] || [[ -n $(find native/src native/binding.gyp native/torch-config.sh -newer "$addon" -print -quit) ]] ||
   [[ "$(cat "$built_for" 2>/dev/null)" != "$variant" ]]; then
  what="libtorch $(sh native/torch-config.sh version), ${ARCFACE_TORCH_DIR:-Debian}"
  [[ $ARCFACE_CUDA == 1 ]] && what+=", CUDA"
  echo "setup: building the native addon against $what (a few minutes)"
  rm -f "$built_for"
  npm run --silent build:native
  echo "$variant" > "$built_for"
fi

stamp=dist/.build-stamp
if [[ ! -f $stamp ]] || [[ -n $(find src test bench tsconfig.json -newer "$stamp" -name '*.ts' -print -quit 2>/dev/null) ]] ||
   [[ tsconfig.json -nt $stamp ]]; then
  echo "setup: compiling TypeScript"
  npx tsc -p .
  touch "$stamp"
fi

#!/bin/sh
# The compiler and linker flags of one libtorch variant: the single place where the variants differ.
# Both builds read it: binding.gyp (node-gyp, `npm run build:native`) and build.sh (g++ alone).
#
#   sh torch-config.sh cflags | libs | version | variant
#
# Inputs (environment):
#   TORCH_DIR (or ARCFACE_TORCH_DIR)  the torch/ folder of an installed PyTorch (its include/ and lib/),
#                       e.g. $(python3 -c 'import os, torch; print(os.path.dirname(torch.__file__))').
#                       Unset or empty: Debian's libtorch-dev (1.13, headers in /usr/include).
#   CUDA (or ARCFACE_CUDA)  1: the CUDA parts (ARCFACE_CUDA, c10d NCCL; links torch_cuda, c10_cuda, cudart).
#                       Needs a CUDA libtorch in TORCH_DIR.
#   CUDA_HOME           the CUDA toolkit (cuda_runtime_api.h, libcudart.so), default /usr/local/cuda.
#   GLOO_INCLUDE        the folder above gloo/: the pip wheels ship ProcessGroupGloo.hpp but not gloo's
#                       own headers; default Debian's libgloo-dev (/usr/include, searched anyway).
#
# What follows from the variant: the C++ standard (torch 2.x headers want C++20; 1.13 stays on C++17),
# the C++11 ABI of the library (read from libc10's symbols), include and library paths, rpaths.
set -eu

torch_dir=${TORCH_DIR:-${ARCFACE_TORCH_DIR:-}}
cuda=${CUDA:-${ARCFACE_CUDA:-0}}
cuda_home=${CUDA_HOME:-/usr/local/cuda}

fail() { echo "torch-config.sh: $*" >&2; exit 1; }

if [ -n "$torch_dir" ]; then
  torch_dir=$(cd "$torch_dir" 2>/dev/null && pwd) || fail "TORCH_DIR=${TORCH_DIR:-${ARCFACE_TORCH_DIR:-}} is not a folder"
  include=$torch_dir/include
  libdir=$torch_dir/lib
  [ -d "$include/ATen" ] || fail "$include/ATen not found: TORCH_DIR must be the torch/ folder of a PyTorch install"
else
  include=/usr/include
  libdir=$(dirname "$(readlink -f /usr/lib/x86_64-linux-gnu/libc10.so 2>/dev/null || echo /usr/lib/x86_64-linux-gnu/libc10.so)")
  [ -d "$include/ATen" ] || fail "Debian's libtorch-dev is not installed (no /usr/include/ATen); run scripts/setup.sh or set TORCH_DIR"
fi

# torch/version.h: 1.13 defines the version there; 2.x in torch/headeronly/version.h.
version_part() {
  sed -n "s/^#define TORCH_VERSION_$1 \([0-9][0-9]*\).*/\1/p" \
    "$include/torch/csrc/api/include/torch/version.h" "$include/torch/headeronly/version.h" 2>/dev/null | head -n 1
}
major=$(version_part MAJOR)
minor=$(version_part MINOR)
patch=$(version_part PATCH)
[ -n "$major" ] || fail "no TORCH_VERSION_MAJOR in $include/torch"

if [ "$major" -ge 2 ]; then std=c++20; else std=c++17; fi

# libtorch built with the old (pre-C++11) std::string ABI exports no __cxx11 symbols.
abi=1
if command -v nm >/dev/null 2>&1 && [ -f "$libdir/libc10.so" ]; then
  nm -D --defined-only "$libdir/libc10.so" | grep -q __cxx11 || abi=0
fi

if [ "$cuda" = 1 ]; then
  [ -n "$torch_dir" ] && [ -f "$libdir/libtorch_cuda.so" ] || fail "CUDA=1 needs TORCH_DIR with a CUDA libtorch (no ${libdir}/libtorch_cuda.so)"
  # The nvidia-* wheels sit next to torch/ in site-packages (nccl.h; cudart when there is no toolkit).
  nvidia=$(dirname "$torch_dir")/nvidia
  cuda_include=$cuda_home/include
  [ -f "$cuda_include/cuda_runtime_api.h" ] || cuda_include=$nvidia/cu13/include
  [ -f "$cuda_include/cuda_runtime_api.h" ] || fail "cuda_runtime_api.h not found (set CUDA_HOME to the CUDA toolkit)"
  cuda_lib=$cuda_home/lib64
  [ -d "$cuda_lib" ] || cuda_lib=$nvidia/cu13/lib
fi

case ${1:-} in
  cflags)
    out="-std=$std -D_GLIBCXX_USE_CXX11_ABI=$abi -DUSE_C10D_GLOO"
    [ -n "$torch_dir" ] && out="$out -I$include -I$include/torch/csrc/api/include"
    [ -z "$torch_dir" ] && out="$out -I/usr/include/torch/csrc/api/include"
    [ -n "${GLOO_INCLUDE:-}" ] && out="$out -I$GLOO_INCLUDE"
    if [ "$cuda" = 1 ]; then
      # -Wno-interference-size: c10/cuda/CUDAEvent.h aligns to std::hardware_destructive_interference_size (g++ warns wherever it is included).
      out="$out -DARCFACE_CUDA=1 -DUSE_C10D_NCCL -Wno-interference-size -I$cuda_include"
      # ATen/cuda/CUDAContext.h includes the CUDA libraries' headers (cusparse.h, cublas_v2.h): the nvidia
      # wheels carry them, a bare toolkit may not.
      [ -d "$nvidia/cu13/include" ] && [ "$cuda_include" != "$nvidia/cu13/include" ] && out="$out -I$nvidia/cu13/include"
      [ -d "$nvidia/nccl/include" ] && out="$out -I$nvidia/nccl/include"
    fi
    echo "$out"
    ;;
  libs)
    out=""
    [ -n "$torch_dir" ] && out="-L$libdir -Wl,-rpath,$libdir"
    out="$out -ltorch_cpu -lc10"
    if [ "$cuda" = 1 ]; then
      # --no-as-needed: nothing here calls into torch_cuda yet, but loading it registers CUDA with ATen.
      # cudart as a direct dependency, found through our own rpath (torch_cuda's lists the wheels, not the toolkit).
      out="$out -L$cuda_lib -Wl,-rpath,$cuda_lib -Wl,--no-as-needed -ltorch_cuda -lc10_cuda -lcudart -Wl,--as-needed"
      for d in "$nvidia"/*/lib; do [ -d "$d" ] && out="$out -Wl,-rpath-link,$d"; done
    fi
    echo "$out -ldl -lturbojpeg -lpng"
    ;;
  version) echo "$major.$minor.$patch" ;;
  variant) echo "${torch_dir:-debian}:$cuda" ;;
  *) fail "usage: torch-config.sh cflags|libs|version|variant" ;;
esac

#!/usr/bin/env bash
# Builds the native addon with a C++ compiler alone: no node, npm or node-gyp (e.g. on a GPU machine that
# has only g++, a Python PyTorch and the carried N-API headers). Produces the same file as
# `npm run build:native`: $BUILD_DIR/Release/arcface_native.node, compiling the translation units in
# parallel. Incremental: a unit is recompiled when it, a header it includes, or the flags change.
#
#   native/build.sh [clean]
#
# Inputs (environment):
#   TORCH_DIR         the torch/ folder of an installed PyTorch (include/, lib/); unset: Debian's libtorch 1.13.
#                     ARCFACE_TORCH_DIR is read when TORCH_DIR is unset.
#   CUDA              1: the CUDA build (needs a CUDA TORCH_DIR); ARCFACE_CUDA is read when CUDA is unset.
#   CUDA_HOME         the CUDA toolkit, default /usr/local/cuda.
#   GLOO_INCLUDE      the folder above gloo/ (a pip libtorch lacks gloo's headers), default /usr/include.
#   NODE_API_INCLUDE  folders, colon-separated, holding node_api.h (js_native_api*.h, node_api_types.h) and
#                     napi.h (napi-inl.h; node-addon-api); default /usr/include/node and ../node_modules/node-addon-api.
#   BUILD_DIR         output folder (relative: to the current folder), default native/build (objects in $BUILD_DIR/plain).
#   JOBS              parallel compiles, default the number of cores.
#   CXX               the compiler, default g++.
# The variant's flags come from torch-config.sh, shared with binding.gyp.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# A relative BUILD_DIR is the caller's, resolved before moving to native/.
build_dir=$(realpath -m "${BUILD_DIR:-$here/build}")
cd "$here"

obj_dir=$build_dir/plain
out=$build_dir/Release/arcface_native.node
cxx=${CXX:-g++}
jobs=${JOBS:-$(nproc)}

if [[ ${1:-} == clean ]]; then
  rm -rf "$obj_dir" "$out"
  exit 0
fi

node_api=${NODE_API_INCLUDE:-/usr/include/node:$here/../node_modules/node-addon-api}
api_flags=()
IFS=: read -r -a api_dirs <<<"$node_api"
for d in "${api_dirs[@]}"; do api_flags+=("-I$d"); done
found_node_api=0 found_napi=0
for d in "${api_dirs[@]}"; do
  [[ -f $d/node_api.h ]] && found_node_api=1
  [[ -f $d/napi.h ]] && found_napi=1
done
((found_node_api)) || { echo "build.sh: node_api.h not found in NODE_API_INCLUDE=$node_api" >&2; exit 1; }
((found_napi)) || { echo "build.sh: napi.h (node-addon-api) not found in NODE_API_INCLUDE=$node_api" >&2; exit 1; }

# The translation units: the same list as binding.gyp's sources.
mapfile -t sources < <(sed -n 's/^ *"\(src\/[^"]*\.cc\)",\{0,1\}$/\1/p' binding.gyp)
((${#sources[@]})) || { echo "build.sh: no sources found in binding.gyp" >&2; exit 1; }

read -r -a torch_cflags <<<"$(sh torch-config.sh cflags)"
read -r -a torch_libs <<<"$(sh torch-config.sh libs)"
cxxflags=(-fPIC -pthread -m64 -O2 -fno-omit-frame-pointer -fexceptions -frtti
  -Wall -Wextra -Wno-unused-parameter -Wno-deprecated-declarations
  -DNODE_GYP_MODULE_NAME=arcface_native -DBUILDING_NODE_EXTENSION -D_FILE_OFFSET_BITS=64 -D_LARGEFILE_SOURCE
  -DNAPI_VERSION=8 -DNODE_ADDON_API_CPP_EXCEPTIONS -DNODE_ADDON_API_DISABLE_DEPRECATED
  -Isrc "${api_flags[@]}" "${torch_cflags[@]}")
ldflags=(-shared -pthread -rdynamic -m64 -Wl,-soname=arcface_native.node)

mkdir -p "$obj_dir" "$(dirname "$out")"
# A change of flags (another libtorch, CUDA on or off) rebuilds everything.
flags_now="$cxx ${cxxflags[*]} | ${torch_libs[*]}"
if [[ "$(cat "$obj_dir/flags" 2>/dev/null)" != "$flags_now" ]]; then
  rm -f "$obj_dir"/*.o "$obj_dir"/*.d
  echo "$flags_now" >"$obj_dir/flags"
fi

# A unit is stale when its object is missing or older than any file its .d (from -MMD) names.
stale() {
  local o=$1 d=${1%.o}.d
  [[ -f $o && -f $d ]] || return 0
  local deps
  deps=$(sed -e 's/^[^:]*://' -e 's/\\$//' "$d")
  for f in $deps; do
    [[ $f -nt $o ]] && return 0
  done
  return 1
}

pending=()
objects=()
for s in "${sources[@]}"; do
  o=$obj_dir/$(echo "${s#src/}" | tr / _)
  o=${o%.cc}.o
  objects+=("$o")
  if stale "$o"; then pending+=("$s" "$o"); fi
done

echo "build.sh: libtorch $(sh torch-config.sh version) ($(sh torch-config.sh variant)), ${#sources[@]} units, $((${#pending[@]} / 2)) to compile, -j$jobs"
compile() {
  echo "  CXX $1"
  "$cxx" "${cxxflags[@]}" -MMD -MF "${2%.o}.d" -c "$1" -o "$2"
}
running=0 failed=0
for ((i = 0; i < ${#pending[@]}; i += 2)); do
  if ((running >= jobs)); then
    wait -n || failed=1
    running=$((running - 1))
  fi
  compile "${pending[i]}" "${pending[i + 1]}" &
  running=$((running + 1))
done
while ((running > 0)); do
  wait -n || failed=1
  running=$((running - 1))
done
((failed == 0)) || { echo "build.sh: compile failed" >&2; exit 1; }

if ((${#pending[@]})) || [[ ! -f $out ]] || [[ -n $(find "${objects[@]}" -newer "$out" -print -quit) ]]; then
  echo "  LINK $out"
  "$cxx" -o "$out.tmp" "${ldflags[@]}" "${objects[@]}" "${torch_libs[@]}"
  mv "$out.tmp" "$out"
fi
# The variant this addon was built for (scripts/setup.sh rebuilds when it differs from the one asked for).
sh torch-config.sh variant >"$build_dir/torch-dir"

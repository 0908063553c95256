#!/usr/bin/env bash
# Prepares what the GPU check (bench/gpu/check.sh) carries to a GPU machine that has no node, npm or
# network: .gpu-check/ (git-ignored) with this machine's node binary (xz), the N-API and node-addon-api
# headers, and arcface_torch's modules (its backbones/, losses.py, partial_fc_v2.py, read from
# $ARCFACE_TORCH at the pinned commit, never committed here); and dist/ (the compiled TypeScript).
# Then, with the device tool: run --carry .gpu-check --carry dist 'bash bench/gpu/check.sh "$OUT"'.
#
#   bash bench/gpu/prepare.sh          (ARCFACE_TORCH: see test/fixtures/arcface_torch.py)
set -euo pipefail
cd "$(dirname "$0")/../.."
arcface_torch=${ARCFACE_TORCH:-/tmp/insightface/recognition/arcface_torch}
out=.gpu-check
for f in backbones losses.py partial_fc_v2.py; do
  [[ -e $arcface_torch/$f ]] || { echo "prepare.sh: $arcface_torch/$f not found (set ARCFACE_TORCH; see test/fixtures/arcface_torch.py)" >&2; exit 1; }
done
# the commit the fixtures read (test/fixtures/arcface_torch.py), when the folder is a git checkout
pinned=$(sed -n "s/^COMMIT = '\([0-9a-f]*\)'/\1/p" test/fixtures/arcface_torch.py)
head=$(git -C "$arcface_torch" rev-parse HEAD 2>/dev/null || echo "$pinned")
[[ $head == "$pinned" ]] || { echo "prepare.sh: $arcface_torch is at $head, not $pinned" >&2; exit 1; }

rm -rf "$out"
mkdir -p "$out/include/node" "$out/include/node-addon-api" "$out/arcface_torch"
xz -9e -T0 -c "$(command -v node)" >"$out/node.xz"
cp /usr/include/node/node_api.h /usr/include/node/node_api_types.h /usr/include/node/js_native_api.h \
  /usr/include/node/js_native_api_types.h "$out/include/node/"
cp node_modules/node-addon-api/napi.h node_modules/node-addon-api/napi-inl.h node_modules/node-addon-api/napi-inl.deprecated.h \
  "$out/include/node-addon-api/" 2>/dev/null || cp node_modules/node-addon-api/napi*.h "$out/include/node-addon-api/"
# the addon's other build inputs a bare GPU machine lacks: gloo's headers (a pip libtorch has only
# ProcessGroupGloo.hpp), libjpeg-turbo and libpng (headers and the shared objects, loaded from here)
cp -r /usr/include/gloo /usr/include/turbojpeg.h /usr/include/png.h /usr/include/pngconf.h /usr/include/pnglibconf.h "$out/include/"
mkdir -p "$out/lib"
cp -L /usr/lib/x86_64-linux-gnu/libturbojpeg.so.0 /usr/lib/x86_64-linux-gnu/libpng16.so.16 "$out/lib/"
cp -r "$arcface_torch/backbones" "$arcface_torch/losses.py" "$arcface_torch/partial_fc_v2.py" "$out/arcface_torch/"
find "$out/arcface_torch" -name __pycache__ -prune -exec rm -rf {} +
npx tsc -p . && touch dist/.build-stamp
echo "prepare.sh: $(du -sh "$out" | cut -f1) in $out, $(du -sh dist | cut -f1) in dist"

#!/usr/bin/env bash
# Incremental build of the native addon, serialised with a lock so concurrent builds never share
# native/build half-written.
set -euo pipefail
cd "$(dirname "$0")/../native"
exec flock /tmp/arcface-native-build.lock npx node-gyp build --nodedir=/usr -j 2 "$@"

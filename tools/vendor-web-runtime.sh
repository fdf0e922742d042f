#!/bin/sh
# vendor-web-runtime.sh DEST
# Copy onnxruntime-web's WebAssembly runtime (the version pinned in tools/web-runtime's lock
# file, from the npm registry) into DEST, where `imgcls export RUN --format web` takes it.
# Runs once per lock file. Never fails the build: without npm it says why, and the web
# export (and its tests) say what to do instead.
DEST=$1
HERE=$(cd "$(dirname "$0")/web-runtime" && pwd)
FILES="ort.wasm.min.js ort-wasm-simd-threaded.mjs ort-wasm-simd-threaded.wasm"
STAMP="$DEST/VERSION"
if [ -f "$STAMP" ] && [ "$STAMP" -nt "$HERE/package-lock.json" ]; then exit 0; fi
if ! command -v npm >/dev/null 2>&1; then
    echo "vendor-web-runtime: npm is missing; the web export and its tests will be skipped" \
         "(install Node.js, then run this again)." >&2
    exit 0
fi
if ! npm ci --prefix "$HERE" --ignore-scripts --no-audit --no-fund --silent >/dev/null 2>&1; then
    echo "vendor-web-runtime: 'npm ci' failed (offline?); the web export and its tests will be skipped." >&2
    exit 0
fi
DIST="$HERE/node_modules/onnxruntime-web/dist"
mkdir -p "$DEST"
for f in $FILES; do cp "$DIST/$f" "$DEST/$f.part" && mv "$DEST/$f.part" "$DEST/$f" || exit 0; done
VERSION=$(sed -n 's/.*"version": *"\([^"]*\)".*/\1/p' "$HERE/node_modules/onnxruntime-web/package.json" | head -1)
printf 'onnxruntime-web %s (MIT licence, Microsoft Corporation), from the npm registry\n' "$VERSION" > "$STAMP"
echo "vendor-web-runtime: onnxruntime-web $VERSION in $DEST." >&2

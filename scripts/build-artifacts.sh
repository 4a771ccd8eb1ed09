#!/usr/bin/env bash
# Builds the two data-plane artifacts:
#   $CARGO_TARGET_DIR/release/libmeltemi.so                               (Envoy dynamic module)
#   $CARGO_TARGET_DIR/wasm32-wasip1/release-wasm/meltemi_wasm.wasm        (proxy-wasm filter)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$here"
. scripts/env.sh
cargo build --release -p meltemi-envoy-module
cargo build --profile release-wasm --target wasm32-wasip1 -p meltemi-wasm
so="$CARGO_TARGET_DIR/release/libmeltemi.so"
wasm="$CARGO_TARGET_DIR/wasm32-wasip1/release-wasm/meltemi_wasm.wasm"
ls -l "$so" "$wasm" | awk '{print "artifact: " $9 " (" $5 " bytes)"}'

#!/usr/bin/env bash
# The test command: installs what is missing, then formatting, lints, both artifacts, every test
# (unit, codec, the real-Envoy end-to-end tests with real peers on 127.0.0.1, the OCI images
# through a real local registry) and the benches' build. Usage: scripts/test.sh
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$here"
start=$(date +%s)
bash scripts/setup.sh
. scripts/env.sh
step() { echo; echo "== $* ($(( $(date +%s) - start ))s)"; }
step "cargo fmt --check"
cargo fmt --all -- --check
step "cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings
step "codec and engine build for wasm32-wasip1"
cargo build -p meltemi-codec -p meltemi-engine --target wasm32-wasip1
step "artifacts"
bash scripts/build-artifacts.sh
# Before the tests: the benches' build also builds the package binaries in the release profile,
# and controller/tests/images.rs packages that `meltemi` (scripts/images.sh with
# MELTEMI_IMAGES_BUILD=0: cargo holds the target dir while tests run, so no build from a test).
step "cargo bench --no-run"
cargo bench --workspace --no-run
test -x "$CARGO_TARGET_DIR/release/meltemi"
step "cargo test"
cargo test --workspace --no-fail-fast -- --test-threads 2
step "done"

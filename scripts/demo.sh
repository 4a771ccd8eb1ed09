#!/usr/bin/env bash
# The main job: installs what is missing, builds both filters, and runs the demo (real Envoy 1.40
# with Meltemi's filters in front of real peers on 127.0.0.1). Usage: scripts/demo.sh
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$here"
bash scripts/setup.sh
. scripts/env.sh
bash scripts/build-artifacts.sh
cargo run --quiet -p meltemi-testkit --bin meltemi-demo

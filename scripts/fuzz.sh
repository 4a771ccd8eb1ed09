#!/usr/bin/env bash
# Runs the fuzz targets (all of them, or those named) for SECS seconds each, from the corpora
# kept in the repository (fuzz/corpus/<target>, plus every input that once crashed,
# fuzz/regressions/<target>), and prints executions and crashes per target.
# Installs what it needs first: the nightly toolchain (cargo-fuzz needs -Z sanitizer flags) and
# cargo-fuzz (crates.io, --locked). New inputs that cover new code are added to the corpus dir;
# minimise it before committing with `cargo +nightly fuzz cmin <target> corpus/<target>`.
# A crash is written to fuzz/artifacts/<target>/crash-*: see README "Fuzzing" for turning it into
# a regression test.
# Usage: scripts/fuzz.sh [SECS] [TARGET...]     e.g. scripts/fuzz.sh 600 redis thrift
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$here"
secs="${1:-60}"
shift || true

if ! rustup toolchain list | grep -q '^nightly'; then
  echo "fuzz: rustup toolchain install nightly"
  rustup toolchain install nightly --profile minimal
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
  echo "fuzz: cargo install cargo-fuzz --locked"
  cargo install cargo-fuzz --locked
fi

if [ $# -gt 0 ]; then
  targets=("$@")
else
  mapfile -t targets < <(sed -n 's/^name = "\([a-z_]*\)"$/\1/p' fuzz/Cargo.toml | grep -v '^meltemi-fuzz$')
fi
cd fuzz
# The fuzz crate's own target dir (its sanitizer flags would rebuild the workspace's anyway).
export CARGO_TARGET_DIR="${FUZZ_TARGET_DIR:-$HOME/.cache/meltemi-fuzz-target}"
status=0
report=()
for t in "${targets[@]}"; do
  mkdir -p "corpus/$t" "artifacts/$t" "regressions/$t"
  log="$(mktemp)"
  echo "== $t: ${secs}s"
  if cargo +nightly fuzz run "$t" "corpus/$t" "regressions/$t" -- -max_total_time="$secs" -print_final_stats=1 \
      >"$log" 2>&1; then
    result=ok
  else
    result=CRASH
    status=1
    tail -40 "$log"
  fi
  execs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)"
  rate="$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)"
  files="$(find "corpus/$t" -type f | wc -l)"
  report+=("$(printf '%-12s %-6s %14s %10s %8s' "$t" "$result" "${execs:-?}" "${rate:-?}" "$files")")
  rm -f "$log"
done
printf '%-12s %-6s %14s %10s %8s\n' target result executions "exec/s" corpus
printf '%s\n' "${report[@]}"
exit $status

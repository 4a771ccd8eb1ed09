#!/usr/bin/env bash
# Real TARS peers for the tests and the codec's captured frames: the tars4nodejs RPC framework
# (npm `@tars/rpc`, client and server) and `@tars/stream` (TARS/TUP encoding), pinned by
# testkit/clients/tars/package-lock.json into testkit/clients/tars/node_modules. Idempotent.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
dir="$root/testkit/clients/tars"
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  echo "setup.d/tars: node and npm are needed (Debian: apt-get install nodejs npm)" >&2
  exit 1
fi
want="$(sed -n 's/.*"@tars\/rpc": "\(.*\)".*/\1/p' "$dir/package.json")"
have="$(sed -n 's/.*"version": "\(.*\)".*/\1/p' "$dir/node_modules/@tars/rpc/package.json" 2>/dev/null | head -1 || true)"
if [ "$have" != "$want" ] || [ ! -d "$dir/node_modules/@tars/stream" ]; then
  echo "setup.d/tars: npm ci (@tars/rpc $want)"
  (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error)
fi

#!/usr/bin/env bash
# Real Redis peers for the redis codec's captures and tests (scripts/capture/redis_capture.sh):
# redis-server, redis-cli and redis-benchmark from Debian. Idempotent.
set -euo pipefail
need=()
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
command -v redis-cli >/dev/null 2>&1 || need+=(redis-tools)
command -v redis-benchmark >/dev/null 2>&1 || need+=(redis-tools)
command -v python3 >/dev/null 2>&1 || need+=(python3)
if [ ${#need[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
# Debian starts a redis-server service on install; the capture script starts its own on free ports.
echo "setup.d/redis: ok ($(redis-server --version | cut -d' ' -f3))"

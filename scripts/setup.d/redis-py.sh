#!/usr/bin/env bash
# A real Redis client library for the routing tests: redis-py (PyPI `redis`), installed into
# the project's virtualenv. The servers and redis-cli/redis-benchmark are Debian packages
# (scripts/setup.d/redis.sh). Idempotent.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
pip="$root/.venv/bin/pip"
py="$root/.venv/bin/python"
if [ ! -x "$pip" ]; then
  python3 -m venv "$root/.venv"
fi
if [ "$("$pip" show redis 2>/dev/null | sed -n 's/^Version: //p')" != "8.1.0" ]; then
  echo "setup.d/redis-py: pip install redis==8.1.0"
  "$pip" install -q --disable-pip-version-check redis==8.1.0
fi

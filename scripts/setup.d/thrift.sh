#!/usr/bin/env bash
# Real Thrift peers for the codec's captured frames: Apache Thrift's own Python library
# (PyPI `thrift`), installed into the project's virtualenv. Idempotent.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
pip="$root/.venv/bin/pip"
py="$root/.venv/bin/python"
if [ ! -x "$pip" ]; then
  python3 -m venv "$root/.venv"
fi
if ! "$py" -c 'import thrift.protocol.THeaderProtocol' >/dev/null 2>&1 || \
   [ "$("$pip" show thrift 2>/dev/null | sed -n 's/^Version: //p')" != "0.22.0" ]; then
  echo "setup.d/thrift: pip install thrift==0.22.0"
  "$pip" install -q --disable-pip-version-check thrift==0.22.0
fi

#!/usr/bin/env bash
# Real Dubbo 2 peers for the codec captures and tests: a Python Dubbo 2 client with Hessian2
# (dubbo-ssl-python, which also pulls kazoo) and a Hessian2 parser (python-hessian) that the
# capture provider uses. Idempotent: installs only what is missing.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
pip="$root/.venv/bin/pip"
py="$root/.venv/bin/python"
if [ ! -x "$pip" ]; then
  python3 -m venv "$root/.venv"
fi
if ! "$py" -c 'import dubbo_ssl, pyhessian' >/dev/null 2>&1; then
  echo "setup.d/dubbo: pip install dubbo-ssl-python python-hessian"
  "$pip" install -q --disable-pip-version-check "dubbo-ssl-python==0.9.6" "python-hessian==1.2.0"
fi

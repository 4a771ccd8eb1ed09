#!/usr/bin/env bash
# Observability for the demo and the dashboard test: a real Prometheus (Debian `prometheus`) and
# matplotlib in the project's virtualenv (the demo's PNG). Idempotent.
# Debian's package starts a `prometheus` service on install (port 9090, /var/lib/prometheus);
# nothing here relies on it: the demo and the tests start their own on a free 127.0.0.1 port with
# their own config and data dir, and stop it by PID. We stop and disable the packaged one so it
# does not scrape or hold a port for nothing.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
if ! command -v prometheus >/dev/null 2>&1; then
  echo "setup.d/prometheus: apt-get install prometheus"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends prometheus >/dev/null
  if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
    systemctl disable --now prometheus >/dev/null 2>&1 || true
  elif command -v service >/dev/null 2>&1; then
    service prometheus stop >/dev/null 2>&1 || true
  fi
fi
py="$root/.venv/bin/python"
pip="$root/.venv/bin/pip"
if [ ! -x "$py" ]; then
  python3 -m venv "$root/.venv"
fi
if ! "$py" -c 'import matplotlib' >/dev/null 2>&1 || \
   [ "$("$pip" show matplotlib 2>/dev/null | sed -n 's/^Version: //p')" != "3.10.9" ]; then
  echo "setup.d/prometheus: pip install matplotlib==3.10.9"
  "$pip" install -q --disable-pip-version-check matplotlib==3.10.9
fi
echo "setup.d/prometheus: ok ($(prometheus --version 2>&1 | head -1 | cut -d' ' -f3), matplotlib $("$py" -c 'import matplotlib; print(matplotlib.__version__)'))"

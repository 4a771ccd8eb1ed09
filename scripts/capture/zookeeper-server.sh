#!/usr/bin/env bash
# Starts or stops a real Apache ZooKeeper 3.8 server (Debian `zookeeper` package) on 127.0.0.1,
# standalone, in a directory of its own; reusable by captures and end-to-end tests.
#
#   zookeeper-server.sh start DIR [PORT]   # prints the port; DIR gets zoo.cfg, data/, zk.pid, zk.log
#   zookeeper-server.sh stop DIR           # stops the server started in DIR (by its PID only)
#
# PORT 0 or absent picks a free port. The server answers four-letter words (whitelist *) and has
# no admin HTTP server. Needs scripts/setup.d/zookeeper.sh to have run.
set -euo pipefail
cmd="${1:?usage: $0 start|stop DIR [PORT]}"
dir="${2:?usage: $0 start|stop DIR [PORT]}"
mkdir -p "$dir"
dir="$(cd "$dir" && pwd)"

case "$cmd" in
start)
  port="${3:-0}"
  if [ "$port" = 0 ]; then
    port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
  fi
  mkdir -p "$dir/data"
  cat >"$dir/zoo.cfg" <<CFG
tickTime=2000
dataDir=$dir/data
clientPort=$port
clientPortAddress=127.0.0.1
admin.enableServer=false
4lw.commands.whitelist=*
maxClientCnxns=0
CFG
  cp="/usr/share/java/zookeeper.jar:/usr/share/java/zookeeper-jute.jar:/usr/share/java/slf4j-api.jar:/usr/share/java/slf4j-simple.jar"
  # setsid: the server must not die with the shell that started it.
  setsid java -Xmx256m -cp "$cp" org.apache.zookeeper.server.ZooKeeperServerMain "$dir/zoo.cfg" \
    >"$dir/zk.log" 2>&1 </dev/null &
  echo $! >"$dir/zk.pid"
  # `ruok` answers before the server serves sessions; `srvr` shows a Mode line only once it does.
  for _ in $(seq 1 150); do
    if python3 - "$port" <<'PY' 2>/dev/null
import socket, sys
out = b""
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=1)
s.sendall(b"srvr")
while True:
    chunk = s.recv(4096)
    if not chunk:
        break
    out += chunk
sys.exit(0 if b"Mode: " in out else 1)
PY
    then
      echo "$port" >"$dir/zk.port"
      echo "$port"
      exit 0
    fi
    sleep 0.2
  done
  echo "zookeeper did not start; see $dir/zk.log" >&2
  kill "$(cat "$dir/zk.pid")" 2>/dev/null || true
  exit 1
  ;;
stop)
  if [ -f "$dir/zk.pid" ]; then
    pid="$(cat "$dir/zk.pid")"
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
    rm -f "$dir/zk.pid"
  fi
  ;;
*)
  echo "usage: $0 start|stop DIR [PORT]" >&2
  exit 2
  ;;
esac

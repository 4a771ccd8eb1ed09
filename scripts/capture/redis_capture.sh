#!/usr/bin/env bash
# Captures real Redis traffic for filters/codec/testdata/redis/: starts redis-server(s) on
# 127.0.0.1, puts redis_relay.py in front, drives redis-cli, redis-benchmark and a raw inline
# client through it, stops every process it started (by PID) and writes the expectation files.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
out="$root/filters/codec/testdata/redis"
work="$(mktemp -d)"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 100); do redis-cli -p "$1" PING >/dev/null 2>&1 && return 0; sleep 0.05; done; return 1; }
relay() { # relay LISTEN UPSTREAM PREFIX
  python3 -u "$here/redis_relay.py" "$1" "$2" "$3" > "$work/relay-$1.log" 2>&1 & pids+=($!)
  for _ in $(seq 100); do grep -q ready "$work/relay-$1.log" 2>/dev/null && return 0; sleep 0.05; done; return 1
}
server() { # server PORT DIR [extra args]
  local p=$1 d=$2; shift 2; mkdir -p "$d"
  (cd "$d" && exec redis-server --bind 127.0.0.1 --port "$p" --save '' --appendonly no \
     --enable-debug-command yes "$@") > "$d/log" 2>&1 & pids+=($!)
  wait_port "$p"
}
rm -f "$out"/*.bin "$out"/*.txt
mkdir -p "$out"

# --- one standalone server --------------------------------------------------------------------
S=$(port); R=$(port)
server "$S" "$work/s"
relay "$R" "$S" "$out/cli2"
# RESP2, redis-cli reading commands from stdin (one connection, multibulk requests).
big=$(python3 -c 'print("v"*70000)')
redis-cli -p "$R" > /dev/null <<CMDS
PING
SET user:1 alice
GET user:1
GET missing
INCR counter
MSET a 1 b 2
MGET a b missing
HSET h f1 v1 f2 v2
HGETALL h
RPUSH l x y z
LRANGE l 0 -1
SADD s m1
LPOP user:1
NOSUCHCOMMAND arg
EVAL "return {1,'two',redis.call('get',KEYS[1])}" 1 user:1 extra
XADD st * field value
XREAD COUNT 1 STREAMS st 0
OBJECT ENCODING user:1
SET bigkey $big
GET bigkey
CLUSTER SLOTS
COMMAND INFO get set
CLIENT SETNAME capture
CONFIG GET maxmemory
CMDS
kill "${pids[-1]}"; unset 'pids[-1]'

relay "$R" "$S" "$out/cli3"
# RESP3 (redis-cli -3 sends HELLO 3): maps, sets, doubles, booleans, verbatim, big numbers,
# attributes and pushes (DEBUG PROTOCOL and client-side caching invalidation).
redis-cli -3 -p "$R" > /dev/null <<'CMDS'
HGETALL h
SMEMBERS s
ZADD z 1.5 m
ZSCORE z m
ZSCORE z none
INFO server
DEBUG PROTOCOL true
DEBUG PROTOCOL false
DEBUG PROTOCOL verbatim
DEBUG PROTOCOL double
DEBUG PROTOCOL null
DEBUG PROTOCOL map
DEBUG PROTOCOL set
DEBUG PROTOCOL push
CLIENT TRACKING on
GET a
SET a 3
GET a
PING
CMDS
kill "${pids[-1]}"; unset 'pids[-1]'

relay "$R" "$S" "$out/resp3raw"
# redis-cli 7.0 refuses attribute replies, so a raw client sends these (multibulk, pipelined):
# the replies are the server's own frames.
python3 - "$R" <<'PY'
import socket, sys
def mb(*a):
    return b"*%d\r\n" % len(a) + b"".join(b"$%d\r\n%s\r\n" % (len(x), x) for x in a)
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.sendall(mb(b"HELLO", b"3") + mb(b"DEBUG", b"PROTOCOL", b"attrib") + mb(b"DEBUG", b"PROTOCOL", b"bignum") + mb(b"DEBUG", b"PROTOCOL", b"push")
          + mb(b"SUBSCRIBE", b"news") + mb(b"PING"))
s.settimeout(1.0)
try:
    while s.recv(65536):
        pass
except socket.timeout:
    pass
s.close()
PY
kill "${pids[-1]}"; unset 'pids[-1]'

relay "$R" "$S" "$out/inline"
# Inline commands, written raw in one burst (pipelined), as telnet or a health check would.
python3 - "$R" <<'PY'
import socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.sendall(b"PING\r\nset greeting \"hello world\"\r\nGET greeting\nget 'sq\\'x'\r\n\r\nexists a b\r\nQUIT\r\n")
buf = b""
while True:
    d = s.recv(65536)
    if not d:
        break
    buf += d
PY
kill "${pids[-1]}"; unset 'pids[-1]'

relay "$R" "$S" "$out/bench"
# Pipelined small frames, as a real load generator sends them (16 deep, one client).
for t in "set,get -n 800" "lpush,lrange_100 -n 160" "mset -n 160"; do
  # shellcheck disable=SC2086
  timeout 60 redis-benchmark -p "$R" -c 1 -P 16 -d 16 -r 1000 -q -t $t > /dev/null
done
kill "${pids[-1]}"; unset 'pids[-1]'

# --- a 3-node cluster, for MOVED and ASK ---------------------------------------------------------
C1=$(port); C2=$(port); C3=$(port)
for p in $C1 $C2 $C3; do server "$p" "$work/c$p" --cluster-enabled yes --cluster-config-file nodes.conf; done
redis-cli --cluster create 127.0.0.1:$C1 127.0.0.1:$C2 127.0.0.1:$C3 --cluster-yes > "$work/create.log" 2>&1
for _ in $(seq 100); do [ "$(redis-cli -p "$C1" CLUSTER INFO | tr -d '\r' | sed -n 's/^cluster_state://p')" = ok ] && break; sleep 0.1; done
# Slot 12182 ("foo") is not on the first node (MOVED); the slot of "hello" (866, first node)
# is set migrating to node 2, so a missing key in it answers ASK.
id2=$(redis-cli -p "$C2" CLUSTER MYID)
slot=$(redis-cli -p "$C1" CLUSTER KEYSLOT hello)
redis-cli -p "$C1" CLUSTER SETSLOT "$slot" MIGRATING "$id2" > /dev/null
redis-cli -p "$C2" CLUSTER SETSLOT "$slot" IMPORTING "$(redis-cli -p "$C1" CLUSTER MYID)" > /dev/null
relay "$R" "$C1" "$out/cluster"
redis-cli -p "$R" > /dev/null <<'CMDS'
GET foo
GET hello
CLUSTER KEYSLOT hello
CLUSTER SHARDS
CMDS
kill "${pids[-1]}"; unset 'pids[-1]'

for f in "$out"/*.bin; do python3 "$here/redis_expect.py" "$f"; done
ls -l "$out"

#!/usr/bin/env python3
"""Captures real TARS traffic from the tars4nodejs framework (npm `@tars/rpc` 2.0.15 and
`@tars/stream` 2.0.3, installed by scripts/setup.d/tars.sh).

The test servant (testkit/clients/tars/server.js, Meltemi.Calc from Calc.tars) runs on
127.0.0.1; the test client (client.js) calls it once per case through a recording TCP relay,
which writes every byte of each direction of that one connection to
`filters/codec/testdata/tars/<case>.c2s.bin` (client to server) and `<case>.s2c.bin`.
Calls are serial (one in flight), so each file is the packets in call order.

Usage: python3 scripts/capture/tars_capture.py [outdir]
"""
import json
import os
import socket
import subprocess
import sys
import threading

root = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
clients = os.path.join(root, "testkit", "clients", "tars")
out_dir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(root, "filters", "codec", "testdata", "tars")

# Per case: the client's plan. Every case: add x2, echo (5 bytes), echo (20 KB: a large
# frame both ways), fail(-9) (iRet -9), log one-way (no reply), nosuch (the framework's
# FUNC_NOT_FOUND, -3).
CALLS = [
    {"fn": "add", "n": 2},
    {"fn": "echo", "n": 1},
    {"fn": "echo", "n": 1, "size": 20000},
    {"fn": "fail", "n": 1, "code": -9},
    {"fn": "log", "n": 1, "oneway": True},
    {"fn": "nosuch", "n": 1},
]
CASES = {
    "tars": {"version": 1, "context": {"user": "alice", "canary": "1"}},
    "tup2": {"version": 2},
    "tup3": {"version": 3},
}


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def pump(src, dst, sink):
    while True:
        b = src.recv(65536)
        if not b:
            break
        sink.extend(b)
        dst.sendall(b)
    try:
        dst.shutdown(socket.SHUT_WR)
    except OSError:
        pass


def relay(listener, upstream_port, c2s, s2c):
    conn, _ = listener.accept()
    up = socket.create_connection(("127.0.0.1", upstream_port))
    ts = [threading.Thread(target=pump, args=(conn, up, c2s)), threading.Thread(target=pump, args=(up, conn, s2c))]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    conn.close()
    up.close()


def main():
    os.makedirs(out_dir, exist_ok=True)
    env = dict(os.environ, NODE_NO_WARNINGS="1")
    sport = free_port()
    server = subprocess.Popen(["node", "server.js", str(sport), "v1"], cwd=clients, stdout=subprocess.PIPE, env=env)
    try:
        assert server.stdout.readline().strip() == b"ready"
        for case, extra in CASES.items():
            lst = socket.socket()
            lst.bind(("127.0.0.1", 0))
            lst.listen(1)
            c2s, s2c = bytearray(), bytearray()
            t = threading.Thread(target=relay, args=(lst, sport, c2s, s2c))
            t.start()
            plan = dict(extra, calls=CALLS, serial=True)
            res = subprocess.run(["node", "client.js", str(lst.getsockname()[1]), json.dumps(plan)],
                                 cwd=clients, capture_output=True, env=env, timeout=60, check=True)
            t.join()
            lst.close()
            for name, data in (("c2s", c2s), ("s2c", s2c)):
                with open(os.path.join(out_dir, f"{case}.{name}.bin"), "wb") as f:
                    f.write(data)
            print(case, len(c2s), len(s2c), res.stdout.decode().strip())
    finally:
        server.terminate()
        server.wait()


if __name__ == "__main__":
    main()

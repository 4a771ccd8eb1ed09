#!/usr/bin/env python3
"""A tiny recording TCP relay for capturing real Redis traffic on 127.0.0.1.

    redis_relay.py LISTEN_PORT UPSTREAM_PORT OUT_PREFIX [--log]

Every accepted connection N is forwarded to 127.0.0.1:UPSTREAM_PORT unchanged; the bytes
are appended to OUT_PREFIX-N.c2s.bin (client to server) and OUT_PREFIX-N.s2c.bin (server to
client). With --log (the SQL captures) both directions go to one file OUT_PREFIX-N.log
instead, as records in arrival order: a direction byte (`>` client to server, `<` server to
client), a 4-byte big-endian length, the bytes; each record is written before it is
forwarded, so the order is causal and a test can replay both directions through one state
machine. Prints "ready" once listening. Stops on SIGTERM.
"""
import os
import signal
import socket
import sys
import threading

listen_port, upstream_port, prefix = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
log_mode = sys.argv[4:] == ["--log"]


def pump(src, dst, f, tag, lock, done):
    if True:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                with lock:
                    f.write(tag + len(data).to_bytes(4, "big") + data if log_mode else data)
                    f.flush()
                dst.sendall(data)
        except OSError:
            pass
    try:
        dst.shutdown(socket.SHUT_WR)
    except OSError:
        pass
    done.release()


def serve(client, n):
    up = socket.create_connection(("127.0.0.1", upstream_port))
    done = threading.Semaphore(0)
    lock = threading.Lock()
    if log_mode:
        log = open("%s-%d.log" % (prefix, n), "wb")
        files = (log, log)
    else:
        files = tuple(open("%s-%d.%s.bin" % (prefix, n, d), "ab") for d in ("c2s", "s2c"))
    for (a, b, t), f in zip(((client, up, b">"), (up, client, b"<")), files):
        threading.Thread(target=pump, args=(a, b, f, t, lock, done), daemon=True).start()
    done.acquire()
    done.acquire()
    for f in set(files):
        f.close()
    client.close()
    up.close()


def main():
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", listen_port))
    ls.listen(64)
    print("ready", flush=True)
    n = 0
    while True:
        c, _ = ls.accept()
        c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        threading.Thread(target=serve, args=(c, n), daemon=True).start()
        n += 1


main()

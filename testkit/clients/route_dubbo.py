#!/usr/bin/env python3
"""Dubbo 2 peers for the routing tests (real Hessian2: python-hessian decodes, dubbo-ssl-python
encodes and is the client, both with dubbo_wire.py's string fixes).

serve PORT NAME
    A provider on 127.0.0.1:PORT (threaded, one thread per connection, answers in order) whose
    every method of every interface returns the string NAME (its version). Heartbeat requests get
    heartbeat responses. Prints one line "req <interface> <method>" per request (flushed), after
    "ready". For a method named `hb*` it first sends a heartbeat request of its own (as Apache
    Dubbo's HeartbeatTimerTask does on an idle channel) and prints "hb answered" when the
    heartbeat response comes back; `sleep*` methods answer after 1 s; after answering an `idle*`
    method it waits 0.5 s (the connection idle on the consumer side) and sends a heartbeat
    request (prints "idle hb sent"); a connection that ends prints "conn closed".
call PORT N METHOD [--service S] [--version V] [--group G] [--attach K=V ...] [--threads T]
    dubbo-ssl-python's DubboClient: the library keeps ONE connection per host, shared by all
    threads (T threads, default 1, each with its calls in flight: requests pipelined on the one
    connection, answers matched by request id by the library). N calls of METHOD(String) in all
    (a comma-separated METHOD is used in turn);
    prints a JSON object of answer -> count; a non-OK response status counts as "status:<n>",
    a client-side timeout as "timeout"; "connections" is how many TCP connections the library
    opened (must be 1).
"""
import json
import logging
import socket
import struct
import sys
import threading
import time

import dubbo_wire

logging.basicConfig(level=logging.CRITICAL)
# Strings of any length, chunked as Java writes them (the libraries' own string code is not).
dubbo_wire.install()
_hessian_values, _enc, _frame = dubbo_wire.values, dubbo_wire.encode, dubbo_wire.frame
_text, _read = dubbo_wire.text, dubbo_wire.read_exact


def serve(port, name):
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", port))
    ls.listen(128)
    lock = threading.Lock()
    hb_id = [1 << 40]
    hb_sent = set()
    print("ready", flush=True)

    def one(c):
        try:
            while True:
                head = _read(c, 16)
                _, flag, _, rid, blen = struct.unpack(">HBBqi", head)
                body = _read(c, blen)
                if not flag & 0x80:
                    if flag & 0x20 and rid in hb_sent:
                        hb_sent.discard(rid)
                        with lock:
                            print("hb answered", flush=True)
                    continue
                if flag & 0x20:
                    c.sendall(_frame(0x22, 20, rid, b"N"))
                    continue
                vals = _hessian_values(body)
                _dver, path, _ver, method = [_text(next(vals)) for _ in range(4)]
                with lock:
                    print("req %s %s" % (path, method), flush=True)
                if method.startswith("hb"):
                    hb_id[0] += 1
                    hb_sent.add(hb_id[0])
                    c.sendall(_frame(0xE2, 0, hb_id[0], b"N"))
                if method.startswith("sleep"):
                    time.sleep(1.0)
                if flag & 0x40:
                    # Response with a value; attachments only for dubbo 2.0.2..2.0.99 callers,
                    # dubbo-ssl-python says 2.4.10: RESPONSE_VALUE (1).
                    c.sendall(_frame(0x02, 20, rid, _enc(1, name)))
                if method.startswith("idle"):

                    def idle_hb(c=c):
                        time.sleep(0.5)
                        hb_id[0] += 1
                        hb_sent.add(hb_id[0])
                        try:
                            c.sendall(_frame(0xE2, 0, hb_id[0], b"N"))
                            with lock:
                                print("idle hb sent", flush=True)
                        except OSError:
                            pass

                    threading.Thread(target=idle_hb, daemon=True).start()
        except (EOFError, OSError):
            with lock:
                print("conn closed", flush=True)
        c.close()

    while True:
        c, _ = ls.accept()
        c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        threading.Thread(target=one, args=(c,), daemon=True).start()


def call(port, n, method, service, version, group, attach, threads):
    import dubbo_ssl.codec.decoder as decoder
    import dubbo_ssl.connection.connections as connections
    from dubbo_ssl.client import DubboClient
    from dubbo_ssl.common.exceptions import DubboResponseException, DubboRequestTimeoutException

    # The library maps a non-OK status through a table that lacks 100 (SERVER_THREADPOOL_
    # EXHAUSTED, Apache Dubbo 2.7+) and loses the number: keep the number.
    class StatusError(DubboResponseException):
        pass

    orig_head = decoder.parse_response_head

    def parse_response_head(head):
        if head[2] & 0x20 == 0 and head[3] != 20:
            raise StatusError("status:%d" % head[3])
        return orig_head(head)

    connections.parse_response_head = parse_response_head
    # The error body after a non-OK head: keep our status text, read the body as the library does.
    orig_cb = connections.BaseConnectionPool._callback

    def callback(self, data, conn, data_type, invoke_id):
        if data_type == 2:
            self.results[invoke_id] = StatusError(conn.last_status)
            self.conn_events[invoke_id].set()
            return connections.DEFAULT_READ_PARAMS
        if data_type == 1 and data and data[2] & 0x20 == 0:
            conn.last_status = "status:%d" % data[3]
        return orig_cb(self, data, conn, data_type, invoke_id)

    connections.BaseConnectionPool._callback = callback
    opened = [0]
    orig_init = connections.Connection.__init__

    def init(self, *a, **k):
        opened[0] += 1
        orig_init(self, *a, **k)

    connections.Connection.__init__ = init

    host = "127.0.0.1:%d" % port
    counts = {}
    lock = threading.Lock()
    todo = list(range(n))
    methods = method.split(",")

    def worker():
        client = DubboClient(service, group=group, version=version, dubbo_version="2.4.10",
                             host=host)
        while True:
            with lock:
                if not todo:
                    return
                i = todo.pop(0)
            try:
                key = client.call(methods[i % len(methods)], ["x%d" % i], context=dict(attach) or None, timeout=10)
            except StatusError as e:
                key = str(e).strip()
            except DubboRequestTimeoutException:
                key = "timeout"
            except DubboResponseException as e:
                key = "error:%s" % str(e).strip()
            with lock:
                counts[key] = counts.get(key, 0) + 1

    # Open the one connection before the threads start (the library sleeps 0.5 s in it).
    connections.connection_pool._get_connection(host, None)
    ts = [threading.Thread(target=worker) for _ in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    connections.connection_pool._connection_pool[host].close()
    counts["connections"] = opened[0]
    print(json.dumps(counts, sort_keys=True))


def main():
    if sys.argv[1] == "serve":
        serve(int(sys.argv[2]), sys.argv[3])
        return
    port, n, method = int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    service, version, group, attach, threads = "org.meltemi.demo.GreetingService", "1.0.0", "", [], 1
    rest = sys.argv[5:]
    i = 0
    while i < len(rest):
        k, v = rest[i], rest[i + 1]
        if k == "--service":
            service = v
        elif k == "--version":
            version = v
        elif k == "--group":
            group = v
        elif k == "--attach":
            attach.append(tuple(v.split("=", 1)))
        elif k == "--threads":
            threads = int(v)
        i += 2
    call(port, n, method, service, version, group, attach, threads)


if __name__ == "__main__":
    main()

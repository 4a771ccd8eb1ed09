"""A Dubbo 2 provider on real Hessian2 libraries, for the end-to-end tests (adapted from
scripts/capture/dubbo_provider.py).

Usage: dubbo_provider.py PORT [IDLE_HEARTBEAT_SECONDS]
Listens on 127.0.0.1:PORT. Requests are decoded with python-hessian's Hessian2 parser
(pyhessian.parser.ParserV2); replies are encoded with dubbo-ssl-python's Hessian2 encoder. Dubbo
rules followed (Apache Dubbo 2.7 DubboCodec / HeaderExchangeHandler): a heartbeat request gets a
heartbeat response with a null body; the response kind carries attachments only for dubbo
protocol versions 2.0.2..2.0.99; an unknown service or method gets status SERVICE_ERROR (70) with
a message string; a method that throws gets RESPONSE_WITH_EXCEPTION.

Like Java's HeartbeatTimerTask, the provider sends a heartbeat request on a connection that has
been idle (nothing read) for IDLE_HEARTBEAT_SECONDS (default 0.8; at most once per connection,
so the test's counts stay small).

Services:
    org.meltemi.demo.GreetingService: sayHello(String) -> String, getUser(int) -> User,
        findNothing() -> null, fail(String) throws RuntimeException
    org.meltemi.demo.EchoService: sayHello(String) -> String
"""
import io
import socket
import struct
import sys
import threading
import time

from pyhessian.parser import Parser
from dubbo_ssl.codec.encoder import Request as HessianEncoder, Object

GREETING = "org.meltemi.demo.GreetingService"
ECHO = "org.meltemi.demo.EchoService"


def _hessian_values(data):
    """Yields Hessian2 values one after another (python-hessian's V2 parser)."""
    p = Parser()
    p._stream = io.BytesIO(data)
    p.version = 2
    while p._stream.tell() < len(data):
        yield p._adapter._read_object()


def _count_params(desc):
    n, i = 0, 0
    while i < len(desc):
        c = desc[i]
        if c == "[":
            i += 1
            continue
        if c == "L":
            i = desc.index(";", i)
        n += 1
        i += 1
    return n


def _supports_attachments(version):
    # org.apache.dubbo.common.Version.isSupportResponseAttachment: 2.0.2 <= v <= 2.0.99
    try:
        parts = [int(x) for x in version.split(".")[:3]]
    except ValueError:
        return False
    return parts[:2] == [2, 0] and 2 <= parts[2] <= 99


def _enc(*values):
    e = HessianEncoder({})
    out = []
    for v in values:
        out.extend(e._encode_single_value(v))
    return bytes(b & 0xFF for b in out)


def _frame(flag, status, rid, body):
    return struct.pack(">HBBqi", 0xDABB, flag, status, rid, len(body)) + body


def _text(v):
    return v.decode() if isinstance(v, bytes) else v


class Conn(object):
    def __init__(self, sock):
        self.sock = sock
        self.lock = threading.Lock()
        self.last_read = time.time()
        self.heartbeat_sent = False

    def send(self, frame):
        with self.lock:
            self.sock.sendall(frame)


class Provider(object):
    def __init__(self, port, idle):
        self.idle = idle
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", port))
        self.sock.listen(64)
        self.conns = []
        self.next_heartbeat_id = 1 << 40

    def serve(self):
        threading.Thread(target=self._heartbeats, daemon=True).start()
        while True:
            c, _ = self.sock.accept()
            conn = Conn(c)
            self.conns.append(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _heartbeats(self):
        while True:
            time.sleep(0.05)
            for conn in list(self.conns):
                if not conn.heartbeat_sent and time.time() - conn.last_read > self.idle:
                    conn.heartbeat_sent = True
                    self.next_heartbeat_id += 1
                    try:
                        conn.send(_frame(0xE2, 0, self.next_heartbeat_id, b"N"))
                    except OSError:
                        pass

    @staticmethod
    def _read(c, n):
        buf = b""
        while len(buf) < n:
            d = c.recv(n - len(buf))
            if not d:
                raise EOFError
            buf += d
        return buf

    def _serve(self, conn):
        c = conn.sock
        try:
            while True:
                head = self._read(c, 16)
                _, flag, _, rid, blen = struct.unpack(">HBBqi", head)
                body = self._read(c, blen)
                conn.last_read = time.time()
                if not flag & 0x80:
                    continue  # the client's answer to our heartbeat
                if flag & 0x20:
                    conn.send(_frame(0x22, 20, rid, b"N"))
                    continue
                vals = _hessian_values(body)
                dver, path, _ver, method, desc = [next(vals) for _ in range(5)]
                args = [next(vals) for _ in range(_count_params(desc))]
                conn.send(self._invoke(rid, _text(dver), _text(path), _text(method), args))
        except (EOFError, OSError):
            pass
        finally:
            self.conns.remove(conn)
            c.close()

    def _invoke(self, rid, dver, path, method, args):
        att = _supports_attachments(dver)
        tail = b"H" + _enc("dubbo", "2.0.2") + b"Z" if att else b""

        def value(v):
            return _frame(0x02, 20, rid, _enc(4 if att else 1, v) + tail)

        if path == GREETING and method == "sayHello":
            return value("Hello, %s" % args[0])
        if path == ECHO and method == "sayHello":
            return value("echo: %s" % args[0])
        if path == GREETING and method == "getUser":
            return value(Object("org.meltemi.demo.User",
                                {"id": args[0], "name": "user-%d" % args[0], "tags": ["a", "b"],
                                 "score": 12.5}))
        if path == GREETING and method == "findNothing":
            return _frame(0x02, 20, rid, _enc(5 if att else 2) + tail)
        if path == GREETING and method == "fail":
            trace = Object("java.lang.StackTraceElement",
                           {"declaringClass": "org.meltemi.demo.GreetingServiceImpl",
                            "methodName": "fail", "fileName": "GreetingServiceImpl.java",
                            "lineNumber": 42})
            exc = Object("java.lang.RuntimeException",
                         {"detailMessage": "boom: %s" % args[0], "cause": None,
                          "stackTrace": [trace], "suppressedExceptions": None})
            return _frame(0x02, 20, rid, _enc(3 if att else 0, exc) + tail)
        if path not in (GREETING, ECHO):
            msg = ("Not found exported service: %s:20880 in [%s:20880, %s:20880], may be version "
                   "or group mismatch" % (path, GREETING, ECHO))
            return _frame(0x02, 70, rid, _enc(msg))
        msg = "Failed to invoke the method %s in the service %s. No such method" % (method, path)
        return _frame(0x02, 70, rid, _enc(msg))


def main():
    port = int(sys.argv[1])
    idle = float(sys.argv[2]) if len(sys.argv) > 2 else 0.8
    provider = Provider(port, idle)
    print("dubbo provider on 127.0.0.1:%d" % port, flush=True)
    provider.serve()


if __name__ == "__main__":
    main()

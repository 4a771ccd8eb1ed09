"""A Dubbo 2 provider on real Hessian2 libraries, for the end-to-end tests and the frame capture
(scripts/capture/dubbo_capture.py imports `Provider`).

Usage: dubbo_provider.py PORT [IDLE_HEARTBEAT_SECONDS]
Listens on 127.0.0.1:PORT. Requests are decoded with python-hessian's Hessian2 parser
(pyhessian.parser.ParserV2); replies are encoded with dubbo-ssl-python's Hessian2 encoder, both
with the string fixes of dubbo_wire.py (strings of any length, chunked as Java writes them). Dubbo
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
import socket
import struct
import sys
import threading
import time

import dubbo_wire
from dubbo_ssl.codec.encoder import Object
from dubbo_wire import ECHO, GREETING, encode as _enc, frame as _frame, read_exact as _read, text as _text

dubbo_wire.install()


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
    """Serves on 127.0.0.1:`port` (0: any free port, see `.port`) from a background thread.

    `idle`: seconds of silence before the one heartbeat per connection (None: never; then
    `send_heartbeat` sends one). `record(who, frame, label, info=None)` sees every frame read
    ("client") and written ("provider"). `services`: the exported interfaces (named in the
    "Not found exported service" message).
    """

    def __init__(self, port=0, idle=None, record=None, services=(GREETING, ECHO)):
        self.idle = idle
        self.record = record or (lambda *_: None)
        self.services = services
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", port))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.conns = []
        self.next_heartbeat_id = 1 << 40
        self.stopped = False
        threading.Thread(target=self._accept, daemon=True).start()
        if idle is not None:
            threading.Thread(target=self._heartbeats, daemon=True).start()

    def _accept(self):
        while not self.stopped:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            conn = Conn(c)
            self.conns.append(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _heartbeats(self):
        while not self.stopped:
            time.sleep(0.05)
            for conn in list(self.conns):
                if not conn.heartbeat_sent and time.time() - conn.last_read > self.idle:
                    conn.heartbeat_sent = True
                    self.next_heartbeat_id += 1
                    try:
                        conn.send(_frame(0xE2, 0, self.next_heartbeat_id, b"N"))
                    except OSError:
                        pass

    def send_heartbeat(self, rid):
        """A provider-initiated heartbeat request on the newest connection."""
        f = _frame(0xE2, 0, rid, b"N")
        self.record("provider", f, "heartbeat_request_from_provider")
        self.conns[-1].send(f)

    def _reply(self, conn, frame, label):
        self.record("provider", frame, label)
        conn.send(frame)

    def _serve(self, conn):
        c = conn.sock
        try:
            while True:
                head = _read(c, 16)
                _, flag, _, rid, blen = struct.unpack(">HBBqi", head)
                body = _read(c, blen)
                conn.last_read = time.time()
                frame = head + body
                if not flag & 0x80:
                    self.record("client", frame, "heartbeat_response_from_client")
                    continue  # the client's answer to our heartbeat
                if flag & 0x20:
                    self.record("client", frame, "heartbeat_request")
                    self._reply(conn, _frame(0x22, 20, rid, b"N"), "heartbeat_response")
                    continue
                vals = dubbo_wire.values(body)
                dver, path, ver, method, desc = [_text(next(vals)) for _ in range(5)]
                args = [next(vals) for _ in range(_count_params(desc))]
                self.record("client", frame, "request_" + method,
                            dict(dubbo_version=dver, service=path, version=ver, method=method,
                                 types=desc, args=args, attachments=next(vals, {})))
                self._reply(conn, self._invoke(rid, dver, path, method, args),
                            "response_" + method)
        except (EOFError, OSError):
            pass
        finally:
            self.conns.remove(conn)
            c.close()

    def _invoke(self, rid, dver, path, method, args):
        att = _supports_attachments(dver)
        # Response attachments map, as Java Dubbo writes them (HashMap -> 'H' ... 'Z').
        tail = b"H" + _enc("dubbo", "2.0.2") + b"Z" if att else b""

        def value(v):
            return _frame(0x02, 20, rid, _enc(4 if att else 1, v) + tail)

        if path not in self.services:
            exported = ", ".join("%s:20880" % s for s in self.services)
            msg = ("Not found exported service: %s:20880 in [%s], may be version or group "
                   "mismatch" % (path, exported))
            return _frame(0x02, 70, rid, _enc(msg))
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
        msg = "Failed to invoke the method %s in the service %s. No such method" % (method, path)
        return _frame(0x02, 70, rid, _enc(msg))

    def stop(self):
        self.stopped = True
        for conn in list(self.conns):
            try:
                conn.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            conn.sock.close()
        self.sock.close()


def main():
    port = int(sys.argv[1])
    idle = float(sys.argv[2]) if len(sys.argv) > 2 else 0.8
    Provider(port, idle)
    print("dubbo provider on 127.0.0.1:%d" % port, flush=True)
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    main()

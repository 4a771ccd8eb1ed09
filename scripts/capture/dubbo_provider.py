"""A small Dubbo 2 provider on real Hessian2 libraries, for capturing frames on 127.0.0.1.

Requests are decoded with python-hessian's Hessian2 parser (pyhessian.parser.ParserV2); replies
are encoded with dubbo-ssl-python's Hessian2 encoder. Every frame read or written is handed to
`record(direction, frame_bytes, label)`. Dubbo rules followed (Apache Dubbo 2.7 DubboCodec /
HeaderExchangeHandler): heartbeat request -> heartbeat response with a null body; the response kind
carries attachments only for dubbo protocol versions 2.0.2..2.0.99; an unknown service gets status
SERVICE_ERROR (70) with a message string; a method that throws gets RESPONSE_WITH_EXCEPTION.
"""
import io
import socket
import struct
import threading

from pyhessian.parser import Parser
from dubbo_ssl.codec.encoder import Request as HessianEncoder, Object

SERVICE = "org.meltemi.demo.GreetingService"


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


class Provider:
    def __init__(self, record, port=0):
        self.record = record
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", port))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.conns = []
        self.stopped = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.stopped:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(c)
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def _read(self, c, n):
        buf = b""
        while len(buf) < n:
            d = c.recv(n - len(buf))
            if not d:
                raise EOFError
            buf += d
        return buf

    def send_heartbeat(self, rid):
        """Provider-initiated heartbeat request (HeartbeatTimerTask does this in Java)."""
        f = _frame(0xE2, 0, rid, b"N")
        self.record("provider", f, "heartbeat_request_from_provider")
        self.conns[-1].sendall(f)

    def _serve(self, c):
        try:
            while True:
                head = self._read(c, 16)
                magic, flag, status, rid, blen = struct.unpack(">HBBqi", head)
                body = self._read(c, blen)
                frame = head + body
                if not flag & 0x80:
                    self.record("client", frame, "heartbeat_response_from_client")
                    continue
                if flag & 0x20:
                    self.record("client", frame, "heartbeat_request")
                    resp = _frame(0x22, 20, rid, b"N")
                    self.record("provider", resp, "heartbeat_response")
                    c.sendall(resp)
                    continue
                vals = _hessian_values(body)
                dver, path, ver, method, desc = [next(vals) for _ in range(5)]
                args = [next(vals) for _ in range(_count_params(desc))]
                attachments = next(vals, {})
                label = "request_%s" % method
                self.record("client", frame, label, dict(dubbo_version=dver, service=path,
                            version=ver, method=method.decode() if isinstance(method, bytes) else method,
                            types=desc, args=args, attachments=attachments))
                resp = self._invoke(rid, dver, path, method if isinstance(method, str) else method.decode(), args)
                self.record("provider", resp, "response_" + label[8:])
                c.sendall(resp)
        except (EOFError, OSError):
            pass

    def _invoke(self, rid, dver, path, method, args):
        att = _supports_attachments(dver)
        if path != SERVICE:
            msg = "Not found exported service: %s:20880 in [%s:20880], may be version or group mismatch" % (path, SERVICE)
            return _frame(0x02, 70, rid, _enc(msg))
        if method == "sayHello":
            return _frame(0x02, 20, rid, _enc(4 if att else 1, "Hello, %s" % args[0]) + (self._att() if att else b""))
        if method == "getUser":
            user = Object("org.meltemi.demo.User", {"id": args[0], "name": "user-%d" % args[0], "tags": ["a", "b"], "score": 12.5})
            return _frame(0x02, 20, rid, _enc(4 if att else 1, user) + (self._att() if att else b""))
        if method == "findNothing":
            return _frame(0x02, 20, rid, _enc(5 if att else 2) + (self._att() if att else b""))
        if method == "fail":
            frame = Object("java.lang.StackTraceElement", {"declaringClass": "org.meltemi.demo.GreetingServiceImpl", "methodName": "fail", "fileName": "GreetingServiceImpl.java", "lineNumber": 42})
            exc = Object("java.lang.RuntimeException", {"detailMessage": "boom: %s" % args[0], "cause": None, "stackTrace": [frame], "suppressedExceptions": None})
            return _frame(0x02, 20, rid, _enc(3 if att else 0, exc) + (self._att() if att else b""))
        msg = "Failed to invoke the method %s in the service %s. No such method" % (method, path)
        return _frame(0x02, 70, rid, _enc(msg))

    def _att(self):
        # Response attachments map, as Java Dubbo writes them (HashMap -> 'H' ... 'Z').
        return b"H" + _enc("dubbo", "2.0.2") + b"Z"

    def stop(self):
        self.stopped = True
        for c in self.conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            c.close()
        self.sock.close()

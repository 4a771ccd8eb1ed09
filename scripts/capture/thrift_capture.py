#!/usr/bin/env python3
"""Captures real Thrift traffic from Apache Thrift's Python library (PyPI `thrift`).

The test server's hand-written service (testkit/clients/thrift_server.py: TProcessor style, no
compiler) runs on 127.0.0.1, one connection per case in that case's transport and protocol; a
recording TCP relay sits between the client and the server and writes every byte of each
direction to `filters/codec/testdata/thrift/<case>.c2s.bin` (client to server) and
`<case>.s2c.bin`.

Service `Calc` (what the IDL would be):
    exception NotFound { 1: string key }
    struct Big { 1: list<string> names, 2: map<string,i64> counts, 3: set<i32> ids,
                 4: Inner inner, 5: double ratio, 6: bool flag, 7: binary blob }
    struct Inner { 1: i16 a, 2: byte b, 3: list<Inner> children }
    service Calc {
      i32 add(1: i32 a, 2: i32 b)
      string get(1: string key) throws (1: NotFound nf)
      void ping()
      oneway void log(1: string msg)
      Big echo(1: Big big)
    }
The client sends, per case: add(2,3) seq 1; get("k") seq 2; get("missing") seq 3 (declared
exception NotFound, field 1); ping() seq 4; log("hello") seq 5 (oneway, no reply); nosuch() seq 6
(the server answers TApplicationException UNKNOWN_METHOD); echo(big) seq 7 (large frames both
ways); ping() seq -2 (negative sequence id).

Usage: .venv/bin/python scripts/capture/thrift_capture.py [outdir]
"""
import os
import socket
import sys
import threading

from thrift.protocol import TBinaryProtocol, TCompactProtocol, THeaderProtocol, TMultiplexedProtocol
from thrift.server import TServer
from thrift.Thrift import TApplicationException, TMessageType, TType
from thrift.TMultiplexedProcessor import TMultiplexedProcessor
from thrift.transport import THeaderTransport, TSocket, TTransport


# The service (Calc and the Big struct it echoes) is the test server's.
root = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.join(root, "testkit", "clients"))
from thrift_server import Calc, write_big  # noqa: E402


# ---- client ---------------------------------------------------------------------------

def call(p, name, mtype, seqid, fields, expect_reply=True):
    p.writeMessageBegin(name, mtype, seqid)
    p.writeStructBegin(name + "_args")
    for fname, ftype, fid, writer in fields:
        p.writeFieldBegin(fname, ftype, fid)
        writer()
        p.writeFieldEnd()
    p.writeFieldStop()
    p.writeStructEnd()
    p.writeMessageEnd()
    p.trans.flush()
    if not expect_reply:
        return None
    rname, rtype, rseq = p.readMessageBegin()
    assert rseq == seqid, (rseq, seqid)
    if rtype == TMessageType.EXCEPTION:
        x = TApplicationException()
        x.read(p)
        p.readMessageEnd()
        return ("exception", x.type, x.message)
    p.skip(TType.STRUCT)
    p.readMessageEnd()
    return ("reply", rname)


def run_client(p):
    I32, STR = TType.I32, TType.STRING
    out = []
    out.append(call(p, "add", TMessageType.CALL, 1, [("a", I32, 1, lambda: p.writeI32(2)), ("b", I32, 2, lambda: p.writeI32(3))]))
    out.append(call(p, "get", TMessageType.CALL, 2, [("key", STR, 1, lambda: p.writeString("k"))]))
    out.append(call(p, "get", TMessageType.CALL, 3, [("key", STR, 1, lambda: p.writeString("missing"))]))
    out.append(call(p, "ping", TMessageType.CALL, 4, []))
    call(p, "log", TMessageType.ONEWAY, 5, [("msg", STR, 1, lambda: p.writeString("hello"))], expect_reply=False)
    out.append(call(p, "nosuch", TMessageType.CALL, 6, []))
    out.append(call(p, "echo", TMessageType.CALL, 7, [("big", TType.STRUCT, 1, lambda: write_big(p))]))
    out.append(call(p, "ping", TMessageType.CALL, -2, []))
    return out


# ---- recording relay ------------------------------------------------------------------

class Relay(object):
    def __init__(self, upstream_port):
        self.upstream_port = upstream_port
        self.ls = socket.socket()
        self.ls.bind(("127.0.0.1", 0))
        self.ls.listen(1)
        self.port = self.ls.getsockname()[1]
        self.c2s = bytearray()
        self.s2c = bytearray()

    def _pump(self, src, dst, buf):
        while True:
            data = src.recv(65536)
            if not data:
                try:
                    dst.shutdown(socket.SHUT_WR)
                except OSError:
                    pass
                return
            buf += data
            dst.sendall(data)

    def serve_one(self):
        c, _ = self.ls.accept()
        u = socket.create_connection(("127.0.0.1", self.upstream_port))
        t1 = threading.Thread(target=self._pump, args=(c, u, self.c2s))
        t2 = threading.Thread(target=self._pump, args=(u, c, self.s2c))
        t1.start(); t2.start(); t1.join(); t2.join()
        c.close(); u.close(); self.ls.close()


# ---- cases ----------------------------------------------------------------------------

def binary(strict):
    return TBinaryProtocol.TBinaryProtocolFactory(strictRead=False, strictWrite=strict)


def compact():
    return TCompactProtocol.TCompactProtocolFactory()


def framed():
    return TTransport.TFramedTransportFactory()


def buffered():
    return TTransport.TBufferedTransportFactory()


CLIENT_HEADERS = {b"user-agent": b"meltemi-capture", b"x-request-id": b"req-0001"}


def client_protocol(case, sock):
    if case.get("kind") == "header":
        trans = THeaderTransport.THeaderTransport(
            sock, [THeaderTransport.THeaderClientType.HEADERS], case["subproto"])
        for k, v in CLIENT_HEADERS.items():
            trans.set_header(k, v)
        if case.get("zlib"):
            trans.add_transform(THeaderTransport.THeaderTransformID.ZLIB)
        p = HeaderProto(trans, [THeaderTransport.THeaderClientType.HEADERS], case["subproto"])
        return p, trans
    trans = case["trans"]().getTransport(sock)
    p = case["proto"]().getProtocol(trans)
    if case.get("mux"):
        p = TMultiplexedProtocol.TMultiplexedProtocol(p, "Calc")
    return p, trans


class HeaderProto(THeaderProtocol.THeaderProtocol):
    """A THeaderProtocol whose headers are set again before every message (the transport clears
    them after each flush)."""

    def writeMessageBegin(self, name, ttype, seqid):
        for k, v in CLIENT_HEADERS.items():
            self.trans.set_header(k, v)
        THeaderProtocol.THeaderProtocol.writeMessageBegin(self, name, ttype, seqid)


CASES = [
    dict(name="binary-framed", trans=framed, proto=lambda: binary(True)),
    dict(name="binary-unframed", trans=buffered, proto=lambda: binary(True)),
    dict(name="binary-lax-framed", trans=framed, proto=lambda: binary(False)),
    dict(name="binary-lax-unframed", trans=buffered, proto=lambda: binary(False)),
    dict(name="compact-framed", trans=framed, proto=compact),
    dict(name="compact-unframed", trans=buffered, proto=compact),
    dict(name="binary-framed-mux", trans=framed, proto=lambda: binary(True), mux=True),
    dict(name="header-binary", kind="header", subproto=THeaderTransport.THeaderSubprotocolID.BINARY),
    dict(name="header-compact", kind="header", subproto=THeaderTransport.THeaderSubprotocolID.COMPACT),
    dict(name="header-compact-zlib", kind="header", subproto=THeaderTransport.THeaderSubprotocolID.COMPACT, zlib=True),
]


def start_server(case):
    sock = TSocket.TServerSocket(host="127.0.0.1", port=0)
    proc = Calc()
    if case.get("mux"):
        m = TMultiplexedProcessor()
        m.registerProcessor("Calc", proc)
        proc = m
    if case.get("kind") == "header":
        pf = THeaderProtocol.THeaderProtocolFactory()
        server = TServer.TServer(proc, sock, TTransport.TTransportFactoryBase(), pf)
    else:
        server = TServer.TServer(proc, sock, case["trans"](), case["proto"]())
    sock.listen()
    port = sock.handle.getsockname()[1]

    def serve_one():
        client = sock.accept()
        itrans = server.inputTransportFactory.getTransport(client)
        iprot = server.inputProtocolFactory.getProtocol(itrans)
        if case.get("kind") == "header":
            oprot = iprot  # THeader replies in the format the client used
        else:
            otrans = server.outputTransportFactory.getTransport(client)
            oprot = server.outputProtocolFactory.getProtocol(otrans)
        try:
            while True:
                proc.process(iprot, oprot)
        except TTransport.TTransportException:
            pass
        itrans.close()
        sock.close()

    t = threading.Thread(target=serve_one)
    t.start()
    return port, t


def main():
    outdir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        root, "filters", "codec", "testdata", "thrift")
    for case in CASES:
        sport, st = start_server(case)
        relay = Relay(sport)
        rt = threading.Thread(target=relay.serve_one)
        rt.start()
        sock = TSocket.TSocket("127.0.0.1", relay.port)
        sock.open()
        p, trans = client_protocol(case, sock)
        results = run_client(p)
        trans.close()
        rt.join()
        st.join()
        for d, buf in (("c2s", relay.c2s), ("s2c", relay.s2c)):
            with open(os.path.join(outdir, "%s.%s.bin" % (case["name"], d)), "wb") as f:
                f.write(bytes(buf))
        print(case["name"], len(relay.c2s), len(relay.s2c), results[-3:])


if __name__ == "__main__":
    main()

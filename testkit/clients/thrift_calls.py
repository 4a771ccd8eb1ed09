"""Real Thrift client traffic for the end-to-end tests (Apache Thrift's Python library, 0.22.0).

Usage: thrift_calls.py HOST PORT
Opens one connection per dialect: binary framed, binary unframed (buffered), compact framed,
THeader (binary) and THeader (compact). On each it calls the `Calc` service of
thrift_server.py: add (2**i times on the i-th connection, so a miscount names its dialect),
get("k") (success), get("missing") twice (declared exception NotFound), ping, two oneway
log calls, nosuch (the server answers TApplicationException UNKNOWN_METHOD), and through
TMultiplexedProtocol "Calc:add" and "Calc:get"("missing").
Prints one flat JSON object: what it sent and what came back, per message name as sent on the
wire (`method.<name>.total|success|error|exception`) and in all (`totals.<what>`), with
Envoy thrift_proxy's meaning: `error` is a reply carrying a declared exception, `exception` an
EXCEPTION message (TApplicationException).
"""
import json
import sys

from thrift.protocol import TBinaryProtocol, TCompactProtocol, THeaderProtocol, TMultiplexedProtocol
from thrift.Thrift import TApplicationException, TMessageType, TType
from thrift.transport import THeaderTransport, TSocket, TTransport

HEADERS = [THeaderTransport.THeaderClientType.HEADERS]
I32, STR = TType.I32, TType.STRING


def plain(trans_factory, proto_factory):
    def make(sock):
        trans = trans_factory().getTransport(sock)
        return proto_factory().getProtocol(trans), trans
    return make


def header(subproto):
    def make(sock):
        p = THeaderProtocol.THeaderProtocol(sock, HEADERS, subproto)
        p.trans.set_header(b"x-request-id", b"meltemi-e2e")
        return p, p.trans
    return make


DIALECTS = [
    ("binary-framed", plain(TTransport.TFramedTransportFactory,
                            lambda: TBinaryProtocol.TBinaryProtocolFactory(strictWrite=True))),
    ("binary-unframed", plain(TTransport.TBufferedTransportFactory,
                              lambda: TBinaryProtocol.TBinaryProtocolFactory(strictWrite=True))),
    ("compact-framed", plain(TTransport.TFramedTransportFactory,
                             TCompactProtocol.TCompactProtocolFactory)),
    ("header-binary", header(THeaderTransport.THeaderSubprotocolID.BINARY)),
    ("header-compact", header(THeaderTransport.THeaderSubprotocolID.COMPACT)),
]


class Tally(object):
    def __init__(self):
        self.methods = {}
        self.totals = dict(request=0, call=0, oneway=0, response=0, success=0, exception=0,
                           error=0)

    def sent(self, name, oneway):
        m = self.methods.setdefault(name, dict(total=0, success=0, exception=0, error=0))
        m["total"] += 1
        self.totals["request"] += 1
        self.totals["oneway" if oneway else "call"] += 1

    def got(self, name, outcome):
        self.methods[name][outcome] += 1
        self.totals["response"] += 1
        self.totals[outcome] += 1


def call(p, tally, name, seqid, fields, oneway=False, wire_name=None):
    """Sends one message; for a call, reads the answer and classifies it the way the caller
    sees it: a result struct with field 0 (or none, for void) is a success, another field a
    declared exception (`error`), an EXCEPTION message a TApplicationException (`exception`),
    as thrift_proxy counts them. `wire_name` is the name
    as it goes on the wire (a multiplexing decorator prefixes the service)."""
    wire_name = wire_name or name
    p.writeMessageBegin(name, TMessageType.ONEWAY if oneway else TMessageType.CALL, seqid)
    p.writeStructBegin("args")
    for fname, ftype, fid, writer in fields:
        p.writeFieldBegin(fname, ftype, fid)
        writer()
        p.writeFieldEnd()
    p.writeFieldStop()
    p.writeStructEnd()
    p.writeMessageEnd()
    p.trans.flush()
    tally.sent(wire_name, oneway)
    if oneway:
        return
    _, rtype, rseq = p.readMessageBegin()
    assert rseq == seqid, (rseq, seqid)
    if rtype == TMessageType.EXCEPTION:
        x = TApplicationException()
        x.read(p)
        p.readMessageEnd()
        assert x.type == TApplicationException.UNKNOWN_METHOD, x
        tally.got(wire_name, "exception")
        return
    p.readStructBegin()
    _, ftype, fid = p.readFieldBegin()
    outcome = "success" if ftype == TType.STOP or fid == 0 else "error"
    if ftype != TType.STOP:
        p.skip(ftype)
        p.readFieldEnd()
        _, ftype, _ = p.readFieldBegin()
        assert ftype == TType.STOP
    p.readStructEnd()
    p.readMessageEnd()
    tally.got(wire_name, outcome)


def session(i, p, tally):
    seq = [0]

    def nxt():
        seq[0] += 1
        return seq[0]

    def key(k):
        return [("key", STR, 1, lambda: p.writeString(k))]

    for n in range(2 ** i):
        call(p, tally, "add", nxt(), [("a", I32, 1, lambda: p.writeI32(n)),
                                      ("b", I32, 2, lambda: p.writeI32(1))])
    call(p, tally, "get", nxt(), key("k"))
    call(p, tally, "get", nxt(), key("missing"))
    call(p, tally, "get", nxt(), key("missing-too"))
    call(p, tally, "ping", nxt(), [])
    call(p, tally, "log", nxt(), [("msg", STR, 1, lambda: p.writeString("one"))], oneway=True)
    call(p, tally, "log", nxt(), [("msg", STR, 1, lambda: p.writeString("two"))], oneway=True)
    call(p, tally, "nosuch", nxt(), [])
    mux = TMultiplexedProtocol.TMultiplexedProtocol(p, "Calc")
    call(mux, tally, "add", nxt(), [("a", I32, 1, lambda: mux.writeI32(40)),
                                    ("b", I32, 2, lambda: mux.writeI32(2))], wire_name="Calc:add")
    call(mux, tally, "get", nxt(), [("key", STR, 1, lambda: mux.writeString("missing"))],
         wire_name="Calc:get")


def main():
    host, port = sys.argv[1], int(sys.argv[2])
    tally = Tally()
    for i, (name, make) in enumerate(DIALECTS):
        sock = TSocket.TSocket(host, port)
        sock.setTimeout(10000)
        sock.open()
        p, trans = make(sock)
        session(i, p, tally)
        trans.close()
    # One flat object (the test reads it without a JSON library).
    out = {"connections": len(DIALECTS)}
    for name, m in tally.methods.items():
        for k, v in m.items():
            out["method.%s.%s" % (name, k)] = v
    for k, v in tally.totals.items():
        out["totals.%s" % k] = v
    print(json.dumps(out, sort_keys=True))


if __name__ == "__main__":
    main()

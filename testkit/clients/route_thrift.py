#!/usr/bin/env python3
"""Thrift peers for the routing tests (Apache Thrift's Python library, PyPI `thrift`).

serve PORT NAME
    A threaded server on 127.0.0.1:PORT whose every method (`Calc:<method>` multiplexed or bare)
    returns the string NAME (its version). Framed binary and THeader clients alike (THeader
    protocol factory: it answers in the client's format). Prints "ready" once listening.
call PORT N METHOD [--header] [--hdr K=V ...] [--service S]
    ONE connection, N sequential calls of METHOD returning a string; prints a JSON object of
    answer -> count; a TApplicationException counts as "exc:<type>:<message>".
"""
import json
import socket
import sys
import threading

from thrift.protocol import TBinaryProtocol, THeaderProtocol, TMultiplexedProtocol
from thrift.Thrift import TApplicationException, TMessageType, TType
from thrift.transport import THeaderTransport, TSocket, TTransport


class Processor(object):
    def __init__(self, name):
        self.name = name

    def process(self, iprot, oprot):
        name, mtype, seqid = iprot.readMessageBegin()
        iprot.skip(TType.STRUCT)
        iprot.readMessageEnd()
        if mtype == TMessageType.ONEWAY:
            return
        oprot.writeMessageBegin(name, TMessageType.REPLY, seqid)
        oprot.writeStructBegin("result")
        oprot.writeFieldBegin("success", TType.STRING, 0)
        oprot.writeString(self.name)
        oprot.writeFieldEnd()
        oprot.writeFieldStop()
        oprot.writeStructEnd()
        oprot.writeMessageEnd()
        oprot.trans.flush()


def serve(port, name):
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", port))
    ls.listen(128)
    proc = Processor(name)
    ct = THeaderTransport.THeaderClientType
    pf = THeaderProtocol.THeaderProtocolFactory(
        allowed_client_types=(ct.HEADERS, ct.FRAMED_BINARY, ct.UNFRAMED_BINARY))
    print("ready", flush=True)

    def one(conn):
        sock = TSocket.TSocket()
        sock.setHandle(conn)
        prot = pf.getProtocol(sock)
        try:
            while True:
                proc.process(prot, prot)
        except (TTransport.TTransportException, EOFError, ConnectionError, OSError):
            pass
        except Exception as e:  # noqa: BLE001 - a test peer: report and drop the connection
            print("server error: %r" % (e,), file=sys.stderr, flush=True)
        conn.close()

    while True:
        conn, _ = ls.accept()
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        threading.Thread(target=one, args=(conn,), daemon=True).start()


class HeaderProto(THeaderProtocol.THeaderProtocol):
    """Sets the headers again before every message (the transport clears them after a flush)."""

    def __init__(self, trans, hdrs):
        THeaderProtocol.THeaderProtocol.__init__(
            self, trans, [THeaderTransport.THeaderClientType.HEADERS],
            THeaderTransport.THeaderSubprotocolID.BINARY)
        self.hdrs = hdrs

    def writeMessageBegin(self, name, ttype, seqid):
        for k, v in self.hdrs.items():
            self.trans.set_header(k.encode(), v.encode())
        THeaderProtocol.THeaderProtocol.writeMessageBegin(self, name, ttype, seqid)


def call(port, n, method, header, hdrs, service):
    sock = TSocket.TSocket("127.0.0.1", port)
    sock.setTimeout(10000)
    if header:
        trans = THeaderTransport.THeaderTransport(
            sock, [THeaderTransport.THeaderClientType.HEADERS],
            THeaderTransport.THeaderSubprotocolID.BINARY)
        p = HeaderProto(trans, hdrs)
    else:
        trans = TTransport.TFramedTransport(sock)
        p = TBinaryProtocol.TBinaryProtocol(trans)
    if service:
        p = TMultiplexedProtocol.TMultiplexedProtocol(p, service)
    trans.open()
    counts = {}
    for seq in range(1, n + 1):
        p.writeMessageBegin(method, TMessageType.CALL, seq)
        p.writeStructBegin("args")
        p.writeFieldStop()
        p.writeStructEnd()
        p.writeMessageEnd()
        p.trans.flush()
        rp = p
        name, mtype, rseq = rp.readMessageBegin()
        assert rseq == seq, (rseq, seq)
        if mtype == TMessageType.EXCEPTION:
            x = TApplicationException()
            x.read(rp)
            rp.readMessageEnd()
            key = "exc:%d:%s" % (x.type, x.message)
        else:
            rp.readStructBegin()
            key = None
            while True:
                _, ftype, fid = rp.readFieldBegin()
                if ftype == TType.STOP:
                    break
                if fid == 0 and ftype == TType.STRING:
                    key = rp.readString()
                else:
                    rp.skip(ftype)
                rp.readFieldEnd()
            rp.readStructEnd()
            rp.readMessageEnd()
        counts[key] = counts.get(key, 0) + 1
    trans.close()
    print(json.dumps(counts, sort_keys=True))


def main():
    if sys.argv[1] == "serve":
        serve(int(sys.argv[2]), sys.argv[3])
        return
    port, n, method = int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    header, hdrs, service = False, {}, None
    rest = sys.argv[5:]
    i = 0
    while i < len(rest):
        if rest[i] == "--header":
            header = True
        elif rest[i] == "--hdr":
            k, v = rest[i + 1].split("=", 1)
            hdrs[k] = v
            i += 1
        elif rest[i] == "--service":
            service = rest[i + 1]
            i += 1
        i += 1
    call(port, n, method, header, hdrs, service)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Thrift peers for the routing tests (Apache Thrift's Python library, PyPI `thrift`).

serve PORT NAME
    A threaded server on 127.0.0.1:PORT whose every method (`Calc:<method>` multiplexed or bare)
    returns the string NAME (its version). THeader, framed and unframed (buffered) clients, binary
    or compact, alike (THeader protocol factory: it answers in the client's format). Prints
    "ready" once listening.
call PORT N METHOD [--header] [--hdr K=V ...] [--service S] [--buffered] [--compact]
    ONE connection, N sequential calls of METHOD returning a string; prints a JSON object of
    answer -> count; a TApplicationException counts as "exc:<type>:<message>". METHOD may be a
    comma-separated list, used in turn; the pseudo-method `_pause` sleeps 0.6 s client-side.
    With --pipe the N requests are written at once (one socket write), then the N answers are
    read (in any order, each matched to its seqid). With --time the object also has "ms": the calls' wall
    time in milliseconds (connection set-up excluded). The transport is framed unless --header
    (THeader) or --buffered (unframed, `TBufferedTransport`); the protocol is binary unless
    --compact (`TCompactProtocol`).
fire PORT N METHOD [--wait]
    ONE connection: writes N calls of METHOD (a comma-separated list is used in turn) at once
    and closes it without reading; with --wait it reads until the peer closes instead and
    prints {"bytes": <bytes received>}.

The server's behaviour by method name (the policy tests): `sleep*` answers after 1 s;
`flaky*` closes the connection without answering the first time this process sees that method
name. It prints "req <method>" for every request it reads (stdout, flushed).
"""
import json
import socket
import sys
import threading
import time

from thrift.protocol import TBinaryProtocol, TCompactProtocol, THeaderProtocol, TMultiplexedProtocol
from thrift.Thrift import TApplicationException, TMessageType, TType
from thrift.transport import THeaderTransport, TSocket, TTransport


class Dropped(Exception):
    """A `flaky*` method: the connection is closed without an answer."""


class Processor(object):
    def __init__(self, name):
        self.name = name
        self.lock = threading.Lock()
        self.flaky_seen = set()

    def process(self, iprot, oprot):
        name, mtype, seqid = iprot.readMessageBegin()
        iprot.skip(TType.STRUCT)
        iprot.readMessageEnd()
        method = name.split(":")[-1]
        with self.lock:
            print("req %s" % method, flush=True)
            first_flaky = method.startswith("flaky") and method not in self.flaky_seen
            self.flaky_seen.add(method)
        if first_flaky:
            raise Dropped()
        if method.startswith("sleep"):
            time.sleep(1.0)
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
        allowed_client_types=(ct.HEADERS, ct.FRAMED_BINARY, ct.UNFRAMED_BINARY,
                              ct.FRAMED_COMPACT, ct.UNFRAMED_COMPACT))
    print("ready", flush=True)

    def one(conn):
        sock = TSocket.TSocket()
        sock.setHandle(conn)
        prot = pf.getProtocol(sock)
        try:
            while True:
                proc.process(prot, prot)
        except (TTransport.TTransportException, EOFError, ConnectionError, OSError, Dropped):
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


def read_answer(rp):
    """One answer: (seqid, key)."""
    name, mtype, rseq = rp.readMessageBegin()
    if mtype == TMessageType.EXCEPTION:
        x = TApplicationException()
        x.read(rp)
        rp.readMessageEnd()
        return rseq, "exc:%d:%s" % (x.type, x.message)
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
    return rseq, key


def write_call(p, method, seq):
    p.writeMessageBegin(method, TMessageType.CALL, seq)
    p.writeStructBegin("args")
    p.writeFieldStop()
    p.writeStructEnd()
    p.writeMessageEnd()
    p.trans.flush()


def pipe(p, trans, sock, n, methods):
    counts = {}
    # One socket write for all N requests, so they reach Envoy in one read.
    out = []
    sock.write = out.append
    for seq in range(1, n + 1):
        write_call(p, methods[(seq - 1) % len(methods)], seq)
    del sock.write
    sock.handle.sendall(b"".join(out))
    left = set(range(1, n + 1))
    while left:
        rseq, key = read_answer(p)
        assert rseq in left, (rseq, sorted(left))
        left.remove(rseq)
        counts[key] = counts.get(key, 0) + 1
    trans.close()
    print(json.dumps(counts, sort_keys=True))


def fire(port, n, method, wait):
    sock = TSocket.TSocket("127.0.0.1", port)
    trans = TTransport.TFramedTransport(sock)
    p = TBinaryProtocol.TBinaryProtocol(trans)
    trans.open()
    methods = method.split(",")
    for seq in range(1, n + 1):
        write_call(p, methods[(seq - 1) % len(methods)], seq)
    if not wait:
        time.sleep(0.2)  # the detours reach the upstream before the close
        trans.close()
        print("{}")
        return
    raw = sock.handle
    raw.settimeout(10)
    got = 0
    while True:
        d = raw.recv(65536)
        if not d:
            break
        got += len(d)
    trans.close()
    print(json.dumps({"bytes": got}))


def call(port, n, method, header, hdrs, service, piped=False, timed=False, buffered=False,
         compact=False):
    sock = TSocket.TSocket("127.0.0.1", port)
    sock.setTimeout(10000)
    if header:
        trans = THeaderTransport.THeaderTransport(
            sock, [THeaderTransport.THeaderClientType.HEADERS],
            THeaderTransport.THeaderSubprotocolID.BINARY)
        p = HeaderProto(trans, hdrs)
    else:
        if buffered:
            trans = TTransport.TBufferedTransport(sock)
        else:
            trans = TTransport.TFramedTransport(sock)
        if compact:
            p = TCompactProtocol.TCompactProtocol(trans)
        else:
            p = TBinaryProtocol.TBinaryProtocol(trans)
    if service:
        p = TMultiplexedProtocol.TMultiplexedProtocol(p, service)
    trans.open()
    methods = method.split(",")
    if piped:
        return pipe(p, trans, sock, n, methods)
    counts = {}
    seq = 0
    t0 = time.monotonic()
    for i in range(n):
        m = methods[i % len(methods)]
        if m == "_pause":
            time.sleep(0.6)
            continue
        seq += 1
        write_call(p, m, seq)
        rseq, key = read_answer(p)
        assert rseq == seq, (rseq, seq)
        counts[key] = counts.get(key, 0) + 1
    if timed:
        counts["ms"] = int((time.monotonic() - t0) * 1000)
    trans.close()
    print(json.dumps(counts, sort_keys=True))


def main():
    if sys.argv[1] == "serve":
        serve(int(sys.argv[2]), sys.argv[3])
        return
    port, n, method = int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    if sys.argv[1] == "fire":
        fire(port, n, method, "--wait" in sys.argv[5:])
        return
    header, hdrs, service, piped, timed = False, {}, None, False, False
    buffered, compact = False, False
    rest = sys.argv[5:]
    i = 0
    while i < len(rest):
        if rest[i] == "--header":
            header = True
        elif rest[i] == "--pipe":
            piped = True
        elif rest[i] == "--time":
            timed = True
        elif rest[i] == "--buffered":
            buffered = True
        elif rest[i] == "--compact":
            compact = True
        elif rest[i] == "--hdr":
            k, v = rest[i + 1].split("=", 1)
            hdrs[k] = v
            i += 1
        elif rest[i] == "--service":
            service = rest[i + 1]
            i += 1
        i += 1
    call(port, n, method, header, hdrs, service, piped, timed, buffered, compact)


if __name__ == "__main__":
    main()

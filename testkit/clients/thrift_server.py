"""A real Thrift server on Apache Thrift's Python library (PyPI `thrift` 0.22.0), for the
end-to-end tests and the frame capture (scripts/capture/thrift_capture.py imports `Calc`). No
compiler: the service is hand-written TProcessor-style code.

Usage: thrift_server.py PORT
Listens on 127.0.0.1:PORT with Thrift's own TThreadedServer and THeaderProtocol, which detects
each connection's dialect (framed or unframed binary/compact, or THeader) and answers in it.
Service `Calc`, also registered under the multiplexed name "Calc" (TMultiplexedProcessor):
    exception NotFound { 1: string key }
    struct Big { 1: list<string> names, 2: map<string,i64> counts, 3: set<i32> ids,
                 4: Inner inner, 5: double ratio, 6: bool flag, 7: binary blob }
    struct Inner { 1: i16 a, 2: byte b, 3: list<Inner> children }
    service Calc {
      i32 add(1: i32 a, 2: i32 b)
      string get(1: string key) throws (1: NotFound nf)   # "k" -> "v", anything else -> NotFound
      void ping()
      oneway void log(1: string msg)
      Big echo(1: Big big)      # the argument is skipped; the answer is always the same Big
    }
Any other method gets a TApplicationException UNKNOWN_METHOD, as a generated processor does.
"""
import sys

from thrift.protocol import THeaderProtocol
from thrift.server import TServer
from thrift.Thrift import TApplicationException, TMessageType, TType
from thrift.TMultiplexedProcessor import TMultiplexedProcessor
from thrift.transport import TSocket, TTransport
from thrift.transport.THeaderTransport import THeaderClientType


def read_args(p):
    """Reads an args struct into {field id: value} (i32 and string fields; skips the rest)."""
    out = {}
    p.readStructBegin()
    while True:
        _, ftype, fid = p.readFieldBegin()
        if ftype == TType.STOP:
            break
        if ftype == TType.I32:
            out[fid] = p.readI32()
        elif ftype == TType.STRING:
            out[fid] = p.readString()
        else:
            p.skip(ftype)
        p.readFieldEnd()
    p.readStructEnd()
    return out


def write_result(p, name, seqid, fields):
    """A REPLY whose result struct holds `fields`: (name, ttype, id, writer)."""
    p.writeMessageBegin(name, TMessageType.REPLY, seqid)
    p.writeStructBegin(name + "_result")
    for fname, ftype, fid, writer in fields:
        p.writeFieldBegin(fname, ftype, fid)
        writer()
        p.writeFieldEnd()
    p.writeFieldStop()
    p.writeStructEnd()
    p.writeMessageEnd()
    p.trans.flush()


def write_inner(p, depth):
    p.writeStructBegin("Inner")
    p.writeFieldBegin("a", TType.I16, 1)
    p.writeI16(-depth)
    p.writeFieldEnd()
    p.writeFieldBegin("b", TType.BYTE, 2)
    p.writeByte(depth)
    p.writeFieldEnd()
    p.writeFieldBegin("children", TType.LIST, 3)
    kids = 2 if depth < 3 else 0
    p.writeListBegin(TType.STRUCT, kids)
    for _ in range(kids):
        write_inner(p, depth + 1)
    p.writeListEnd()
    p.writeFieldEnd()
    p.writeFieldStop()
    p.writeStructEnd()


def write_big(p):
    """A `Big` (see the module doc): lists, a map, a set, nested structs, binary."""
    p.writeStructBegin("Big")
    p.writeFieldBegin("names", TType.LIST, 1)
    p.writeListBegin(TType.STRING, 200)
    for i in range(200):
        p.writeString("name-%03d" % i)
    p.writeListEnd()
    p.writeFieldEnd()
    p.writeFieldBegin("counts", TType.MAP, 2)
    p.writeMapBegin(TType.STRING, TType.I64, 50)
    for i in range(50):
        p.writeString("k%d" % i)
        p.writeI64(i * 1000003 - 7)
    p.writeMapEnd()
    p.writeFieldEnd()
    p.writeFieldBegin("ids", TType.SET, 3)
    p.writeSetBegin(TType.I32, 100)
    for i in range(100):
        p.writeI32(i * 7919)
    p.writeSetEnd()
    p.writeFieldEnd()
    p.writeFieldBegin("inner", TType.STRUCT, 4)
    write_inner(p, 0)
    p.writeFieldEnd()
    p.writeFieldBegin("ratio", TType.DOUBLE, 5)
    p.writeDouble(0.625)
    p.writeFieldEnd()
    p.writeFieldBegin("flag", TType.BOOL, 6)
    p.writeBool(True)
    p.writeFieldEnd()
    p.writeFieldBegin("blob", TType.STRING, 7)
    p.writeBinary(bytes(range(128)) * 32)  # ASCII: the library skips binary as UTF-8 text
    p.writeFieldEnd()
    p.writeFieldStop()
    p.writeStructEnd()


class Calc(object):
    """What a generated `Calc.Processor` does, by hand."""

    def process(self, iprot, oprot):
        name, mtype, seqid = iprot.readMessageBegin()
        args = read_args(iprot)
        iprot.readMessageEnd()
        if name == "add":
            write_result(oprot, name, seqid,
                         [("success", TType.I32, 0, lambda: oprot.writeI32(args[1] + args[2]))])
        elif name == "get":
            key = args[1]
            if key == "k":
                write_result(oprot, name, seqid,
                             [("success", TType.STRING, 0, lambda: oprot.writeString("v"))])
            else:
                def not_found():
                    oprot.writeStructBegin("NotFound")
                    oprot.writeFieldBegin("key", TType.STRING, 1)
                    oprot.writeString(key)
                    oprot.writeFieldEnd()
                    oprot.writeFieldStop()
                    oprot.writeStructEnd()
                write_result(oprot, name, seqid, [("nf", TType.STRUCT, 1, not_found)])
        elif name == "ping":
            write_result(oprot, name, seqid, [])
        elif name == "log" and mtype == TMessageType.ONEWAY:
            pass  # oneway: no reply
        elif name == "echo":
            write_result(oprot, name, seqid,
                         [("success", TType.STRUCT, 0, lambda: write_big(oprot))])
        else:
            x = TApplicationException(TApplicationException.UNKNOWN_METHOD,
                                      "Unknown function %s" % name)
            oprot.writeMessageBegin(name, TMessageType.EXCEPTION, seqid)
            x.write(oprot)
            oprot.writeMessageEnd()
            oprot.trans.flush()
        return True


def main():
    port = int(sys.argv[1])
    processor = TMultiplexedProcessor()
    processor.registerDefault(Calc())
    processor.registerProcessor("Calc", Calc())
    clients = [THeaderClientType.HEADERS, THeaderClientType.FRAMED_BINARY,
               THeaderClientType.UNFRAMED_BINARY, THeaderClientType.FRAMED_COMPACT,
               THeaderClientType.UNFRAMED_COMPACT]
    pf = THeaderProtocol.THeaderProtocolFactory(allowed_client_types=clients)
    server = TServer.TThreadedServer(processor, TSocket.TServerSocket(host="127.0.0.1", port=port),
                                     TTransport.TTransportFactoryBase(), pf, daemon=True)
    print("thrift server on 127.0.0.1:%d" % port, flush=True)
    server.serve()


if __name__ == "__main__":
    main()

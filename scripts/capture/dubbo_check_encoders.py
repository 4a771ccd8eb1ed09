"""Checks that the frames our Dubbo encoders wrote (filters/codec/testdata/dubbo/9x_encoder_*.bin,
asserted byte for byte by tests/dubbo.rs) are read by two real Hessian2 implementations:
dubbo-ssl-python's response decoder and python-hessian's Hessian2 parser.

Run: .venv/bin/python scripts/capture/dubbo_check_encoders.py
"""
import io
import os
import struct

from dubbo_ssl.codec.decoder import Response
from pyhessian.parser import Parser

d = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "filters", "codec", "testdata", "dubbo")


def body(name):
    b = open(os.path.join(d, name), "rb").read()
    magic, flag, status, rid, blen = struct.unpack(">HBBqi", b[:16])
    assert magic == 0xDABB and blen == len(b) - 16
    return flag, status, rid, b[16:]


def hessian_values(data):
    p = Parser()
    p._stream = io.BytesIO(data)
    p.version = 2
    out = []
    while p._stream.tell() < len(data):
        out.append(p._adapter._read_object())
    return out


flag, status, rid, b = body("90_encoder_exception_object.bin")
r = Response(bytearray(b))
assert (flag, status, rid, r.read_int()) == (2, 20, 7, 0)
err = r.read_error()
assert err["detailMessage"] == "rate limited: 世界" and err["cause"] == "java.lang.RuntimeException", err
kind, exc = hessian_values(b)
assert kind == 0 and "RuntimeException" in repr(exc), exc

flag, status, rid, b = body("91_encoder_error_threadpool.bin")
assert (flag, status, rid) == (2, 100, 8)
assert Response(bytearray(b)).read_next() == "Server side thread pool is exhausted"
assert hessian_values(b) == ["Server side thread pool is exhausted"]

flag, status, rid, b = body("92_encoder_exception_string.bin")
assert (flag, status, rid) == (2, 20, 9)
assert hessian_values(b) == [0, "invalid method name 'Add'"]
print("encoder frames read by dubbo-ssl-python and python-hessian: ok")

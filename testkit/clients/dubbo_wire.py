"""Dubbo 2 wire helpers for the test peers: Hessian2 from the two real libraries with their
string handling fixed, the frame header, the demo services' names.

Hessian 2.0 Serialization Protocol, 4.12 string:
    string ::= x52 b1 b0 <utf8-data> string   # non-final chunk ('R')
           ::= 'S' b1 b0 <utf8-data>          # final chunk, 0-65535 characters
           ::= [x00-x1f] <utf8-data>          # final chunk, 0-31 characters
           ::= [x30-x33] b0 <utf8-data>       # final chunk, 0-1023 characters
Lengths count 16-bit characters (UTF-16 code units), not bytes. What Java's Hessian2Output
writes, and so what `encode_string` writes: chunks of 0x8000 units that never end between the
two halves of a surrogate pair, the final chunk in its shortest form, and a character above
U+FFFF as two 3-byte surrogates (CESU-8).

Neither library gets strings of more than 32 Ki characters right (dubbo-ssl-python 0.9.6,
python-hessian 1.2.0):
- dubbo-ssl-python's encoder writes one 'S' chunk with the length cut to 16 bits, and a
  character above U+FFFF as one 3-byte sequence with its top bits lost;
- its decoder reads an 'S' length as a signed 16-bit number and never follows an 'R' chunk;
- python-hessian's Hessian2 parser drops the bytes 0x7a-0x7f ('z' to DEL) of an 'R'/'S' string
  and cannot read a short final chunk after an 'R' chunk.
`install()` replaces those string paths with the ones here; everything else in the libraries
is used as it is.
"""
import io
import struct

import dubbo_ssl.codec.decoder as ssl_decoder
from dubbo_ssl.codec.encoder import Request as _Encoder
from pyhessian.parser import Parser, ParserV2

GREETING = "org.meltemi.demo.GreetingService"
ECHO = "org.meltemi.demo.EchoService"

# Java's Hessian2Output chunk size, in UTF-16 units.
CHUNK = 0x8000


def _cesu8(units):
    return "".join(map(chr, units)).encode("utf-8", "surrogatepass")


def encode_string(s):
    """`s` as a Hessian2 string, as Java writes it."""
    raw = s.encode("utf-16-be", "surrogatepass")
    units = [int.from_bytes(raw[i:i + 2], "big") for i in range(0, len(raw), 2)]
    out = bytearray()
    at = 0
    while len(units) - at > CHUNK:
        n = CHUNK
        if 0xD800 <= units[at + n - 1] <= 0xDBFF:
            n -= 1  # a chunk never ends on a high surrogate
        out += b"R" + n.to_bytes(2, "big") + _cesu8(units[at:at + n])
        at += n
    n = len(units) - at
    if n <= 0x1F:
        out.append(n)
    elif n <= 0x3FF:
        out += bytes([0x30 + (n >> 8), n & 0xFF])
    else:
        out += b"S" + n.to_bytes(2, "big")
    return bytes(out + _cesu8(units[at:]))


def _read_units(read, n):
    """The bytes of `n` UTF-16 units of (CESU-8 or plain) UTF-8; never reads past them."""
    data = bytearray()
    i = 0
    while n > 0:
        if i == len(data):
            data += read(n)  # every unit takes at least one byte
        b = data[i]
        if b < 0x80:
            width, units = 1, 1
        elif 0xC0 <= b < 0xE0:
            width, units = 2, 1
        elif 0xE0 <= b < 0xF0:
            width, units = 3, 1
        elif 0xF0 <= b < 0xF5:
            width, units = 4, 2
        else:
            raise ValueError("not a UTF-8 lead byte: 0x%02x" % b)
        short = i + width - len(data)
        if short > 0:
            data += read(short)
        i += width
        n -= units
    return bytes(data)


def _length(read, tag):
    """(units, final) of the chunk whose tag byte is `tag`."""
    if tag <= 0x1F:
        return tag, True
    if 0x30 <= tag <= 0x33:
        return ((tag - 0x30) << 8) | read(1)[0], True
    if tag in (0x52, 0x53):
        return int.from_bytes(read(2), "big"), tag == 0x53
    raise ValueError("not a string tag: 0x%02x" % tag)


def _chunks(read, units, final):
    data = _read_units(read, units)
    while not final:
        units, final = _length(read, read(1)[0])
        data += _read_units(read, units)
    # Surrogates decode one by one; re-pairing them through UTF-16 joins each pair.
    text = data.decode("utf-8", "surrogatepass")
    return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le")


def read_string(read, tag):
    """A Hessian2 string whose tag byte `tag` was read; `read(n)` returns the next n bytes."""
    return _chunks(read, *_length(read, tag))


def _ssl_read_string(res):
    return read_string(lambda n: bytes(res.read_bytes(n)), res.read_byte())


def _pyhessian_read_v2_string(self, code, length):
    return _chunks(self._read, length, code == b"S")


def install():
    """Fixes the libraries' string paths (see the module doc); idempotent."""
    _Encoder._encode_str = lambda self, value: list(encode_string(value))
    ssl_decoder.Response.read_string = _ssl_read_string
    for tag in [*range(0x00, 0x20), *range(0x30, 0x34), 0x52, 0x53]:
        ssl_decoder.functions[tag] = _ssl_read_string
    ParserV2._read_v2_string = _pyhessian_read_v2_string


def values(data):
    """Yields the Hessian2 values in `data` one after another (python-hessian's parser)."""
    p = Parser()
    p._stream = io.BytesIO(data)
    p.version = 2
    while p._stream.tell() < len(data):
        yield p._adapter._read_object()


def encode(*vals):
    """`vals` encoded one after another (dubbo-ssl-python's encoder)."""
    e = _Encoder({})
    out = []
    for v in vals:
        out.extend(e._encode_single_value(v))
    return bytes(b & 0xFF for b in out)


def frame(flag, status, rid, body):
    """A Dubbo 2 frame: magic, flag, status, request id, body length, body."""
    return struct.pack(">HBBqi", 0xDABB, flag, status, rid, len(body)) + body


def text(v):
    return v.decode() if isinstance(v, bytes) else v


def read_exact(c, n):
    """`n` bytes from socket `c`; EOFError when it closes first."""
    buf = b""
    while len(buf) < n:
        d = c.recv(n - len(buf))
        if not d:
            raise EOFError
        buf += d
    return buf

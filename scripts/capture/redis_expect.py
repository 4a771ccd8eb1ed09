#!/usr/bin/env python3
"""Writes the expectation file for a recorded Redis stream, with its own small RESP parser
(independent of the Rust codec under test).

    redis_expect.py FILE.c2s.bin   -> FILE.c2s.txt, one line per request:
        <bytes used> <form m|i> <arg hex> <arg hex> ... (args over 64 bytes as #length)
    redis_expect.py FILE.s2c.bin   -> FILE.s2c.txt, one line per reply:
        <bytes used> <type byte after attributes> <detail> [attr]
    detail: integers in decimal; bulk/verbatim/blob-error length; simple/error/double/big
    number text in hex; aggregate element count (pairs for maps, '?' when streamed); '-' for null.
"""
import sys


def line(b, p):
    e = b.index(b"\r\n", p)
    return b[p:e], e + 2


def value(b, p):
    """Returns (end, type, detail, had_attributes) of the value at p."""
    attr = False
    while b[p:p + 1] == b"|":
        n, q = line(b, p + 1)
        q = skip(b, q, 2 * int(n))
        attr, p = True, q
    t = chr(b[p])
    if t in "+-,(":
        s, q = line(b, p + 1)
        return q, t, s.hex() or "''", attr
    if t == ":":
        s, q = line(b, p + 1)
        return q, t, str(int(s)), attr
    if t in "_":
        return p + 3, t, "-", attr
    if t == "#":
        return p + 4, t, chr(b[p + 1]), attr
    if t in "$!=":
        s, q = line(b, p + 1)
        if s == b"?":
            total = 0
            while True:
                n, q = line(b, q + 1)
                if int(n) == 0:
                    return q, t, "?%d" % total, attr
                total += int(n)
                q += int(n) + 2
        if int(s) < 0:
            return q, t, "-", attr
        assert b[q + int(s):q + int(s) + 2] == b"\r\n"
        return q + int(s) + 2, t, str(int(s)), attr
    if t in "*~>%":
        s, q = line(b, p + 1)
        if s == b"?":
            while b[q:q + 1] != b".":
                q = value(b, q)[0]
            return q + 3, t, "?", attr
        if int(s) < 0:
            return q, t, "-", attr
        n = int(s)
        return skip(b, q, 2 * n if t == "%" else n), t, str(n), attr
    raise ValueError("type %r at %d" % (t, p))


def skip(b, q, n):
    for _ in range(n):
        q = value(b, q)[0]
    return q


def split_inline(s):
    """sdssplitargs, keeping quoted text raw (outer quotes removed)."""
    out, i = [], 0
    while True:
        while i < len(s) and s[i] in b" \t\r\n\x0b\x0c":
            i += 1
        if i >= len(s):
            return out
        if s[i] in b"\"'":
            q, j = s[i], i + 1
            while s[j] != q:
                j += 2 if s[j] == 0x5C else 1
            out.append(s[i + 1:j])
            i = j + 1
        else:
            j = i
            while j < len(s) and s[j] not in b" \t\r\n":
                j += 1
            out.append(s[i:j])
            i = j


def requests(b):
    p = 0
    while p < len(b):
        start = p
        if b[p:p + 1] == b"*":
            n, p = line(b, p + 1)
            args = []
            for _ in range(max(int(n), 0)):
                ln, p = line(b, p + 1)
                args.append(b[p:p + int(ln)])
                p += int(ln) + 2
            yield p - start, "m", args
        else:
            e = b.index(b"\n", p)
            ln = b[p:e]
            if ln.endswith(b"\r"):
                ln = ln[:-1]
            p = e + 1
            yield p - start, "i", split_inline(ln)


def arg(a):
    """Hex of an argument; long ones only by length (`#N`)."""
    return "#%d" % len(a) if len(a) > 64 else (a.hex() or "''")


def main(path):
    b = open(path, "rb").read()
    out = []
    if path.endswith(".c2s.bin"):
        for used, form, args in requests(b):
            out.append(" ".join([str(used), form] + [arg(a) for a in args]))
    else:
        p = 0
        while p < len(b):
            e, t, d, attr = value(b, p)
            out.append("%d %s %s%s" % (e - p, t, d, " attr" if attr else ""))
            p = e
    open(path[:-4] + ".txt", "w").write("\n".join(out) + "\n")


for a in sys.argv[1:]:
    main(a)

#!/usr/bin/env python3
"""Captures real ZooKeeper traffic for the codec tests.

Starts the real Apache ZooKeeper 3.8 server (scripts/capture/zookeeper-server.sh) on 127.0.0.1,
puts a recording TCP relay in front of it, and drives it with kazoo 2.11 (the project's virtualenv)
plus a few raw-socket calls for requests kazoo cannot make (SetWatches/SetWatches2 with xid -8, an
unknown opcode, four-letter words). Writes, per relayed connection N:

    filters/codec/testdata/zookeeper/connN.c2s.bin   client -> server bytes, exactly as relayed
    filters/codec/testdata/zookeeper/connN.s2c.bin   server -> client bytes
    filters/codec/testdata/zookeeper/frames.txt      one line per frame: where it is, what it is

Run from the repository root:  .venv/bin/python scripts/capture/zookeeper_capture.py
Every process it starts is stopped by PID at the end.
"""
import os
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
OUT = os.path.join(ROOT, "filters", "codec", "testdata", "zookeeper")
SERVER = os.path.join(ROOT, "scripts", "capture", "zookeeper-server.sh")


class Relay:
    """Accepts on 127.0.0.1, forwards to the server, records each direction per connection."""

    def __init__(self, upstream_port):
        self.upstream_port = upstream_port
        self.lsock = socket.socket()
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(16)
        self.port = self.lsock.getsockname()[1]
        self.conns = []  # [(c2s bytearray, s2c bytearray, [sockets])]
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                c, _ = self.lsock.accept()
            except OSError:
                return
            u = socket.create_connection(("127.0.0.1", self.upstream_port))
            rec = (bytearray(), bytearray(), [c, u])
            with self.lock:
                self.conns.append(rec)
            threading.Thread(target=self._pump, args=(c, u, rec[0]), daemon=True).start()
            threading.Thread(target=self._pump, args=(u, c, rec[1]), daemon=True).start()

    def _pump(self, src, dst, log):
        while True:
            try:
                data = src.recv(65536)
            except OSError:
                data = b""
            if not data:
                for s in (src, dst):
                    try:
                        s.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass
                return
            with self.lock:
                log.extend(data)
            try:
                dst.sendall(data)
            except OSError:
                return

    def drop_last(self):
        """Cuts the newest connection, as a network failure would."""
        with self.lock:
            socks = self.conns[-1][2]
        for s in socks:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def close(self):
        self.lsock.close()


# Requests kazoo 2.11 has no method for, sent through kazoo's own framing (client._call).
def _s(text):
    b = text.encode()
    return struct.pack("!i", len(b)) + b


def raw_call(zk, opcode, body=b""):
    # kazoo writes the opcode only when it is truthy; every opcode used here is non-zero.
    req = type("Req", (), {"type": opcode, "serialize": lambda self: body,
                           "deserialize": classmethod(lambda cls, b, o: (bytes(b[o:]), len(b)))})()
    ar = zk.handler.async_result()
    zk._call(req, ar)
    try:
        return ar.get(timeout=10)
    except Exception as e:  # server errors are part of what we capture
        return e


def kazoo_session(port, relay):
    from kazoo.client import KazooClient
    from kazoo.security import make_digest_acl

    events = []
    zk = KazooClient(hosts="127.0.0.1:%d" % port, timeout=4.0)
    zk.start(timeout=10)
    # auth (xid -4): digest credentials
    zk.add_auth("digest", "alice:secret")
    zk.ensure_path("/meltemi")  # exists / create
    eph = zk.create("/meltemi/eph-", b"e", ephemeral=True, sequence=True)
    print("ephemeral sequential:", eph)
    zk.create("/meltemi/node", b"hello")
    # get with a data watch, then set: the watch fires (xid -1, NodeDataChanged)
    data, stat = zk.get("/meltemi/node", watch=lambda ev: events.append(ev))
    zk.set("/meltemi/node", b"world", version=stat.version)
    # exists with a watch on a missing node (reply err NONODE), then create it: NodeCreated
    zk.exists("/meltemi/later", watch=lambda ev: events.append(ev))
    zk.create("/meltemi/later", b"")
    # children (getChildren2 in kazoo when include_data) with a watch; a new child fires it
    zk.get_children("/meltemi", watch=lambda ev: events.append(ev))
    zk.get_children("/meltemi", include_data=True)
    zk.create("/meltemi/child", b"c")
    # a get that fails: NONODE
    try:
        zk.get("/meltemi/missing")
    except Exception as e:
        print("expected:", type(e).__name__)
    # bad version on set: BADVERSION
    try:
        zk.set("/meltemi/node", b"x", version=99)
    except Exception as e:
        print("expected:", type(e).__name__)
    # multi that commits: create, check, setData, delete
    t = zk.transaction()
    t.create("/meltemi/tx", b"t")
    t.check("/meltemi/node", 1)
    t.set_data("/meltemi/node", b"again")
    t.delete("/meltemi/later")
    print("multi:", t.commit())
    # multi that fails on its second op (results carry per-op errors)
    t = zk.transaction()
    t.create("/meltemi/tx2", b"t")
    t.delete("/meltemi/nope")
    print("multi (fails):", t.commit())
    # ACLs, sync, large data
    acl = make_digest_acl("alice", "secret", all=True)
    zk.create("/meltemi/secure", b"s", acl=[acl])
    zk.get_acls("/meltemi/secure")
    zk.set_acls("/meltemi/secure", [acl], version=0)
    zk.sync("/meltemi")
    big = bytes((i * 7) & 0xFF for i in range(512 * 1024))
    zk.create("/meltemi/big", big)
    zk.get("/meltemi/big")
    # reconfig is disabled on a standalone server: RECONFIGDISABLED
    try:
        zk.reconfig(joining=None, leaving="3", new_members=None)
    except Exception as e:
        print("expected:", type(e).__name__)
    # opcodes kazoo has no method for
    print("whoAmI:", raw_call(zk, 107))
    print("getEphemerals:", raw_call(zk, 103, _s("/meltemi")))
    print("getAllChildrenNumber:", raw_call(zk, 104, _s("/meltemi")))
    print("addWatch:", raw_call(zk, 106, _s("/meltemi") + struct.pack("!i", 1)))  # PERSISTENT_RECURSIVE
    zk.set("/meltemi/child", b"c2")  # fires the persistent watch
    print("checkWatches:", raw_call(zk, 17, _s("/meltemi/node") + struct.pack("!i", 1)))
    print("removeWatches:", raw_call(zk, 18, _s("/meltemi") + struct.pack("!i", 3)))
    # createContainer (CreateRequest, flags 4) and createTTL (disabled by default: error)
    acl_open = struct.pack("!i", 1) + struct.pack("!i", 31) + _s("world") + _s("anyone")
    print("createContainer:", raw_call(zk, 19, _s("/meltemi/box") + struct.pack("!i", 1) + b"b" + acl_open + struct.pack("!i", 4)))
    print("createTTL:", raw_call(zk, 21, _s("/meltemi/ttl") + struct.pack("!i", 1) + b"t" + acl_open + struct.pack("!iq", 5, 60000)))
    # multiRead (22): getData and getChildren sub-ops, one of them on a missing node
    mh = lambda t: struct.pack("!iBi", t, 0, -1)
    body = mh(4) + _s("/meltemi/node") + b"\x00" + mh(8) + _s("/meltemi") + b"\x00" + mh(4) + _s("/meltemi/gone") + b"\x00" + struct.pack("!iBi", -1, 1, -1)
    print("multiRead:", raw_call(zk, 22, body))
    # create2 via kazoo (include_data)
    zk.create("/meltemi/c2", b"2", include_data=True)
    # idle long enough for kazoo's pings (xid -2)
    time.sleep(3.5)
    # network failure: kazoo reconnects with its session id and password
    relay.drop_last()
    time.sleep(3.0)
    zk.get("/meltemi/node")
    zk.delete("/meltemi", recursive=True)
    zk.stop()  # closeSession
    zk.close()
    print("watch events:", events)


def raw_frames_session(port):
    """A connection written by hand: SetWatches (xid -8), SetWatches2, an unknown opcode."""
    s = socket.create_connection(("127.0.0.1", port))

    def send(payload):
        s.sendall(struct.pack("!i", len(payload)) + payload)

    def recv():
        n = struct.unpack("!i", _recv_exact(s, 4))[0]
        return _recv_exact(s, n)

    send(struct.pack("!iqiqi", 0, 0, 30000, 0, 16) + b"\x00" * 16)  # no readOnly byte (3.4 style)
    recv()
    vec = lambda *ps: struct.pack("!i", len(ps)) + b"".join(_s(p) for p in ps)
    send(struct.pack("!ii", -8, 101) + struct.pack("!q", 0) + vec("/a") + vec("/b", "/c") + vec())
    recv()
    send(struct.pack("!ii", -8, 105) + struct.pack("!q", 0) + vec() + vec("/x") + vec() + vec("/p") + vec("/r"))
    recv()
    send(struct.pack("!ii", 7, 999) + _s("/mystery"))  # unknown opcode
    try:
        recv()
    except OSError:
        pass
    s.close()


def _recv_exact(s, n):
    b = b""
    while len(b) < n:
        chunk = s.recv(n - len(b))
        if not chunk:
            raise OSError("closed")
        b += chunk
    return b


def four_letter(port, word):
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(word)
    out = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        out += chunk
    s.close()
    return out


OPS = {0: "notification", 1: "create", 2: "delete", 3: "exists", 4: "getData", 5: "setData",
       6: "getACL", 7: "setACL", 8: "getChildren", 9: "sync", 11: "ping", 12: "getChildren2",
       13: "check", 14: "multi", 15: "create2", 16: "reconfig", 17: "checkWatches",
       18: "removeWatches", 19: "createContainer", 20: "deleteContainer", 21: "createTTL",
       22: "multiRead", 100: "auth", 101: "setWatches", 102: "sasl", 103: "getEphemerals",
       104: "getAllChildrenNumber", 105: "setWatches2", 106: "addWatch", 107: "whoAmI",
       -10: "createSession", -11: "closeSession", -1: "error"}


def describe(c2s, s2c):
    """One line per frame, for people reading the test data (the tests assert every field)."""
    lines = []
    for direction, buf in (("c2s", c2s), ("s2c", s2c)):
        off, first = 0, True
        if buf[:4].isalpha():
            lines.append("%s @0 four-letter word %r, then unframed text" % (direction, bytes(buf[:4])))
            continue
        while off + 4 <= len(buf):
            n = struct.unpack_from("!i", buf, off)[0]
            body = bytes(buf[off + 4: off + 4 + n])
            if first:
                what = "ConnectRequest" if direction == "c2s" else "ConnectResponse"
            elif direction == "c2s":
                xid, op = struct.unpack_from("!ii", body)
                what = "xid=%d op=%s" % (xid, OPS.get(op, "unknown(%d)" % op))
                if len(body) >= 12 and op not in (11, 14, 22, 100, 101, 105, 107, -11, 16):
                    ln = struct.unpack_from("!i", body, 8)[0]
                    if 0 <= ln <= len(body) - 12:
                        what += " path=%s" % body[12:12 + ln].decode()
            else:
                xid, zxid, err = struct.unpack_from("!iqi", body)
                what = "xid=%d zxid=%#x err=%d" % (xid, zxid, err)
                if xid == -1:
                    t, st, ln = struct.unpack_from("!iii", body, 16)
                    what += " event type=%d state=%d path=%s" % (t, st, body[28:28 + ln].decode())
            lines.append("%s @%d len=%d %s" % (direction, off, 4 + n, what))
            off += 4 + n
            first = False
    return lines


def main():
    os.makedirs(OUT, exist_ok=True)
    srv_dir = tempfile.mkdtemp(prefix="zk-capture-")
    port = int(subprocess.check_output([SERVER, "start", srv_dir]).decode().strip())
    relay = Relay(port)
    try:
        kazoo_session(relay.port, relay)
        time.sleep(0.5)
        raw_frames_session(relay.port)
        print("ruok:", four_letter(relay.port, b"ruok"))
        print("srvr:", four_letter(relay.port, b"srvr")[:60])
        time.sleep(0.5)
    finally:
        relay.close()
        subprocess.call([SERVER, "stop", srv_dir])
    with open(os.path.join(OUT, "frames.txt"), "w") as f:
        f.write("# Generated by scripts/capture/zookeeper_capture.py from Apache ZooKeeper 3.8.0\n")
        f.write("# (Debian zookeeper) and kazoo 2.11.0; offsets are into connN.<dir>.bin.\n")
        for i, (c2s, s2c, _) in enumerate(relay.conns, 1):
            for name, data in (("c2s", c2s), ("s2c", s2c)):
                with open(os.path.join(OUT, "conn%d.%s.bin" % (i, name)), "wb") as g:
                    g.write(bytes(data))
            f.write("\n## conn%d\n" % i)
            for line in describe(c2s, s2c):
                f.write(line + "\n")
    print("wrote", OUT)


if __name__ == "__main__":
    sys.exit(main())

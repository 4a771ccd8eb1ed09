#!/usr/bin/env python3
"""Captures real Kafka frames for filters/codec/testdata/kafka/ through a recording relay.

    .venv/bin/python scripts/capture/kafka_capture.py OUT_DIR
    .venv/bin/python scripts/capture/kafka_capture.py --annotate FILE.frames...  (oracle only)

Starts a tansu 0.6.0 broker (scripts/capture/kafka-broker.sh) on 127.0.0.1 that advertises the
relay's port, so every connection a client opens (bootstrap, partition leader, group
coordinator) passes the relay. The relay copies bytes unchanged both ways and records them; each
direction of each connection is then cut into frames by the 4-byte length prefix.

Clients, each in its own run (one output file per client):
  kafka-python 3.0.12: producer (plain and gzip), consumer group (join, sync, heartbeat, fetch,
                       commit, offset fetch, leave), metadata, api versions.
  confluent-kafka 2.16 (librdkafka 2.16.0): the same.

Output file OUT_DIR/<client>.frames, one frame per line:
  <conn> > <hex>    client to broker (request)
  <conn> < <hex>    broker to client (response)
then ` # ` and what an independent decoder here (this file, written from the Kafka protocol
guide, not from the Rust codec) says the header fields are; the Rust tests check the codec
against these.
"""
import asyncio
import os
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
BROKER_SH = os.path.join(HERE, "kafka-broker.sh")

# First version with flexible (KIP-482) encoding, per api key, for the oracle below. Taken from
# apache/kafka clients/src/main/resources/common/message/*Request.json ("flexibleVersions").
FLEX = {0: 9, 1: 12, 2: 6, 3: 9, 8: 8, 9: 6, 10: 3, 11: 6, 12: 4, 13: 4, 14: 4, 15: 5, 16: 3,
        18: 3, 19: 5, 20: 4, 21: 2, 22: 2, 23: 4, 24: 3, 25: 3, 26: 3, 28: 3, 32: 4, 36: 2,
        42: 2, 60: 0, 68: 0, 69: 0, 71: 0, 72: 0, 75: 0}


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


class Relay:
    """TCP relay on 127.0.0.1 that records each connection's bytes in both directions."""

    def __init__(self, listen_port, upstream_port):
        self.listen_port = listen_port
        self.upstream_port = upstream_port
        self.conns = []  # [conn_id, bytearray c2s, bytearray s2c]
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.ready = threading.Event()

    def _run(self):
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(self._serve())

    async def _serve(self):
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", self.listen_port)
        self.ready.set()
        async with self.server:
            try:
                await self.server.serve_forever()
            except asyncio.CancelledError:
                pass

    async def _pump(self, reader, writer, log):
        try:
            while True:
                data = await reader.read(65536)
                if not data:
                    break
                log.extend(data)
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            try:
                writer.close()
            except Exception:
                pass

    async def _handle(self, creader, cwriter):
        rec = [len(self.conns), bytearray(), bytearray()]
        self.conns.append(rec)
        ureader, uwriter = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        await asyncio.gather(self._pump(creader, uwriter, rec[1]), self._pump(ureader, cwriter, rec[2]))

    def start(self):
        self.thread.start()
        self.ready.wait(10)

    def stop(self):
        self.loop.call_soon_threadsafe(self.server.close)


def frames(buf):
    out, i = [], 0
    while i + 4 <= len(buf):
        n = struct.unpack(">i", buf[i:i + 4])[0]
        if i + 4 + n > len(buf):
            break
        out.append(bytes(buf[i:i + 4 + n]))
        i += 4 + n
    return out


def uvarint(b, i):
    v = s = 0
    while True:
        x = b[i]
        i += 1
        v |= (x & 0x7F) << s
        s += 7
        if x < 0x80:
            return v, i


def skip_tags(b, i):
    n, i = uvarint(b, i)
    for _ in range(n):
        _, i = uvarint(b, i)
        sz, i = uvarint(b, i)
        i += sz
    return i


def req_oracle(f):
    """Header of a request frame: (api_key, version, corr, client_id, header_len)."""
    key, ver, corr = struct.unpack(">hhi", f[4:12])
    i = 12
    cid = None
    if not (key == 7 and ver == 0):
        n = struct.unpack(">h", f[i:i + 2])[0]
        i += 2
        if n >= 0:
            cid = f[i:i + n].decode()
            i += n
    if key in FLEX and ver >= FLEX[key]:
        i = skip_tags(f, i)
    return key, ver, corr, cid, i


def string(b, i, flexible):
    if flexible:
        n, i = uvarint(b, i)
        n -= 1
    else:
        n = struct.unpack(">h", b[i:i + 2])[0]
        i += 2
    if n < 0:
        return None, i
    return b[i:i + n].decode(), i + n


def array_len(b, i, flexible):
    if flexible:
        n, i = uvarint(b, i)
        return n - 1, i
    return struct.unpack(">i", b[i:i + 4])[0], i + 4


def produce_topics(f, ver, i):
    flex = ver >= 9
    if ver >= 3:
        _, i = string(f, i, flex)
    i += 6  # acks, timeout
    n, i = array_len(f, i, flex)
    names = []
    for _ in range(n):
        if ver >= 13:
            names.append("id:" + f[i:i + 16].hex())
            i += 16
        else:
            name, i = string(f, i, flex)
            names.append(name)
        np_, i = array_len(f, i, flex)
        for _ in range(np_):
            i += 4
            if flex:
                sz, i = uvarint(f, i)
                sz -= 1
            else:
                sz = struct.unpack(">i", f[i:i + 4])[0]
                i += 4
            i += max(sz, 0)
            if flex:
                i = skip_tags(f, i)
        if flex:
            i = skip_tags(f, i)
    return names


def fetch_topics(f, ver, i):
    flex = ver >= 12
    if ver <= 14:
        i += 4
    i += 8
    if ver >= 3:
        i += 4
    if ver >= 4:
        i += 1
    if ver >= 7:
        i += 8
    n, i = array_len(f, i, flex)
    names = []
    for _ in range(n):
        if ver >= 13:
            names.append("id:" + f[i:i + 16].hex())
            i += 16
        else:
            name, i = string(f, i, flex)
            names.append(name)
        np_, i = array_len(f, i, flex)
        for _ in range(np_):
            i += 4 + (4 if ver >= 9 else 0) + 8 + (4 if ver >= 12 else 0) + (8 if ver >= 5 else 0) + 4
            if flex:
                i = skip_tags(f, i)
        if flex:
            i = skip_tags(f, i)
    return names


# Where the response body starts with an error code: offset 0, or 4 (after ThrottleTimeMs).
def err_offset(key, ver):
    if key in (17, 18, 36, 38, 39, 40, 41, 47):
        return 0
    if key in (10,):
        return 0 if ver == 0 else (4 if ver <= 3 else None)
    if key in (11,):
        return 0 if ver <= 1 else 4
    if key in (12, 13, 14, 16):
        return 0 if ver == 0 else 4
    if key == 1:
        return 4 if ver >= 7 else None
    if key in (22, 25, 26, 29, 60, 68, 71, 72):
        return 4
    return None


def describe(conn, direction, f, inflight):
    if direction == ">":
        key, ver, corr, cid, hlen = req_oracle(f)
        inflight[(conn, corr)] = (key, ver)
        d = f"key={key} v={ver} corr={corr} client={cid if cid is not None else '-'} hlen={hlen}"
        if key == 0:
            d += " topics=" + ",".join(produce_topics(f, ver, hlen))
        elif key == 1:
            d += " topics=" + ",".join(fetch_topics(f, ver, hlen))
        return d
    corr = struct.unpack(">i", f[4:8])[0]
    key, ver = inflight[(conn, corr)]
    flexible = key in FLEX and ver >= FLEX[key] and key != 18
    hlen = 8
    if flexible:
        hlen = skip_tags(f, 8)
    d = f"corr={corr} key={key} v={ver} hlen={hlen}"
    off = err_offset(key, ver)
    if off is not None:
        d += " err=%d" % struct.unpack(">h", f[hlen + off:hlen + off + 2])[0]
    return d


def run_kafka_python(port, topic, group):
    from kafka import KafkaConsumer, KafkaProducer, TopicPartition
    p = KafkaProducer(bootstrap_servers=f"127.0.0.1:{port}", client_id="meltemi-kp-producer", linger_ms=5)
    for i in range(4):
        p.send(topic, key=b"k%d" % i, value=b"hello kafka-python %d" % i, partition=i % 3)
    p.flush()
    p.close()
    p = KafkaProducer(bootstrap_servers=f"127.0.0.1:{port}", client_id="meltemi-kp-gzip", compression_type="gzip")
    p.send(topic, value=b"compressed " * 20, partition=0).get(timeout=10)
    p.close()
    c = KafkaConsumer(topic, bootstrap_servers=f"127.0.0.1:{port}", group_id=group,
                      client_id="meltemi-kp-consumer", auto_offset_reset="earliest",
                      enable_auto_commit=False, heartbeat_interval_ms=300, session_timeout_ms=6000)
    got, t0 = 0, time.time()
    while got < 5 and time.time() - t0 < 20:
        for _tp, msgs in c.poll(timeout_ms=500).items():
            got += len(msgs)
    c.commit()
    c.committed(TopicPartition(topic, 0))
    time.sleep(1.0)  # heartbeats
    c.topics()
    c.close()
    print(f"kafka-python consumed {got}")


def run_kafka_python_legacy(port, topic, group):
    # Pinned old protocol versions: non-flexible headers and bodies. The producer uses
    # api_version=(0, 11) (Produce v3: tansu, like Kafka 4, has no Produce v0-2), the consumer
    # (0, 10, 1) (Fetch v3, JoinGroup v1, Heartbeat v0, OffsetCommit v2).
    from kafka import KafkaConsumer, KafkaProducer
    kw = dict(bootstrap_servers=f"127.0.0.1:{port}", api_version=(0, 10, 1))
    p = KafkaProducer(client_id="meltemi-kp-legacy", bootstrap_servers=f"127.0.0.1:{port}",
                      api_version=(0, 11), retries=0)
    for i in range(3):
        p.send(topic, value=b"legacy %d" % i, partition=i % 3).get(timeout=10)
    p.close()
    c = KafkaConsumer(topic, group_id=group, client_id="meltemi-kp-legacy", auto_offset_reset="earliest",
                      enable_auto_commit=False, heartbeat_interval_ms=300, session_timeout_ms=6000, **kw)
    got, t0 = 0, time.time()
    while got < 3 and time.time() - t0 < 20:
        for _tp, msgs in c.poll(timeout_ms=500).items():
            got += len(msgs)
    c.commit()
    time.sleep(1.0)
    c.close()
    print(f"kafka-python legacy consumed {got}")


def run_confluent(port, topic, group):
    from confluent_kafka import Consumer, Producer
    from confluent_kafka.admin import AdminClient
    p = Producer({"bootstrap.servers": f"127.0.0.1:{port}", "client.id": "meltemi-ck-producer",
                  "linger.ms": 5})
    for i in range(4):
        p.produce(topic, key=b"k%d" % i, value=b"hello confluent %d" % i, partition=i % 3)
    p.flush(10)
    c = Consumer({"bootstrap.servers": f"127.0.0.1:{port}", "group.id": group,
                  "client.id": "meltemi-ck-consumer", "auto.offset.reset": "earliest",
                  "enable.auto.commit": False, "heartbeat.interval.ms": 300,
                  "session.timeout.ms": 6000})
    c.subscribe([topic])
    got, t0 = 0, time.time()
    while got < 4 and time.time() - t0 < 20:
        m = c.poll(0.5)
        if m is not None and m.error() is None:
            got += 1
    c.commit(asynchronous=False)
    time.sleep(1.0)
    c.close()
    a = AdminClient({"bootstrap.servers": f"127.0.0.1:{port}", "client.id": "meltemi-ck-admin"})
    a.list_topics(timeout=10)
    print(f"confluent-kafka consumed {got}")


def annotate(path):
    """Recomputes the oracle comments of an existing .frames file (bytes unchanged)."""
    lines, inflight = [], {}
    for line in open(path).read().splitlines():
        if line.startswith("#"):
            lines.append(line)
            continue
        conn, d, hx = line.split(" # ")[0].split()
        lines.append(f"{conn} {d} {hx} # {describe(int(conn), d, bytes.fromhex(hx), inflight)}")
    with open(path, "w") as fh:
        fh.write("\n".join(lines) + "\n")


def main():
    if sys.argv[1] == "--annotate":
        for p in sys.argv[2:]:
            annotate(p)
        return
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    for client, fn, topic in (("kafka-python", run_kafka_python, "orders"),
                              ("kafka-python-legacy", run_kafka_python_legacy, "legacy"),
                              ("confluent-kafka", run_confluent, "payments")):
        bport, rport = free_port(), free_port()
        state = tempfile.mkdtemp(prefix="tansu-")
        subprocess.run(["bash", BROKER_SH, "start", state, str(bport), str(rport), topic], check=True)
        relay = Relay(rport, bport)
        relay.start()
        try:
            fn(rport, topic, "meltemi-" + client)
        finally:
            time.sleep(0.5)
            relay.stop()
            subprocess.run(["bash", BROKER_SH, "stop", state], check=True)
        inflight = {}
        lines = [f"# {client}: captured through a recording relay against tansu 0.6.0 on 127.0.0.1",
                 "# <conn> <dir: > request, < response> <hex frame incl. length prefix> # oracle fields"]
        for conn, c2s, s2c in relay.conns:
            reqs, resps = frames(c2s), frames(s2c)
            # Requests precede their responses; interleave in order of correlation.
            for f in reqs:
                lines.append(f"{conn} > {f.hex()} # {describe(conn, '>', f, inflight)}")
            for f in resps:
                lines.append(f"{conn} < {f.hex()} # {describe(conn, '<', f, inflight)}")
        path = os.path.join(out, client + ".frames")
        with open(path, "w") as fh:
            fh.write("\n".join(lines) + "\n")
        print(f"wrote {path}: {len(lines) - 2} frames")


if __name__ == "__main__":
    main()

"""Captures Dubbo 2 frames between a real Python Dubbo client (dubbo-ssl-python) and the test
provider testkit/clients/dubbo_provider.py, on 127.0.0.1, into filters/codec/testdata/dubbo/.

Run: .venv/bin/python scripts/capture/dubbo_capture.py
Each frame is written as <seq>_<who>_<label>.bin plus an index (captured.txt) with what the
Python side decoded, which the Rust tests assert field by field.
"""
import os
import sys
import time

root = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.join(root, "testkit", "clients"))
from dubbo_provider import Provider, GREETING as SERVICE  # noqa: E402

import dubbo_ssl.connection.connections as connections  # noqa: E402
from dubbo_ssl.client import DubboClient  # noqa: E402

out = os.path.join(root, "filters", "codec", "testdata", "dubbo")
os.makedirs(out, exist_ok=True)
for old_name in os.listdir(out):
    if old_name.endswith(".bin") and ("_client_" in old_name or "_provider_" in old_name):
        os.remove(os.path.join(out, old_name))
seq = [0]
index = []


def record(who, frame, label, info=None):
    seq[0] += 1
    name = "%02d_%s_%s.bin" % (seq[0], who, label)
    with open(os.path.join(out, name), "wb") as f:
        f.write(frame)
    index.append("%s\t%d bytes\t%s" % (name, len(frame), repr(info) if info else ""))


# Only GreetingService is exported (the "Not found exported service" message lists it alone).
prov = Provider(record=record, services=(SERVICE,))
host = "127.0.0.1:%d" % prov.port
try:
    # Old-style dubbo version: plain response kinds (VALUE/NULL/EXCEPTION).
    old = DubboClient(SERVICE, group="g1", version="1.0.0", dubbo_version="2.4.10", host=host)
    print(old.call("sayHello", ["world"], timeout=5))
    print(old.call("getUser", [7], context={"traceId": "abc-123", "zone": "eu\u00e9"}, timeout=5))
    print(old.call("findNothing", [], timeout=5))
    try:
        old.call("fail", ["x"], timeout=5)
    except Exception as e:  # the client raises the Java exception it decoded
        print("exception:", e)
    try:
        DubboClient("org.meltemi.demo.Missing", group="g1", dubbo_version="2.4.10", host=host).call("sayHello", ["w"], timeout=5)
    except Exception as e:
        print("error status:", e)
    # Dubbo protocol version 2.0.2: the provider answers with *_WITH_ATTACHMENTS kinds, which this
    # Python client cannot read (it only knows 0/1/2), so it times out; the frames are what we want.
    new = DubboClient(SERVICE, group="", version="", dubbo_version="2.0.2", host=host)
    for m, a in (("sayHello", ["\u4e16\u754c"]), ("findNothing", []), ("fail", ["y"])):
        try:
            new.call(m, a, timeout=1)
        except Exception as e:
            print(m, "with attachments ->", type(e).__name__)
    # Heartbeats: the client sends one after TIMEOUT_IDLE seconds of silence; the provider also
    # sends one and the client answers it.
    # (the library forgets to initialise its per-host heartbeat counter; do it for it)
    connections.connection_pool.client_heartbeats.setdefault(host, 0)
    connections.TIMEOUT_IDLE = 0.3
    time.sleep(1.2)
    connections.TIMEOUT_IDLE = 60
    prov.send_heartbeat(424242)
    time.sleep(1.0)
finally:
    prov.stop()
with open(os.path.join(out, "captured.txt"), "w") as f:
    f.write("\n".join(index) + "\n")
print("\n".join(index))

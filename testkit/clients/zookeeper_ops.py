"""Real ZooKeeper client traffic for the end-to-end tests (kazoo 2.11).

Usage: zookeeper_ops.py HOST:PORT
Creates, gets, sets (with a data watch that fires), children with a child watch, ephemeral and
sequential nodes, a multi (transaction), deletes. Prints one JSON line with what it saw.
"""
import json
import sys
import threading

from kazoo.client import KazooClient

zk = KazooClient(hosts=sys.argv[1], timeout=10)
zk.start(timeout=15)
fired = []
ev = threading.Event()


def on_data(event):
    fired.append(event.type)
    ev.set()


zk.create("/meltemi", b"v0")
data, _ = zk.get("/meltemi", watch=on_data)
zk.set("/meltemi", b"v1")
ev.wait(5)
eph = zk.create("/meltemi/eph", b"e", ephemeral=True)
seq = zk.create("/meltemi/seq-", b"s", sequence=True)
children = zk.get_children("/meltemi")
exists = zk.exists("/meltemi/eph") is not None
tx = zk.transaction()
tx.create("/meltemi/tx1", b"1")
tx.set_data("/meltemi", b"v2")
results = tx.commit()
try:
    zk.get("/does-not-exist")
    missing = "found"
except Exception as e:  # NoNodeError: an error reply
    missing = type(e).__name__
zk.delete("/meltemi", recursive=True)
zk.stop()
zk.close()
print(json.dumps({"data": data.decode(), "watch_fired": len(fired), "children": len(children),
                  "exists": exists, "tx": len(results), "missing": missing,
                  "eph": eph, "seq": seq.startswith("/meltemi/seq-")}))

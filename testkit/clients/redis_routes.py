"""redis-py through the Meltemi Redis router: SET/GET/MGET/DEL and a pipeline on one client.

Usage: redis_routes.py PORT KEY... ; prints one JSON object with what the client saw.
"""
import json
import sys

import redis

port = int(sys.argv[1])
keys = sys.argv[2:]
# RESP2: the router speaks RESP2 to clients (redis-py 8 defaults to RESP3 and gets NOPROTO).
try:
    redis.Redis(host="127.0.0.1", port=port, socket_timeout=5, protocol=3).ping()
    out_resp3 = "accepted"
except redis.ResponseError as e:
    out_resp3 = str(e)
r = redis.Redis(host="127.0.0.1", port=port, socket_timeout=5, protocol=2)
out = {"resp3": out_resp3}
for k in keys:
    r.set(k, "py-" + k)
out["get"] = [r.get(k).decode() for k in keys]
out["mget"] = [v.decode() if v is not None else None for v in r.mget(keys + ["py:missing"])]
p = r.pipeline(transaction=False)
for i in range(16):
    p.get(keys[i % len(keys)])
out["pipeline"] = [v.decode() for v in p.execute()]
try:
    r.execute_command("KEYS", "*")
    out["keys"] = "no error"
except redis.ResponseError as e:
    out["keys"] = str(e)
out["after_error"] = r.ping()
out["exists"] = r.exists(*keys)
out["del"] = r.delete(*keys)
print(json.dumps(out))

"""Real Dubbo 2 client traffic for the end-to-end tests (dubbo-ssl-python 0.9.6, Hessian2).

Usage: dubbo_calls.py HOST:PORT
Against dubbo_provider.py, on the library's one pooled connection: GreetingService sayHello x3,
getUser x2, findNothing (null result), fail x2 (the provider throws: an exception result),
noSuchMethod (status SERVICE_ERROR); EchoService sayHello x2 (same method name, other service);
a service nobody exports (status SERVICE_ERROR). Then it stays idle until the provider's heartbeat
arrives (the library answers it), and lets the library send its own heartbeats for a moment.
Prints one flat JSON object: every call by service and method with the outcome the client saw
(`call.<service>:<method>.total|success|exception|error`), the frames it wrote by kind
(`wrote.calls|heartbeat_requests|heartbeat_answers`), and whether each heartbeat phase happened.
"""
import json
import logging
import sys
import time

import dubbo_ssl.connection.connections as connections
from dubbo_ssl.client import DubboClient
from dubbo_ssl.common.exceptions import DubboResponseException

import dubbo_wire

logging.basicConfig(level=logging.CRITICAL)
# Strings of any length, chunked as Java writes them (the library's own string code is not).
dubbo_wire.install()
host = sys.argv[1]
GREETING, ECHO = dubbo_wire.GREETING, dubbo_wire.ECHO
MISSING = "org.meltemi.demo.MissingService"

wrote = dict(calls=0, heartbeat_requests=0, heartbeat_answers=0)


class BusinessException(DubboResponseException):
    """An exception result (the provider's method threw), as opposed to a non-OK status."""


# The library raises DubboResponseException for both; tell them apart where it decodes them.
_parse_error = connections.BaseConnectionPool._parse_error
connections.BaseConnectionPool._parse_error = staticmethod(
    lambda res: BusinessException(str(_parse_error(res))))

# Count every frame the library writes by its flag byte (one frame per write).
_write = connections.Connection.write


def write(self, data):
    flag = data[2]
    if flag & 0x80 and flag & 0x20:
        wrote["heartbeat_requests"] += 1
    elif flag & 0x80:
        wrote["calls"] += 1
    elif flag & 0x20:
        wrote["heartbeat_answers"] += 1
    return _write(self, data)


connections.Connection.write = write

calls = {}


def call(service, method, args):
    c = calls.setdefault("%s:%s" % (service, method),
                         dict(total=0, success=0, exception=0, error=0))
    c["total"] += 1
    client = DubboClient(service, group="", version="1.0.0", dubbo_version="2.4.10", host=host)
    try:
        client.call(method, args, timeout=5)
        c["success"] += 1
    except BusinessException:
        c["exception"] += 1
    except DubboResponseException:
        c["error"] += 1


def wait(cond, seconds):
    deadline = time.time() + seconds
    while not cond() and time.time() < deadline:
        time.sleep(0.02)
    return cond()


for i in range(3):
    call(GREETING, "sayHello", ["world-%d" % i])
call(GREETING, "getUser", [7])
call(GREETING, "getUser", [8])
call(GREETING, "findNothing", [])
call(GREETING, "fail", ["x"])
call(GREETING, "fail", ["y"])
call(GREETING, "noSuchMethod", ["z"])
call(ECHO, "sayHello", ["a"])
call(ECHO, "sayHello", ["b"])
call(MISSING, "sayHello", ["c"])

# The provider sends a heartbeat once the connection is idle; the library answers it.
provider_heartbeat = wait(lambda: wrote["heartbeat_answers"] >= 1, 5)

# The library's own heartbeats: after TIMEOUT_IDLE seconds without reading anything. (It forgets
# to initialise its per-host counter of unanswered heartbeats; do it for it.)
pool = connections.connection_pool
pool.client_heartbeats.setdefault(host, 0)
connections.TIMEOUT_IDLE = 0.2
client_heartbeats = wait(lambda: wrote["heartbeat_requests"] >= 2, 5)
connections.TIMEOUT_IDLE = 60
time.sleep(0.1)  # a check already past its idle test still sends
answered = wait(lambda: pool.client_heartbeats[host] == 0, 5)
time.sleep(0.1)

pool._connection_pool[host].close()
# One flat object (the test reads it without a JSON library).
out = dict(provider_heartbeat=provider_heartbeat, client_heartbeats=client_heartbeats,
           heartbeats_answered=answered)
for name, c in calls.items():
    for k, v in c.items():
        out["call.%s.%s" % (name, k)] = v
for k, v in wrote.items():
    out["wrote.%s" % k] = v
print(json.dumps(out, sort_keys=True))

"""Large Dubbo 2 payloads from a real client (dubbo-ssl-python 0.9.6 with the string fixes of
dubbo_wire.py), for the end-to-end tests.

Usage: dubbo_large.py HOST:PORT CHARS...
Against dubbo_provider.py, on the library's one pooled connection: per CHARS, one
GreetingService.sayHello and one EchoService.sayHello whose argument is a string of CHARS
characters (ASCII with 'z'..'~', 2- and 3-byte characters and a few above U+FFFF, so chunks
carry multi-byte data and a surrogate pair sits near chunk ends). Each reply must be the exact
string the provider builds ("Hello, " / "echo: " + argument).
Prints one flat JSON object: `calls`, `exact` (replies equal to what was expected), `wrong`,
`failed` (the call raised), and `chars` (characters sent in all).
"""
import json
import logging
import sys

import dubbo_wire
from dubbo_ssl.client import DubboClient

logging.basicConfig(level=logging.CRITICAL)
dubbo_wire.install()
host = sys.argv[1]
GREETING, ECHO = dubbo_wire.GREETING, dubbo_wire.ECHO
PATTERN = "abcxyz{|}~ 0123\u00e9\u00df\u4e16\u754c\U0001F600-"


def payload(chars):
    s = (PATTERN * (chars // len(PATTERN) + 1))[:chars]
    return s


out = dict(calls=0, exact=0, wrong=0, failed=0, chars=0)
for chars in map(int, sys.argv[2:]):
    arg = payload(chars)
    for service, prefix in ((GREETING, "Hello, "), (ECHO, "echo: ")):
        out["calls"] += 1
        out["chars"] += len(arg)
        client = DubboClient(service, group="", version="1.0.0", dubbo_version="2.4.10",
                             host=host)
        try:
            reply = client.call("sayHello", [arg], timeout=30)
        except Exception as e:  # noqa: BLE001 - any failure is counted and shown
            out["failed"] += 1
            print("%s sayHello(%d chars) failed: %r" % (service, chars, e), file=sys.stderr)
            continue
        if reply == prefix + arg:
            out["exact"] += 1
        else:
            out["wrong"] += 1
            print("%s sayHello(%d chars): %d chars back, first difference at %s" % (
                service, chars, len(reply),
                next((i for i, (a, b) in enumerate(zip(reply, prefix + arg)) if a != b),
                     min(len(reply), len(prefix + arg)))), file=sys.stderr)
print(json.dumps(out, sort_keys=True))

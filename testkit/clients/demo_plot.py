"""The demo's picture (matplotlib from the project's virtualenv, Agg backend, no display).

Usage: demo_plot.py DATA.json OUT.png
DATA.json (written by meltemi-demo from Prometheus range queries, /api/v1/query_range):
  {"versions": {"v1": [[t, req/s], ...], ...}, "rewrite": t, "landed": t,
   "latency": {".so GET p50": ms, ...}, "t0": t}
Left: requests per second per version through the live route change; right: latency
percentiles per Redis command as each artifact (.so, .wasm) measured them.
"""
import json
import math
import sys


def real(pts, t0):
    """(xs, ys) of the points with a value (Prometheus's NaN arrives as JSON null)."""
    ok = [(t - t0, v) for t, v in pts if v is not None and not math.isnan(v)]
    return [x for x, _ in ok], [y for _, y in ok]


import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

data = json.load(open(sys.argv[1]))
fig, (a, b) = plt.subplots(1, 2, figsize=(13, 4.8), constrained_layout=True)

t0 = data["t0"]
for name, pts in sorted(data["versions"].items()):
    xs, ys = real(pts, t0)
    a.plot(xs, ys, marker="o", markersize=3, label=name)
a.axvline(data["rewrite"] - t0, color="grey", linestyle="--", label="MetaRouter rewritten: 100 % v2")
a.axvline(data["landed"] - t0, color="black", linestyle=":", label="change landed on the connection")
a.set_title("Thrift calls per version, ONE live connection (90/10, then 100 % v2)")
a.set_xlabel("seconds")
a.set_ylabel("requests/s (PromQL rate over 2 s)")
a.set_ylim(bottom=0)
a.grid(alpha=0.3)
a.legend(fontsize=8, loc="center left")

groups, quantiles = [], ["p50", "p90", "p99"]
for name in data["latency"]:
    g = name.rsplit(" ", 1)[0]
    if g not in groups:
        groups.append(g)
groups.sort(key=lambda g: (g.split()[1], g.split()[0]))
width = 0.8 / len(quantiles)
for i, q in enumerate(quantiles):
    vals = [data["latency"].get("%s %s" % (g, q)) or 0 for g in groups]
    xs = [j + (i - 1) * width for j in range(len(groups))]
    bars = b.bar(xs, vals, width, label=q)
    b.bar_label(bars, labels=["%.2f" % v for v in vals], fontsize=7, padding=1)
b.set_xticks(range(len(groups)), groups)
b.set_yscale("log")
b.set_title("Redis latency per command, redis-benchmark through Envoy")
b.set_ylabel("ms (histogram_quantile of the filters' latency_us)")
b.grid(alpha=0.3, axis="y")
b.legend(fontsize=8)

fig.suptitle("Meltemi on Envoy 1.40, from Prometheus (1 s scrapes of /stats/prometheus)")
fig.savefig(sys.argv[2], dpi=110)

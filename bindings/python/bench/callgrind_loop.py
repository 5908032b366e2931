"""The loop ``callgrind.sh`` counts: ``python3 callgrind_loop.py WHAT N`` runs
N calls of one hot-path operation (WHAT: pass, inc, labels, labelsonly, observe)
on promshm's metrics, or prometheus_client's (single-process) with PEER=1."""

import gc
import os
import sys

gc.disable()
if os.environ.get("PEER") == "1":
    import prometheus_client as pc
else:
    import promshm as pc  # noqa: E402

reg = pc.CollectorRegistry()
c = pc.Counter("cg_plain", "P.", registry=reg)
cl = pc.Counter("cg_lab", "L.", ["method", "path"], registry=reg)
h = pc.Histogram("cg_hist", "H.", registry=reg)
cl.labels("GET", "/").inc()
STATEMENTS = {
    "pass": "pass",
    "inc": "c.inc()",
    "labels": "cl.labels('GET', '/').inc()",
    "labelsonly": "cl.labels('GET', '/')",
    "observe": "h.observe(0.1)",
}
what, n = sys.argv[1], int(sys.argv[2])
# In a function, as timeit runs it: the metrics are globals, the loop variable a local.
namespace = {"c": c, "cl": cl, "h": h}
exec(compile(f"def loop(n):\n    for _ in range(n):\n        {STATEMENTS[what]}\n", "loop", "exec"), namespace)
namespace["loop"](n)

"""Run by test_prometheus_client_backend.py in a fresh interpreter: unmodified
prometheus_client metrics (REGISTRY and a fresh CollectorRegistry) updated in
4 forked multiprocessing children x 1000; prints the parent's scrapes as JSON.

argv[1]: "install" (promshm.prometheus_client_backend.install() first),
"env" (only $PROMSHM_PROMETHEUS_CLIENT and the .pth hook) or "none"."""

import json
import multiprocessing as mp
import sys
import time

how = sys.argv[1]
if how == "install":
    from promshm import prometheus_client_backend

    prometheus_client_backend.install()

from prometheus_client import (  # noqa: E402
    REGISTRY,
    CollectorRegistry,
    Counter,
    Enum,
    Gauge,
    Histogram,
    Info,
    Summary,
    generate_latest,
    multiprocess,
)

N, ROUNDS = 4, 1000
MODES = ["all", "liveall", "min", "livemin", "max", "livemax", "sum", "livesum", "mostrecent", "livemostrecent"]
MODES = [m for m in MODES if m in Gauge._MULTIPROC_MODES]  # mostrecent: prometheus_client >= 0.18
fresh = CollectorRegistry()
requests = Counter("bk_requests", "Requests.", ["path"])
plain = Counter("bk_plain_total", "Plain counter.", registry=fresh)
latency = Histogram("bk_latency_seconds", "Latency.", ["path"], buckets=(0.1, 1.0, 10.0))
sizes = Summary("bk_sizes_bytes", "Sizes.", registry=fresh)
gauges = {m: Gauge(f"bk_gauge_{m}_mode", f"Gauge {m}.", ["who"], multiprocess_mode=m, registry=fresh) for m in MODES}
renamed = Gauge("bk_applied_total", "A gauge named like a counter.", multiprocess_mode="max", registry=fresh)
build = Info("bk_build", "Build.", registry=fresh)
phase = Enum("bk_phase", "Phase.", ["who"], states=["starting", "running", "stopped"])


def work(n: int, ready, done, order) -> None:
    for i in range(ROUNDS):
        requests.labels("/a" if i % 2 else "/b").inc()
        plain.inc(0.5)
        latency.labels("/a").observe(0.5)
        sizes.observe(2)
    for m, g in gauges.items():
        if m.endswith("mostrecent"):
            continue
        g.labels("kids").set(n + 1)
    renamed.set(n + 1)
    build.info({"version": "1.2.3"})
    phase.labels("kids").state("running")
    # mostrecent: the children set in turn, child 3 last
    order[n].wait(30)
    for m in ("mostrecent", "livemostrecent"):
        if m in gauges:
            gauges[m].labels("kids").set(10 * (n + 1))
    if n + 1 < N:
        time.sleep(0.005)  # promshm stamps mostrecent to the millisecond
        order[n + 1].set()
    ready.release()
    done[n].wait(30)


def scrapes():
    out = {"default": generate_latest(REGISTRY).decode(), "fresh": generate_latest(fresh).decode()}
    if how != "none":  # prometheus_client alone needs PROMETHEUS_MULTIPROC_DIR for it
        mpreg = CollectorRegistry()
        multiprocess.MultiProcessCollector(mpreg)
        out["multiprocess"] = generate_latest(mpreg).decode()
    return out


if __name__ == "__main__":
    ctx = mp.get_context("fork")
    ready = ctx.Semaphore(0)
    done = [ctx.Event() for _ in range(N)]
    order = [ctx.Event() for _ in range(N)]
    order[0].set()
    kids = [ctx.Process(target=work, args=(n, ready, done, order)) for n in range(N)]
    for k in kids:
        k.start()
    for _ in range(N):
        if not ready.acquire(timeout=60):
            break
    alive = scrapes()
    # the last child (the largest value, and the most recent) exits first
    done[N - 1].set()
    kids[N - 1].join(30)
    one_exited = scrapes()
    for d in done:
        d.set()
    for k in kids:
        k.join(30)
    pids = [k.pid for k in kids]
    print(json.dumps({"alive": alive, "one_exited": one_exited, "exited": scrapes(), "codes": [k.exitcode for k in kids], "modes": MODES, "pids": pids}))

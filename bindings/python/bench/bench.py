#!/usr/bin/env python3
"""Benchmark the Python binding against prometheus_client, in one run.

    PYTHONPATH=bindings/python PROMSHM_LIBRARY=target/release/libpromshm.so \
        python3 bindings/python/bench/bench.py [--quick] [--rounds N]

Hot path (timeit, best of N repeats, nanoseconds per call, single thread):
``inc()`` on an unlabelled counter, ``labels('GET', '/').inc()`` (two labels,
cached series) and ``observe()`` on a histogram, for

* promshm with its C fast path (``promshm._speedups``, the default when
  built), buffered updates (the default) and eager (``PROMSHM_EAGER=1``),
* promshm through ctypes only (``PROMSHM_NO_SPEEDUPS=1``), buffered,
* prometheus_client single-process mode,
* prometheus_client multiprocess mode (``PROMETHEUS_MULTIPROC_DIR`` in a
  temporary directory).

Each variant runs in its own fresh interpreter (prometheus_client reads its
mode at import).

Scrape: 8 worker processes each update the same 10,000 counter series; then
the time to render them all (best of N), promshm (``generate_latest()``)
against prometheus_client multiprocess mode (``generate_latest`` of a registry
with a ``MultiProcessCollector``), and the bytes of storage each took (blocks
allocated to the area file, or to the multiprocess directory's files). The
same again with 10,000 ``sum`` gauge series.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import timeit
from typing import Any, Dict, List

WORKERS = 8
SERIES = 10_000


def hot(kind: str, number: int, repeat: int) -> Dict[str, float]:
    if kind.startswith("promshm"):
        import promshm as pc
        from promshm import _native

        want = "ctypes" if os.environ.get("PROMSHM_NO_SPEEDUPS") == "1" else "extension"
        if _native.IMPLEMENTATION != want:
            sys.exit(f"{kind}: promshm uses {_native.IMPLEMENTATION}, not {want} (build it: see promshm/_native.py)")
        reg: Any = pc.CollectorRegistry()
    else:
        import prometheus_client as pc

        reg = pc.CollectorRegistry()
    c = pc.Counter("bench_plain", "Plain.", registry=reg)
    cl = pc.Counter("bench_labelled", "Labelled.", ["method", "path"], registry=reg)
    h = pc.Histogram("bench_hist", "Histogram.", registry=reg)
    g = pc.Gauge("bench_gauge", "Gauge.", registry=reg)
    cl.labels("GET", "/").inc()
    out = {}
    for name, stmt in (
        ("empty loop (`pass`)", "pass"),
        ("inc()", "c.inc()"),
        ("labels('GET', '/').inc()", "cl.labels('GET', '/').inc()"),
        ("observe(0.1)", "h.observe(0.1)"),
        ("gauge set(1.5)", "g.set(1.5)"),
    ):
        t = timeit.repeat(stmt, globals={"c": c, "cl": cl, "h": h, "g": g}, number=number, repeat=repeat)
        out[name] = min(t) / number * 1e9
    if kind.startswith("promshm"):
        pc.flush()
        assert c.get() == number * repeat, (c.get(), number * repeat)
        assert cl.labels("GET", "/").get() == number * repeat + 1
    return out


# The parent's family, inherited by the forked workers (registering the same
# name again in the inherited REGISTRY is a duplicate, as in prometheus_client).
_SCRAPE_FAMILY: Any = None


def _scrape_family(pc: Any, metric: str) -> Any:
    """The scrape benchmark's family: a counter, or a `sum` gauge (dead
    workers' values kept, as a counter's; prometheus_client keeps one file a
    process for both)."""
    if metric == "gauge":
        return pc.Gauge("bench_scrape", "Series for the scrape benchmark.", ["id"], multiprocess_mode="sum")
    return pc.Counter("bench_scrape", "Series for the scrape benchmark.", ["id"])


def _scrape_worker(kind: str, series: int, metric: str) -> None:
    if kind == "promshm":
        import promshm as pc

        c = _SCRAPE_FAMILY
    else:
        import prometheus_client as pc

        c = _scrape_family(pc, metric)
    for i in range(series):
        c.labels(str(i)).inc()
    if kind == "promshm":
        pc.flush()


def scrape(kind: str, series: int, workers: int, repeat: int, metric: str = "counter") -> Dict[str, float]:
    import multiprocessing as mp

    global _SCRAPE_FAMILY
    if kind == "promshm":
        import promshm as pc

        _SCRAPE_FAMILY = _scrape_family(pc, metric)
    ctx = mp.get_context("fork")
    t0 = time.perf_counter()
    procs = [ctx.Process(target=_scrape_worker, args=(kind, series, metric)) for _ in range(workers)]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
        assert p.exitcode == 0
    fill = time.perf_counter() - t0
    if kind == "promshm":
        gen = lambda: pc.generate_latest()  # noqa: E731
    else:
        import prometheus_client as pcl
        from prometheus_client import multiprocess

        registry = pcl.CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        gen = lambda: pcl.generate_latest(registry)  # noqa: E731
    text = gen()
    sample = "bench_scrape_total" if metric == "counter" else "bench_scrape"
    assert text.count(f"{sample}{{".encode()) == series, text.count(f"{sample}{{".encode())
    wants = [f'{sample}{{id="0"}} {v}'.encode() for v in (workers, float(workers))]
    assert any(w in text for w in wants), text[:300]
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        gen()
        times.append(time.perf_counter() - t)
    return {"scrape_ms": min(times) * 1000, "fill_s": fill, "bytes": len(text), "store_bytes": _store_bytes(kind)}


def _store_bytes(kind: str) -> int:
    """Bytes of storage the workers' series take: the blocks allocated to the
    area file (promshm, and prometheus_client through promshm's backend,
    which has no multiprocess directory) or to the multiprocess directory's
    files."""
    d = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if kind == "promshm" or not d:
        paths = [p for p in [os.environ.get("PROMSHM_AREA")] if p]
    else:
        paths = [os.path.join(d, f) for f in os.listdir(d)]
    return sum(os.stat(p).st_blocks * 512 for p in paths if os.path.isfile(p))


def mib(n: float) -> str:
    """Bytes as MiB with two decimals."""
    return f"{n / (1 << 20):.2f} MiB"


def child(args: argparse.Namespace) -> None:
    if args.what == "hot":
        res = hot(args.kind, args.number, args.repeat)
    else:
        metric = "gauge" if args.what == "scrape-gauge" else "counter"
        res = scrape(args.kind, args.series, args.workers, args.repeat, metric)
    print(json.dumps(res))


def run_child(kind: str, what: str, env_extra: Dict[str, str], args: argparse.Namespace) -> Dict[str, float]:
    env = dict(os.environ)
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    env.pop("prometheus_multiproc_dir", None)
    env.update(env_extra)
    cmd = [
        sys.executable, __file__, "--child", "--kind", kind, "--what", what,
        "--number", str(args.number), "--repeat", str(args.repeat),
        "--series", str(args.series), "--workers", str(args.workers),
    ]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        sys.exit(f"{kind}/{what} failed:\n{out.stdout}\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--kind", default="promshm")
    ap.add_argument("--what", default="hot")
    ap.add_argument("--quick", action="store_true", help="fewer iterations (smoke run)")
    ap.add_argument("--number", type=int, default=200_000)
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--series", type=int, default=SERIES)
    ap.add_argument("--workers", type=int, default=WORKERS)
    ap.add_argument("--rounds", type=int, default=3, help="rounds of all variants; the best of each is kept")
    ap.add_argument("--json", metavar="FILE", help="also write the figures as JSON (for scripts/bench.sh)")
    args = ap.parse_args()
    if args.child:
        child(args)
        return
    if args.quick:
        args.number, args.repeat, args.series, args.rounds = 20_000, 3, 1_000, 1

    tmp = tempfile.mkdtemp(prefix="promshm-bench-")
    runs: Dict[str, Dict[str, float]] = {}
    scrape_ps: Dict[str, float] = {}
    scrape_pc: Dict[str, float] = {}
    gauge_ps: Dict[str, float] = {}
    gauge_pc: Dict[str, float] = {}

    def keep_min(into: Dict[str, float], new: Dict[str, float]) -> None:
        for k, v in new.items():
            into[k] = min(into.get(k, v), v)

    try:
        # The variants take turns, round after round, and each keeps its best
        # figure: a burst of load on the machine then hits one round of all
        # variants, not one variant.
        for r in range(args.rounds):
            area = os.path.join(tmp, f"bench{r}.area")
            keep_min(runs.setdefault("promshm (buffered)", {}),
                     run_child("promshm", "hot", {"PROMSHM_AREA": area + "1", "PROMSHM_NO_SPEEDUPS": "0"}, args))
            keep_min(runs.setdefault("promshm (eager)", {}),
                     run_child("promshm-eager", "hot",
                               {"PROMSHM_AREA": area + "2", "PROMSHM_EAGER": "1", "PROMSHM_NO_SPEEDUPS": "0"}, args))
            keep_min(runs.setdefault("promshm ctypes (buffered)", {}),
                     run_child("promshm", "hot", {"PROMSHM_AREA": area + "4", "PROMSHM_NO_SPEEDUPS": "1"}, args))
            keep_min(runs.setdefault("prometheus_client", {}), run_child("pc", "hot", {}, args))
            mpdir = os.path.join(tmp, f"mp-hot{r}")
            os.mkdir(mpdir)
            keep_min(runs.setdefault("prometheus_client multiprocess", {}),
                     run_child("pc", "hot", {"PROMETHEUS_MULTIPROC_DIR": mpdir}, args))
            keep_min(scrape_ps, run_child("promshm", "scrape", {"PROMSHM_AREA": area + "3"}, args))
            mpdir2 = os.path.join(tmp, f"mp-scrape{r}")
            os.mkdir(mpdir2)
            keep_min(scrape_pc, run_child("pc-mp", "scrape", {"PROMETHEUS_MULTIPROC_DIR": mpdir2}, args))
            keep_min(gauge_ps, run_child("promshm", "scrape-gauge", {"PROMSHM_AREA": area + "5"}, args))
            mpdir3 = os.path.join(tmp, f"mp-gauge{r}")
            os.mkdir(mpdir3)
            keep_min(gauge_pc, run_child("pc-mp", "scrape-gauge", {"PROMETHEUS_MULTIPROC_DIR": mpdir3}, args))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    ops = list(next(iter(runs.values())).keys())
    lines: List[str] = []
    w = lines.append
    import promshm

    try:
        import prometheus_client

        pcv = getattr(prometheus_client, "__version__", None)
        if pcv is None:
            from importlib.metadata import version

            pcv = version("prometheus-client")
    except Exception:
        pcv = "?"
    w(f"Python {platform.python_version()} ({platform.machine()}, {os.cpu_count()} CPUs), promshm {promshm.__version__} "
      f"(C fast path; ctypes with PROMSHM_NO_SPEEDUPS=1), prometheus_client {pcv}; `bindings/python/bench/bench.py`"
      f"{' --quick' if args.quick else ''}: timeit, best of {args.rounds} rounds x {args.repeat} repeats x "
      f"{args.number:,} calls, one thread; each variant in a fresh interpreter.")
    w("")
    w("| operation | " + " | ".join(runs) + " |")
    w("| --- | " + " | ".join("---:" for _ in runs) + " |")
    for op in ops:
        label = op if op.startswith("empty") else f"`{op}`"
        w(f"| {label} | " + " | ".join(f"{r[op]:.0f} ns" for r in runs.values()) + " |")
    w("")
    base = runs["promshm (buffered)"]
    mp = runs["prometheus_client multiprocess"]
    sp = runs["prometheus_client"]
    hot_ops = [op for op in ops if not op.startswith("empty")]
    ct = runs["promshm ctypes (buffered)"]
    w("Speed-up of promshm (buffered) over prometheus_client: " + ", ".join(
        f"`{op}` {mp[op] / base[op]:.1f}x vs multiprocess, {sp[op] / base[op]:.1f}x vs single-process" for op in hot_ops[:3]) + ".")
    w("")
    w("| operation | promshm / prometheus_client | promshm ctypes / prometheus_client | C fast path speed-up over ctypes |")
    w("| --- | ---: | ---: | ---: |")
    for op in hot_ops:
        w(f"| `{op}` | {base[op] / sp[op]:.3f} | {ct[op] / sp[op]:.3f} | {ct[op] / base[op]:.1f}x |")
    w("")
    limits = {"inc()": 0.15, "labels('GET', '/').inc()": 0.1, "observe(0.1)": 0.1}
    w("Targets (issue 13, ratios to prometheus_client single-process in this run): " + "; ".join(
        f"`{op}` <= {lim}: {base[op] / sp[op]:.3f} -> {'met' if base[op] / sp[op] <= lim else 'NOT met'}"
        for op, lim in limits.items()) + ".")
    w("")
    w(f"Scrape of {args.series:,} counter series, each updated by all of {args.workers} worker processes "
      f"(best of {args.rounds} x {args.repeat}):")
    w("")
    w("| | promshm | prometheus_client multiprocess |")
    w("| --- | ---: | ---: |")
    w(f"| render (`generate_latest`) | {scrape_ps['scrape_ms']:.1f} ms | {scrape_pc['scrape_ms']:.1f} ms |")
    w(f"| exposition size | {scrape_ps['bytes'] / 1024:.0f} KiB | {scrape_pc['bytes'] / 1024:.0f} KiB |")
    w(f"| workers filling the series (wall) | {scrape_ps['fill_s']:.2f} s | {scrape_pc['fill_s']:.2f} s |")
    w(f"| store (blocks of the area file / of the multiprocess files) | {mib(scrape_ps['store_bytes'])} | "
      f"{mib(scrape_pc['store_bytes'])} |")
    w("")
    w(f"The same with {args.series:,} `sum` gauge series, each set by all of {args.workers} workers:")
    w("")
    w("| | promshm | prometheus_client multiprocess |")
    w("| --- | ---: | ---: |")
    w(f"| render (`generate_latest`) | {gauge_ps['scrape_ms']:.1f} ms | {gauge_pc['scrape_ms']:.1f} ms |")
    w(f"| store (blocks of the area file / of the multiprocess files) | {mib(gauge_ps['store_bytes'])} | "
      f"{mib(gauge_pc['store_bytes'])} |")
    w("")
    for metric, ps, pc_ in (("counters", scrape_ps, scrape_pc), ("gauges", gauge_ps, gauge_pc)):
        ratio = ps["store_bytes"] / pc_["store_bytes"]
        w(f"Target (issue 13, store for {metric}) <= 0.25x of prometheus_client's files: {ratio:.3f}x -> "
          f"{'met' if ratio <= 0.25 else 'NOT met'}.")
    w("")
    target_ok = base["inc()"] <= 300 and mp["inc()"] / base["inc()"] >= 4
    w(f"Targets (DESIGN.md): `inc()` <= 300 ns and >= 4x faster than prometheus_client multiprocess: "
      f"{base['inc()']:.0f} ns, {mp['inc()'] / base['inc()']:.1f}x -> {'met' if target_ok else 'NOT met'}.")
    print("\n".join(lines))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"hot": runs, "scrape": {"promshm": scrape_ps, "prometheus_client multiprocess": scrape_pc},
                       "scrape_gauge": {"promshm": gauge_ps, "prometheus_client multiprocess": gauge_pc}}, f, indent=1)


if __name__ == "__main__":
    main()

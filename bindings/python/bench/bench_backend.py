#!/usr/bin/env python3
"""prometheus_client multiprocess mode vs prometheus_client + promshm backend
vs promshm's own API (issue 10, item 2), in one run:

    PYTHONPATH=bindings/python PROMSHM_LIBRARY=target/release/libpromshm.so \
        python3 bindings/python/bench/bench_backend.py [--quick] [--rounds N]

The table adds the speed-up of the backend and of promshm's API over
prometheus_client's multiprocess mode (its time divided by theirs), then the
backend's hot path against prometheus_client's single-process mode (issue 13:
within 1.5x).

Hot path (ns per call, one thread): ``inc()``, ``labels('GET', '/').inc()``,
``observe(0.1)``, gauge ``set(1.5)``. Scrape: 8 worker processes each update
the same 10,000 counter series, then ``generate_latest`` of a registry with a
``MultiProcessCollector`` (prometheus_client, with or without the backend) or
promshm's ``generate_latest()``. The measuring code is bench.py's; each
variant runs in a fresh interpreter.
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
from typing import Dict, List

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402

VARIANTS = ["prometheus_client multiprocess", "prometheus_client + promshm backend", "promshm API"]


def scrape_promshm(series: int, workers: int, repeat: int) -> Dict[str, float]:
    """bench.scrape for promshm's own API: the workers update the counter
    the parent made (promshm refuses a second one of the same name)."""
    import multiprocessing as mp
    import time

    import promshm as pc

    c = pc.Counter("bench_scrape", "Series for the scrape benchmark.", ["id"])

    def work() -> None:
        for i in range(series):
            c.labels(str(i)).inc()
        pc.flush()

    ctx = mp.get_context("fork")
    t0 = time.perf_counter()
    procs = [ctx.Process(target=work) for _ in range(workers)]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
        assert p.exitcode == 0
    fill = time.perf_counter() - t0
    text = pc.generate_latest()
    assert text.count(b"bench_scrape_total{") == series
    assert f'bench_scrape_total{{id="0"}} {workers}'.encode() in text, text[:300]
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        pc.generate_latest()
        times.append(time.perf_counter() - t)
    return {"scrape_ms": min(times) * 1000, "fill_s": fill, "bytes": len(text)}


def child(args: argparse.Namespace) -> None:
    kind = args.kind
    if kind == "backend":
        from promshm import prometheus_client_backend

        prometheus_client_backend.install()
    base = "promshm" if kind == "promshm" else "pc"
    if args.what == "hot":
        res = bench.hot(base, args.number, args.repeat)
    else:
        if kind == "promshm":
            res = scrape_promshm(args.series, args.workers, args.repeat)
        else:
            res = bench.scrape("pc-mp", args.series, args.workers, args.repeat)
    print(json.dumps(res))


def run(kind: str, what: str, env_extra: Dict[str, str], args: argparse.Namespace) -> Dict[str, float]:
    env = dict(os.environ)
    for k in ("PROMETHEUS_MULTIPROC_DIR", "prometheus_multiproc_dir", "PROMSHM_PROMETHEUS_CLIENT", "PROMSHM_AREA"):
        env.pop(k, None)
    env.update(env_extra)
    cmd = [
        sys.executable, __file__, "--child", "--kind", kind, "--what", what,
        "--number", str(args.number), "--repeat", str(args.repeat),
        "--series", str(args.series), "--workers", str(args.workers),
    ]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False, timeout=1800)
    if out.returncode != 0:
        sys.exit(f"{kind}/{what} failed:\n{out.stdout}\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--kind", default="backend")
    ap.add_argument("--what", default="hot")
    ap.add_argument("--quick", action="store_true", help="fewer iterations (smoke run)")
    ap.add_argument("--number", type=int, default=200_000)
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--series", type=int, default=bench.SERIES)
    ap.add_argument("--workers", type=int, default=bench.WORKERS)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    if args.child:
        child(args)
        return
    if args.quick:
        args.number, args.repeat, args.series, args.rounds = 20_000, 3, 1_000, 1
    tmp = tempfile.mkdtemp(prefix="promshm-bench-backend-")
    hot: Dict[str, Dict[str, float]] = {v: {} for v in VARIANTS}
    scr: Dict[str, Dict[str, float]] = {v: {} for v in VARIANTS}
    single: Dict[str, float] = {}  # prometheus_client single-process, hot path only

    def keep_min(into: Dict[str, float], new: Dict[str, float]) -> None:
        for k, v in new.items():
            into[k] = min(into.get(k, v), v)

    try:
        for r in range(args.rounds):
            for i, (variant, kind) in enumerate(zip(VARIANTS, ("pc", "backend", "promshm"))):
                for what in ("hot", "scrape"):
                    extra = {"PROMSHM_DIR": tmp}
                    if kind == "pc":
                        d = os.path.join(tmp, f"mp-{what}-{r}")
                        os.mkdir(d)
                        extra["PROMETHEUS_MULTIPROC_DIR"] = d
                    else:
                        extra["PROMSHM_AREA"] = os.path.join(tmp, f"{kind}-{what}-{r}.area")
                    keep_min((hot if what == "hot" else scr)[variant], run(kind, what, extra, args))
            keep_min(single, run("pc", "hot", {"PROMSHM_DIR": tmp}, args))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    import promshm

    try:
        from importlib.metadata import version

        pcv = version("prometheus-client")
    except Exception:
        pcv = "?"

    lines: List[str] = []
    w = lines.append
    w(f"Python {platform.python_version()} ({platform.machine()}, {os.cpu_count()} CPUs), promshm {promshm.__version__}, "
      f"prometheus_client {pcv}; `bindings/python/bench/bench_backend.py`"
      f"{' --quick' if args.quick else ''}: best of {args.rounds} rounds x {args.repeat} repeats x {args.number:,} calls.")
    w("")
    # speed-ups over prometheus_client's multiprocess mode (x > 1: faster)
    ratios = [f"{VARIANTS[1]} speed-up", f"{VARIANTS[2]} speed-up"]
    w("| operation | " + " | ".join(VARIANTS + ratios) + " |")
    w("| --- | " + " | ".join("---:" for _ in VARIANTS + ratios) + " |")

    def row(label: str, vals: List[float], fmt: str) -> None:
        speedups = [f"{vals[0] / v:.2f}x" if v > 0 else "-" for v in vals[1:]]
        w(f"| {label} | " + " | ".join(fmt.format(v) for v in vals) + " | " + " | ".join(speedups) + " |")

    ops = [op for op in hot[VARIANTS[0]] if not op.startswith("empty")]
    for op in ops:
        row(f"`{op}`", [hot[v][op] for v in VARIANTS], "{:.0f} ns")
    row(f"scrape of {args.series:,} series x {args.workers} workers", [scr[v]["scrape_ms"] for v in VARIANTS], "{:.1f} ms")
    row("workers filling the series (wall)", [scr[v]["fill_s"] for v in VARIANTS], "{:.2f} s")
    w("")
    w(f"The backend against prometheus_client single-process (empty loop {single['empty loop (`pass`)']:.0f} ns):")
    w("")
    w("| operation | prometheus_client single-process | prometheus_client + promshm backend | ratio (target <= 1.5) |")
    w("| --- | ---: | ---: | ---: |")
    for op in ops:
        ratio = hot[VARIANTS[1]][op] / single[op]
        w(f"| `{op}` | {single[op]:.0f} ns | {hot[VARIANTS[1]][op]:.0f} ns | {ratio:.2f} {'met' if ratio <= 1.5 else 'NOT met'} |")
    print("\n".join(lines))


if __name__ == "__main__":
    main()

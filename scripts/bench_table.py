#!/usr/bin/env python3
"""Build the table of one scripts/bench.sh run from its raw figures.

    python3 scripts/bench_table.py target/bench [--quick] [--write docs/PERFORMANCE.md]

Reads core.txt (benches/core.rs: `id median best`), shared.txt / static.txt /
promcpp.txt (bench-c.sh: `name ns`), python.json (bench.py --json), ruby.txt
and callgrind.txt (`kind op instructions-per-call`). Prints the table (and
writes it to DIR/table.md); with --write, replaces the part of that file
between the markers below (the other sections are kept).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from typing import Dict, List, Optional

BEGIN = "<!-- scripts/bench.sh: begin (generated, do not edit by hand) -->"
END = "<!-- scripts/bench.sh: end -->"


def pairs(path: str) -> Dict[str, float]:
    """`name value` lines (the first value)."""
    out = {}
    with open(path) as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 2:
                out[parts[0]] = float(parts[1])
    return out


def ns(v: Optional[float]) -> str:
    if v is None:
        return "—"
    return f"{v:.0f} ns" if v >= 100 else f"{v:.3g} ns"


def ratio(a: Optional[float], b: Optional[float]) -> str:
    return f"{a / b:.2f}×" if a and b else "—"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("dir")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--write", metavar="FILE")
    a = ap.parse_args()
    d = a.dir
    core = pairs(os.path.join(d, "core.txt"))
    so, st, cpp = (pairs(os.path.join(d, f"{k}.txt")) for k in ("shared", "static", "promcpp"))
    rb = pairs(os.path.join(d, "ruby.txt"))
    with open(os.path.join(d, "python.json")) as f:
        py = json.load(f)
    cg: Dict[str, Dict[str, float]] = {"shared": {}, "static": {}}
    with open(os.path.join(d, "callgrind.txt")) as f:
        for line in f:
            kind, op, ir = line.split()
            cg[kind][op] = float(ir)

    def c(op: str) -> Optional[float]:
        return core.get(op)

    sizes = sorted({int(m.group(1)) for k in core if (m := re.match(r"render/promshm/prometheus_(\d+)k$", k))})
    small = f"{sizes[0]}k" if sizes else "10k"
    n_small = (sizes[0] if sizes else 10) * 1000

    def per_series(op: str) -> Optional[float]:
        v = core.get(op)
        return v / n_small if v is not None else None

    def irs(op: str) -> str:
        return f"{cg['static'].get(op, 0):.0f} (`.a`), {cg['shared'].get(op, 0):.0f} (`.so`) instr"

    fa, plain = so.get("fetch_add_shared"), so.get("plain_add")
    hot = py["hot"]
    pbuf, psp, pmp = hot["promshm (buffered)"], hot["prometheus_client"], hot["prometheus_client multiprocess"]
    sc = py["scrape"]
    rows: List[List[str]] = []
    w = rows.append
    w(["counter inc on a handle, C API, buffered",
       f"{ns(st.get('counter_inc'))} (`.a`), {ns(so.get('counter_inc'))} (`.so`); {irs('counter_inc')}",
       f"prometheus-cpp {ns(cpp.get('counter_inc'))}; Rust `prometheus-client` {ns(c('hot/prometheus_client/counter_u64_inc'))}",
       f"relaxed `fetch_add`, `MAP_SHARED` page {ns(fa)} ({cg['static'].get('fetch_add_shared', 0):.0f} instr); plain add {ns(plain)} ({cg['static'].get('plain_add', 0):.0f} instr)",
       f"{ratio(st.get('counter_inc'), fa)} (`.a`), {ratio(so.get('counter_inc'), fa)} (`.so`) of `fetch_add` (target ≤ 1×)"])
    w(["counter inc, eager (write-through), C API",
       f"{ns(st.get('counter_inc_eager'))} (`.a`), {ns(so.get('counter_inc_eager'))} (`.so`); {irs('counter_inc_eager')}",
       "", f"`fetch_add` {ns(fa)}",
       f"{ratio(st.get('counter_inc_eager'), fa)} (`.a`), {ratio(so.get('counter_inc_eager'), fa)} (`.so`) of `fetch_add` (target ≤ 1.5×)"])
    lab_c = [f"{ns(so.get('labels_inc'))} through C (`labels` + inc + free; {irs('labels_inc')})"]
    if "labels_by_values_inc" in so:
        lab_c.append(f"{ns(so.get('labels_by_values_inc'))} through C (`promshm_family_inc_by_values`; {irs('labels_by_values_inc')})")
    lab_c.append(f"{ns(c('resolve/promshm/labels_2_inc'))} in Rust (`labels(..)` + inc)")
    if c("resolve/promshm/inc_labels_2") is not None:
        lab_c.append(f"{ns(c('resolve/promshm/inc_labels_2'))} in Rust (`inc_labels`, no handle)")
    best_c = so.get("labels_by_values_inc", so.get("labels_inc"))
    tikv = c("resolve/prometheus/with_label_values_2_inc")
    w(["labelled inc, 2 label values looked up on every call", "; ".join(lab_c),
       f"Rust `prometheus` {ns(tikv)}; prometheus-cpp {ns(cpp.get('labels_inc'))}", "",
       f"C {ratio(best_c, tikv)}, Rust {ratio(c('resolve/promshm/labels_2_inc'), tikv)} (`inc_labels` "
       f"{ratio(c('resolve/promshm/inc_labels_2'), tikv)}) of `prometheus` (target ≤ 1.2×)"])
    pc_obs = c("hot/prometheus_client/histogram_observe")
    w(["histogram observe, 11 buckets, buffered",
       f"{ns(st.get('histogram_observe'))} (`.a`), {ns(so.get('histogram_observe'))} (`.so`), {ns(c('hot/promshm/histogram_observe_buffered'))} (Rust); {irs('histogram_observe')}",
       f"Rust `prometheus-client` {ns(pc_obs)}; prometheus-cpp {ns(cpp.get('histogram_observe'))}", "",
       f"C `.a` {ratio(st.get('histogram_observe'), pc_obs)}, Rust {ratio(c('hot/promshm/histogram_observe_buffered'), pc_obs)} of `prometheus-client` (target ≤ 0.6×)"])
    lc, lh = "local_counter_inc", "local_histogram_observe"
    w(["local handles (caller-owned; `static inline` in C, inline in Rust): counter inc, histogram observe (11 buckets)",
       f"C counter {ns(st.get(lc))} (`.a`), {ns(so.get(lc))} (`.so`), {cg['static'].get(lc, 0):.0f} instr; "
       f"C histogram {ns(st.get(lh))} (`.a`), {ns(so.get(lh))} (`.so`), {cg['static'].get(lh, 0):.0f} instr; "
       f"Rust counter {ns(c('hot/promshm/local_counter_inc'))}, histogram {ns(c('hot/promshm/local_histogram_observe'))}",
       f"Rust `prometheus` `LocalIntCounter` {ns(c('hot/prometheus/local_int_counter_inc'))}, `LocalHistogram` {ns(c('hot/prometheus/local_histogram_observe'))}",
       f"plain add {ns(plain)}",
       f"C counter {ratio(st.get(lc), plain)} (`.a`) of the plain add (target ≤ 2×); histogram C `.a` {ratio(st.get(lh), pc_obs)}, "
       f"Rust {ratio(c('hot/promshm/local_histogram_observe'), pc_obs)} of `prometheus-client`'s observe (target ≤ 0.6×)"])
    w([f"render, text 0.0.4, per series ({small} series, cargo bench)", ns(per_series(f"render/promshm/prometheus_{small}")),
       f"Rust `prometheus` `gather()` + text {ns(per_series(f'render/prometheus/gather_text_{small}'))}", "~60 bytes to write", ""])
    om_peer = per_series(f"render/prometheus_client/openmetrics_{small}")
    om = per_series(f"render/promshm/openmetrics_{small}")
    w([f"render, OpenMetrics, per series ({small} series, cargo bench)", ns(om),
       f"Rust `prometheus-client` encoder {ns(om_peer)}", "", f"{ratio(om, om_peer)} of `prometheus-client` (target < 1×)"])
    n_series = "1,000" if a.quick else "10,000"
    w([f"scrape {n_series} series written by 8 workers",
       f"{sc['promshm']['scrape_ms']:.2f} ms (Python)",
       f"Ruby prometheus-client-mmap {rb.get('scrape_ms', 0):.2f} ms; prometheus_client multiprocess {sc['prometheus_client multiprocess']['scrape_ms']:.1f} ms",
       "", f"Ruby / promshm {rb.get('scrape_ms', 0) / sc['promshm']['scrape_ms']:.1f}× (target ≥ 40×)"])
    mib = lambda b: f"{b / 1048576:.1f} MiB"  # noqa: E731
    w([f"store for {n_series} series, 8 workers", f"{mib(sc['promshm']['store_bytes'])} (blocks of the area file)",
       f"prometheus_client {mib(sc['prometheus_client multiprocess']['store_bytes'])} of files; Ruby mmap {mib(rb.get('store_bytes', 0))}",
       "", f"{ratio(sc['promshm']['store_bytes'], sc['prometheus_client multiprocess']['store_bytes'])} of prometheus_client (target ≤ 0.25×)"])
    gs = py.get("scrape_gauge")
    if gs:
        w([f"store for {n_series} `sum` gauge series, 8 workers", f"{mib(gs['promshm']['store_bytes'])} (blocks of the area file)",
           f"prometheus_client {mib(gs['prometheus_client multiprocess']['store_bytes'])} of files",
           "", f"{ratio(gs['promshm']['store_bytes'], gs['prometheus_client multiprocess']['store_bytes'])} of prometheus_client (target ≤ 0.25×)"])
    for op, label, target in (("inc()", "Python `inc()`", "0.15"), ("labels('GET', '/').inc()", "Python `labels(a, b).inc()`", "0.1"),
                              ("observe(0.1)", "Python `observe()`", "0.1")):
        w([label, ns(pbuf[op]), f"prometheus_client single-process {ns(psp[op])}, multiprocess {ns(pmp[op])}", "",
           f"{ratio(pbuf[op], psp[op])} of single-process (target ≤ {target}×)"])
    w(["Ruby prometheus-client-mmap, for scale", "", f"`increment` {ns(rb.get('inc'))}, with 2 labels {ns(rb.get('labels_inc'))}, `observe` {ns(rb.get('observe'))}", "", ""])

    def read(name: str) -> str:
        try:
            with open(os.path.join(d, name)) as f:
                return f.read().strip()
        except OSError:
            return "?"

    lines = [BEGIN, "",
             f"One run of `scripts/bench.sh{' --quick' if a.quick else ''}`: times are ns per operation (best of the C runs, "
             "criterion's median for cargo bench, timeit's best for Python); `instr` is instructions per call counted by "
             "`valgrind --tool=callgrind` (the loop's own increment and compare included), which do not depend on the load.",
             f"Load before: `{read('load-before.txt')}`; after: `{read('load-after.txt')}`.", ""]
    if a.quick:
        lines.append("(smoke run: tiny iteration counts; these numbers mean nothing)\n")
    lines += ["| operation | promshm | peers, same run | floor, same run | ratio |", "| --- | --- | --- | --- | --- |"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    lines += ["", END]
    table = "\n".join(lines)
    with open(os.path.join(d, "table.md"), "w") as f:
        f.write(table + "\n")
    print(table)
    if a.write:
        with open(a.write) as f:
            doc = f.read()
        if BEGIN in doc and END in doc:
            doc = doc[: doc.index(BEGIN)] + table + doc[doc.index(END) + len(END):]
        else:
            doc = doc.replace("\n## Results\n", "\n## All peers, one run (scripts/bench.sh)\n\n" + table + "\n\n## Results\n", 1)
        with open(a.write, "w") as f:
            f.write(doc)
    for r in rows:
        if "—" in r[1]:
            sys.exit(f"bench_table: a figure is missing in row {r[0]!r}")


if __name__ == "__main__":
    main()

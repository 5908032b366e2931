"""Exemplars across processes, through prometheus_client's API: promshm's
drop-in classes and the real prometheus_client with the promshm backend.
``Counter.inc(amount, exemplar={...})`` and ``Histogram.observe(v,
exemplar={...})`` store the exemplar in the shared area; 4 forked workers
write exemplars naming the worker and the round; the OpenMetrics page (parsed
back with ``prometheus_client.openmetrics.parser``) shows, on the counter and
on every bucket, an exemplar some worker wrote whole (its labels and its value
belong together), and the totals are exact."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from conftest import child_env

pytest.importorskip("prometheus_client")
from prometheus_client.openmetrics.parser import text_string_to_metric_families  # noqa: E402

WORKERS, ROUNDS = 4, 300
BOUNDS = (1.0, 2.0, 4.0)
BASE = (0.5, 1.5, 3.0, 8.0)  # worker w observes BASE[k] + w / 32, in bucket k

SCRIPT = """
import multiprocessing as mp, os, sys
BACKEND = %(backend)r
if BACKEND:
    import promshm.prometheus_client_backend as pcb
    pcb.install()
    import prometheus_client as pc
    from prometheus_client.openmetrics.exposition import generate_latest
    C = pc.Counter("jobs", "Jobs.", ["route"])
    H = pc.Histogram("latency", "Latency.", buckets=%(bounds)r)
else:
    import promshm as pc
    from promshm.openmetrics.exposition import generate_latest
    C = pc.Counter("jobs", "Jobs.", ["route"])
    H = pc.Histogram("latency", "Latency.", buckets=%(bounds)r)
BASE = %(base)r

def work(w):
    c = C.labels("/a")
    for i in range(%(rounds)d):
        k = (i + w) %% 4
        c.inc(w + 1, exemplar={"trace_id": "w%%d-i%%d-b0" %% (w, i)})
        H.observe(BASE[k] + w / 32, exemplar={"trace_id": "w%%d-i%%d-b%%d" %% (w, i, k)})
    if not BACKEND:
        pc.flush()

if __name__ == "__main__":
    procs = [mp.get_context("fork").Process(target=work, args=(w,)) for w in range(%(workers)d)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0, p.exitcode
    sys.stdout.write(generate_latest(pc.REGISTRY).decode())
"""


def check(text: str) -> None:
    fams = {f.name: f for f in text_string_to_metric_families(text)}
    total = [s for s in fams["jobs"].samples if s.name == "jobs_total"]
    assert len(total) == 1 and total[0].value == ROUNDS * sum(w + 1 for w in range(WORKERS))
    seen = 0
    for s in fams["jobs"].samples + fams["latency"].samples:
        if s.exemplar is None:
            continue
        seen += 1
        w, i, k = (int(p[1:]) for p in s.exemplar.labels["trace_id"].split("-"))
        assert w < WORKERS and i < ROUNDS, s
        assert float(s.exemplar.timestamp) > 1.6e9, s
        if s.name == "jobs_total":
            assert (k, s.exemplar.value) == (0, w + 1), s  # whole: label and value agree
        else:
            assert s.name == "latency_bucket", s
            assert s.exemplar.value == BASE[k] + w / 32, s
            le = s.labels["le"]
            assert le == ("+Inf" if k == 3 else str(BOUNDS[k])), s
    assert seen == 1 + 4, text
    count = [s for s in fams["latency"].samples if s.name == "latency_count"]
    assert count[0].value == WORKERS * ROUNDS


@pytest.mark.parametrize("backend", [False, True], ids=["promshm", "prometheus_client_backend"])
def test_forked_workers_exemplars(tmp_path: Path, backend: bool) -> None:
    script = tmp_path / "workers.py"
    script.write_text(
        textwrap.dedent(
            SCRIPT % dict(backend=backend, bounds=BOUNDS, base=BASE, rounds=ROUNDS, workers=WORKERS)
        )
    )
    proc = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        env=child_env(PROMSHM_DIR=str(tmp_path)),
        capture_output=True,
        timeout=180,
    )
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    check(proc.stdout.decode())


def test_single_process_exemplar_and_limits() -> None:
    import promshm
    from promshm import CollectorRegistry, Counter, Histogram

    r = CollectorRegistry()
    c = Counter("c", "h", registry=r)
    c.inc(2, exemplar={"trace_id": "abc"})
    with pytest.raises(ValueError):
        c.inc(exemplar={"trace_id": "x" * 121})  # 129 characters
    with pytest.raises(ValueError):
        c.inc(exemplar={"bad-name": "x"})
    h = Histogram("h", "h", registry=r, buckets=[1, 2])
    h.observe(1.5, {"trace_id": "def"})
    h.observe(0.5)
    promshm.flush()
    fams = {f.name: f for f in text_string_to_metric_families(r.render("openmetrics").decode())}
    (total,) = [s for s in fams["c"].samples if s.name == "c_total"]
    assert total.value == 2 and total.exemplar.labels == {"trace_id": "abc"} and total.exemplar.value == 2
    b = {s.labels["le"]: s for s in fams["h"].samples if s.name == "h_bucket"}
    assert b["2.0"].exemplar.labels == {"trace_id": "def"} and b["2.0"].exemplar.value == 1.5
    assert b["1.0"].exemplar is None and b["+Inf"].exemplar is None
    # The text format shows none.
    assert b"trace_id" not in r.render("prometheus")

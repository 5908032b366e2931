"""pyprometheus' README (shared/seeds/pyprometheus-README.rst), top to bottom.

Every snippet runs as written with ``pyprometheus`` changed to
``promshm.idioms.pyprometheus`` in its imports. The README's own slips are
fixed where Python would refuse them, each marked ``# doc:`` (its
snippets call ``CollectorRegistry`` but import only ``BaseRegistry``; one
imports ``Summary`` and makes a ``Histogram``; ``LocalMemoryStorag()``;
sleeps of 10 s shortened). Real uWSGI with the plugin:
``tests/uwsgi/test_uwsgi_pyprometheus.py``. The items (W: works as
documented, D: documented deliberate difference):

 1 W four metric types: Counter, Gauge, Summary (without quantiles), Histogram
 2 D LocalMemoryStorage, "do not use it for multiprocessing apps": a private area (forked children share it)
 3 W UWSGIStorage shares metrics between processes (written through)
 4 W UWSGIFlushStorage syncs with the shared area on flush()
 5 W time decorator                6 W time context manager
 7 W Gauge snippet: LocalMemoryStorage, CollectorRegistry(storage=), inc(10), dec(5), set(21.1)
 8 W gauge.set_to_current_time()
 9 W @gauge.track_in_progress()   10 W with gauge.track_in_progress()
11 W with gauge.time()
12 W Counter snippet: inc(10)
13 W Summary snippet: observe(0.100)
14 W Summary timing: @s.time(), with s.time()
15 D Histogram snippet: observe(1.1); a bucket counts observations <= its bound (pyprometheus: <)
16 W @histogram.time(), with histogram.time()
17 W labels positional: c.labels('get', '/').inc()
18 W labels as keyword arguments
19 D a metric made without registry= (the Labels examples): promshm's default registry
20 W every registry has a storage: BaseRegistry(storage=...) / CollectorRegistry(storage=...)
21 W LocalMemoryStorage can be used with threads
22 D UWSGIStorage(SHAREDAREA_ID), "also need to configure UWSGI sharedarea pages": no sharedarea needed
23 D UWSGICollector: uWSGI's figures under Prometheus-style names (legacy_names=True: pyprometheus')
24 D registry_to_text(registry): no "Generated at" comment, no sample timestamps
25 W write_to_textfile(registry, path) (pyprometheus' argument order)
26 W the file is for node_exporter's textfile collector (promtool accepts it)

Plus the point: 4 forked workers, exact totals on one page promtool accepts.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import threading
import time

import pytest

import promshm
from promshm.idioms import pyprometheus
from promshm.idioms._common import families_with_samples
from promshm.idioms.pyprometheus import CollectorRegistry, Counter, Gauge, Histogram, LocalMemoryStorage, Summary
from promshm.idioms.pyprometheus.contrib.uwsgi_features import UWSGICollector, UWSGIFlushStorage, UWSGIStorage
from promshm.idioms.pyprometheus.utils.exposition import registry_to_text, write_to_textfile

from conftest import child_env, parse_text, value

IMPORTS = """
from promshm.idioms.pyprometheus import Gauge, Counter, Summary, Histogram
from promshm.idioms.pyprometheus import BaseRegistry, LocalMemoryStorage
from promshm.idioms.pyprometheus import CollectorRegistry  # doc: used but never imported
import time
"""


def run(snippet: str) -> dict:
    ns: dict = {}
    exec(IMPORTS + snippet, ns)
    return ns


def page(registry) -> dict:
    return parse_text(registry_to_text(registry))


def promtool_check(text: str) -> None:
    tool = shutil.which("promtool")
    assert tool, "promtool not found (scripts/setup.sh installs it)"
    r = subprocess.run([tool, "check", "metrics"], input=text.encode(), capture_output=True, timeout=30)
    assert r.returncode == 0, f"promtool check metrics failed:\n{r.stdout.decode()}{r.stderr.decode()}\n{text}"


# --------------------------------------------------------------------------
# HOW TO INSTRUMENTING CODE


def test_7_to_11_gauge_snippet_and_utilities():
    ns = run('''
storage = LocalMemoryStorage()
registry = CollectorRegistry(storage=storage)
gauge = Gauge("job_in_progress", "Description", registry=registry)

gauge.inc(10)
gauge.dec(5)
gauge.set(21.1)
''')
    gauge, registry = ns["gauge"], ns["registry"]
    assert value(page(registry), "job_in_progress") == 21.1
    before = time.time()
    gauge.set_to_current_time()  # 8
    assert before <= value(page(registry), "job_in_progress") <= time.time()
    gauge.set(0)
    seen = []
    ns.update(gauge=gauge, seen=seen, registry=registry, value=value, page=page)
    exec(IMPORTS + '''
# Increment when entered, decrement when exited.
@gauge.track_in_progress()
def f():
    seen.append(value(page(registry), "job_in_progress"))

f()

with gauge.track_in_progress():
    seen.append(value(page(registry), "job_in_progress"))


with gauge.time():
    time.sleep(0.05)  # doc: 10
''', ns)
    assert seen == [1, 1]  # 9, 10: in progress inside, back to 0 after
    assert 0.05 <= value(page(registry), "job_in_progress") < 1  # 11: the block's duration


def test_12_counter_snippet():
    ns = run('''
storage = LocalMemoryStorage()
registry = CollectorRegistry(storage=storage)
counter = Counter("requests_total", "Description", registry=registry)

counter.inc(10)
''')
    text = registry_to_text(ns["registry"])
    assert "# TYPE requests_total counter" in text and value(parse_text(text), "requests_total") == 10
    assert ns["counter"].get() == 10 and ns["counter"].value == 10


def test_1_13_14_summary_snippet_and_timing():
    ns = run('''
storage = LocalMemoryStorage()
registry = CollectorRegistry(storage=storage)
s = Summary("requests_duration_seconds", "Description", registry=registry)

s.observe(0.100)

@s.time()  # doc: @gauge.time()
def func():
   time.sleep(0.02)  # doc: 10

with s.time():  # doc: gauge.time()
   time.sleep(0.02)  # doc: 10
func()
''')
    p = page(ns["registry"])
    assert value(p, "requests_duration_seconds_count") == 3
    assert 0.14 <= value(p, "requests_duration_seconds_sum") < 1
    assert not any(n == "requests_duration_seconds" for n, _ in p)  # "Summary (without quantiles)"


def test_15_16_histogram_snippet_and_timing():
    ns = run('''
storage = LocalMemoryStorage()
registry = CollectorRegistry(storage=storage)
histogram = Histogram("requests_duration_seconds", "Description", registry=registry)  # doc: imports Summary

histogram.observe(1.1)

@histogram.time()
def func():
   time.sleep(0.02)  # doc: 10

with histogram.time():
   time.sleep(0.02)  # doc: 10
func()
''')
    p = page(ns["registry"])
    assert value(p, "requests_duration_seconds_count") == 3
    assert value(p, "requests_duration_seconds_bucket", le="1.0") == 2
    assert value(p, "requests_duration_seconds_bucket", le="2.5") == 3
    assert value(p, "requests_duration_seconds_bucket", le="+Inf") == 3
    # Difference: a bucket counts observations <= its bound (pyprometheus: <).
    histogram = ns["histogram"]
    histogram.observe(2.5)
    assert value(page(ns["registry"]), "requests_duration_seconds_bucket", le="2.5") == 4


LABELS_SNIPPETS = [
    """
from promshm.idioms.pyprometheus import Counter
c = Counter('my_requests_total', 'HTTP Failures', ['method', 'endpoint'])
c.labels('get', '/').inc()
c.labels('post', '/submit').inc()
""",
    """
from promshm.idioms.pyprometheus import Counter
c = Counter('my_requests_total', 'HTTP Failures', ['method', 'endpoint'])
c.labels(method='get', endpoint='/').inc()
c.labels(method='post', endpoint='/submit').inc()
""",
]


@pytest.mark.parametrize("snippet", LABELS_SNIPPETS, ids=["positional", "keywords"])
def test_17_18_19_labels_and_metrics_without_registry(snippet):
    # Each snippet is a program of its own (both make the same counter).
    # 19, difference: without registry= the metric is in promshm's default
    # registry, on the shared area (pyprometheus' had no storage).
    show = "\nimport promshm\nprint(promshm.generate_latest().decode())\n"
    out = subprocess.run([sys.executable, "-c", snippet + show], capture_output=True, text=True, timeout=30, env=child_env())
    assert out.returncode == 0, out.stderr
    p = parse_text(out.stdout)
    assert value(p, "my_requests_total", method="get", endpoint="/") == 1
    assert value(p, "my_requests_total", method="post", endpoint="/submit") == 1


def test_label_errors_are_pyprometheus_runtime_errors():
    registry = CollectorRegistry()
    c = Counter("labelled_total", "HTTP Failures", ["method", "endpoint"], registry=registry)
    assert c.label_names == ("method", "endpoint") and c.doc == "HTTP Failures"
    with pytest.raises(RuntimeError, match="labelled_total") as e:  # pyprometheus: RuntimeError
        c.labels("get")
    assert isinstance(e.value, promshm.LabelError)
    with pytest.raises(RuntimeError, match="bad_histogram.*le"):
        Histogram("bad_histogram", "B.", ["le"], registry=registry)
    with pytest.raises(RuntimeError, match="bad_summary.*quantile"):
        Summary("bad_summary", "B.", ["quantile"], registry=registry)
    with pytest.raises(RuntimeError, match="labelled_total already registered") as e:
        Counter("labelled_total", "Again.", ["method", "endpoint"], registry=registry)
    assert isinstance(e.value, ValueError)  # promshm's and prometheus_client's type too
    c.labels("get", "/").inc()  # the first one is untouched
    assert value(page(registry), "labelled_total", method="get", endpoint="/") == 1


# --------------------------------------------------------------------------
# STORAGES


def test_20_every_registry_has_a_storage():
    storage = LocalMemoryStorage()
    registry = pyprometheus.BaseRegistry(storage=storage)
    assert registry.storage is storage
    assert isinstance(pyprometheus.BaseRegistry().storage, LocalMemoryStorage)  # pyprometheus' default {}
    with pytest.raises(TypeError, match="storage"):
        CollectorRegistry(storage={"a": 1})
    c = Counter("registered_total", "R.", registry=registry)
    assert registry.is_registered(c) and len(registry) == 1
    with pytest.raises(RuntimeError, match="already registered"):
        registry.register(c)
    c.inc()
    registry.unregister(c)
    assert "registered_total" not in registry_to_text(registry) and len(registry) == 0


def test_2_21_local_memory_storage_threads_and_processes():
    exec(IMPORTS + "storage = LocalMemoryStorage()  # doc: LocalMemoryStorag()\n", {})
    registry = CollectorRegistry(storage=LocalMemoryStorage())
    c = Counter("threaded_total", "T.", registry=registry)

    def work():
        for _ in range(1000):
            c.inc()

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    assert value(page(registry), "threaded_total") == 4000  # 21
    # 2, difference: private to the process (not in the shared area)...
    promshm.flush()
    assert promshm.REGISTRY.get_sample_value("threaded_total") is None
    assert registry.storage.area.path is None
    # ...but a child forked after it was made updates the same area.
    pid = os.fork()
    if pid == 0:
        try:
            c.inc(5)
            promshm.flush()
        finally:
            os._exit(0)
    _wait(pid)
    assert value(page(registry), "threaded_total") == 4005


def test_22_uwsgi_storage_snippet_outside_uwsgi():
    ns: dict = {}
    exec('''
from promshm.idioms.pyprometheus.contrib.uwsgi_features import UWSGICollector, UWSGIStorage

SHAREDAREA_ID = 0
storage = UWSGIStorage(SHAREDAREA_ID)
''', ns)
    registry = CollectorRegistry(storage=ns["storage"])
    assert registry.registry.area is promshm.shared_area()  # no uWSGI, no --sharedarea: the shared area
    c = Counter("uwsgi_storage_total", "U.", registry=registry)
    c.inc(3)
    # Written through: in the area at once (another handle of the file sees it without a flush).
    other = promshm.Area.open(promshm.area_path(), read_only=True)
    assert value(parse_text(other.render().decode()), "uwsgi_storage_total") == 3
    registry.register(registry.storage)  # the storage's own metrics
    p = page(registry)
    assert value(p, "num_keys", sharedarea="0") >= 1 and value(p, "memory_size", sharedarea="0") > 0
    # The collector yields nothing outside uWSGI.
    assert list(UWSGICollector("app").collect()) == []


def test_3_4_flush_storage_syncs_on_flush(tmp_path):
    storage = UWSGIFlushStorage(0)
    registry = CollectorRegistry(storage=storage)
    c = Counter("pp_flushed_total", "F.", registry=registry)
    assert storage.persistent_storage.eager and not storage.eager
    r, w = os.pipe()
    go_r, go_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            promshm.stop_flusher()
            c.inc(7)
            os.write(w, b"1")
            os.read(go_r, 1)
            storage.flush()
            os.write(w, b"2")
        finally:
            os._exit(0)
    reader = promshm.Area.open(promshm.area_path(), read_only=True)
    try:
        assert os.read(r, 1) == b"1"
        before = value(parse_text(reader.render().decode()), "pp_flushed_total")
        os.write(go_w, b"g")
        assert os.read(r, 1) == b"2"
        after = value(parse_text(reader.render().decode()), "pp_flushed_total")
    finally:
        _wait(pid)
    assert before in (None, 0) and after == 7


# --------------------------------------------------------------------------
# EXPORTING


def test_24_registry_to_text_snippet():
    ns: dict = {}
    exec('''
from promshm.idioms.pyprometheus import BaseRegistry, LocalMemoryStorage
from promshm.idioms.pyprometheus import CollectorRegistry  # doc: used but never imported
from promshm.idioms.pyprometheus.utils.exposition import registry_to_text
from promshm.idioms.pyprometheus import Gauge

storage = LocalMemoryStorage()
registry = CollectorRegistry(storage=storage)
g = Gauge('raid_status', '1 if raid array is okay', registry=registry)
g.set(1)
out = registry_to_text(registry)
''', ns)
    out = ns["out"]
    assert out == "# HELP raid_status 1 if raid array is okay\n# TYPE raid_status gauge\nraid_status 1\n"
    # Difference: no "# Generated at" comment, no timestamps on the samples.
    assert "Generated at" not in out and not re.search(r"^raid_status 1 \d+$", out, re.M)


def test_25_26_write_to_textfile_snippet(tmp_path):
    path = tmp_path / "metrics.prom"
    ns: dict = {}
    exec(f'''
from promshm.idioms.pyprometheus import BaseRegistry, LocalMemoryStorage
from promshm.idioms.pyprometheus import CollectorRegistry  # doc: used but never imported
from promshm.idioms.pyprometheus.utils.exposition import registry_to_text, write_to_textfile
from promshm.idioms.pyprometheus import Gauge

storage = LocalMemoryStorage()
registry = CollectorRegistry(storage=storage)
g = Gauge('raid_status', '1 if raid array is okay', registry=registry)
g.set(1)
write_to_textfile(registry, {str(path)!r})
''', ns)
    text = path.read_text()
    assert value(parse_text(text), "raid_status") == 1
    promtool_check(text)  # 26: what node_exporter's textfile collector reads
    write_to_textfile(str(tmp_path / "swapped.prom"), ns["registry"])  # prometheus_client's order too
    assert (tmp_path / "swapped.prom").read_text() == text
    assert not [p for p in os.listdir(tmp_path) if p not in ("metrics.prom", "swapped.prom")]  # no temporary left


def test_23_uwsgi_collector_names():
    from promshm.idioms.pyprometheus.contrib import uwsgi_features as uf

    class FakeUwsgi:  # the figures uWSGI's module gives (the real one: tests/uwsgi/test_uwsgi_pyprometheus.py)
        numproc, buffer_size, started_on, cores = 2, 4096, 1700000000, 1

        def total_requests(self):
            return 10

        def mem(self):
            return (1000, 2000)

        def workers(self):
            return [dict(id=i, requests=5, respawn_count=1, running_time=7, exceptions=0, delta_requests=5, rss=1, vsz=2,
                         last_spawn=3, tx=4, avg_rt=5, signals=0, status="idle") for i in (1, 2)]

    saved, uf.uwsgi = uf.uwsgi, FakeUwsgi()
    try:
        registry = CollectorRegistry(storage=LocalMemoryStorage())
        registry.register(UWSGICollector("app"))
        text = registry_to_text(registry)
        promtool_check(text)
        p = parse_text(text)
        assert value(p, "app_processes") == 2 and value(p, "app_requests") == 10
        assert value(p, "app_process_requests", id="1") == 5 and value(p, "app_process_status", id="2", status="idle") == 1
        assert value(p, "app_uwsgi_memory_bytes", type="rss") == 1000
        legacy = [f.name for f in UWSGICollector("app", legacy_names=True).collect()]
        assert "app:processes_total" in legacy and "app:process:vzs" in legacy  # pyprometheus' own names
        assert len(legacy) == len(uf.UWSGI_METRICS)
    finally:
        uf.uwsgi = saved


# --------------------------------------------------------------------------
# The point: several processes, one page


def _wait(pid: int, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            assert os.waitstatus_to_exitcode(status) == 0
            return
        time.sleep(0.01)
    os.kill(pid, 9)
    os.waitpid(pid, 0)
    raise AssertionError(f"child {pid} did not finish within {timeout}s")


def test_1_3_4_forked_workers_exact_on_one_page():
    shared = CollectorRegistry(storage=UWSGIStorage(0))
    batched = CollectorRegistry(storage=UWSGIFlushStorage(0))
    local = CollectorRegistry(storage=LocalMemoryStorage())  # made before the fork: shared with the workers
    requests = Counter("fw_requests_total", "Requests.", ["method", "endpoint"], registry=shared)
    in_progress = Gauge("fw_in_progress", "In progress.", registry=shared)
    latency = Histogram("fw_latency_seconds", "Latency.", buckets=[0.1, 1], registry=shared)
    sizes = Summary("fw_size_bytes", "Sizes.", registry=shared)
    batched_jobs = Counter("fw_batched_total", "Batched.", registry=batched)
    local_jobs = Counter("fw_local_total", "Local.", registry=local)

    def worker():
        for i in range(1000):
            with in_progress.track_in_progress():
                requests.labels("get" if i % 2 else "post", "/").inc()
                latency.observe(0.05 if i % 4 else 0.5)
                sizes.observe(100)
                batched_jobs.inc()
                local_jobs.inc()
        batched.storage.flush()

    pids = []
    for _ in range(4):
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                worker()
                code = 0
            finally:
                os._exit(code)  # no exit handler: only what was written or flushed counts
        pids.append(pid)
    for pid in pids:
        _wait(pid)
    # Both uWSGI storages are the shared area: one page (every family of the
    # area, other tests' too); the local storage has its own.
    text = registry_to_text(shared)

    def own(t: str) -> dict:
        return {k: v for k, v in parse_text(t).items() if not k[0].startswith("promshm_")}

    assert own(text) == own(registry_to_text(batched))
    # promtool on this test's families (the shared area holds other tests' too).
    promtool_check(families_with_samples(text.encode(), "fw_").decode())
    local_text = registry_to_text(local)
    promtool_check(local_text)
    p = {**parse_text(text), **parse_text(local_text)}
    assert value(p, "fw_requests_total", method="get", endpoint="/") == 2000
    assert value(p, "fw_requests_total", method="post", endpoint="/") == 2000
    assert value(p, "fw_in_progress") == 0
    assert value(p, "fw_latency_seconds_count") == 4000 and value(p, "fw_latency_seconds_bucket", le="0.1") == 3000
    assert value(p, "fw_size_bytes_count") == 4000 and value(p, "fw_size_bytes_sum") == 400000
    assert value(p, "fw_batched_total") == 4000
    assert value(p, "fw_local_total") == 4000

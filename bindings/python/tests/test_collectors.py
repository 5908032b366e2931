"""Custom collectors: what they yield on each scrape (issue 9 items 6 and 7)."""

from __future__ import annotations

import gc
import json
import os
import shutil
import subprocess
from typing import Any, Iterator

import pytest

import promshm
from promshm import Counter, Gauge, Histogram

from conftest import parse_text, value
from http_checks import run_code


def _mappings() -> int:
    with open("/proc/self/maps", "rb") as f:
        return sum(1 for _ in f)


def _rss_kib() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4


class _FreshCounter:
    """The pytheus idiom: a new ``Counter(..., registry=None)`` on each scrape."""

    def collect(self) -> Iterator[Any]:
        c = Counter("fresh_jobs", "Jobs.", ["queue"], registry=None)
        c.labels("default").inc(3)
        yield c


class _FreshOfEachKind:
    def __init__(self) -> None:
        self.scrapes = 0

    def collect(self) -> Iterator[Any]:
        self.scrapes += 1
        h = Histogram("fresh_latency_seconds", "Latency.", buckets=(0.1, 1.0), registry=None)
        h.observe(0.5)
        g = Gauge("fresh_depth", "Depth.", registry=None)
        g.set(self.scrapes)
        yield h
        yield g


def _scrape_steadily(registry: promshm.CollectorRegistry, total: int) -> str:
    """Scrape ``total`` times; mappings and RSS must not grow."""
    for _ in range(1000):  # warm up allocator arenas and caches
        registry.render()
    gc.collect()
    maps0, rss0 = _mappings(), _rss_kib()
    for i in range(1, total + 1):
        text = registry.render()
        if i % 5000 == 0:
            gc.collect()
            grown = _mappings() - maps0
            assert grown <= 8, f"{grown} more mappings after {i} scrapes"
    gc.collect()
    assert _mappings() - maps0 <= 8
    assert _rss_kib() - rss0 < 4096, f"RSS grew {rss0} -> {_rss_kib()} KiB over {total} scrapes"
    return text.decode()


def test_registry_none_counter_each_scrape_keeps_memory_and_mappings_constant(registry):
    registry.register(_FreshCounter())
    s = parse_text(_scrape_steadily(registry, 100_000))
    assert value(s, "fresh_jobs_total", queue="default") == 3  # a fresh series every scrape


def test_registry_none_metrics_of_other_kinds_are_released_too(registry):
    collector = _FreshOfEachKind()
    registry.register(collector)
    s = parse_text(_scrape_steadily(registry, 10_000))
    assert value(s, "fresh_latency_seconds_count") == 1
    assert value(s, "fresh_depth") == collector.scrapes


class _Clashing:
    """Yields families whose names the registry already renders, and one new one."""

    def collect(self) -> Iterator[Any]:
        from promshm.core import CounterMetricFamily, GaugeMetricFamily

        yield GaugeMetricFamily("served", "Same name as a registered counter.", value=1)
        yield GaugeMetricFamily("served_total", "A counter's sample name.", value=2)
        yield GaugeMetricFamily("lat_bucket", "A histogram's sample name.", value=3)
        yield CounterMetricFamily("fresh", "Not taken.", value=4)
        yield GaugeMetricFamily("fresh_total", "Taken by the collector's own counter.", value=5)


@pytest.mark.parametrize("fmt", ["prometheus", "openmetrics"])
def test_collector_yielding_a_taken_name_is_skipped_and_counted(registry, fmt):
    Counter("served", "Served.", registry=registry).inc()
    Histogram("lat", "Latency.", buckets=(1.0,), registry=registry).observe(0.5)
    registry.register(_Clashing())
    text = registry.render(fmt).decode()
    s = parse_text(text, openmetrics=fmt == "openmetrics")
    assert value(s, "served_total") == 1
    assert value(s, "fresh_total") == 4
    assert value(s, "promshm_collector_families_skipped_total") == 4
    assert text.count("# TYPE served") == 1 and "lat_bucket 3" not in text
    promtool = shutil.which("promtool")
    if promtool is not None and fmt == "prometheus":  # promtool reads the 0.0.4 text format
        proc = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=30)
        assert proc.returncode == 0, proc.stdout + proc.stderr
    text = registry.render(fmt).decode()  # counted again on each scrape
    assert value(parse_text(text, openmetrics=fmt == "openmetrics"), "promshm_collector_families_skipped_total") == 8


_WORKERS_SCRIPT = r"""
import json, os, sys, time
import promshm
from promshm.process_collector import ProcessCollector

registry = promshm.CollectorRegistry(area=promshm.SHARED, self_metrics=False)
ProcessCollector(registry=registry)  # attaches this process and its forked children
r, w = os.pipe()
kids = []
for i in range(4):
    pid = os.fork()
    if pid == 0:
        os.close(w)
        os.read(r, 1)  # until the parent closes the pipe
        os._exit(0)
    kids.append(pid)
os.close(r)
time.sleep(0.2)
alive = registry.render().decode()
os.close(w)
for pid in kids:
    os.waitpid(pid, 0)
print(json.dumps({"parent": os.getpid(), "kids": kids, "alive": alive, "exited": registry.render().decode()}))
"""


def _by_pid(s: Any, name: str) -> dict:
    return {int(dict(k[1])["pid"]): (dict(k[1])["worker"], v) for k, v in s.items() if k[0] == name}


def test_process_collector_renders_every_live_worker_with_totals(tmp_path):
    """ProcessCollector() with the defaults: a series per live process of the
    area (its own and 4 forked ones), labelled by worker slot and pid, read
    from each one's /proc entry, with the totals; exited ones disappear."""
    out = json.loads(run_code(_WORKERS_SCRIPT, tmp_path).stdout)
    everyone = {out["parent"], *out["kids"]}
    s = parse_text(out["alive"])
    for name in ("process_resident_memory_bytes", "process_virtual_memory_bytes", "process_open_fds", "process_cpu_seconds_total"):
        per = _by_pid(s, name)
        assert set(per) == everyone, (name, out["alive"])
        assert len({w for w, _ in per.values()}) == 5, per  # a slot each
    rss = _by_pid(s, "process_resident_memory_bytes")
    assert all(v > 0 for _, v in rss.values())
    assert value(s, "process_workers") == 5
    assert value(s, "process_workers_resident_memory_bytes") == sum(v for _, v in rss.values())
    assert value(s, "process_workers_open_fds") == sum(v for _, v in _by_pid(s, "process_open_fds").values())
    start = _by_pid(s, "process_start_time_seconds")
    assert all(start[k][1] >= start[out["parent"]][1] for k in out["kids"])
    s = parse_text(out["exited"])
    assert set(_by_pid(s, "process_resident_memory_bytes")) == {out["parent"]}, out["exited"]
    assert value(s, "process_workers") == 1


def test_process_collector_of_one_pid_renders_it_unlabelled():
    """ProcessCollector(pid=...) as prometheus_client: that process, no labels."""
    from promshm.process_collector import ProcessCollector

    fams = {f.name: f for f in ProcessCollector(pid=lambda: os.getpid(), registry=None).collect()}
    assert set(fams) == {
        "process_virtual_memory_bytes",
        "process_resident_memory_bytes",
        "process_start_time_seconds",
        "process_cpu_seconds",
        "process_open_fds",
        "process_max_fds",
    }
    assert all(len(f.samples) == 1 and f.samples[0].labels == {} for f in fams.values())

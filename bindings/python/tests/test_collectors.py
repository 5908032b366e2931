"""Custom collectors: what they yield on each scrape (issue 9 items 6 and 7)."""

from __future__ import annotations

import gc
import shutil
import subprocess
from typing import Any, Iterator

import pytest

import promshm
from promshm import Counter, Gauge, Histogram

from conftest import parse_text, value


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

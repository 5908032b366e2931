"""promshm as a drop-in for prometheus_client: the promshm.compat aliases and
the gaps issue 10 found (prometheus_client's own suite runs in
tools/run_prometheus_client_suite.py; these pin the behaviour in promshm's suite)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from typing import Any

import pytest

import promshm
from promshm import CollectorRegistry, Counter, Gauge, Histogram, Info
from promshm.errors import UnobservableMetricError


def _run(code: str) -> str:
    """Run ``code`` in a fresh interpreter (prometheus_client not yet imported)."""
    env = dict(os.environ)
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    return r.stdout


def test_compat_aliases_resolve_prometheus_client_to_promshm() -> None:
    out = _run(
        "import promshm.compat; promshm.compat.install()\n"
        "import prometheus_client, promshm\n"
        "from prometheus_client.core import Counter, CollectorRegistry, REGISTRY\n"
        "from prometheus_client.openmetrics.parser import text_string_to_metric_families\n"
        "from prometheus_client.exposition import push_to_gateway, MetricsHandler\n"
        "from prometheus_client import ProcessCollector, PlatformCollector, GCCollector\n"
        "assert prometheus_client is promshm and REGISTRY is promshm.REGISTRY\n"
        "r = CollectorRegistry(); c = Counter('cc', 'A counter', registry=r); c.inc()\n"
        "print(prometheus_client.generate_latest(r).decode())\n"
    )
    # prometheus_client's rendering: 1.0, and _created as a gauge after the family
    assert out.startswith("# HELP cc_total A counter\n# TYPE cc_total counter\ncc_total 1.0\n# HELP cc_created A counter\n# TYPE cc_created gauge\ncc_created ")


def test_compat_refuses_when_the_real_prometheus_client_is_imported() -> None:
    out = _run(
        "import prometheus_client, promshm.compat\n"
        "try:\n    promshm.compat.install()\nexcept RuntimeError as e:\n    print('refused', e)\n"
    )
    assert out.startswith("refused")


def test_labelled_parent_helpers_raise_missing_label_values() -> None:
    r = CollectorRegistry()
    c = Counter("c", "h", ["l"], registry=r)
    g = Gauge("g", "h", ["l"], registry=r)
    for f in (c.count_exceptions, g.track_inprogress, lambda: g.set_function(lambda: 1.0), c.inc):
        with pytest.raises(UnobservableMetricError, match="missing label values"):
            f()
    assert isinstance(UnobservableMetricError("x", 0, ""), ValueError)


def test_exemplars_validated_and_kept_by_this_process() -> None:
    r = CollectorRegistry()
    c = Counter("c", "h", registry=r)
    with pytest.raises(ValueError):
        c.inc(exemplar={":o)": "smile"})
    with pytest.raises(ValueError):
        c.inc(exemplar={"a" * 65: "b" * 64})
    c.inc(exemplar={"trace_id": "abc"})
    h = Histogram("h", "h", registry=r, buckets=[1, 2])
    h.observe(1.5, {"trace_id": "def"})
    fams = {f.name: f for f in r.collect()}
    (total,) = [s for s in fams["c"].samples if s.name == "c_total"]
    assert total.value == 1 and total.exemplar.labels == {"trace_id": "abc"}
    b2 = [s for s in fams["h"].samples if s.name == "h_bucket" and s.labels["le"] == "2.0"][0]
    assert b2.exemplar.labels == {"trace_id": "def"} and b2.exemplar.value == 1.5


def test_counter_reset_is_seen_by_other_processes() -> None:
    r = CollectorRegistry()
    c = Counter("c", "h", registry=r)
    c.inc(5)
    created = r.get_sample_value("c_created")
    time.sleep(0.01)
    pid = os.fork()
    if pid == 0:  # the child resets; the parent must see 0
        code = 0
        try:
            c.reset()
            promshm.flush()
        except BaseException:
            code = 1
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.WEXITSTATUS(status) == 0
    assert r.get_sample_value("c_total") == 0
    assert r.get_sample_value("c_created") > created


def test_labelled_counter_reset_and_per_series_set_function() -> None:
    r = CollectorRegistry()
    c = Counter("c", "h", ["l"], registry=r)
    c.labels("a").inc(3)
    c.labels("b").inc(4)
    c.labels("a").reset()
    assert r.get_sample_value("c_total", {"l": "a"}) == 0
    assert r.get_sample_value("c_total", {"l": "b"}) == 4
    c.labels("a").inc()
    assert r.get_sample_value("c_total", {"l": "a"}) == 1
    g = Gauge("g", "h", ["l"], registry=r)
    g.labels("x").set_function(lambda: 1.0)
    g.labels("y").set_function(lambda: 2.0)  # each series keeps its own function
    assert (r.get_sample_value("g", {"l": "x"}), r.get_sample_value("g", {"l": "y"})) == (1.0, 2.0)


def test_info_value_none_refused() -> None:
    i = Info("i", "h", registry=CollectorRegistry())
    with pytest.raises(ValueError):
        i.info({"a": None})  # type: ignore[dict-item]


def test_restricted_registry_filters_samples() -> None:
    r = CollectorRegistry()
    Counter("c", "h", registry=r)
    s = promshm.Summary("s", "h", registry=r)
    s.observe(7)
    fams = list(r.restricted_registry(["s_sum"]).collect())
    assert [(f.name, [(x.name, x.value) for x in f.samples]) for f in fams] == [("s", [("s_sum", 7.0)])]


def test_disable_created_metrics() -> None:
    from promshm import metrics

    r = CollectorRegistry()
    Counter("c", "h", registry=r).inc()
    metrics.disable_created_metrics()
    try:
        assert r.get_sample_value("c_created") is None
    finally:
        metrics.enable_created_metrics()
    assert r.get_sample_value("c_created") is not None


def test_histogram_default_buckets() -> None:
    assert Histogram.DEFAULT_BUCKETS == promshm.DEFAULT_BUCKETS


def test_pushgateway_request(tmp_path: Any) -> None:
    sent = {}

    def handler(url: str, method: str, timeout: Any, headers: Any, data: bytes) -> Any:
        def go() -> None:
            sent.update(url=url, method=method, data=data)

        return go

    r = CollectorRegistry()
    Gauge("g", "help", registry=r).set(2)
    promshm.push_to_gateway("localhost:9091", "my/job", r, {"a": ""}, handler=handler)
    assert sent["method"] == "PUT"
    assert sent["url"] == "http://localhost:9091/metrics/job@base64/bXkvam9i/a@base64/="
    assert b"g 2" in sent["data"]

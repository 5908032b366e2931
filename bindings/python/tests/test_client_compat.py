"""Typical prometheus_client code, run unchanged on prometheus_client and on
promshm; the outputs must be the same once parsed by prometheus_client's own
parsers (``_created`` samples aside: promshm's 0.0.4 output leaves them out)."""

from __future__ import annotations

import math
from contextlib import suppress
from types import ModuleType
from typing import Any, Dict, Tuple

import prometheus_client
import prometheus_client.openmetrics.exposition as pc_om
import pytest

import promshm
import promshm.openmetrics.exposition as ps_om

from conftest import parse_text


def exercise(pc: ModuleType, registry: Any) -> None:
    """Written as prometheus_client user code; `pc` is the module."""
    requests = pc.Counter("http_requests_total", "HTTP requests.", ["method", "endpoint"], registry=registry)
    requests.labels("get", "/").inc()
    requests.labels(method="post", endpoint="/submit").inc(3)
    requests.labels("get", "/").inc(2.5)
    requests.labels("get", 'quote"back\\slash\nnewline').inc()
    requests.labels("delete", "/x").inc()
    requests.remove("delete", "/x")

    jobs = pc.Counter("jobs", "Jobs run.", namespace="app", subsystem="worker", registry=registry)
    jobs.inc()
    with pytest.raises(ValueError):
        jobs.inc(-1)

    errors = pc.Counter("errors", "Errors.", ["kind"], registry=registry)
    with suppress(ZeroDivisionError):
        with errors.labels("zero").count_exceptions():
            1 / 0

    @errors.labels("key").count_exceptions(KeyError)
    def lookup(d: Dict[str, int], k: str) -> int:
        return d[k]

    with pytest.raises(KeyError):
        lookup({}, "x")
    assert lookup({"y": 1}, "y") == 1

    temperature = pc.Gauge("temperature", "Temperature.", ["room"], unit="celsius", registry=registry, multiprocess_mode="livesum")
    temperature.labels("kitchen").set(21.5)
    temperature.labels("kitchen").inc()
    temperature.labels("kitchen").dec(0.5)
    temperature.labels("hall").set(18)

    inprogress = pc.Gauge("inprogress", "In progress.", registry=registry)
    with inprogress.track_inprogress():
        pass

    @inprogress.track_inprogress()
    def work() -> str:
        return "done"

    assert work() == "done"
    inprogress.inc(5)
    inprogress.dec(2)

    latency = pc.Histogram("request_latency_seconds", "Latency.", ["endpoint"], registry=registry, buckets=(0.1, 0.5, 1, 5))
    for v in (0.05, 0.2, 0.7, 3, 10, 0.1):
        latency.labels("/").observe(v)

    default = pc.Histogram("default_buckets", "Default buckets.", registry=registry)
    default.observe(0.3)
    default.observe(7)

    payload = pc.Summary("payload", "Payload size.", unit="bytes", registry=registry)
    payload.observe(100)
    payload.observe(300)

    build = pc.Info("build", "Build information.", registry=registry)
    build.info({"version": "1.2.3", "commit": "abc"})
    component = pc.Info("component", "Component.", ["name"], registry=registry)
    component.labels("db").info({"driver": "pg"})

    state = pc.Enum("task_state", "Task state.", states=["starting", "running", "stopped"], registry=registry)
    state.state("running")
    svc = pc.Enum("svc_state", "Service state.", ["svc"], states=["up", "down"], registry=registry)
    svc.labels("db").state("down")

    cleared = pc.Counter("cleared", "Cleared.", ["k"], registry=registry)
    cleared.labels("a").inc()
    cleared.clear()

    empty_doc = pc.Counter("nodoc", "", registry=registry)
    empty_doc.inc(7)

    big = pc.Gauge("big", "Big and odd values.", ["v"], registry=registry)
    big.labels("inf").set(math.inf)
    big.labels("ninf").set(-math.inf)
    big.labels("large").set(1.5e300)
    big.labels("small").set(-2.25e-300)


def _norm_labels(labels: Any) -> Any:
    # `le` and `quantile` are numbers: prometheus_client writes le="1.0" in the
    # 0.0.4 format and so does promshm; client_golang writes le="1". Compare as numbers.
    return frozenset((k, repr(float(v)) if k in ("le", "quantile") else v) for k, v in labels)


def _without_created(samples: Dict[Tuple[str, Any], float]) -> Dict[Tuple[str, Any], float]:
    return {(k[0], _norm_labels(k[1])): v for k, v in samples.items() if not k[0].endswith("_created")}


@pytest.fixture
def outputs() -> Tuple[Any, Any]:
    pc_reg = prometheus_client.CollectorRegistry()
    ps_reg = promshm.CollectorRegistry()
    exercise(prometheus_client, pc_reg)
    exercise(promshm, ps_reg)
    return pc_reg, ps_reg


def test_text_format_matches_prometheus_client(outputs):
    pc_reg, ps_reg = outputs
    ours = promshm.generate_latest(ps_reg)
    assert isinstance(ours, bytes)
    theirs = prometheus_client.generate_latest(pc_reg)
    a, b = _without_created(parse_text(theirs.decode())), _without_created(parse_text(ours.decode()))
    assert a == b


def test_openmetrics_format_matches_prometheus_client(outputs):
    pc_reg, ps_reg = outputs
    ours = ps_om.generate_latest(ps_reg).decode()
    theirs = pc_om.generate_latest(pc_reg).decode()
    assert ours.endswith("# EOF\n")
    a, b = _without_created(parse_text(theirs, True)), _without_created(parse_text(ours, True))
    assert a == b
    # The same families with the same types, units and help.
    from prometheus_client.openmetrics.parser import text_string_to_metric_families as om

    fa = {(f.name, f.type, f.unit, f.documentation) for f in om(theirs) if f.samples}
    fb = {(f.name, f.type, f.unit, f.documentation) for f in om(ours) if f.samples}
    assert fa == fb


def test_get_sample_value_matches(outputs):
    pc_reg, ps_reg = outputs
    for name, labels in [
        ("http_requests_total", {"method": "get", "endpoint": "/"}),
        ("app_worker_jobs_total", {}),
        ("errors_total", {"kind": "key"}),
        ("temperature_celsius", {"room": "kitchen"}),
        ("request_latency_seconds_bucket", {"endpoint": "/", "le": "0.5"}),
        ("request_latency_seconds_count", {"endpoint": "/"}),
        ("payload_bytes_sum", {}),
        ("build_info", {"version": "1.2.3", "commit": "abc"}),
        ("task_state", {"task_state": "running"}),
        ("http_requests_total", {"method": "delete", "endpoint": "/x"}),
    ]:
        assert ps_reg.get_sample_value(name, labels) == pc_reg.get_sample_value(name, labels), (name, labels)


def test_timers_record_durations(registry):
    for pc, reg in ((prometheus_client, prometheus_client.CollectorRegistry()), (promshm, registry)):
        h = pc.Histogram("t", "Timer.", registry=reg)
        s = pc.Summary("ts", "Timer.", registry=reg)
        g = pc.Gauge("tg", "Timer.", registry=reg)
        with h.time():
            pass

        @h.time()
        def f() -> None:
            pass

        f()
        with s.time():
            pass
        with g.time():
            pass
        assert reg.get_sample_value("t_count") == 2
        assert 0 <= reg.get_sample_value("t_sum") < 1
        assert reg.get_sample_value("ts_count") == 1
        assert 0 <= reg.get_sample_value("tg") < 1


def test_set_to_current_time(registry):
    import time

    g = promshm.Gauge("now", "Now.", registry=registry)
    before = time.time()
    g.set_to_current_time()
    assert before - 1 <= registry.get_sample_value("now") <= time.time() + 1


def test_content_types():
    assert promshm.CONTENT_TYPE_LATEST == prometheus_client.exposition.CONTENT_TYPE_PLAIN_0_0_4
    assert ps_om.CONTENT_TYPE_LATEST == pc_om.CONTENT_TYPE_LATEST


def test_the_public_names_exist():
    for name in [
        "Counter", "Gauge", "Histogram", "Summary", "Info", "Enum", "CollectorRegistry", "REGISTRY",
        "generate_latest", "CONTENT_TYPE_LATEST", "make_wsgi_app", "make_asgi_app", "start_http_server",
        "start_wsgi_server", "write_to_textfile", "GaugeMetricFamily", "CounterMetricFamily",
    ]:
        assert hasattr(promshm, name), name
    import inspect

    for name in ["Counter", "Gauge", "Histogram", "Summary", "Info", "Enum"]:
        theirs = list(inspect.signature(getattr(prometheus_client, name)).parameters)
        ours = list(inspect.signature(getattr(promshm, name)).parameters)
        # prometheus_client's parameters, in the same order, come first
        assert ours[: len(theirs)] == theirs, name
    for name in ["generate_latest", "make_wsgi_app", "make_asgi_app", "write_to_textfile", "start_http_server"]:
        theirs = list(inspect.signature(getattr(prometheus_client, name)).parameters)
        ours = list(inspect.signature(getattr(promshm, name)).parameters)
        assert ours[: len(theirs)] == theirs, name

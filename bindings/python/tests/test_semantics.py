"""Behaviour that must match prometheus_client's (issue 19, Python items)."""

from __future__ import annotations

import enum

import prometheus_client
import pytest

import promshm
from promshm import Counter, Gauge, Histogram

from conftest import parse_text


class Method(str, enum.Enum):
    GET = "GET"


def _hits(pc, registry):
    c = pc.Counter("hits", "Hits.", ["v"], registry=registry)
    for v in (1, True, 1.0, "1", Method.GET, "GET"):
        c.labels(v).inc()
    k = pc.Counter("kw_hits", "Hits.", ["v"], registry=registry)
    for v in (1, True, 1.0, "1"):
        k.labels(v=v).inc()
        k.labels(v=v).inc()  # the cached path


def test_label_values_of_different_types_are_different_series(registry):
    ref = prometheus_client.CollectorRegistry()
    _hits(prometheus_client, ref)
    _hits(promshm, registry)
    want = parse_text(prometheus_client.generate_latest(ref).decode())
    got = parse_text(registry.render().decode())
    want = {k: v for k, v in want.items() if not k[0].endswith("_created")}
    assert got == want
    assert got[("hits_total", frozenset({("v", "True")}))] == 1
    assert got[("kw_hits_total", frozenset({("v", "1.0")}))] == 2


def test_remove_by_labels_removes_every_matching_series(registry):
    ref = prometheus_client.CollectorRegistry()
    for pc, reg in ((prometheus_client, ref), (promshm, registry)):
        c = pc.Counter("req", "Requests.", ["method", "path"], registry=reg)
        for m, p in (("GET", "/"), ("GET", "/x"), ("POST", "/")):
            c.labels(m, p).inc()
        c.remove_by_labels({"method": "GET"})
        c.remove_by_labels({"method": "PUT"})  # matches nothing: no error
    want = {k: v for k, v in parse_text(prometheus_client.generate_latest(ref).decode()).items() if not k[0].endswith("_created")}
    assert parse_text(registry.render().decode()) == want
    assert list(want) == [("req_total", frozenset({("method", "POST"), ("path", "/")}))]


def test_remove_by_labels_reaches_series_made_by_other_processes(registry):
    import os

    c = Counter("jobs", "Jobs.", ["queue", "kind"], registry=registry)
    c.labels("a", "x").inc()
    pid = os.fork()
    if pid == 0:
        try:
            c.labels("a", "y").inc()
            c.labels("b", "y").inc()
            promshm.flush()
        finally:
            os._exit(0)
    os.waitpid(pid, 0)
    c.remove_by_labels({"queue": "a"})
    assert parse_text(registry.render().decode()) == {("jobs_total", frozenset({("queue", "b"), ("kind", "y")})): 1}


def test_set_target_info_keeps_one_info_metric(registry):
    for i in range(5):
        registry.set_target_info({"version": str(i)})
    s = parse_text(registry.render().decode())
    assert s == {("target_info", frozenset({("version", "4")})): 1}
    assert sum(1 for m in registry._metrics if m._name == "target") == 1
    registry.set_target_info(None)
    assert parse_text(registry.render().decode()) == {}
    assert registry.get_target_info() is None


def test_labelvalues_is_rejected_before_anything_is_registered(registry):
    with pytest.raises(ValueError):
        Counter("never", "N.", ["a"], registry=registry, _labelvalues=["x"])
    assert b"never" not in registry.render()
    assert registry._metrics == []
    Gauge("never", "N.", registry=registry)  # the name is still free, for another type too


def test_get_reports_a_failed_flush(registry, monkeypatch):
    from promshm import _ffi, metrics

    c = Counter("flushed", "F.", registry=registry)
    h = Histogram("flushed_h", "F.", registry=registry)
    monkeypatch.setattr(metrics, "lib", _FailingFlush(_ffi.lib))
    with pytest.raises(promshm.PromshmError):
        c.get()
    with pytest.raises(promshm.PromshmError):
        h.get()


class _FailingFlush:
    def __init__(self, lib):
        self._lib = lib

    def promshm_flush(self):
        return promshm._bindings.PROMSHM_RESULT_PANIC

    def __getattr__(self, name):
        return getattr(self._lib, name)


def test_registering_a_name_twice_raises_like_prometheus_client(registry):
    for pc, reg in ((prometheus_client, prometheus_client.CollectorRegistry()), (promshm, registry)):
        pc.Counter("twice", "T.", registry=reg)
        with pytest.raises(ValueError, match="Duplicated timeseries in CollectorRegistry"):
            pc.Counter("twice", "T.", registry=reg)
        with pytest.raises(ValueError, match="Duplicated timeseries in CollectorRegistry"):
            pc.Gauge("twice_total", "T.", registry=reg)
        h = pc.Histogram("lat", "L.", registry=reg)
        with pytest.raises(ValueError, match="Duplicated timeseries in CollectorRegistry"):
            pc.Gauge("lat_bucket", "T.", registry=reg)
        reg.unregister(h)
        pc.Histogram("lat", "L.", registry=reg)  # free again after unregister

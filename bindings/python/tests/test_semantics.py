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

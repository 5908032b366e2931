"""The protobuf exposition format checked by an independent decoder: the
``protobuf`` runtime from PyPI with the upstream ``metrics.proto``
(tests/proto/) compiled by ``protoc`` at test time. A page written by 4
worker processes is decoded with exact values for every type, served through
the WSGI and ASGI helpers when the ``Accept`` header prefers protobuf."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Dict, Tuple

import pytest

from conftest import REPO, child_env

sys.path.insert(0, str(REPO / "tests" / "proto"))
from pbdecode import compile_pb2, decode, labels, missing  # noqa: E402

PROTO_ACCEPT = (
    "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited;q=0.5,"
    "application/openmetrics-text;version=1.0.0;q=0.4,text/plain;version=0.0.4;q=0.2,*/*;q=0.1"
)
CONTENT_TYPE = "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited"


@pytest.fixture(scope="module")
def pb2(tmp_path_factory):
    """``metrics_pb2``, generated now by protoc from the upstream .proto."""
    why = missing()
    if why and os.environ.get("CI"):
        pytest.fail(why)  # CI installs them (scripts/setup.sh)
    if why:
        pytest.skip(why)
    return compile_pb2(tmp_path_factory.mktemp("pb2"))


WORKERS = """
import multiprocessing as mp, sys, time
import promshm

REQS = promshm.Counter("pbt_requests", "Requests.", ["code"])
INFLIGHT = promshm.Gauge("pbt_inflight", "In flight.", multiprocess_mode="sum")
LATENCY = promshm.Histogram("pbt_latency", "Latency.", unit="seconds", buckets=[0.1, 1.0, 10.0])
SIZE = promshm.Summary("pbt_size_bytes", "Sizes.")
BUILD = promshm.Info("pbt_build", "Build.")
MODE = promshm.Enum("pbt_mode", "Mode.", states=["fast", "slow"])

def work(i):
    for _ in range(1000):
        REQS.labels("200").inc()
    for _ in range(10):
        REQS.labels("500").inc(2.5)
    INFLIGHT.inc(3)
    for v, n in ((0.0625, 100), (0.5, 200), (5.0, 300), (50.0, 400)):
        for _ in range(n):
            LATENCY.observe(v)
    for v in range(1, 101):
        SIZE.observe(v)
    promshm.flush()

if __name__ == "__main__":
    started = time.time()
    procs = [mp.get_context("fork").Process(target=work, args=(i,)) for i in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0, p.exitcode
    BUILD.info({"version": "1.2.3", "revision": "abc"})
    MODE.state("slow")
    sys.stdout.write(repr(started) + "\\n")
    sys.stdout.flush()
    mode = sys.argv[1]
    if mode == "render":
        sys.stdout.buffer.write(promshm.REGISTRY.render("protobuf"))
    elif mode == "wsgi":
        app = promshm.make_wsgi_app()
        got = {}
        def start_response(status, headers):
            got["status"], got["headers"] = status, dict(headers)
        body = b"".join(app({"REQUEST_METHOD": "GET", "PATH_INFO": "/metrics", "QUERY_STRING": "",
                             "HTTP_ACCEPT": sys.argv[2]}, start_response))
        assert got["status"].startswith("200"), got
        sys.stdout.write(got["headers"]["Content-Type"] + "\\n")
        sys.stdout.flush()
        sys.stdout.buffer.write(body)
    elif mode == "asgi":
        import asyncio
        from promshm.asgi import make_asgi_app
        app = make_asgi_app()
        sent = []
        async def receive():
            return {"type": "http.request"}
        async def send(m):
            sent.append(m)
        scope = {"type": "http", "method": "GET", "path": "/metrics", "query_string": b"",
                 "headers": [(b"accept", sys.argv[2].encode())]}
        asyncio.run(app(scope, receive, send))
        headers = dict(sent[0]["headers"])
        sys.stdout.write(headers[b"content-type"].decode() + "\\n")
        sys.stdout.flush()
        sys.stdout.buffer.write(sent[1]["body"])
"""


def run_workers(tmp_path: Path, *args: str) -> Tuple[float, bytes]:
    script = tmp_path / "workers.py"
    script.write_text(textwrap.dedent(WORKERS))
    proc = subprocess.run(
        [sys.executable, str(script), *args],
        cwd=tmp_path,
        env=child_env(PROMSHM_DIR=str(tmp_path)),
        capture_output=True,
        timeout=180,
    )
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    first, rest = proc.stdout.split(b"\n", 1)
    return float(first), rest


def check_page(pb2, fams: Dict[str, object], started: float) -> None:
    T = pb2.MetricType
    c = fams["pbt_requests_total"]
    assert c.type == T.Value("COUNTER") and c.help == "Requests."
    by_code = {labels(m)["code"]: m.counter for m in c.metric}
    assert by_code["200"].value == 4000
    assert by_code["500"].value == 100
    for ctr in by_code.values():
        assert ctr.HasField("created_timestamp")
        created = ctr.created_timestamp.seconds + ctr.created_timestamp.nanos / 1e9
        assert started - 5 <= created <= time.time() + 1, (created, started)

    g = fams["pbt_inflight"]
    assert g.type == T.Value("GAUGE")
    assert [m.gauge.value for m in g.metric] == [12]

    h = fams["pbt_latency_seconds"]
    assert h.type == T.Value("HISTOGRAM") and h.unit == "seconds"
    (hm,) = h.metric
    hist = hm.histogram
    assert hist.sample_count == 4000
    assert hist.sample_sum == 4 * (100 * 0.0625 + 200 * 0.5 + 300 * 5.0 + 400 * 50.0)
    assert [(b.upper_bound, b.cumulative_count) for b in hist.bucket] == [(0.1, 400), (1.0, 1200), (10.0, 2400)]
    assert hist.HasField("created_timestamp")
    assert not hist.HasField("schema") and len(hist.positive_span) == 0

    s = fams["pbt_size_bytes"]
    assert s.type == T.Value("SUMMARY")
    (sm,) = s.metric
    assert sm.summary.sample_count == 400
    assert sm.summary.sample_sum == 4 * 5050
    assert sm.summary.HasField("created_timestamp")

    i = fams["pbt_build_info"]
    assert i.type == T.Value("GAUGE")
    (im,) = i.metric
    assert labels(im) == {"version": "1.2.3", "revision": "abc"} and im.gauge.value == 1

    e = fams["pbt_mode"]
    assert e.type == T.Value("GAUGE")
    states = {labels(m)["pbt_mode"]: m.gauge.value for m in e.metric}
    assert states == {"fast": 0, "slow": 1}
    for mf in fams.values():
        for m in mf.metric:
            assert not m.HasField("timestamp_ms")


def test_four_workers_page_decodes_exactly(tmp_path, pb2):
    started, body = run_workers(tmp_path, "render")
    assert b"\x00" in body
    check_page(pb2, decode(pb2, body), started)


@pytest.mark.parametrize("helper", ["wsgi", "asgi"])
def test_helpers_negotiate_protobuf(tmp_path, pb2, helper):
    started, out = run_workers(tmp_path, helper, PROTO_ACCEPT)
    content_type, body = out.split(b"\n", 1)
    assert content_type.decode() == CONTENT_TYPE
    check_page(pb2, decode(pb2, body), started)


@pytest.mark.parametrize("helper", ["wsgi", "asgi"])
def test_helpers_keep_text_when_text_is_preferred(tmp_path, helper):
    _, out = run_workers(tmp_path, helper, "application/openmetrics-text;version=1.0.0;q=0.9," + PROTO_ACCEPT)
    content_type, body = out.split(b"\n", 1)
    assert content_type.decode().startswith("application/openmetrics-text")
    assert b"pbt_requests_total{code=\"200\"} 4000" in body and body.endswith(b"# EOF\n")


def test_custom_collectors_fall_back_to_text(registry):
    import promshm
    from promshm.exposition import choose_encoder

    class One:
        def collect(self):
            from promshm.metrics_core import GaugeMetricFamily

            yield GaugeMetricFamily("one_thing", "One.", value=1)

    _, ct = choose_encoder(PROTO_ACCEPT, registry)
    assert ct == CONTENT_TYPE
    registry.register(One())
    _, ct = choose_encoder(PROTO_ACCEPT, registry)
    assert ct.startswith("application/openmetrics-text")
    with pytest.raises(promshm.errors.InvalidArgumentError):
        registry.render("protobuf")
    # Without a registry (prometheus_client's signature): text only.
    _, ct = choose_encoder(PROTO_ACCEPT)
    assert ct.startswith("application/openmetrics-text")

"""prometheus-flask-exporter's multiprocess classes under gunicorn -w 4,
unmodified app and library, through the promshm backend for the real
prometheus_client (issue 10, item 2): PROMSHM_PROMETHEUS_CLIENT=1 in the
environment only. 2,000 concurrent requests, every one of several scrapes exact.

The library insists on an existing PROMETHEUS_MULTIPROC_DIR; the tests give it
one holding a previous run's files (left by the same app without the
backend), which prometheus_client's own multiprocess mode would add to the
totals: with the backend they are ignored and no file is written."""

from __future__ import annotations

import collections
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Dict, List

import pytest

from conftest import free_port, parse_text, value
from test_prometheus_client_backend import Gunicorn, gunicorn  # noqa: F401  (the fixture)

pytest.importorskip("flask")
pytest.importorskip("prometheus_flask_exporter")

APP = """
from flask import Flask
from prometheus_flask_exporter.multiprocess import {cls}

app = Flask(__name__)
metrics = {cls}(app)
orders = metrics.counter("shop_orders", "Orders.", labels={{"item": lambda: "apple"}})


@app.route("/")
def index():
    return "ok"


@app.route("/order")
@orders
def order():
    return "ordered"


@app.route("/fail")
def fail():
    return "no", 500
"""

CONF = """
from prometheus_flask_exporter.multiprocess import GunicornPrometheusMetrics


def when_ready(server):
    GunicornPrometheusMetrics.start_http_server_when_ready({port}, "127.0.0.1")


def child_exit(server, worker):
    GunicornPrometheusMetrics.mark_process_dead_on_child_exit(worker.pid)
"""

PATHS = ["/", "/order", "/fail", "/"]


def _stale_dir(tmp_path: Path, gunicorn: Callable, cls: str) -> Path:
    """A PROMETHEUS_MULTIPROC_DIR with the .db files of a run without the backend."""
    mpdir = tmp_path / "prometheus_multiproc"
    mpdir.mkdir()
    files = {"fapp.py": APP.format(cls="GunicornInternalPrometheusMetrics")}
    old = gunicorn(files=files, app="fapp:app", ready_path="/metrics", PROMETHEUS_MULTIPROC_DIR=str(mpdir))
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(old.get, ["/"] * 40))
    assert old.stop() == 0
    assert list(mpdir.glob("counter_*.db")), "prometheus_client alone writes its files"
    return mpdir


@pytest.mark.parametrize("recycle", [False, True], ids=["steady", "max-requests"])
def test_gunicorn_internal_prometheus_metrics_exact(gunicorn, tmp_path, recycle):  # noqa: F811
    mpdir = _stale_dir(tmp_path, gunicorn, "GunicornInternalPrometheusMetrics")
    before = sorted(p.name for p in mpdir.iterdir())
    args = ["--max-requests", "150"] if recycle else []
    files = {"fapp.py": APP.format(cls="GunicornInternalPrometheusMetrics")}
    server = gunicorn(
        *args, files=files, app="fapp:app", ready_path="/", PROMSHM_PROMETHEUS_CLIENT="1", PROMETHEUS_MULTIPROC_DIR=str(mpdir)
    )
    # the readiness probe counted one "/" request: scrape totals include it
    _blast_and_check_with_probe(server, 2000, lambda: server.get("/metrics")[1])
    assert sorted(p.name for p in mpdir.iterdir()) == before, "the backend writes no .db file"
    assert server.stop() == 0, server.logs()


def test_gunicorn_prometheus_metrics_master_endpoint_exact(gunicorn, tmp_path):  # noqa: F811
    """GunicornPrometheusMetrics: the master serves /metrics on its own port
    (when_ready hook) through MultiProcessCollector; child_exit's
    mark_process_dead is harmless."""
    mpdir = _stale_dir(tmp_path, gunicorn, "GunicornPrometheusMetrics")
    port = free_port()
    files = {"fapp.py": APP.format(cls="GunicornPrometheusMetrics"), "gconf.py": CONF.format(port=port)}
    server = gunicorn(
        "-c",
        "gconf.py",
        files=files,
        app="fapp:app",
        ready_path="/",
        PROMSHM_PROMETHEUS_CLIENT="1",
        PROMETHEUS_MULTIPROC_DIR=str(mpdir),
    )
    master = f"http://127.0.0.1:{port}"
    _blast_and_check_with_probe(server, 2000, lambda: server.get("/metrics", base=master)[1])
    assert server.stop() == 0, server.logs()


def _blast_and_check_with_probe(server: Gunicorn, n: int, scrape: Callable[[], bytes]) -> None:
    """The readiness probe made one extra "/" request: send n - 1 more "/"-first
    requests so the plan's counts, probe included, are what the checks expect."""
    paths: List[str] = [PATHS[i % 4] for i in range(n)][1:]  # the probe was the first "/"
    with ThreadPoolExecutor(max_workers=32) as pool:
        statuses: Dict[int, int] = collections.Counter(st for st, _ in pool.map(server.get, paths))
    assert statuses == {200: n * 3 // 4 - 1, 500: n // 4}, statuses
    sent = collections.Counter(paths)
    sent["/"] += 1
    for _ in range(4):  # several scrapes, whichever worker (or the master) serves them
        body = scrape().decode()
        s = parse_text(body)
        assert value(s, "flask_http_request_total", method="GET", status="200") == sent["/"] + sent["/order"], body
        assert value(s, "flask_http_request_total", method="GET", status="500") == sent["/fail"]
        for p, k in sent.items():
            st = "500" if p == "/fail" else "200"
            assert value(s, "flask_http_request_duration_seconds_count", method="GET", path=p, status=st) == k
            assert value(s, "flask_http_request_duration_seconds_bucket", method="GET", path=p, status=st, le="+Inf") == k
        assert value(s, "shop_orders_total", item="apple") == sent["/order"]
        assert [k for k in s if k[0] == "flask_exporter_info"], "the exporter's info gauge"

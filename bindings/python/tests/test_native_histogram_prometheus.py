"""End to end, a Python pre-fork server into the real Prometheus: gunicorn
with 4 sync workers serves a WSGI app that observes into a native histogram
(prometheus_client's ``Histogram(..., native_histogram_bucket_factor=1.1)``)
and serves ``/metrics`` with ``promshm.make_wsgi_app``. Debian's Prometheus,
started by the test on 127.0.0.1 with ``--enable-feature=native-histograms``
(it then asks for the protobuf format first), scrapes that ``/metrics``;
``histogram_count()`` and ``histogram_sum()`` of the native histogram come
back exact, and ``histogram_quantile(0.5, ...)`` lies within the schema's
relative error of the median. Exemplars too (prometheus_client's
``inc(exemplar=...)`` and ``observe(..., exemplar=...)``): Prometheus runs
with ``exemplar-storage`` as well, and ``/api/v1/query_exemplars`` returns
exemplars of both series, each one a worker wrote whole (its trace id names
the request, whose value and amount it carries).

Without a ``prometheus`` binary the test is skipped, except under CI, where
that is a failure. Every wait is bounded; both servers are stopped by the test.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Iterator, List, Optional, Tuple

import pytest

from conftest import child_env, free_port
from http_checks import Server, stopped_at_end

pytest.importorskip("gunicorn")

PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"
WORKERS = 4
#: Dyadic values: their sum is exact in any order. Sorted, the median of
#: every 11 of them (so of all observations) is 1.0.
VALUES = (-3.0, -0.5, 0.0, 0.125, 0.25, 1.0, 1.0, 1.5, 2.0, 100.0, 4096.0)
ROUNDS = 200
#: Bound on Prometheus getting ready and on the values showing up.
WAIT = 90.0

APP = '''
import os
from urllib.parse import parse_qs

import promshm
from promshm import Counter, Histogram

LATENCY = Histogram("e2e_py_latency_seconds", "Latency.", ["route"],
                    native_histogram_bucket_factor=1.1)
SERVED = Counter("e2e_py_served", "Requests that observed, by worker pid.", ["pid"])
METRICS = promshm.make_wsgi_app()


def app(environ, start_response):
    if environ.get("PATH_INFO") == "/metrics":
        return METRICS(environ, start_response)
    q = parse_qs(environ.get("QUERY_STRING", ""))
    r = q.get("r", ["0"])[0]
    for v in q.get("v", []):
        LATENCY.labels("/work").observe(float(v), exemplar={"trace_id": "r%s-v%s" % (r, v)})
    SERVED.labels(str(os.getpid())).inc(1 + int(r) % 3, exemplar={"trace_id": "r" + r})
    promshm.flush()
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok\\n"]
'''


class NativeGunicorn(Server):
    """gunicorn with ``WORKERS`` sync workers serving ``APP``, on a free port."""

    name = "gunicorn"

    def __init__(self, tmp_path: Path) -> None:
        port = free_port()
        appdir = tmp_path / "app"
        appdir.mkdir()
        (appdir / "native_app.py").write_text(APP)
        rundir = tmp_path / "run"
        rundir.mkdir()
        env = child_env(PROMSHM_DIR=str(rundir))
        env.pop("PROMSHM_FLUSH_INTERVAL", None)
        super().__init__(
            [sys.executable, "-m", "gunicorn", "-w", str(WORKERS), "-b", f"127.0.0.1:{port}", "native_app:app"],
            port=port,
            cwd=appdir,
            env=env,
            log_path=tmp_path / "gunicorn.log",
            ready_path="/metrics",
        )


class Prometheus:
    """Debian's Prometheus on a free port with its own data directory,
    scraping ``target_port`` every second; SIGKILLed and reaped on stop."""

    def __init__(self, tmp_path: Path, target_port: int) -> None:
        cfg = tmp_path / "prometheus.yml"
        cfg.write_text(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
            "scrape_configs:\n  - job_name: python\n    static_configs:\n"
            f"      - targets: ['127.0.0.1:{target_port}']\n"
        )
        self.port = free_port()
        self.log = open(tmp_path / "prometheus.log", "w+")
        self.proc = subprocess.Popen(
            [
                PROMETHEUS,
                f"--config.file={cfg}",
                f"--storage.tsdb.path={tmp_path / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--enable-feature=native-histograms,exemplar-storage",
                "--log.level=warn",
            ],
            stdin=subprocess.DEVNULL,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.wait_for("ready", lambda: self.get("/-/ready") is not None)

    def get(self, path: str) -> Optional[bytes]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=5) as r:
                return r.read() if r.status == 200 else None
        except OSError:
            return None

    def query(self, q: str) -> Optional[float]:
        """The value of an instant query with exactly one result, else None."""
        body = self.get("/api/v1/query?query=" + urllib.parse.quote(q))
        if body is None:
            return None
        result = json.loads(body)["data"]["result"]
        return float(result[0]["value"][1]) if len(result) == 1 else None

    def exemplars(self, q: str) -> List[Tuple[str, float]]:
        """``(trace_id, value)`` of every exemplar of ``q`` stored so far."""
        now = time.time()
        body = self.get(f"/api/v1/query_exemplars?query={urllib.parse.quote(q)}&start={now - 600}&end={now + 60}")
        if body is None:
            return []
        return [(e["labels"]["trace_id"], float(e["value"])) for series in json.loads(body)["data"] for e in series["exemplars"]]

    def wait_for(self, what: str, ok: Callable[[], bool]) -> None:
        deadline = time.monotonic() + WAIT
        while not ok():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.log.seek(0)
                raise AssertionError(f"prometheus: {what} not within {WAIT} s:\n{self.log.read()[-4000:]}")
            time.sleep(0.25)

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)
        self.log.close()


@pytest.fixture
def prometheus_binary() -> str:
    if not os.access(PROMETHEUS, os.X_OK):
        if os.environ.get("CI"):
            pytest.fail(f"{PROMETHEUS} not found (Debian's prometheus package)")
        pytest.skip(f"{PROMETHEUS} not found")
    return PROMETHEUS


@pytest.fixture
def gunicorn(tmp_path: Path) -> Iterator[NativeGunicorn]:
    with stopped_at_end(lambda: NativeGunicorn(tmp_path)) as make:
        yield make()


def test_gunicorn_native_histogram_scraped_by_prometheus(prometheus_binary, gunicorn, tmp_path):
    # Every request observes all VALUES, rotated; 4 threads keep the 4
    # workers busy at once.
    def one(r: int) -> int:
        vs = [VALUES[(k + r) % len(VALUES)] for k in range(len(VALUES))]
        query = [("r", str(r))] + [("v", repr(v)) for v in vs]
        return gunicorn.get("/work?" + urllib.parse.urlencode(query))[0]

    with ThreadPoolExecutor(WORKERS) as pool:
        statuses = list(pool.map(one, range(ROUNDS)))
    assert statuses == [200] * ROUNDS
    count = ROUNDS * len(VALUES)
    total = ROUNDS * sum(VALUES)

    # The protobuf page, which Prometheus asks for first with the feature on.
    status, _, headers = gunicorn.request(
        "/metrics", {"Accept": "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited"}
    )
    assert status == 200 and headers["Content-Type"].startswith("application/vnd.google.protobuf"), headers

    prom = Prometheus(tmp_path, gunicorn.port)
    try:
        sel = 'e2e_py_latency_seconds{route="/work"}'
        prom.wait_for("histogram_count", lambda: prom.query(f"histogram_count({sel})") == count)
        assert prom.query(f"histogram_sum({sel})") == total
        # Several workers observed: their counts added up in one series.
        workers = prom.query("count(e2e_py_served_total)")
        assert workers is not None and workers >= 2, workers
        assert prom.query("sum(e2e_py_served_total)") == sum(1 + r % 3 for r in range(ROUNDS))
        # Factor 1.1 is schema 3 (growth 2^(1/8)): the median interpolated
        # in its bucket is within that bucket of 1.0.
        median = prom.query(f"histogram_quantile(0.5, {sel})")
        assert median is not None and 2 ** (-1 / 8) <= median <= 2 ** (1 / 8), median
        # Scraped as protobuf, the series is a native histogram only: no
        # classic _count series was ingested beside it.
        assert prom.query('e2e_py_latency_seconds_count{route="/work"}') is None
        # The newest exemplar of any worker, whole: request r added 1 + r % 3
        # with trace id "r<r>", and observed v with trace id "r<r>-v<v>".
        prom.wait_for("counter exemplars", lambda: bool(prom.exemplars("e2e_py_served_total")))
        for trace, amount in prom.exemplars("e2e_py_served_total"):
            assert trace.startswith("r") and amount == 1 + int(trace[1:]) % 3, (trace, amount)
        prom.wait_for("histogram exemplars", lambda: bool(prom.exemplars("e2e_py_latency_seconds")))
        for trace, v in prom.exemplars("e2e_py_latency_seconds"):
            r, _, written = trace.partition("-v")
            assert r.startswith("r") and float(written) == v and v in VALUES, (trace, v)
    finally:
        prom.stop()
    assert gunicorn.stop() == 0

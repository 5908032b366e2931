"""pyprometheus' uWSGI storages on a real uWSGI with the promshm plugin (issue 11).

A master and 4 workers run an app written as pyprometheus' README shows,
its imports changed to ``promshm.idioms.pyprometheus``: metrics made at
import in the master on ``CollectorRegistry(storage=UWSGIStorage(0))``
(written through) and on ``UWSGIFlushStorage(0)`` (batched), a
``UWSGICollector``, and ``/app-metrics`` rendered with ``registry_to_text``.
The app never flushes, and ``PROMSHM_FLUSH_INTERVAL=0`` turns the
package's timer off, so only the storage's mode and the plugin move values:

- default plugin: the write-through storage's values are exact on the
  plugin's ``/metrics`` as soon as the last response is in (nothing to
  flush); the batched storage's arrive with the plugin's flush at request
  end (exact within a few seconds, as the request metrics);
- ``--promshm-no-app-flush``: the write-through values are still exact at
  once, the batched ones stay in the workers (the difference between the
  two storages).

Pages pass ``promtool check metrics``. Every uWSGI is stopped (SIGINT,
then SIGKILL to its process group) and every wait is bounded.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import List

import pytest

from test_uwsgi_plugin import (  # noqa: F401
    LIBRARY,
    PLUGIN,
    ROOT,
    built_plugin,
    children_of,
    free_port,
    parse,
    promtool_check,
    request,
    send_many,
    total,
    value,
    wait_for,
)

WORKERS = 4
REQUESTS = 400

APP = '''
from promshm.idioms.pyprometheus import CollectorRegistry, Counter, Gauge, Histogram
from promshm.idioms.pyprometheus.contrib.uwsgi_features import UWSGICollector, UWSGIFlushStorage, UWSGIStorage
from promshm.idioms.pyprometheus.utils.exposition import registry_to_text

SHAREDAREA_ID = 0
registry = CollectorRegistry(storage=UWSGIStorage(SHAREDAREA_ID))
batched = CollectorRegistry(storage=UWSGIFlushStorage(SHAREDAREA_ID))
registry.register(UWSGICollector("app"))

requests = Counter("app_requests_total", "Requests.", ["path"], registry=registry)
latency = Histogram("app_latency_seconds", "Latency.", buckets=[0.1, 1], registry=registry)
in_progress = Gauge("app_in_progress", "Requests in progress.", registry=registry)
jobs = Counter("app_batched_jobs_total", "Jobs, batched.", registry=batched)


def application(environ, start_response):
    path = environ.get("PATH_INFO", "/")
    if path == "/app-metrics":
        body = registry_to_text(registry).encode()
    else:
        with in_progress.track_in_progress(), latency.time():
            requests.labels(path=path).inc()
            jobs.inc()
        body = b"ok\\n"
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [body]
'''


class App:
    """uWSGI: master + 4 workers, the plugin, the pyprometheus-style app."""

    def __init__(self, tmp: Path, *extra: str) -> None:
        app = tmp / "pyprometheus_app.py"
        app.write_text(APP)
        self.port, self.lport = free_port(), free_port()
        self.log = tmp / f"uwsgi-{self.port}.log"
        args = [
            shutil.which("uwsgi") or "uwsgi",
            "--plugins", "python3",
            "--plugin", str(PLUGIN),
            "--master", "--processes", str(WORKERS),
            "--http-socket", f"127.0.0.1:{self.port}",
            "--wsgi-file", str(app),
            "--route", "^/metrics$ promshm:",
            "--promshm-listen", f"127.0.0.1:{self.lport}",
            "--die-on-term", "--disable-logging",
            "--worker-reload-mercy", "5", "--reload-mercy", "5",
            *extra,
        ]
        env = {k: v for k, v in os.environ.items() if not k.startswith("PROMSHM_") and k != "PYTHONPATH"}
        env.update(PYTHONPATH=str(ROOT / "bindings" / "python"), PROMSHM_LIBRARY=str(LIBRARY), PROMSHM_FLUSH_INTERVAL="0")
        self._logf = open(self.log, "wb")
        self.proc = subprocess.Popen(args, stdout=self._logf, stderr=subprocess.STDOUT, env=env, cwd=tmp, start_new_session=True)

    def wait_ready(self) -> None:
        def ready():
            if self.proc.poll() is not None:
                raise AssertionError(f"uWSGI exited with {self.proc.returncode}:\n{self.log.read_text(errors='replace')[-3000:]}")
            return request(self.lport, "/metrics", timeout=2)[0] == 200
        wait_for("uWSGI to answer", ready, 20)
        wait_for(f"{WORKERS} workers", lambda: len(children_of(self.proc.pid)) >= WORKERS, 20)

    def page(self) -> str:
        status, _, body = request(self.lport, "/metrics", timeout=5)
        assert status == 200
        return body.decode()

    def stop(self) -> None:
        if self.proc.poll() is None:
            try:
                os.kill(self.proc.pid, signal.SIGINT)
                self.proc.wait(timeout=15)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                pass
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        self._logf.close()


@pytest.fixture
def apps(tmp_path):
    started: List[App] = []

    def start(*extra: str) -> App:
        a = App(tmp_path, *extra)
        started.append(a)
        a.wait_ready()
        return a

    yield start
    for a in started:
        a.stop()


def _work(app: App) -> None:
    statuses = send_many(app.port, "/work", REQUESTS, concurrency=8)
    assert statuses.count(200) == REQUESTS, f"{REQUESTS - statuses.count(200)} requests failed"


def _eager_exact(s) -> None:
    """The write-through storage's values, exact the moment the last response is in."""
    assert value(s, "app_requests_total", path="/work") == REQUESTS
    assert value(s, "app_latency_seconds_count") == REQUESTS
    assert value(s, "app_latency_seconds_bucket", le="0.1") == REQUESTS
    assert value(s, "app_in_progress") == 0


def test_uwsgi_storage_writes_through_and_flush_storage_arrives_with_the_plugins_flush(apps):
    app = apps("--sharedarea", "4")  # pyprometheus' sharedarea: accepted, not needed
    _work(app)
    page = app.page()  # at once: no wait, no flush anywhere
    promtool_check(page)
    _eager_exact(parse(page))

    def batched_arrived():
        s = parse(app.page())
        return s if value(s, "app_batched_jobs_total") == REQUESTS else None

    s = wait_for("the batched storage's counts (the plugin's flush at request end)", batched_arrived, timeout=10)
    assert value(s, "uwsgi_requests_total", method="GET", status="200") >= REQUESTS  # the plugin's metrics, same page

    # /app-metrics: rendered in Python by a worker, the UWSGICollector included.
    status, _, body = request(app.port, "/app-metrics", timeout=5)
    assert status == 200
    text = body.decode()
    promtool_check(text)
    a = parse(text)
    assert value(a, "app_requests_total", path="/work") == REQUESTS
    assert value(a, "app_processes") == WORKERS
    ids = {dict(ls)["id"] for (n, ls) in a if n == "app_process_requests"}
    assert ids == {str(i) for i in range(1, WORKERS + 1)}
    assert total(a, "app_process_requests") >= REQUESTS


def test_without_the_plugins_app_flush_only_the_write_through_storage_arrives(apps):
    app = apps("--promshm-no-app-flush")
    _work(app)
    s = parse(app.page())
    _eager_exact(s)
    time.sleep(1.5)  # longer than any flush interval: nothing flushes the batched storage
    s = parse(app.page())
    _eager_exact(s)
    batched = value(s, "app_batched_jobs_total")
    print(f"batched storage without the plugin's flush: {batched} of {REQUESTS}")
    assert batched < REQUESTS

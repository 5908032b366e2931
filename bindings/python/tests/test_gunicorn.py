"""gunicorn (from PyPI) with 4 sync workers serving examples/python/app.py:
2,000 concurrent requests, then /metrics, whose totals must be exact.

The server is started by the test on 127.0.0.1 on a free port, with no
promshm configuration at all (the workers find the area themselves), and
stopped by it; every wait is bounded."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Dict, Iterator, List, Tuple

import pytest

from conftest import REPO, child_env, free_port, value
from http_checks import _blast, _check_exact, _plan

pytest.importorskip("gunicorn")

EXAMPLE = REPO / "examples" / "python"
if not (EXAMPLE / "app.py").is_file():
    pytest.skip("examples/python not found", allow_module_level=True)


class Server:
    def __init__(self, tmp_path: Path, **env: str) -> None:
        self.port = free_port()
        self.rundir = tmp_path / "run"
        self.rundir.mkdir(exist_ok=True)
        self.log = open(tmp_path / "gunicorn.log", "w+")
        e = child_env(BIND=f"127.0.0.1:{self.port}", PROMSHM_DIR=str(self.rundir), **env)
        e.pop("PROMSHM_FLUSH_INTERVAL", None)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py"],
            cwd=EXAMPLE,
            env=e,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.base = f"http://127.0.0.1:{self.port}"
        deadline = time.time() + 60
        while True:
            try:
                self.get("/metrics")  # not counted by the app
                break
            except (urllib.error.URLError, ConnectionError, OSError):
                if self.proc.poll() is not None or time.time() > deadline:
                    self.stop()
                    raise RuntimeError(f"gunicorn did not start:\n{self.logs()}")
                time.sleep(0.1)

    def get(self, path: str, headers: Dict[str, str] = None) -> Tuple[int, bytes, Dict[str, str]]:
        req = urllib.request.Request(self.base + path, headers=headers or {})
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                return r.status, r.read(), dict(r.headers)
        except urllib.error.HTTPError as e:
            return e.code, e.read(), dict(e.headers)

    def logs(self) -> str:
        self.log.flush()
        self.log.seek(0)
        return self.log.read()[-5000:]

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        self.log.close()
        return self.proc.returncode


@pytest.fixture
def server_factory(tmp_path: Path) -> Iterator:
    servers: List[Server] = []

    def make(**env: str) -> Server:
        s = Server(tmp_path, **env)
        servers.append(s)
        return s

    yield make
    for s in servers:
        s.stop()


def test_gunicorn_four_workers_exact(server_factory):
    # Workers are recycled every ~300 requests (max_requests): counts of
    # workers that exited must stay, and the new ones must find the area.
    server = server_factory(MAX_REQUESTS="300")
    paths = _plan(2000)
    statuses = _blast(server, paths)
    assert statuses == {200: 1500, 500: 500}, statuses
    status, body, headers = server.get("/metrics")
    assert status == 200 and headers["Content-Type"].startswith("text/plain; version=0.0.4")
    s = _check_exact(body.decode(), paths)
    assert value(s, "example_build_info", version=__import__("promshm").__version__, server="gunicorn") == 1
    assert value(s, "promshm_workers_reaped_total") >= 1, "workers were recycled (max_requests)"
    assert value(s, "promshm_registrations_refused_total") == 0
    # Every scrape, whichever worker serves it, gives the same totals.
    for _ in range(4):
        _check_exact(server.get("/metrics")[1].decode(), paths)
    status, body, headers = server.get("/metrics", {"Accept": "application/openmetrics-text; version=1.0.0"})
    assert headers["Content-Type"].startswith("application/openmetrics-text")
    _check_exact(body.decode(), paths, openmetrics=True)
    assert server.stop() == 0


def test_gunicorn_preload_and_per_worker_gauge(server_factory, tmp_path):
    server = server_factory(PRELOAD="1")
    paths = _plan(400)
    _blast(server, paths)
    body = server.get("/metrics")[1].decode()
    s = _check_exact(body, paths)
    per_worker = {dict(k[1])["worker"]: v for k, v in s.items() if k[0] == "worker_requests"}
    assert 1 <= len(per_worker) <= 4 and sum(per_worker.values()) == len(paths)
    files = list((tmp_path / "run").glob("promshm-*.area"))
    assert len(files) == 1
    assert server.stop() == 0
    # With --preload the master made the zero-config area, and removes it at exit.
    assert not files[0].exists()

"""gunicorn (from PyPI) with 4 sync workers serving examples/python/app.py:
2,000 concurrent requests, then /metrics, whose totals must be exact.

The server is started by the test on 127.0.0.1 on a free port, with no
promshm configuration at all (the workers find the area themselves), and
stopped by it; every wait is bounded."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Iterator

import pytest

from conftest import REPO, child_env, free_port, value
from http_checks import Server, _blast, _check_exact, _plan, stopped_at_end

pytest.importorskip("gunicorn")

EXAMPLE = REPO / "examples" / "python"
if not (EXAMPLE / "app.py").is_file():
    pytest.skip("examples/python not found", allow_module_level=True)


class ExampleGunicorn(Server):
    """examples/python's gunicorn.conf.py and app.py, on a free port."""

    name = "gunicorn"

    def __init__(self, tmp_path: Path, **env: str) -> None:
        port = free_port()
        self.rundir = tmp_path / "run"
        self.rundir.mkdir(exist_ok=True)
        e = child_env(BIND=f"127.0.0.1:{port}", PROMSHM_DIR=str(self.rundir), **env)
        e.pop("PROMSHM_FLUSH_INTERVAL", None)
        super().__init__(
            [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py"],
            port=port,
            cwd=EXAMPLE,
            env=e,
            log_path=tmp_path / "gunicorn.log",
            ready_path="/metrics",  # not counted by the app
        )


@pytest.fixture
def server_factory(tmp_path: Path) -> Iterator:
    with stopped_at_end(lambda **env: ExampleGunicorn(tmp_path, **env)) as make:
        yield make


def test_gunicorn_four_workers_exact(server_factory):
    # Workers are recycled every ~300 requests (max_requests): counts of
    # workers that exited must stay, and the new ones must find the area.
    server = server_factory(MAX_REQUESTS="300")
    paths = _plan(2000)
    statuses = _blast(server, paths)
    assert statuses == {200: 1500, 500: 500}, statuses
    status, body, headers = server.request("/metrics")
    assert status == 200 and headers["Content-Type"].startswith("text/plain; version=0.0.4")
    s = _check_exact(body.decode(), paths)
    assert value(s, "example_build_info", version=__import__("promshm").__version__, server="gunicorn") == 1
    assert value(s, "promshm_workers_reaped_total") >= 1, "workers were recycled (max_requests)"
    assert value(s, "promshm_registrations_refused_total") == 0
    # Every scrape, whichever worker serves it, gives the same totals.
    for _ in range(4):
        _check_exact(server.get("/metrics")[1].decode(), paths)
    status, body, headers = server.request("/metrics", {"Accept": "application/openmetrics-text; version=1.0.0"})
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

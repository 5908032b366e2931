"""prometheus-fastapi-instrumentator and starlette_exporter under
``uvicorn --workers 4`` (spawned worker processes), unmodified app and
libraries, through the promshm backend for the real prometheus_client, switched
on by PROMSHM_PROMETHEUS_CLIENT=1 alone (issue 10, item 2).

uvicorn's workers are fresh interpreters, so the shipped .pth file is put in
the site-packages of a venv (``--system-site-packages``) that runs uvicorn, as
``pip install`` puts it. 2,000 concurrent requests, every one of several
scrapes exact, whichever worker serves it."""

from __future__ import annotations

import collections
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Iterator, Tuple

import pytest

from conftest import child_env, free_port, parse_text, value

for _mod in ("uvicorn", "fastapi", "prometheus_fastapi_instrumentator", "starlette_exporter"):
    pytest.importorskip(_mod)

PTH = Path(__file__).resolve().parent.parent / "promshm-prometheus-client.pth"

APP = """
from fastapi import FastAPI, HTTPException
from prometheus_fastapi_instrumentator import Instrumentator
from starlette_exporter import PrometheusMiddleware, handle_metrics

app = FastAPI()
app.add_middleware(PrometheusMiddleware)
app.add_route("/smetrics", handle_metrics)


@app.get("/")
def index():
    return {"ok": 1}


@app.get("/fail")
def fail():
    raise HTTPException(status_code=500)


Instrumentator().instrument(app).expose(app)
"""


@pytest.fixture(scope="module")
def venv_python(tmp_path_factory) -> str:
    d = tmp_path_factory.mktemp("venv")
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(d)], check=True, timeout=300)
    py = str(d / "bin" / "python")
    purelib = subprocess.run(
        [py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout.strip()
    (Path(purelib) / PTH.name).write_text(PTH.read_text())
    return py


class Uvicorn:
    def __init__(self, py: str, tmp_path: Path, **env: str) -> None:
        self.port = free_port()
        (tmp_path / "aapp.py").write_text(APP)
        self.log = open(tmp_path / f"uvicorn-{self.port}.log", "w+")
        e = child_env(PROMSHM_DIR=str(tmp_path), **env)
        e.pop("PROMETHEUS_MULTIPROC_DIR", None)
        self.proc = subprocess.Popen(
            [py, "-m", "uvicorn", "--workers", "4", "--host", "127.0.0.1", "--port", str(self.port), "--log-level", "warning", "aapp:app"],
            cwd=tmp_path,
            env=e,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.base = f"http://127.0.0.1:{self.port}"
        deadline = time.time() + 90
        while True:
            try:
                self.get("/smetrics")
                break
            except (urllib.error.URLError, ConnectionError, OSError):
                if self.proc.poll() is not None or time.time() > deadline:
                    self.stop()
                    raise RuntimeError(f"uvicorn did not start:\n{self.logs()}")
                time.sleep(0.2)

    def get(self, path: str) -> Tuple[int, bytes]:
        try:
            with urllib.request.urlopen(self.base + path, timeout=30) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()

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
        if not self.log.closed:
            self.log.close()
        return self.proc.returncode


@pytest.fixture
def uvicorn(venv_python, tmp_path) -> Iterator:
    servers = []

    def make(**env: str) -> Uvicorn:
        s = Uvicorn(venv_python, tmp_path, **env)
        servers.append(s)
        return s

    yield make
    for s in servers:
        s.stop()


def test_uvicorn_four_workers_instrumentator_and_starlette_exporter_exact(uvicorn):
    server = uvicorn(PROMSHM_PROMETHEUS_CLIENT="1")
    n = 2000
    paths = ["/fail" if i % 4 == 3 else "/" for i in range(n)]
    with ThreadPoolExecutor(max_workers=32) as pool:
        statuses = collections.Counter(st for st, _ in pool.map(server.get, paths))
    assert statuses == {200: n * 3 // 4, 500: n // 4}, statuses
    ok, failed = n * 3 // 4, n // 4
    for _ in range(4):
        body = server.get("/metrics")[1].decode()
        s = parse_text(body)
        assert value(s, "http_requests_total", handler="/", method="GET", status="2xx") == ok, body
        assert value(s, "http_requests_total", handler="/fail", method="GET", status="5xx") == failed
        assert value(s, "http_request_duration_seconds_count", handler="/", method="GET") == ok
        assert value(s, "http_request_duration_highr_seconds_count") >= n
        body = server.get("/smetrics")[1].decode()
        s = parse_text(body)
        labels = {"app_name": "starlette", "method": "GET"}
        assert value(s, "starlette_requests_total", path="/", status_code="200", **labels) == ok, body
        assert value(s, "starlette_requests_total", path="/fail", status_code="500", **labels) == failed
        assert value(s, "starlette_request_duration_seconds_count", path="/", status_code="200", **labels) == ok
        assert value(s, "starlette_requests_in_progress", **labels) == 1  # this scrape
    server.stop()

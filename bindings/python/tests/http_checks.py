"""Shared by the pre-fork server tests: a server process started and stopped
by the test, a request plan, a concurrent blast of requests, and the
exactness checks of examples/python/app.py's metrics."""

from __future__ import annotations

import collections
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple

import pytest

from conftest import child_env, parse_text, value

#: uWSGI (Debian's uwsgi-core) and its python3 plugin, if installed.
UWSGI = shutil.which("uwsgi")
_UWSGI_PLUGIN = Path("/usr/lib/uwsgi/plugins") / "python3_plugin.so"
needs_uwsgi = pytest.mark.skipif(
    UWSGI is None or not _UWSGI_PLUGIN.exists(), reason="uwsgi with its python3 plugin is not installed"
)


def run_code(code: str, tmp_path: Path, timeout: float = 120, **env: str) -> subprocess.CompletedProcess:
    """``python -c code`` in a child with promshm importable and its area
    files in ``tmp_path``; fails the test if it fails."""
    r = subprocess.run(
        [sys.executable, "-c", code], env=child_env(PROMSHM_DIR=str(tmp_path), **env), capture_output=True, text=True, timeout=timeout
    )
    assert r.returncode == 0, r.stderr[-5000:]
    return r


class Server:
    """A server process on 127.0.0.1 started by a test: its output goes to
    ``log_path``, it is ready once ``ready_path`` answers (within ``timeout``
    seconds), and :meth:`stop` ends it (SIGTERM, then SIGKILL of its process
    group; with ``kill_group`` the group is killed in any case, for workers
    left behind). Every wait is bounded."""

    name = "server"

    def __init__(
        self,
        cmd: Sequence[str],
        *,
        port: int,
        cwd: Path,
        env: Mapping[str, str],
        log_path: Path,
        ready_path: str,
        timeout: float = 60,
        kill_group: bool = False,
    ) -> None:
        self.port = port
        self.kill_group = kill_group
        self.log_path = log_path
        self.log = open(log_path, "w+")
        self.proc = subprocess.Popen(
            list(cmd), cwd=cwd, env=dict(env), stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True
        )
        self.base = f"http://127.0.0.1:{port}"
        deadline = time.time() + timeout
        while True:
            try:
                self.request(ready_path)
                break
            except (urllib.error.URLError, ConnectionError, OSError):
                if self.proc.poll() is not None or time.time() > deadline:
                    self.stop()
                    raise RuntimeError(f"{self.name} did not start:\n{self.logs()}")
                time.sleep(0.1)

    def request(self, path: str, headers: Optional[Dict[str, str]] = None, base: str = "") -> Tuple[int, bytes, Dict[str, str]]:
        """GET ``path``: status, body and headers (of an error response too)."""
        req = urllib.request.Request((base or self.base) + path, headers=headers or {})
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                return r.status, r.read(), dict(r.headers)
        except urllib.error.HTTPError as e:
            return e.code, e.read(), dict(e.headers)

    def get(self, path: str, base: str = "") -> Tuple[int, bytes]:
        """GET ``path``: status and body."""
        status, body, _ = self.request(path, base=base)
        return status, body

    def logs(self) -> str:
        """The end of the server's output (after ``stop`` too)."""
        if not self.log.closed:
            self.log.flush()
        with open(self.log_path, errors="replace") as f:
            return f.read()[-5000:]

    def stop(self) -> Optional[int]:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        if self.kill_group:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)  # any worker left behind
            except (ProcessLookupError, PermissionError):
                pass
        if not self.log.closed:
            self.log.close()
        return self.proc.returncode


@contextlib.contextmanager
def stopped_at_end(make: Callable[..., Server]) -> Iterator[Callable[..., Server]]:
    """A server factory for a fixture: every server it made is stopped at the end."""
    servers: List[Server] = []

    def start(*args: Any, **kwargs: Any) -> Server:
        s = make(*args, **kwargs)
        servers.append(s)
        return s

    try:
        yield start
    finally:
        for s in servers:
            s.stop()


def _plan(n: int) -> List[str]:
    paths = []
    for i in range(n):
        k = i % 4
        paths.append(["/", "/order?item=apple&qty=2", "/order?item=pear&qty=1", "/fail"][k])
    return paths


def _blast(server: Server, paths: List[str], bodies: Optional[List[bytes]] = None) -> collections.Counter:
    """Send every request of ``paths``, 32 at a time: how many got each
    status (and every response body appended to ``bodies`` if given)."""

    def one(path: str) -> int:
        status, body = server.request(path)[:2]
        if bodies is not None:
            bodies.append(body)
        return status

    with ThreadPoolExecutor(max_workers=32) as pool:
        return collections.Counter(pool.map(one, paths))


def blast_ok_and_fail(server: Server, n: int) -> Tuple[int, int]:
    """``n`` concurrent requests, every 4th to ``/fail`` (answered 500), the
    others to ``/``: checks the statuses, returns (ok, failed)."""
    paths = ["/fail" if i % 4 == 3 else "/" for i in range(n)]
    ok, failed = n * 3 // 4, n // 4
    statuses = _blast(server, paths)
    assert statuses == {200: ok, 500: failed}, statuses
    return ok, failed


def _check_exact(text: str, paths: List[str], openmetrics: bool = False) -> Dict:
    s = parse_text(text, openmetrics)
    sent = collections.Counter(paths)
    name = "http_requests_total"
    assert value(s, name, method="GET", path="/", status="200") == sent["/"]
    orders = sent["/order?item=apple&qty=2"] + sent["/order?item=pear&qty=1"]
    assert value(s, name, method="GET", path="/order", status="200") == orders
    assert value(s, name, method="GET", path="/fail", status="500") == sent["/fail"]
    assert sum(v for (n, _), v in s.items() if n == name) == len(paths)
    assert value(s, "shop_orders_total", item="apple") == 2 * sent["/order?item=apple&qty=2"]
    assert value(s, "shop_orders_total", item="pear") == sent["/order?item=pear&qty=1"]
    counts = sum(v for (n, _), v in s.items() if n == "http_request_duration_seconds_count")
    assert counts == len(paths)
    assert value(s, "http_requests_inflight") == 0
    return s

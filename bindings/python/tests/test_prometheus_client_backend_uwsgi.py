"""uWSGI (Debian's uwsgi-core and python3 plugin, if installed), a master and 4
workers, serving an app that uses the real prometheus_client only, through the
promshm backend switched on by PROMSHM_PROMETHEUS_CLIENT=1 (issue 10, item 1).

The embedded interpreter does not read the test's site directory, so a module
given to ``--pyimport`` adds it with ``site.addsitedir`` (what site-packages
is for an installed promshm): the shipped .pth file is processed, the app is
not changed. 2,000 concurrent requests, several scrapes exact, with the app
loaded in the master (default) and in each worker (``--lazy-apps``)."""

from __future__ import annotations

import collections
import os
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Tuple

import pytest

from conftest import child_env, free_port, parse_text, value
from test_prometheus_client_backend import APP, PTH

prometheus_client = pytest.importorskip("prometheus_client")

UWSGI = shutil.which("uwsgi")
PLUGIN_DIR = Path("/usr/lib/uwsgi/plugins")

pytestmark = pytest.mark.skipif(
    UWSGI is None or not (PLUGIN_DIR / "python3_plugin.so").exists(),
    reason="uwsgi with its python3 plugin is not installed",
)


class UWSGIServer:
    def __init__(self, tmp_path: Path, lazy: bool, **env: str) -> None:
        self.port = free_port()
        site = tmp_path / "site"
        site.mkdir(exist_ok=True)
        (site / PTH.name).write_text(PTH.read_text())
        app_dir = tmp_path / "app"
        app_dir.mkdir(exist_ok=True)
        (app_dir / "pcapp.py").write_text(APP)
        (app_dir / "pthsite.py").write_text(f"import site\nsite.addsitedir({str(site)!r})\n")
        self.log = open(tmp_path / f"uwsgi-{self.port}.log", "w+")
        args = [
            UWSGI, "--plugin", "python3", "--master", "--processes", "4",
            "--http-socket", f"127.0.0.1:{self.port}", "--pythonpath", str(app_dir),
            "--pyimport", "pthsite", "--module", "pcapp:app",
            "--die-on-term", "--disable-logging", "--need-app",
        ]
        if lazy:
            args.append("--lazy-apps")
        e = child_env(PROMSHM_DIR=str(tmp_path), **env)
        # prometheus_client (pure Python) for the system interpreter uWSGI embeds
        pc_dir = str(Path(prometheus_client.__file__).resolve().parent.parent)
        e["PYTHONPATH"] = os.pathsep.join([e["PYTHONPATH"], pc_dir])
        self.proc = subprocess.Popen(args, cwd=app_dir, env=e, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        self.base = f"http://127.0.0.1:{self.port}"
        deadline = time.time() + 60
        while True:
            try:
                self.get("/metrics/default")
                break
            except (urllib.error.URLError, ConnectionError, OSError):
                if self.proc.poll() is not None or time.time() > deadline:
                    self.stop()
                    raise RuntimeError(f"uwsgi did not start:\n{self.logs()}")
                time.sleep(0.1)

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

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)  # any worker left behind
        except (ProcessLookupError, PermissionError):
            pass
        if not self.log.closed:
            self.log.close()


@pytest.mark.parametrize("lazy", [False, True], ids=["master-loads", "lazy-apps"])
def test_uwsgi_four_workers_exact_through_the_backend(tmp_path, lazy):
    server = UWSGIServer(tmp_path, lazy, PROMSHM_PROMETHEUS_CLIENT="1")
    try:
        n = 2000
        paths = [["/", "/a", "/b", "/fail"][i % 4] for i in range(n)]
        with ThreadPoolExecutor(max_workers=32) as pool:
            statuses = collections.Counter(st for st, _ in pool.map(server.get, paths))
        assert statuses == {200: n * 3 // 4, 500: n // 4}, statuses
        sent = collections.Counter(paths)
        for _ in range(3):
            for kind in ("/metrics", "/metrics/default", "/metrics/own"):
                body = server.get(kind)[1].decode()
                s = parse_text(body)
                if kind != "/metrics/own":
                    for p, k in sent.items():
                        st = "500" if p == "/fail" else "200"
                        assert value(s, "app_requests_total", path=p, status=st) == k, (kind, body)
                        assert value(s, "app_latency_seconds_count", path=p) == k
                if kind != "/metrics/default":
                    assert value(s, "app_hits_total") == n, (kind, body)
                    assert value(s, "app_sizes_bytes_count") == n
    finally:
        server.stop()

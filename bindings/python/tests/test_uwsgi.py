"""uWSGI (Debian's uwsgi-core and python3 plugin, if installed) with a master
and 4 worker processes serving examples/python/app.py with no promshm
configuration: the workers find the area through ``uwsgi.masterpid()``
(``--lazy-apps``) or inherit it from the master (the default, where the
master loads the app and forks). Bounded: uWSGI is stopped whatever happens."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from conftest import REPO, child_env, free_port, value
from http_checks import _blast, _check_exact, _plan

EXAMPLE = REPO / "examples" / "python"
UWSGI = shutil.which("uwsgi")
PLUGIN_DIR = Path("/usr/lib/uwsgi/plugins")

pytestmark = pytest.mark.skipif(
    UWSGI is None or not (PLUGIN_DIR / "python3_plugin.so").exists(),
    reason="uwsgi with its python3 plugin is not installed",
)


class UWSGIServer:
    def __init__(self, tmp_path: Path, lazy: bool) -> None:
        self.port = free_port()
        rundir = tmp_path / "run"
        rundir.mkdir(exist_ok=True)
        self.rundir = rundir
        self.log = open(tmp_path / "uwsgi.log", "w+")
        args = [
            UWSGI, "--plugin", "python3", "--master", "--processes", "4",
            "--http-socket", f"127.0.0.1:{self.port}", "--wsgi-file", "app.py", "--callable", "app",
            "--die-on-term", "--disable-logging", "--need-app",
        ]
        if lazy:
            args.append("--lazy-apps")
        self.proc = subprocess.Popen(
            args, cwd=EXAMPLE, env=child_env(PROMSHM_DIR=str(rundir)), stdout=self.log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.base = f"http://127.0.0.1:{self.port}"
        deadline = time.time() + 60
        while True:
            try:
                self.get("/metrics")
                break
            except (urllib.error.URLError, ConnectionError, OSError):
                if self.proc.poll() is not None or time.time() > deadline:
                    self.stop()
                    raise RuntimeError("uwsgi did not start:\n" + (tmp_path / "uwsgi.log").read_text()[-3000:])
                time.sleep(0.1)

    def get(self, path: str, headers=None):
        req = urllib.request.Request(self.base + path, headers=headers or {})
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                return r.status, r.read(), dict(r.headers)
        except urllib.error.HTTPError as e:
            return e.code, e.read(), dict(e.headers)

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
        except ProcessLookupError:
            pass
        self.log.close()


@pytest.mark.parametrize("lazy", [True, False], ids=["lazy-apps", "master-loads-app"])
def test_uwsgi_four_workers_exact(tmp_path, lazy):
    server = UWSGIServer(tmp_path, lazy)
    try:
        paths = _plan(800)
        statuses = _blast(server, paths)
        assert statuses == {200: 600, 500: 200}, statuses
        s = _check_exact(server.get("/metrics")[1].decode(), paths)
        assert value(s, "promshm_workers") >= 4
        assert len(list(server.rundir.glob("promshm-*.area"))) == 1, "one area for the master and its workers"
    finally:
        server.stop()

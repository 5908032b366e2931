"""uWSGI mules and spoolers publish while uWSGI runs (issue 18).

A real uWSGI (master, 2 workers, 3 mules, 1 spooler, the promshm plugin) runs
an app whose metrics are created in the master at import (``--module``, so
the mules' ``import app`` gets the master's module and its families):

- mules 1 and 2 run ``job_inherited.py``: 300 jobs on series the master
  resolved, nothing registered in the mule (before the fix: 0 on /metrics
  until shutdown — the package's flusher thread did not survive uWSGI's
  fork, and a mule never ends a request);
- mule 3 runs ``job_own.py``: 300 jobs on the master's series and on a
  family it creates itself;
- the spooler handles 50 tasks (enqueued by one request) on master-made
  series.

No job or task ever calls ``promshm.flush()``; every process stays alive
(the mules loop forever after their jobs). Both /metrics routes (the
``promshm:`` route served by a worker, and the master's
``--promshm-listen``) must show the exact totals within 2 s of the last job;
the time from the last update to visibility is printed. The same runs with
``--lazy-apps`` (the app is imported in each mule and worker, and with
``--spooler-python-import`` in the spooler), and with ``--promshm-no-app-flush``
(no flusher from the plugin: the library's own, inherited from the master's
package flusher, starts in each mule and the spooler at its first update).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import textwrap
import time
from pathlib import Path
from typing import Dict, List

import pytest

from test_uwsgi_plugin import LIBRARY, PLUGIN, built_plugin, children_of, parse, request, value, wait_for  # noqa: F401

JOBS = 300
TASKS = 50
MULES = 3

APP = '''
import os, time
import promshm
import uwsgi

# Created in the master at import (the common layout).
JOBS = promshm.Counter("mule_jobs", "Jobs done by mules.", ["mule"])
BY_MULE = {i: JOBS.labels(str(i)) for i in range(1, 4)}  # resolved in the master
JOB_TIME = promshm.Histogram("mule_job_seconds", "Job time.", buckets=[0.01, 1])
TASKS = promshm.Counter("spooled_tasks", "Tasks the spooler handled.")
DONE = os.environ["TEST_DONE_DIR"]


def spool_task(env):
    TASKS.inc()
    with open(os.path.join(DONE, "spooler"), "a") as f:
        f.write(f"{time.time()}\\n")
    return uwsgi.SPOOL_OK


uwsgi.spooler = spool_task


def application(environ, start_response):
    if environ.get("PATH_INFO") == "/enqueue":
        for i in range(int(environ.get("QUERY_STRING") or "1")):
            uwsgi.spool({b"task": str(i).encode()})
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok\\n"]


def job_loop(extra=None):
    mid = uwsgi.mule_id()
    mine = BY_MULE[mid]
    for _ in range(JOB_COUNT):
        mine.inc()
        JOB_TIME.observe(0.001)
        if extra is not None:
            extra.inc()
        time.sleep(0.001)
    with open(os.path.join(DONE, f"mule{mid}"), "w") as f:
        f.write(f"{time.time()}\\n")
    while True:  # a mule's job loop never ends a request
        time.sleep(0.05)


JOB_COUNT = int(os.environ["TEST_JOBS"])
'''

JOB_INHERITED = '''
import app
app.job_loop()
'''

JOB_OWN = '''
import app
import promshm
OWN = promshm.Counter("mule_own_jobs", "Jobs counted by a family made in the mule.")
app.job_loop(OWN)
'''


class Server:
    def __init__(self, tmp: Path, lazy: bool, plugin_flusher: bool = True):
        self.tmp = tmp
        self.done = tmp / "done"
        self.done.mkdir()
        spool = tmp / "spool"
        spool.mkdir()
        (tmp / "app.py").write_text(APP)
        (tmp / "job_inherited.py").write_text(JOB_INHERITED)
        (tmp / "job_own.py").write_text(JOB_OWN)
        self.port = _free_port()
        self.lport = _free_port()
        self.log = tmp / "uwsgi.log"
        args = [
            shutil.which("uwsgi") or "uwsgi",
            "--plugins", "python3",
            "--plugin", str(PLUGIN),
            "--master", "--processes", "2",
            "--http-socket", f"127.0.0.1:{self.port}",
            "--pythonpath", str(tmp),
            "--module", "app:application",
            "--mule=job_inherited.py", "--mule=job_inherited.py", "--mule=job_own.py",
            "--spooler", str(spool),
            "--spooler-frequency", "1",
            "--route", "^/metrics$ promshm:",
            "--promshm-listen", f"127.0.0.1:{self.lport}",
            "--die-on-term",
            "--disable-logging",
            "--worker-reload-mercy", "5",
            "--reload-mercy", "5",
        ]
        if lazy:
            args += ["--lazy-apps", "--spooler-python-import", "app"]
        if not plugin_flusher:
            args += ["--promshm-no-app-flush"]
        env = {k: v for k, v in os.environ.items() if not k.startswith("PROMSHM_") and k != "PYTHONPATH"}
        env["PYTHONPATH"] = str(Path(__file__).resolve().parents[2] / "bindings" / "python")
        env["PROMSHM_LIBRARY"] = str(LIBRARY)
        env["TEST_DONE_DIR"] = str(self.done)
        env["TEST_JOBS"] = str(JOBS)
        self._logf = open(self.log, "wb")
        self.proc = subprocess.Popen(args, stdout=self._logf, stderr=subprocess.STDOUT, env=env, cwd=tmp,
                                     start_new_session=True)
        self.master = self.proc.pid

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    def alive(self) -> None:
        if self.proc.poll() is not None:
            raise AssertionError(f"uWSGI exited with {self.proc.returncode}:\n{self.log_text()[-3000:]}")

    def scrape(self, via: str) -> Dict:
        port = self.lport if via == "listener" else self.port
        status, _, body = request(port, "/metrics", timeout=5)
        assert status == 200, body
        return parse(body.decode())

    def stop(self) -> None:
        if self.proc.poll() is None:
            try:
                os.kill(self.master, signal.SIGINT)
                self.proc.wait(timeout=15)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                pass
        try:
            os.killpg(self.master, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        self._logf.close()


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def server(tmp_path):
    started: List[Server] = []

    def start(lazy: bool, plugin_flusher: bool = True) -> Server:
        s = Server(tmp_path, lazy, plugin_flusher)
        started.append(s)
        return s

    yield start
    for s in started:
        s.stop()


def _expected(samples: Dict) -> Dict[str, float]:
    got = {f"mule_jobs_total{{mule={i}}}": value(samples, "mule_jobs_total", mule=str(i)) for i in (1, 2, 3)}
    got["mule_job_seconds_count"] = value(samples, "mule_job_seconds_count")
    got["mule_own_jobs_total"] = value(samples, "mule_own_jobs_total")
    got["spooled_tasks_total"] = value(samples, "spooled_tasks_total")
    return got


@pytest.mark.parametrize("lazy,plugin_flusher", [(False, True), (True, True), (False, False)],
                         ids=["prefork", "lazy-apps", "prefork-no-plugin-flusher"])
def test_mules_and_spooler_publish_within_2_s_while_uwsgi_runs(server, lazy, plugin_flusher):
    # prefork-no-plugin-flusher: --promshm-no-app-flush, so the plugin starts
    # no flusher in mules and the spooler; the library starts each one's own
    # (inherited from the master's package flusher) at its first buffered update.
    s = server(lazy, plugin_flusher)

    def ready():
        s.alive()
        return request(s.port, "/ping", timeout=2)[0] == 200 and request(s.lport, "/metrics", timeout=2)[0] == 200

    wait_for("uWSGI to answer", ready, timeout=30)
    status, _, body = request(s.port, f"/enqueue?{TASKS}", timeout=10)
    assert status == 200, body

    def finished():
        s.alive()
        mules = [s.done / f"mule{i}" for i in range(1, MULES + 1)]
        spooled = s.done / "spooler"
        if not all(m.is_file() and m.read_text().strip() for m in mules) or not spooled.is_file():
            return None
        lines = spooled.read_text().split()
        if len(lines) < TASKS:
            return None
        return max([float(m.read_text()) for m in mules] + [float(x) for x in lines])

    last = wait_for("the mules' jobs and the spooler's tasks", finished, timeout=60, interval=0.02)
    want = {f"mule_jobs_total{{mule={i}}}": float(JOBS) for i in (1, 2, 3)}
    want.update({"mule_job_seconds_count": 3.0 * JOBS, "mule_own_jobs_total": float(JOBS),
                 "spooled_tasks_total": float(TASKS)})
    seen: Dict[str, float] = {}  # route -> seconds from the last update to exact totals
    while len(seen) < 2:
        for via in ("listener", "route"):
            if via in seen:
                continue
            got = _expected(s.scrape(via))
            now = time.time()
            if got == want:
                seen[via] = now - last
            else:
                assert now - last <= 2.0, f"{via}: not exact 2 s after the last job: {got} (want {want})"
        time.sleep(0.02)
    # Still exact later (nothing counted twice by two flushers).
    time.sleep(1.2)
    for via in ("listener", "route"):
        assert _expected(s.scrape(via)) == want
    mode = ("lazy-apps" if lazy else "prefork") + ("" if plugin_flusher else ", no plugin flusher")
    print(f"{mode}: visible after the last job: "
          + ", ".join(f"{k} {v:.3f} s" for k, v in seen.items()))
    # Every mule and the spooler are still running (nothing was flushed at exit).
    s.alive()
    assert len(children_of(s.master)) >= 2 + MULES + 1
    log = s.log_text()
    assert "Traceback" not in log, log[-3000:]
    if not plugin_flusher:  # the library's flushers did it, not the plugin's
        assert "flushing the application's" not in log, log[-3000:]


def test_app_flush_line_is_logged_once_not_at_each_respawn_of_worker_1(tmp_path):
    from test_uwsgi_plugin import Uwsgi

    u = Uwsgi(tmp_path)
    try:
        u.wait_ready()
        line = "flushing the application's"
        wait_for("the app-flush log line", lambda: u.log_text().count(line) == 1, timeout=10)
        for n in range(2):
            m = [ln for ln in u.log_text().splitlines() if "uWSGI worker 1 (" in ln and "pid:" in ln][-1]
            pid = int(m.split("pid: ")[1].split(",")[0].rstrip(")"))
            os.kill(pid, signal.SIGKILL)
            wait_for("worker 1 respawned", lambda: u.log_text().count("Respawned uWSGI worker 1 ") == n + 1, timeout=20)
            request(u.port, "/", timeout=10)
        time.sleep(0.5)
        assert u.log_text().count(line) == 1, u.log_text()[-3000:]
    finally:
        u.stop()

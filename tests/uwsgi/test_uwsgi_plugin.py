"""Integration tests of the promshm uWSGI plugin (bindings/uwsgi).

Each test starts a real uWSGI (Debian's uwsgi-core + python3 plugin) on
127.0.0.1 with free ports: a master and 4 workers running
examples/uwsgi/app.py, which uses the promshm Python package
(PYTHONPATH=bindings/python, PROMSHM_LIBRARY=target/release/libpromshm.so)
with no configuration. Every request, wait and process is bounded in time,
and every uWSGI started is stopped (SIGINT to the master, then SIGKILL to its
process group) whatever happens.

Run: make -C bindings/uwsgi && python3 -m pytest tests/uwsgi
(the session fixture runs the make itself).
"""

from __future__ import annotations

import http.client
import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Dict, FrozenSet, List, Optional, Tuple

import pytest

ROOT = Path(__file__).resolve().parents[2]
TARGET = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
if not TARGET.is_absolute():
    TARGET = ROOT / TARGET
PLUGIN = TARGET / "uwsgi" / "promshm_plugin.so"
LIBRARY = TARGET / "release" / "libpromshm.so"
APP = ROOT / "examples" / "uwsgi" / "app.py"
WORKERS = 4

Sample = Tuple[str, FrozenSet[Tuple[str, str]]]


# --------------------------------------------------------------------------
# Helpers


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def request(port: int, path: str, method: str = "GET", headers: Optional[dict] = None, timeout: float = 10.0):
    """One request on a new connection: (status, headers dict, body bytes)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, headers=headers or {})
        r = conn.getresponse()
        body = r.read()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, body
    finally:
        conn.close()


_LINE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)$")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse(text: str) -> Dict[Sample, float]:
    out: Dict[Sample, float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = _LINE.match(line)
        assert m, f"unparsable sample line: {line!r}"
        labels = frozenset(_LABEL.findall(m.group(3) or ""))
        out[(m.group(1), labels)] = float(m.group(4))
    return out


def value(samples: Dict[Sample, float], name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def total(samples: Dict[Sample, float], name: str, **match: str) -> float:
    return sum(v for (n, ls), v in samples.items() if n == name and set(match.items()) <= set(ls))


def promtool_check(text: str) -> None:
    tool = shutil.which("promtool")
    assert tool, "promtool not found (Debian package prometheus; scripts/setup.sh installs it)"
    r = subprocess.run([tool, "check", "metrics"], input=text.encode(), capture_output=True, timeout=30)
    assert r.returncode == 0, f"promtool check metrics failed:\n{r.stdout.decode()}{r.stderr.decode()}"


def children_of(pid: int) -> List[int]:
    kids = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat", "rb") as f:
                stat = f.read().decode(errors="replace")
        except OSError:
            continue
        if int(stat[stat.rfind(")") + 2 :].split()[1]) == pid:
            kids.append(int(d))
    return kids


def wait_for(what: str, cond, timeout: float = 10.0, interval: float = 0.1):
    """Poll cond() until it returns a truthy value; fail after timeout."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = cond()
        except (OSError, http.client.HTTPException) as e:
            last = e
            time.sleep(interval)
            continue
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


class Uwsgi:
    """One uWSGI instance: master + WORKERS workers, the plugin, the example app."""

    def __init__(self, tmp: Path, *extra: str, listen: bool = True, route: bool = True):
        self.tmp = tmp
        self.port = free_port()
        self.lport = free_port() if listen else None
        self.pidfile = tmp / f"uwsgi-{self.port}.pid"
        self.log = tmp / f"uwsgi-{self.port}.log"
        args = [
            shutil.which("uwsgi") or "uwsgi",
            "--plugins", "python3",
            "--plugin", str(PLUGIN),
            "--master", "--processes", str(WORKERS),
            "--http-socket", f"127.0.0.1:{self.port}",
            "--wsgi-file", str(APP),
            "--pidfile", str(self.pidfile),
            "--die-on-term",
            "--disable-logging",
            "--worker-reload-mercy", "5",
            "--reload-mercy", "5",
        ]
        if route:
            args += ["--route", "^/metrics$ promshm:"]
        if listen:
            args += ["--promshm-listen", f"127.0.0.1:{self.lport}"]
        args += list(extra)
        env = {k: v for k, v in os.environ.items() if not k.startswith("PROMSHM_") and k != "PYTHONPATH"}
        env["PYTHONPATH"] = str(ROOT / "bindings" / "python")
        env["PROMSHM_LIBRARY"] = str(LIBRARY)
        self.args = args
        self._logf = open(self.log, "wb")
        self.proc = subprocess.Popen(args, stdout=self._logf, stderr=subprocess.STDOUT, env=env, cwd=tmp,
                                     start_new_session=True)
        self.master = self.proc.pid

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_ready(self, timeout: float = 20.0) -> None:
        def ready():
            if self.proc.poll() is not None:
                raise AssertionError(f"uWSGI exited with {self.proc.returncode}:\n{self.log_text()[-3000:]}")
            # OPTIONS, so that probes are not counted with the GET requests.
            status, _, _ = request(self.port, "/ping", method="OPTIONS", timeout=2)
            if status != 200:
                return False
            if self.lport is not None:
                status, _, _ = request(self.lport, "/metrics", timeout=2)
                return status == 200
            return True

        wait_for("uWSGI to answer", ready, timeout)
        wait_for(f"{WORKERS} workers", lambda: len(children_of(self.master)) >= WORKERS, timeout)

    def scrape(self, via: str = "listener", accept: Optional[str] = None) -> str:
        port = self.lport if via == "listener" else self.port
        headers = {"Accept": accept} if accept else {}
        status, _, body = request(port, "/metrics", headers=headers, timeout=5)
        assert status == 200, body
        return body.decode()

    def samples(self) -> Dict[Sample, float]:
        return parse(self.scrape())

    def workers(self) -> List[int]:
        return children_of(self.master)

    def reloads(self) -> int:
        return self.log_text().count("binary reloading uWSGI")

    def stop(self) -> None:
        if self.proc.poll() is None:
            try:
                os.kill(self.master, signal.SIGINT)
                self.proc.wait(timeout=15)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                pass
        # Whatever is left of the group (workers of a stuck master): SIGKILL.
        try:
            os.killpg(self.master, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        self._logf.close()


def send_many(port: int, path: str, n: int, concurrency: int = 16) -> List[int]:
    """n GET requests, `concurrency` at a time; the status of each (0: failed)."""

    def one(_):
        try:
            return request(port, path, timeout=20)[0]
        except (OSError, http.client.HTTPException):
            return 0

    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        return list(pool.map(one, range(n)))


# --------------------------------------------------------------------------
# Fixtures


@pytest.fixture(scope="session", autouse=True)
def built_plugin():
    assert shutil.which("uwsgi"), "uwsgi not found: apt-get install uwsgi-core uwsgi-plugin-python3 uwsgi-dev"
    r = subprocess.run(["make", "-s", "-C", str(ROOT / "bindings" / "uwsgi")], capture_output=True, timeout=900)
    assert r.returncode == 0, f"make -C bindings/uwsgi failed:\n{r.stdout.decode()}{r.stderr.decode()}"
    assert PLUGIN.is_file() and LIBRARY.is_file()


@pytest.fixture
def servers(tmp_path):
    """Start uWSGI instances with servers(*args); all are stopped at the end."""
    started: List[Uwsgi] = []

    def start(*args: str, **kw) -> Uwsgi:
        u = Uwsgi(tmp_path, *args, **kw)
        started.append(u)
        u.wait_ready()
        return u

    yield start
    for u in started:
        u.stop()


# --------------------------------------------------------------------------
# Tests


def test_exports_only_the_plugin_symbols():
    out = subprocess.run(["nm", "-D", "--defined-only", str(PLUGIN)], capture_output=True, text=True, check=True)
    names = sorted(line.split()[-1] for line in out.stdout.splitlines() if line.strip())
    assert names == ["promshm_plugin", "promshm_uwsgi_after_request", "promshm_uwsgi_as_mule"]


def test_2000_concurrent_requests_exact_on_one_page(servers):
    u = servers()
    before = u.samples()
    statuses = send_many(u.port, "/work", 2000, concurrency=16)
    assert statuses.count(200) == 2000, f"{len(statuses) - statuses.count(200)} requests failed"

    # The after-request hook runs once the response is sent: the last
    # requests' counts land a moment after their clients got them.
    def settled():
        s = u.samples()
        req = value(s, "uwsgi_requests_total", method="GET", status="200") - value(
            before, "uwsgi_requests_total", method="GET", status="200"
        )
        app = value(s, "app_jobs_total", kind="work")
        return s if (req, app) == (2000, 2000) else None

    try:
        s = wait_for("exact totals", settled, timeout=10)
    except AssertionError:
        s = u.samples()
        raise AssertionError(
            f"requests {value(s, 'uwsgi_requests_total', method='GET', status='200')}, "
            f"app {value(s, 'app_jobs_total', kind='work')}"
        )
    # Request metrics and app metrics, exact, on one page, from every worker.
    assert value(s, "app_jobs_total", kind="work") == 2000
    assert value(s, "app_job_duration_seconds_count") == 2000
    assert total(s, "uwsgi_request_duration_seconds_count") == total(s, "uwsgi_requests_total")
    assert total(s, "uwsgi_response_size_bytes_count") == total(s, "uwsgi_requests_total")
    assert value(s, "uwsgi_request_duration_seconds_bucket", le="+Inf") == total(s, "uwsgi_requests_total")
    assert total(s, "uwsgi_response_size_bytes_sum") >= 2000 * len(b"done\n")

    # Worker metrics from the master (updated once a second): uWSGI's own
    # per-worker counts add up to the same total, every worker served some.
    def workers_settled():
        s = u.samples()
        per = [value(s, "uwsgi_worker_requests_total", worker=str(i)) for i in range(1, WORKERS + 1)]
        return (s, per) if sum(per) == total(s, "uwsgi_requests_total") else None

    s, per = wait_for("worker request counts", workers_settled, timeout=10)
    assert all(n > 0 for n in per), per
    assert total(s, "uwsgi_workers") == WORKERS
    assert value(s, "uwsgi_workers", state="idle") + value(s, "uwsgi_workers", state="busy") == WORKERS
    assert value(s, "uwsgi_listen_queue_length", socket=f"127.0.0.1:{u.port}") >= 0
    assert value(s, "promshm_registrations_refused_total") == 0

    # The same page through the route action in a worker, checked by promtool.
    page = u.scrape(via="route")
    promtool_check(page)
    routed = parse(page)
    assert value(routed, "app_jobs_total", kind="work") == 2000
    assert value(routed, "uwsgi_requests_total", method="GET", status="200") >= value(
        s, "uwsgi_requests_total", method="GET", status="200"
    )
    promtool_check(u.scrape(via="listener"))

    # Content negotiation: OpenMetrics when asked for, on both endpoints.
    for port in (u.port, u.lport):
        status, headers, body = request(port, "/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"})
        assert status == 200
        assert headers["content-type"].startswith("application/openmetrics-text"), headers
        assert body.endswith(b"# EOF\n")
        try:
            from prometheus_client.openmetrics.parser import text_string_to_metric_families
        except ImportError:
            continue
        names = {f.name for f in text_string_to_metric_families(body.decode())}
        assert {"uwsgi_requests", "app_jobs"} <= names
        status, headers, _ = request(port, "/metrics", headers={"Accept": "text/plain"})
        assert headers["content-type"].startswith("text/plain; version=0.0.4")


PROTO_ACCEPT = (
    "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited;q=0.5,"
    "application/openmetrics-text;version=1.0.0;q=0.4,text/plain;version=0.0.4;q=0.2,*/*;q=0.1"
)


def test_protobuf_when_preferred_on_route_and_listener(servers, tmp_path):
    """Accept preferring protobuf gets it on both endpoints, and
    `promshm:protobuf` forces it; the independent decoder (tests/proto)
    reads the exact totals."""
    import sys

    sys.path.insert(0, str(ROOT / "tests" / "proto"))
    from pbdecode import compile_pb2, decode, labels, missing

    why = missing()
    if why and os.environ.get("CI"):
        pytest.fail(why)  # CI installs them (scripts/setup.sh)
    if why:
        pytest.skip(why)
    pb2 = compile_pb2(tmp_path)
    u = servers("--route", "^/pb$ promshm:protobuf")
    assert send_many(u.port, "/work", 300) == [200] * 300
    text_total = value(parse(u.scrape(via="listener")), "app_jobs_total", kind="work")
    assert text_total == 300
    pages = [(u.port, "/metrics", PROTO_ACCEPT), (u.lport, "/metrics", PROTO_ACCEPT), (u.port, "/pb", "text/plain")]
    for port, path, accept in pages:
        status, headers, body = request(port, path, headers={"Accept": accept})
        assert status == 200, body
        assert headers["content-type"] == (
            "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited"
        ), (port, path, headers)
        assert int(headers["content-length"]) == len(body) and b"\x00" in body
        fams = decode(pb2, body)
        jobs = {labels(m)["kind"]: m.counter.value for m in fams["app_jobs_total"].metric}
        assert jobs == {"work": 300}, (port, path)
        hist = fams["app_job_duration_seconds"].metric[0].histogram
        assert hist.sample_count == 300 and hist.bucket[-1].cumulative_count <= 300
    # Text stays text when preferred.
    status, headers, _ = request(u.port, "/metrics", headers={"Accept": "application/openmetrics-text;q=0.9," + PROTO_ACCEPT})
    assert headers["content-type"].startswith("application/openmetrics-text")


def test_kill_9_of_a_worker_under_load_loses_nothing_flushed(servers):
    u = servers()
    base = value(u.samples(), "uwsgi_requests_total", method="GET", status="200")
    results: List[int] = []
    done = threading.Event()

    def load():
        try:
            results.extend(send_many(u.port, "/work", 3000, concurrency=8))
        finally:
            done.set()

    t = threading.Thread(target=load, daemon=True)
    t.start()
    wait_for("some load", lambda: value(u.samples(), "app_jobs_total", kind="work") >= 500, timeout=30)
    seen = u.samples()
    victim = u.workers()[0]
    os.kill(victim, signal.SIGKILL)
    # Counts flushed before the kill are never lost: monotonic from here on.
    after_kill = u.samples()
    for name, labels in (("uwsgi_requests_total", {"method": "GET", "status": "200"}), ("app_jobs_total", {"kind": "work"})):
        assert value(after_kill, name, **labels) >= value(seen, name, **labels)
    assert done.wait(timeout=120), "load did not finish"
    t.join(timeout=5)
    ok = results.count(200)
    assert ok >= 2990, f"only {ok} of 3000 requests succeeded"

    # The killed worker may have lost at most the request whose response it
    # had sent but not yet counted (the hook runs after the response).
    def settled():
        s = u.samples()
        req = value(s, "uwsgi_requests_total", method="GET", status="200") - base
        app = value(s, "app_jobs_total", kind="work")
        return s if ok - 1 <= req <= ok and ok - 1 <= app <= ok else None

    s = wait_for("totals after the kill", settled, timeout=10)
    assert value(s, "uwsgi_requests_total", method="GET", status="200") >= value(
        after_kill, "uwsgi_requests_total", method="GET", status="200"
    )
    # uWSGI respawned it, the master counted the respawn, the dead slot was reaped.
    s = wait_for(
        "the respawn in the metrics",
        lambda: (lambda s: s if total(s, "uwsgi_worker_respawns_total") >= 1 else None)(u.samples()),
        timeout=10,
    )
    wait_for("the dead worker's slot reaped", lambda: value(u.samples(), "promshm_workers_reaped_total") >= 1, 10)
    assert victim not in u.workers()

    # Counting goes on, exactly.
    req0 = value(s, "uwsgi_requests_total", method="GET", status="200")
    app0 = value(s, "app_jobs_total", kind="work")
    assert send_many(u.port, "/work", 300, concurrency=8).count(200) == 300
    wait_for(
        "300 more, exactly",
        lambda: (lambda s: value(s, "uwsgi_requests_total", method="GET", status="200") - req0 == 300
                 and value(s, "app_jobs_total", kind="work") - app0 == 300)(u.samples()),
        timeout=10,
    )
    assert "DAMN ! worker" in u.log_text()


@pytest.mark.parametrize(
    "backing,how",
    [("file", "sighup"), ("file", "touch"), ("private", "sighup"), ("private", "touch")],
)
def test_reload_keeps_counts_with_a_file_and_resets_without(servers, tmp_path, backing, how):
    area = tmp_path / "metrics.promshm"
    touch = tmp_path / "reload.touch"
    touch.write_text("")
    args = ["--touch-reload", str(touch)]
    if backing == "file":
        args += ["--promshm-file", str(area)]
    u = servers(*args)
    first_area = re.search(r"\[promshm\] area (\S+)", u.log_text()).group(1)
    if backing == "file":
        assert first_area == str(area)
    else:
        assert first_area.startswith(("/dev/shm/", os.environ.get("TMPDIR", "/tmp")))
    assert send_many(u.port, "/work", 100, concurrency=8).count(200) == 100
    wait_for("100 counted", lambda: value(u.samples(), "app_jobs_total", kind="work") == 100, timeout=10)

    reloads = u.reloads()
    if how == "sighup":
        os.kill(u.master, signal.SIGHUP)
    else:
        time.sleep(1.1)  # touch-reload compares mtimes in whole seconds
        os.utime(touch)
    wait_for("the reload", lambda: u.reloads() > reloads, timeout=20)
    assert u.proc.poll() is None, "the master exited instead of reloading"
    u.wait_ready()
    new_area = re.findall(r"\[promshm\] area (\S+)", u.log_text())[-1]

    assert send_many(u.port, "/work", 50, concurrency=8).count(200) == 50
    expect = 150 if backing == "file" else 50

    def settled():
        s = u.samples()
        return s if (value(s, "app_jobs_total", kind="work"),
                     value(s, "uwsgi_requests_total", method="GET", status="200")) == (expect, expect) else None

    try:
        wait_for(f"{expect} after the reload", settled, timeout=10)
    except AssertionError:
        s = u.samples()
        raise AssertionError(
            f"{backing}/{how}: app {value(s, 'app_jobs_total', kind='work')}, "
            f"requests {value(s, 'uwsgi_requests_total', method='GET', status='200')}, expected {expect}"
        )
    if backing == "file":
        assert new_area == str(area) and area.is_file()
    else:
        # The old private area went with the old master image.
        assert new_area != first_area
        assert not Path(first_area).exists() and not Path(first_area).parent.exists()
        assert Path(new_area).is_file()
    u.stop()
    if backing == "file":
        assert area.is_file(), "an area named with --promshm-file is kept"
    else:
        assert not Path(new_area).parent.exists(), "the private area is removed at exit"


def test_master_listener_answers_while_every_worker_is_blocked(servers):
    u = servers()
    blockers = ThreadPoolExecutor(max_workers=WORKERS + 4)
    try:
        # Every worker sleeps in a request, and 4 more wait in the listen queue.
        futures = [blockers.submit(request, u.port, "/sleep?s=6", "GET", None, 30) for _ in range(WORKERS + 4)]
        s = wait_for(
            "every worker busy",
            lambda: (lambda s: s if value(s, "uwsgi_workers", state="busy") == WORKERS else None)(u.samples()),
            timeout=5,
        )
        # The workers' route cannot answer now ...
        with pytest.raises((socket.timeout, TimeoutError, OSError, http.client.HTTPException)):
            request(u.port, "/metrics", timeout=1)
        # ... the master's listener does, at once, with a valid page.
        t0 = time.monotonic()
        page = u.scrape(via="listener")
        assert time.monotonic() - t0 < 1.0
        promtool_check(page)
        s = parse(page)
        assert value(s, "uwsgi_workers", state="busy") == WORKERS
        assert value(s, "uwsgi_workers", state="idle") == 0
        wait_for(
            "the listen queue",
            lambda: value(u.samples(), "uwsgi_listen_queue_length", socket=f"127.0.0.1:{u.port}") >= 1,
            timeout=5,
        )
        for f in futures:
            assert f.result(timeout=30)[0] == 200
    finally:
        blockers.shutdown(wait=False, cancel_futures=True)


def test_options_namespace_buckets_and_no_request_metrics(servers):
    u = servers("--promshm-namespace", "web", "--promshm-buckets", "0.1,0.5,2")
    assert send_many(u.port, "/work", 20).count(200) == 20
    s = wait_for("20 counted", lambda: (lambda s: s if value(s, "web_requests_total", method="GET", status="200") == 20
                                        else None)(u.samples()), timeout=10)
    les = {float(dict(ls)["le"]) for (n, ls) in s if n == "web_request_duration_seconds_bucket"}
    assert les == {0.1, 0.5, 2.0, float("inf")}, les
    assert not any(n.startswith("uwsgi_") for (n, _) in s)
    assert total(s, "web_workers") == WORKERS
    u.stop()

    # Request metrics off: no hook metrics, the app's counts still flushed at request end.
    u = servers("--promshm-no-request-metrics")
    assert send_many(u.port, "/work", 20).count(200) == 20
    s = wait_for("the app's 20", lambda: (lambda s: s if value(s, "app_jobs_total", kind="work") == 20 else None)(
        u.samples()), timeout=10)
    assert total(s, "uwsgi_requests_total") == 0
    assert not any(n.startswith("uwsgi_request") for (n, _) in s)
    assert total(s, "uwsgi_workers") == WORKERS
    promtool_check(u.scrape())


class Dripper:
    """A client of the listener that sends a request head one byte every
    `interval` seconds and never finishes it; `closed_after` is how long the
    server let it stay connected (None while it still is)."""

    HEAD = b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Drip: "

    def __init__(self, port: int, interval: float = 2.0):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.interval = interval
        self.start = time.monotonic()
        self.closed_after: Optional[float] = None
        self.sent = 0
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _next_byte(self) -> bytes:
        b = self.HEAD[self.sent : self.sent + 1] or b"a"
        self.sent += 1
        return b

    def _run(self) -> None:
        import select

        try:
            while not self.stopping.is_set():
                self.sock.sendall(self._next_byte())
                readable, _, _ = select.select([self.sock], [], [], self.interval)
                if readable:
                    self.sock.recv(4096)  # EOF or an error reply: the server is done with it
                    break
        except OSError:
            pass  # reset by the server
        if not self.stopping.is_set():
            self.closed_after = time.monotonic() - self.start

    def stop(self) -> None:
        self.stopping.set()
        self.thread.join(timeout=self.interval + 5)
        self.sock.close()


@pytest.fixture
def drippers():
    """Start Drippers with drippers(port, n); all are stopped at the end."""
    started: List[Dripper] = []

    def start(port: int, n: int = 1) -> List[Dripper]:
        new = [Dripper(port) for _ in range(n)]
        started.extend(new)
        return new

    yield start
    for d in started:
        d.stop()


def timed_scrape(u: "Uwsgi") -> float:
    t0 = time.monotonic()
    page = u.scrape(via="listener")
    elapsed = time.monotonic() - t0
    assert "uwsgi_workers" in page
    return elapsed


def test_listener_answers_while_clients_drip_their_requests(servers, drippers):
    u = servers()
    # One client sends its request head one byte every 2 s ...
    drippers(u.lport, 1)
    time.sleep(0.5)
    # ... another one's scrape is answered at once, and again and again.
    for _ in range(3):
        assert timed_scrape(u) < 1.0
    # Several dripping clients at once, more than the listener keeps open
    # at a time: each new client still gets its answer at once.
    drippers(u.lport, 40)
    time.sleep(0.5)
    for _ in range(3):
        assert timed_scrape(u) < 1.0
    # And scrapes in parallel while they drip.
    with ThreadPoolExecutor(max_workers=8) as pool:
        times = list(pool.map(lambda _: timed_scrape(u), range(8)))
    assert max(times) < 1.0, times


def test_listener_cuts_off_a_client_that_never_finishes_its_request(servers, drippers):
    u = servers()
    # Each byte comes well within any per-read timeout; only a deadline on
    # the whole request head ends this client.
    slow = drippers(u.lport, 3)
    wait_for("the dripping clients cut off", lambda: all(d.closed_after is not None for d in slow), timeout=15)
    for d in slow:
        assert 4.0 <= d.closed_after <= 9.0, d.closed_after
        assert d.sent <= 6, d.sent
    assert timed_scrape(u) < 1.0

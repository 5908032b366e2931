"""The promshm backend for the REAL prometheus_client (issue 10, item 1).

Unmodified prometheus_client code — Counter, Gauge in every multiprocess_mode,
Histogram, Summary, Info, Enum, labelled, in REGISTRY and in a fresh
CollectorRegistry() — updated in 4 forked multiprocessing children and in 4
gunicorn workers must give exact totals in the parent's / any worker's
generate_latest() and in MultiProcessCollector, whatever
PROMETHEUS_MULTIPROC_DIR says. Without the backend the parent reads 0 (checked
by test_without_backend_the_parent_sees_nothing, so the checks are not vacuous).
"""

from __future__ import annotations

import collections
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, Iterator, List, Tuple

import pytest

from conftest import child_env, free_port, parse_text, value
from http_checks import Server, _blast, run_code, stopped_at_end

pytest.importorskip("prometheus_client")

HERE = Path(__file__).resolve().parent
SCRIPT = HERE / "pc_backend_mp_script.py"
PTH = HERE.parent / "promshm-prometheus-client.pth"
N, ROUNDS = 4, 1000


def _run_mp(tmp_path: Path, how: str, **env: str) -> Dict:
    e = child_env(PROMSHM_DIR=str(tmp_path), **env)
    if how != "env":
        e.pop("PROMSHM_PROMETHEUS_CLIENT", None)
    cmd = [sys.executable, str(SCRIPT), how]
    if how == "env":  # the shipped .pth file, processed as site-packages does
        site = tmp_path / "site"
        site.mkdir()
        (site / PTH.name).write_text(PTH.read_text())
        cmd = [sys.executable, "-c", _SITE_RUN.format(site=str(site)), str(SCRIPT), how]
    r = subprocess.run(cmd, env=e, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-5000:]
    return json.loads(r.stdout)


_SITE_RUN = (
    "import runpy, site, sys; site.addsitedir({site!r}); "
    "sys.argv = sys.argv[1:]; runpy.run_path(sys.argv[0], run_name='__main__')"
)


def _check_totals(text: str, which: str, modes: List[str]) -> None:
    s = parse_text(text)
    if which in ("default", "multiprocess"):
        assert value(s, "bk_requests_total", path="/a") == N * ROUNDS / 2, text
        assert value(s, "bk_requests_total", path="/b") == N * ROUNDS / 2
        assert value(s, "bk_latency_seconds_count", path="/a") == N * ROUNDS
        assert value(s, "bk_latency_seconds_sum", path="/a") == N * ROUNDS * 0.5
        assert value(s, "bk_latency_seconds_bucket", path="/a", le="0.1") == 0
        assert value(s, "bk_latency_seconds_bucket", path="/a", le="1.0") == N * ROUNDS
        assert value(s, "bk_latency_seconds_bucket", path="/a", le="+Inf") == N * ROUNDS
        assert value(s, "bk_phase", who="kids", bk_phase="running") == 1
        assert value(s, "bk_phase", who="kids", bk_phase="starting") == 0
    if which in ("fresh", "multiprocess"):
        assert value(s, "bk_plain_total") == N * ROUNDS * 0.5, text
        assert value(s, "bk_sizes_bytes_count") == N * ROUNDS
        assert value(s, "bk_sizes_bytes_sum") == N * ROUNDS * 2
        assert value(s, "bk_build_info", version="1.2.3") == 1
        assert value(s, "bk_applied_total") == 4  # a gauge name promshm reserves: renamed in the area
        # modes that keep a dead process's value
        assert value(s, "bk_gauge_sum_mode", who="kids") == 1 + 2 + 3 + 4
        assert value(s, "bk_gauge_max_mode", who="kids") == 4
        assert value(s, "bk_gauge_min_mode", who="kids") == 1
        if "mostrecent" in modes:
            assert value(s, "bk_gauge_mostrecent_mode", who="kids") == 40


def _per_pid(s: Dict, name: str) -> Dict[int, float]:
    out = {}
    for (n, labels), v in s.items():
        if n == name:
            d = dict(labels)
            assert set(d) == {"who", "pid"}, d
            out[int(d["pid"])] = v
    return out


def _check_live(text: str, modes: List[str], pids: List[int]) -> None:
    """Gauges while the 4 children live: every mode sees them all; all/liveall
    a series per process labelled by its pid, as prometheus_client renders it."""
    s = parse_text(text)
    assert value(s, "bk_gauge_livesum_mode", who="kids") == 10, text
    assert value(s, "bk_gauge_livemax_mode", who="kids") == 4
    assert value(s, "bk_gauge_livemin_mode", who="kids") == 1
    if "livemostrecent" in modes:
        assert value(s, "bk_gauge_livemostrecent_mode", who="kids") == 40
    for mode in ("all", "liveall"):
        assert _per_pid(s, f"bk_gauge_{mode}_mode") == {pid: n + 1 for n, pid in enumerate(pids)}, (mode, text)


def _check_one_exited(text: str, modes: List[str], pids: List[int]) -> None:
    """The child with the largest and most recent value exited, 3 live: the
    live modes combine the 3 live ones, the others keep the dead one's."""
    s = parse_text(text)
    assert value(s, "bk_gauge_livesum_mode", who="kids") == 1 + 2 + 3, text
    assert value(s, "bk_gauge_livemax_mode", who="kids") == 3
    assert value(s, "bk_gauge_livemin_mode", who="kids") == 1
    assert value(s, "bk_gauge_sum_mode", who="kids") == 10
    assert value(s, "bk_gauge_max_mode", who="kids") == 4
    if "livemostrecent" in modes:
        assert value(s, "bk_gauge_livemostrecent_mode", who="kids") == 30
        assert value(s, "bk_gauge_mostrecent_mode", who="kids") == 40
    expected = {pid: n + 1 for n, pid in enumerate(pids)}
    assert _per_pid(s, "bk_gauge_all_mode") == expected, text
    del expected[pids[-1]]
    assert _per_pid(s, "bk_gauge_liveall_mode") == expected, text


def _check_exited(text: str, modes: List[str], pids: List[int]) -> None:
    """After the children exited (no mark_process_dead): the live modes drop
    them; `all` keeps each dead process's last value under its pid."""
    s = parse_text(text)
    assert value(s, "bk_gauge_livesum_mode", who="kids") in (None, 0), text  # the sum of no process
    for mode in ("livemax", "livemin", "livemostrecent", "liveall"):
        assert not [k for k in s if k[0] == f"bk_gauge_{mode}_mode"], (mode, text)
    assert _per_pid(s, "bk_gauge_all_mode") == {pid: n + 1 for n, pid in enumerate(pids)}, text


@pytest.mark.parametrize("how", ["install", "env"])
def test_multiprocessing_children_exact(tmp_path, how):
    mpdir = tmp_path / "prometheus_multiproc"
    mpdir.mkdir()
    out = _run_mp(tmp_path, how, PROMSHM_PROMETHEUS_CLIENT="1", PROMETHEUS_MULTIPROC_DIR=str(mpdir))
    assert out["codes"] == [0] * N
    for phase in ("alive", "one_exited", "exited"):
        for which, text in out[phase].items():
            _check_totals(text, which, out["modes"])
    for which in ("fresh", "multiprocess"):
        _check_live(out["alive"][which], out["modes"], out["pids"])
        _check_one_exited(out["one_exited"][which], out["modes"], out["pids"])
        _check_exited(out["exited"][which], out["modes"], out["pids"])
    assert list(mpdir.iterdir()) == [], "no prometheus_client .db files with the backend"


def test_without_backend_the_parent_sees_nothing(tmp_path):
    """The baseline the tests above would fail on: the real prometheus_client
    alone keeps each child's values in the child."""
    out = _run_mp(tmp_path, "none")
    s = parse_text(out["exited"]["default"])
    assert value(s, "bk_requests_total", path="/a") is None  # the children's series are not in the parent
    assert value(parse_text(out["exited"]["fresh"]), "bk_sizes_bytes_count") == 0


def test_install_is_idempotent_and_keeps_validation(tmp_path):
    code = (
        "from promshm import prometheus_client_backend as b; b.install(); b.install()\n"
        "import prometheus_client as pc\n"
        "c = pc.Counter('bk_v', 'V', ['a'])\n"
        "try:\n    c.labels('x').inc(-1)\nexcept ValueError: print('neg')\n"
        "try:\n    c.inc()\nexcept ValueError: print('labelled')\n"
        "try:\n    pc.Gauge('bk_vg', 'G', multiprocess_mode='bogus')\nexcept ValueError: print('mode')\n"
        "try:\n    pc.Enum('bk_ve', 'E', states=['a']).state('zz')\nexcept ValueError: print('state')\n"
        "c.labels('x').inc(2); print(c.labels('x')._value.get())\n"
        "c.remove('x'); print(pc.REGISTRY.get_sample_value('bk_v_total', {'a': 'x'}))\n"
    )
    r = run_code(code, tmp_path)
    assert r.stdout.split() == ["neg", "labelled", "mode", "state", "2.0", "None"]


def test_what_promshm_refuses_stays_per_process_with_a_warning(tmp_path):
    """prometheus_client accepts it, so the app gets no exception: the value
    stays in the process (a RuntimeWarning says so)."""
    code = (
        "import warnings; warnings.simplefilter('always')\n"
        "from promshm import prometheus_client_backend as b; b.install()\n"
        "import prometheus_client as pc\n"
        "with warnings.catch_warnings(record=True) as w:\n"
        "    g = pc.Gauge('bk_w_sum', 'Gauge named like a summary sample.', multiprocess_mode='livesum')\n"
        "    g.set(3)\n"
        "    c = pc.Counter('bk_nan', 'N'); c.inc(float('nan'))\n"
        "    pc.Gauge('bk_same', 'G1', ['a'])\n"
        "    r = pc.CollectorRegistry(); g2 = pc.Gauge('bk_same', 'G2', ['b'], registry=r, multiprocess_mode='max')\n"
        "    g2.labels('x').set(5)\n"
        "print(pc.REGISTRY.get_sample_value('bk_w_sum'), r.get_sample_value('bk_same', {'b': 'x'}))\n"
        "print(' | '.join(str(x.message) for x in w if x.category is RuntimeWarning))\n"
    )
    r = run_code(code, tmp_path)
    lines = r.stdout.splitlines()
    assert lines[0] == "3.0 5.0"
    assert "bk_same" in lines[1] and "inc(nan) not shared" in lines[1], lines[1]
    assert "bk_w_sum" not in lines[1], "a reserved name is renamed in the area, not left per-process"


def test_wheel_installs_the_pth_hook_inert_without_the_variable(tmp_path):
    """The wheel puts the .pth file in site-packages' root; there it switches the
    real prometheus_client to the backend only when the variable is set."""
    pytest.importorskip("setuptools")
    pytest.importorskip("wheel")
    import shutil
    import zipfile

    src = tmp_path / "src"
    shutil.copytree(HERE.parent, src, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__", "tests", "bench"))
    env = child_env(PROMSHM_LIBRARY=str(__import__("promshm").library_path))
    r = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(tmp_path / "dist"), str(src)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    (whl,) = (tmp_path / "dist").glob("promshm-*.whl")
    assert PTH.name in zipfile.ZipFile(whl).namelist()
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], check=True, timeout=300)
    py = str(venv / "bin" / "python")
    # Without this process's PYTHONPATH: a source tree on it (with setuptools'
    # promshm.egg-info) would pass for an installed promshm and pip would skip it.
    no_path = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    r = subprocess.run([py, "-m", "pip", "install", "-q", "--no-deps", str(whl)], env=no_path,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    probe = (
        "import sys, prometheus_client.values as v; "
        "print('promshm' in sys.modules, v.ValueClass.__module__)"
    )
    clean = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PROMSHM_LIBRARY", ENV)}
    clean["PROMSHM_DIR"] = str(tmp_path)
    on = subprocess.run([py, "-c", probe], env=dict(clean, **{ENV: "1"}), capture_output=True, text=True, timeout=120, cwd="/")
    off = subprocess.run([py, "-c", probe], env=dict(clean, **{ENV: "0"}), capture_output=True, text=True, timeout=120, cwd="/")
    assert on.stdout.split() == ["True", "promshm.prometheus_client_backend"], on.stderr
    assert off.stdout.split() == ["False", "prometheus_client.values"], off.stderr


ENV = "PROMSHM_PROMETHEUS_CLIENT"


def test_install_after_metrics_were_made_says_so(tmp_path):
    code = (
        "import warnings; warnings.simplefilter('always')\n"
        "import prometheus_client as pc\n"
        "early = pc.Counter('bk_early', 'Made before install().')\n"
        "from promshm import prometheus_client_backend as b\n"
        "with warnings.catch_warnings(record=True) as w:\n"
        "    b.install()\n"
        "print(' | '.join(str(x.message) for x in w))\n"
    )
    r = run_code(code, tmp_path)
    assert "made before install()" in r.stdout and "bk_early" in r.stdout, r.stdout


# --------------------------------------------------------------------------
# gunicorn -w 4, an app using prometheus_client only; the backend switched on
# by $PROMSHM_PROMETHEUS_CLIENT=1 alone (the shipped .pth file).

APP = '''
import time
from prometheus_client import (REGISTRY, CollectorRegistry, Counter, Gauge, Histogram, Summary,
                               generate_latest, multiprocess, CONTENT_TYPE_LATEST)

REQUESTS = Counter("app_requests", "Requests.", ["path", "status"])
LATENCY = Histogram("app_latency_seconds", "Latency.", ["path"], buckets=(0.001, 0.01, 0.1, 1.0))
INPROGRESS = Gauge("app_inprogress", "In progress.", multiprocess_mode="livesum")
OWN = CollectorRegistry()
HITS = Counter("app_hits", "Hits, in an app registry.", registry=OWN)
SIZES = Summary("app_sizes_bytes", "Sizes.", registry=OWN)


def app(environ, start_response):
    path = environ["PATH_INFO"]
    if path.startswith("/metrics"):
        if path == "/metrics":
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
        elif path == "/metrics/own":
            registry = OWN
        else:
            registry = REGISTRY
        data = generate_latest(registry)
        start_response("200 OK", [("Content-Type", CONTENT_TYPE_LATEST)])
        return [data]
    with INPROGRESS.track_inprogress():
        status = "500" if path == "/fail" else "200"
        REQUESTS.labels(path, status).inc()
        LATENCY.labels(path).observe(0.005)
        HITS.inc()
        SIZES.observe(len(path))
    start_response(status + " X", [("Content-Type", "text/plain")])
    return [b"ok"]
'''

GUNICORN_RUN = (
    "import site, sys; site.addsitedir({site!r}); "
    "sys.argv = ['gunicorn'] + sys.argv[1:]; "
    "from gunicorn.app.wsgiapp import run; run()"
)


def pth_site_and_app(tmp_path: Path, files: Dict[str, str]) -> Tuple[Path, Path]:
    """A site directory holding the shipped .pth file (as site-packages has
    it), and an app directory holding ``files``."""
    site = tmp_path / "site"
    site.mkdir(exist_ok=True)
    (site / PTH.name).write_text(PTH.read_text())
    app_dir = tmp_path / "app"
    app_dir.mkdir(exist_ok=True)
    for fname, text in files.items():
        (app_dir / fname).write_text(text)
    return site, app_dir


class Gunicorn(Server):
    """gunicorn -w 4 on 127.0.0.1 serving ``files['<module>.py']``'s ``app``,
    with the shipped .pth file in a site directory (as site-packages has it)."""

    name = "gunicorn"

    def __init__(
        self,
        tmp_path: Path,
        *args: str,
        files: Dict[str, str] = None,
        app: str = "pcapp:app",
        ready_path: str = "/metrics/default",
        **env: str,
    ) -> None:
        pytest.importorskip("gunicorn")
        port = free_port()
        site, app_dir = pth_site_and_app(tmp_path, files or {"pcapp.py": APP})
        e = child_env(PROMSHM_DIR=str(tmp_path), **env)
        e.pop("PROMSHM_FLUSH_INTERVAL", None)
        cmd = [sys.executable, "-c", GUNICORN_RUN.format(site=str(site)), "-w", "4", "-b", f"127.0.0.1:{port}"]
        super().__init__(
            cmd + list(args) + [app], port=port, cwd=app_dir, env=e, log_path=tmp_path / f"gunicorn-{port}.log", ready_path=ready_path
        )


@pytest.fixture
def gunicorn(tmp_path: Path) -> Iterator:
    with stopped_at_end(lambda *args, **kw: Gunicorn(tmp_path, *args, **kw)) as make:
        yield make


APP_PATHS = ["/", "/a", "/b", "/fail"]


def app_exact(server: Server, n: int, scrapes: int = 3) -> None:
    """``n`` concurrent requests to APP (every 4th fails), then several
    scrapes of each of its pages, every one exact, whichever worker serves it."""
    paths = [APP_PATHS[i % 4] for i in range(n)]
    statuses = _blast(server, paths)
    assert statuses == {200: n * 3 // 4, 500: n // 4}, statuses
    sent = collections.Counter(paths)
    for _ in range(scrapes):
        for kind in ("/metrics", "/metrics/default", "/metrics/own"):
            status, body = server.get(kind)
            assert status == 200
            s = parse_text(body.decode())
            if kind != "/metrics/own":
                for p, k in sent.items():
                    st = "500" if p == "/fail" else "200"
                    assert value(s, "app_requests_total", path=p, status=st) == k, (kind, p, body.decode())
                    assert value(s, "app_latency_seconds_count", path=p) == k
                    assert value(s, "app_latency_seconds_bucket", path=p, le="0.01") == k
                assert value(s, "app_inprogress") == 0
            if kind != "/metrics/default":
                assert value(s, "app_hits_total") == n, (kind, body.decode())
                assert value(s, "app_sizes_bytes_count") == n
                assert value(s, "app_sizes_bytes_sum") == sum(len(p) for p in paths)


def test_gunicorn_four_workers_exact_through_the_pth_hook(gunicorn, tmp_path):
    mpdir = tmp_path / "prometheus_multiproc"
    mpdir.mkdir()
    server = gunicorn(PROMSHM_PROMETHEUS_CLIENT="1", PROMETHEUS_MULTIPROC_DIR=str(mpdir))
    app_exact(server, 2000)
    assert list(mpdir.iterdir()) == [], "no prometheus_client .db files with the backend"
    assert server.stop() == 0, server.logs()


def test_gunicorn_gthread_workers_exact(gunicorn):
    server = gunicorn("-k", "gthread", "--threads", "4", PROMSHM_PROMETHEUS_CLIENT="1")
    app_exact(server, 2000)
    assert server.stop() == 0, server.logs()


def test_gunicorn_max_requests_and_preload_exact(gunicorn):
    # Recycled workers (max_requests): counts of workers that exited stay.
    server = gunicorn("--max-requests", "150", "--preload", PROMSHM_PROMETHEUS_CLIENT="1")
    app_exact(server, 2000)
    assert server.stop() == 0, server.logs()


def test_gunicorn_without_backend_is_not_exact(gunicorn):
    """Baseline: the same app without the variable renders one worker's counts."""
    server = gunicorn()
    n = 400
    _blast(server, ["/"] * n)
    s = parse_text(server.get("/metrics/default")[1].decode())
    assert (value(s, "app_requests_total", path="/", status="200") or 0) < n
    server.stop()


PROCESS_APP = '''
import os
from prometheus_client import REGISTRY, generate_latest, CONTENT_TYPE_LATEST


def app(environ, start_response):
    if environ["PATH_INFO"] == "/metrics/default":
        start_response("200 OK", [("Content-Type", CONTENT_TYPE_LATEST)])
        return [generate_latest(REGISTRY)]
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [str(os.getpid()).encode()]
'''


def _worker_pids(master: int, n: int, timeout: float = 30) -> set:
    """The pids of gunicorn's ``n`` workers (the master's children), once all are up."""
    deadline = time.time() + timeout
    while True:
        try:
            kids = {int(p) for p in Path(f"/proc/{master}/task/{master}/children").read_text().split()}
        except OSError:
            kids = set()
        if len(kids) == n or time.time() > deadline:
            return kids
        time.sleep(0.05)


def _process_series(server: "Gunicorn") -> Tuple[Dict[int, float], Dict]:
    status, body = server.get("/metrics/default")
    assert status == 200
    s = parse_text(body.decode())
    rss = {}
    for (name, labels), v in s.items():
        if name == "process_resident_memory_bytes":
            d = dict(labels)
            assert set(d) == {"worker", "pid"}, d
            rss[int(d["pid"])] = v
    return rss, s


def _until_listed(server: "Gunicorn", pids: set, timeout: float = 30) -> None:
    deadline = time.time() + timeout
    while set(_process_series(server)[0]) != pids:
        assert time.time() < deadline, (_process_series(server)[0], pids)
        time.sleep(0.1)


def test_gunicorn_process_metrics_of_every_worker_on_any_page(gunicorn):
    """prometheus_client's ProcessCollector through the backend: every one of
    the 4 workers' process_* on whichever worker serves the scrape, the
    process_workers_* totals their sums; a killed worker's series go with it."""
    server = gunicorn(files={"pcapp.py": PROCESS_APP}, PROMSHM_PROMETHEUS_CLIENT="1")
    pids = _worker_pids(server.proc.pid, 4)
    assert len(pids) == 4
    _until_listed(server, pids)  # each worker attaches as it loads the app
    for _ in range(8):  # scrapes, served by whichever worker accepts
        rss, s = _process_series(server)
        assert set(rss) == pids, (rss, pids)
        assert value(s, "process_workers") == 4
        assert value(s, "process_workers_resident_memory_bytes") == sum(rss.values())
        cpu = [v for (n, _), v in s.items() if n == "process_cpu_seconds_total"]
        assert len(cpu) == 4 and value(s, "process_workers_cpu_seconds") == pytest.approx(sum(cpu))
    victim = sorted(pids)[0]
    os.kill(victim, signal.SIGKILL)
    deadline = time.time() + 30
    while True:
        now = _worker_pids(server.proc.pid, 4)
        if victim not in now and len(now) == 4:
            break
        assert time.time() < deadline, now
        time.sleep(0.05)
    _until_listed(server, now)
    for _ in range(8):
        rss, s = _process_series(server)
        assert set(rss) == now, (rss, now)
        assert value(s, "process_workers") == 4
        assert value(s, "process_workers_resident_memory_bytes") == sum(rss.values())
    assert server.stop() == 0, server.logs()


RESET_SCRIPT = r"""
import json, multiprocessing as mp, time
from promshm import prometheus_client_backend
prometheus_client_backend.install()
from prometheus_client import REGISTRY, CollectorRegistry, Counter, generate_latest, multiprocess

plain = Counter("rs_plain", "Plain.")
jobs = Counter("rs_jobs", "Jobs.", ["queue"])


def work(go, done):
    child = jobs.labels("q")          # handles held across the reset
    for _ in range(1000):
        plain.inc(); child.inc()
    done.release()
    go.wait(30)
    for _ in range(500):
        plain.inc(); child.inc()
    done.release()


def view():
    reg = CollectorRegistry()
    multiprocess.MultiProcessCollector(reg)
    return {"default": generate_latest(REGISTRY).decode(), "multiprocess": generate_latest(reg).decode()}


ctx = mp.get_context("fork")
go, done = ctx.Event(), ctx.Semaphore(0)
kids = [ctx.Process(target=work, args=(go, done)) for _ in range(4)]
for k in kids:
    k.start()
for _ in range(4):
    assert done.acquire(timeout=60)
before = view()
t0 = time.time()
plain.reset(); jobs.labels("q").reset()
at_reset = view()
got_at_reset = (plain._value.get(), jobs.labels("q")._value.get())
go.set()
for _ in range(4):
    assert done.acquire(timeout=60)
after = view()
for k in kids:
    k.join(30)
jobs.remove("q")
jobs.labels("q").inc(3)     # made again after remove(): from 0, not below
print(json.dumps({"before": before, "at_reset": at_reset, "after": after, "t0": t0,
                  "got_at_reset": got_at_reset, "got": [plain._value.get(), jobs.labels("q")._value.get()],
                  "removed": generate_latest(REGISTRY).decode(), "codes": [k.exitcode for k in kids]}))
"""


@pytest.mark.skipif(
    not hasattr(__import__("prometheus_client").Counter, "reset"), reason="Counter.reset() is new in prometheus_client 0.20"
)
def test_counter_reset_is_seen_by_every_process_and_later_increments_count(tmp_path):
    """Counter.reset() in the parent while 4 forked children hold the counter:
    every render shows 0 from then on (with a new _created), and the
    children's later increments all count (no stale series)."""
    r = run_code(RESET_SCRIPT, tmp_path)
    out = json.loads(r.stdout)
    assert out["codes"] == [0] * 4
    for which in ("default", "multiprocess"):
        before, at, after = (parse_text(out[p][which]) for p in ("before", "at_reset", "after"))
        assert value(before, "rs_plain_total") == 4000 and value(before, "rs_jobs_total", queue="q") == 4000
        assert value(at, "rs_plain_total") == 0 and value(at, "rs_jobs_total", queue="q") == 0, out["at_reset"][which]
        assert value(at, "rs_plain_created") >= out["t0"] > value(before, "rs_plain_created")
        assert value(at, "rs_jobs_created", queue="q") >= out["t0"]
        assert value(after, "rs_plain_total") == 2000 and value(after, "rs_jobs_total", queue="q") == 2000, out["after"][which]
        assert ":promshm_" not in out["after"][which]
    assert out["got_at_reset"] == [0.0, 0.0]
    assert out["got"] == [2000.0, 3.0]
    assert value(parse_text(out["removed"]), "rs_jobs_total", queue="q") == 3


def test_a_scrape_renders_the_area_once_not_once_per_metric(tmp_path):
    """generate_latest(REGISTRY) with 200 metrics: one render of the area for
    all of them (a render per metric made a scrape quadratic)."""
    code = (
        "from promshm import prometheus_client_backend as b; b.install()\n"
        "import prometheus_client as pc, promshm.registry as r\n"
        "cs = [pc.Counter(f'sc{i}', 'C.', ['a']) for i in range(100)]\n"
        "mode = 'livemostrecent' if 'livemostrecent' in pc.Gauge._MULTIPROC_MODES else 'livemax'  # >= 0.18\n"
        "gs = [pc.Gauge(f'sg{i}', 'G.', multiprocess_mode=mode) for i in range(100)]\n"
        "for i, c in enumerate(cs): c.labels('x').inc(i)\n"
        "for i, g in enumerate(gs): g.set(i)\n"
        "if hasattr(pc.Counter, 'reset'):\n    cs[7].labels('x').reset()  # prometheus_client >= 0.20\n"
        "cs[7].labels('x').inc(2)\n"
        "n = [0]; orig = r._render\n"
        "def counting(*a):\n    n[0] += 1; return orig(*a)\n"
        "r._render = counting\n"
        "text = pc.generate_latest().decode()\n"
        "print(n[0]); print(text)\n"
    )
    out = run_code(code, tmp_path).stdout
    renders, text = out.split("\n", 1)
    assert int(renders) == 1, renders
    s = parse_text(text)
    reset = hasattr(__import__("prometheus_client").Counter, "reset")
    assert [value(s, f"sc{i}_total", a="x") for i in (0, 5, 7, 99)] == [0, 5, 2 if reset else 9, 99]
    assert [value(s, f"sg{i}") for i in (0, 42, 99)] == [0, 42, 99]
    assert ":promshm_" not in text

"""Several processes, one area: multiprocessing pools (fork, spawn,
forkserver), os.fork, zero-configuration discovery, the flusher, exit flush,
dead workers and gauge modes."""

from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Dict

import pytest

import promshm

from conftest import child_env, parse_text, value

TIMEOUT = 180


def run_script(tmp_path: Path, code: str, *args: str, env: Dict[str, str] = None) -> str:
    script = tmp_path / "script.py"
    script.write_text(textwrap.dedent(code))
    proc = subprocess.run(
        [sys.executable, str(script), *args],
        cwd=tmp_path,
        env=env or child_env(),
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert proc.returncode == 0, f"script failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


POOL_SCRIPT = """
import multiprocessing as mp, os, sys
import promshm

TASKS = promshm.Counter("pool_tasks", "Tasks.", ["kind"])
LATENCY = promshm.Histogram("pool_latency", "Latency.", buckets=[0.5])
PIDS = promshm.Gauge("pool_pids", "Pids.", multiprocess_mode="all")

def work(i):
    for j in range(100):
        TASKS.labels("even" if j % 2 == 0 else "odd").inc()
        LATENCY.observe(0.1)
    PIDS.set(os.getpid())
    return i

if __name__ == "__main__":
    ctx = mp.get_context(sys.argv[1])
    # The usual idiom: the `with` block ends with terminate(), which kills the
    # workers (SIGTERM) without running any exit handler.
    with ctx.Pool(4) as pool:
        assert sum(pool.map(work, range(200), chunksize=5)) == sum(range(200))
    sys.stdout.write(promshm.generate_latest().decode())
"""


@pytest.mark.parametrize("method", ["fork", "spawn", "forkserver"])
def test_pool_totals_are_exact(tmp_path, method):
    if method not in multiprocessing.get_all_start_methods():
        pytest.skip(f"{method} not available")
    out = run_script(tmp_path, POOL_SCRIPT, method)
    s = parse_text(out)
    assert value(s, "pool_tasks_total", kind="even") == 10000
    assert value(s, "pool_tasks_total", kind="odd") == 10000
    assert value(s, "pool_latency_count") == 20000
    assert value(s, "pool_latency_bucket", le="0.5") == 20000


LATE_SCRIPT = """
import multiprocessing as mp, os, sys

_counter = None

def work(i):
    # The parent has not used promshm when the pool starts: the workers find
    # the area on their own (the parent's zero-config path) and share it.
    global _counter
    if _counter is None:
        import promshm
        _counter = promshm.Counter("late_tasks", "Tasks.")
    _counter.inc()
    import promshm
    return promshm.area_path()

if __name__ == "__main__":
    ctx = mp.get_context(sys.argv[1])
    with ctx.Pool(3) as pool:
        paths = set(pool.map(work, range(300), chunksize=10))
    import promshm
    promshm.Counter("late_tasks", "Tasks.")
    print("PATHS", sorted(paths), promshm.area_path())
    sys.stdout.write(promshm.generate_latest().decode())
"""


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_zero_config_when_only_the_children_use_promshm(tmp_path, method):
    out = run_script(tmp_path, LATE_SCRIPT, method)
    first = out.splitlines()[0]
    assert first.startswith("PATHS")
    assert value(parse_text("\n".join(out.splitlines()[1:]) + "\n"), "late_tasks_total") == 300
    paths = eval(first.split(" ", 1)[1].rsplit(" ", 1)[0])
    assert len(paths) == 1 and paths[0] == first.rsplit(" ", 1)[1]


FORK_SCRIPT = """
import os, sys
import promshm

C = promshm.Counter("forked", "Forked.", ["how"])
pids = []
for i in range(4):
    pid = os.fork()
    if pid == 0:
        for _ in range(1000):
            C.labels("exit").inc()
        sys.exit(0)  # Python exit: the atexit handler flushes
    pids.append(pid)
for i in range(4):
    pid = os.fork()
    if pid == 0:
        for _ in range(1000):
            C.labels("flush").inc()
        promshm.flush()
        os._exit(0)  # no exit handlers: flush first
    pids.append(pid)
for pid in pids:
    _, status = os.waitpid(pid, 0)
    assert status == 0, status
C.labels("parent").inc(5)  # buffered, flushed by the render
sys.stdout.write(promshm.generate_latest().decode())
"""


def test_os_fork_children(tmp_path):
    s = parse_text(run_script(tmp_path, FORK_SCRIPT))
    assert value(s, "forked_total", how="exit") == 4000
    assert value(s, "forked_total", how="flush") == 4000
    assert value(s, "forked_total", how="parent") == 5


ZERO_CONFIG_SCRIPT = """
import os, sys, subprocess
import promshm
promshm.Counter("zc", "Zero config.").inc()
path = promshm.area_path()
assert os.environ["PROMSHM_AREA"] == path
assert os.stat(path).st_mode & 0o777 == 0o600
# An exec'd child inherits PROMSHM_AREA and updates the same area.
subprocess.run([sys.executable, "-c", "import promshm; promshm.Counter('zc', 'Zero config.').inc(2)"], check=True)
print(path)
sys.stdout.write(promshm.generate_latest().decode())
"""


def test_zero_config_area_is_created_shared_and_removed(tmp_path):
    rundir = tmp_path / "run"
    rundir.mkdir()
    # A stale file from a dead root process is swept away.
    stale = rundir / f"promshm-{os.getuid()}-{promshm._area._boot_id()}-999999-1.area"
    stale.write_bytes(b"x")
    out = run_script(tmp_path, ZERO_CONFIG_SCRIPT, env=child_env(PROMSHM_DIR=str(rundir)))
    path = Path(out.splitlines()[0])
    assert path.parent == rundir and path.name.startswith(f"promshm-{os.getuid()}-")
    assert value(parse_text("\n".join(out.splitlines()[1:]) + "\n"), "zc_total") == 3
    assert not path.exists(), "the root process removes its zero-config area at exit"
    assert not stale.exists(), "stale area files are swept"


def test_explicit_area_path_is_kept(tmp_path):
    area = tmp_path / "explicit.area"
    code = "import promshm; promshm.Counter('kept', 'K.').inc(); print(promshm.area_path())"
    out = run_script(tmp_path, code, env=child_env(PROMSHM_AREA=str(area)))
    assert out.strip() == str(area)
    assert area.exists()
    code2 = f"import promshm; promshm.configure(path={str(area)!r}); print(promshm.generate_latest().decode())"
    assert value(parse_text(run_script(tmp_path, code2)), "kept_total") == 1


FLUSHER_SCRIPT = """
import sys, time
import promshm
c = promshm.Counter("timer_flushed", "T.")
c.inc(7)
print("ready", flush=True)
time.sleep(float(sys.argv[1]))
"""


def _read(area: Path, name: str) -> float:
    if not area.exists():
        return -1
    text = promshm.Area.open(area, read_only=True).render().decode()
    v = value(parse_text(text), name)
    return -1 if v is None else v


@pytest.mark.parametrize("interval", ["0.05", "0"])
def test_flusher_timer_and_exit_flush(tmp_path, interval):
    area = tmp_path / "flusher.area"
    script = tmp_path / "flusher.py"
    script.write_text(textwrap.dedent(FLUSHER_SCRIPT))
    env = child_env(PROMSHM_AREA=str(area), PROMSHM_FLUSH_INTERVAL=interval)
    proc = subprocess.Popen([sys.executable, str(script), "1.5"], env=env, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        if interval != "0":
            deadline = time.time() + 10
            while _read(area, "timer_flushed_total") != 7 and time.time() < deadline:
                time.sleep(0.02)
            assert _read(area, "timer_flushed_total") == 7, "the timer flushed while the process was busy"
        else:
            time.sleep(0.3)
            assert _read(area, "timer_flushed_total") in (-1, 0), "no timer: not flushed yet"
        assert proc.wait(timeout=60) == 0
    finally:
        proc.kill()
    assert _read(area, "timer_flushed_total") == 7, "flushed at exit"


def _gauge_worker(path: str, mode_values: Dict[str, float], ready) -> None:
    reg = promshm.CollectorRegistry(area=promshm.Area(path))
    for mode, v in mode_values.items():
        promshm.Gauge(f"{mode}_g", "G.", registry=reg, multiprocess_mode=mode).set(v)
    ready.set()
    time.sleep(120)  # until the test ends it (a shared Event would hang once a waiter is SIGKILLed)


def test_gauge_modes_when_a_worker_dies(tmp_path):
    path = str(tmp_path / "gauges.area")
    reg = promshm.CollectorRegistry(area=promshm.Area(path))
    ctx = multiprocessing.get_context("fork")
    procs = []
    for i, v in enumerate((10.0, 20.0, 30.0)):
        ready = ctx.Event()
        p = ctx.Process(target=_gauge_worker, args=(path, {m: v for m in ("livesum", "sum", "max", "livemax", "all", "liveall")}, ready))
        p.start()
        assert ready.wait(60)
        procs.append(p)
    try:
        s = parse_text(promshm.generate_latest(reg).decode())
        assert value(s, "livesum_g") == 60
        assert value(s, "sum_g") == 60
        assert value(s, "max_g") == 30
        assert value(s, "livemax_g") == 30
        assert sorted(v for (n, _), v in s.items() if n == "all_g") == [10, 20, 30]
        assert sorted(v for (n, _), v in s.items() if n == "liveall_g") == [10, 20, 30]
        os.kill(procs[2].pid, signal.SIGKILL)  # no exit handler runs
        procs[2].join(30)
        s = parse_text(promshm.generate_latest(reg).decode())
        assert value(s, "livesum_g") == 30, "a dead worker's livesum value disappears"
        assert value(s, "sum_g") == 60, "sum keeps a dead worker's last value"
        assert value(s, "max_g") == 30, "max keeps a dead worker's last value"
        assert value(s, "livemax_g") == 20, "livemax drops it"
        all_g = {dict(labels)["pid"]: v for (n, labels), v in s.items() if n == "all_g"}
        assert all_g == {str(p.pid): v for p, v in zip(procs, (10, 20, 30))}, "all keeps it, labelled by pid"
        assert sorted(v for (n, _), v in s.items() if n == "liveall_g") == [10, 20], "liveall drops it"
        assert reg.area.stats()["reaped_workers"] >= 1
    finally:
        for p in procs:
            p.kill()
            p.join(30)


def _count_in_child(path: str, n: int) -> None:
    reg = promshm.CollectorRegistry(area=promshm.Area(path))
    c = promshm.Counter("concurrent", "C.", ["w"], registry=reg)
    h = promshm.Histogram("concurrent_h", "H.", registry=reg, buckets=[1])
    for i in range(n):
        c.labels(str(i % 3)).inc()
        h.observe(0.5)


def test_processes_and_threads_exact(tmp_path):
    """P processes x T threads x N updates, checked exactly."""
    import threading

    path = str(tmp_path / "pt.area")
    ctx = multiprocessing.get_context("spawn")
    n, procs_n, threads_n = 3000, 3, 3

    procs = [ctx.Process(target=_count_in_child, args=(path, n)) for _ in range(procs_n)]
    for p in procs:
        p.start()
    threads = [threading.Thread(target=_count_in_child, args=(path, n)) for _ in range(threads_n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for p in procs:
        p.join(TIMEOUT)
        assert p.exitcode == 0
    reg = promshm.CollectorRegistry(area=promshm.Area(path))
    s = parse_text(promshm.generate_latest(reg).decode())
    total = (procs_n + threads_n) * n
    assert sum(value(s, "concurrent_total", w=str(k)) for k in range(3)) == total
    assert value(s, "concurrent_h_count") == total

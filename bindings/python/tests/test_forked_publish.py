"""Forked processes that never end a request still publish (issue 18).

A child forked from a process with promshm metrics — a ``multiprocessing``
process, a daemon forked with ``os.fork()``, a pool worker — that loops
forever incrementing, and never calls ``flush()``, must have its updates on a
scrape within the flush interval (1 s): the package gives it its own flusher
(the parent's thread did not survive the fork; its handle is forgotten, never
touched). Each scenario runs in a fresh interpreter; the parent reads the
area file through a second, read-only mapping (as a scraper does), waits at
most 2 s after the child's last update for the exact totals, prints the
time from the last update to visibility, and kills the child (SIGKILL: it
never exits, so nothing is flushed at exit). A child forked from C that
only updates series resolved in the parent runs no code of the package but
the updates: the library itself starts its flusher (inherited from the
parent's) at its first buffered update."""

from __future__ import annotations

import subprocess
import textwrap

from conftest import child_env, python

_SCENARIO = '''
import multiprocessing, os, signal, sys, time
import promshm

MODE = sys.argv[1]
NO_CHILD_FAMILY = ("stopped-parent-flusher", "c-fork", "c-fork-resolved")
# Only series resolved in the parent: no slow path of the package runs in the child.
RESOLVED_ONLY = MODE == "c-fork-resolved"
AREA = sys.argv[2]
N = 5000
promshm.configure(AREA)
# Created in the parent, before the fork (the common layout: at import).
jobs = promshm.Counter("jobs", "Jobs done.", ["kind"])
seconds = promshm.Histogram("job_seconds", "Job time.", buckets=[0.5, 1])
jobs.labels("inherited").inc(0)
if MODE == "stopped-parent-flusher":
    # A parent that flushes for itself (at request end) and stopped its
    # flusher: its children, which buffer and end no request, still publish.
    promshm.stop_flusher()

def job_loop(last):
    # Only updates of inherited families when the parent stopped its
    # flusher (a family made here would start one when it is registered).
    child = None if MODE in NO_CHILD_FAMILY else promshm.Counter("child_jobs", "Made in the child.")
    mine = jobs.labels("inherited")
    for i in range(N):
        mine.inc()
        if RESOLVED_ONLY:
            continue
        jobs.labels("child-label").inc(2)
        seconds.observe(0.25)
        if child is not None:
            child.inc()
    last.value = time.time()
    while True:  # a job loop that never ends a request and never flushes
        time.sleep(0.01)
        mine.inc(0)

ctx = multiprocessing.get_context("fork")
last = ctx.Value("d", 0.0, lock=False)
if MODE == "multiprocessing":
    p = ctx.Process(target=job_loop, args=(last,), daemon=True)
    p.start()
    pid = p.pid
else:
    if MODE in ("c-fork", "c-fork-resolved"):
        # fork() called from C, as uWSGI and other C servers do: Python's
        # at-fork handlers do not run in the child.
        import ctypes
        pid = ctypes.CDLL(None, use_errno=True).fork()
    else:
        pid = os.fork()
    if pid == 0:
        try:
            job_loop(last)
        finally:
            os._exit(1)

want = {
    'jobs_total{kind="inherited"}': N,
    'jobs_total{kind="child-label"}': 2 * N,
    "job_seconds_count": N,
    'job_seconds_bucket{le="0.5"}': N,
}
if MODE not in NO_CHILD_FAMILY:
    want["child_jobs_total"] = N
if RESOLVED_ONLY:
    want = {'jobs_total{kind="inherited"}': N}
reader = promshm.Area.open(AREA, read_only=True)

def current():
    got = {}
    for line in reader.render().decode().splitlines():
        if line and not line.startswith("#"):
            name, _, v = line.rpartition(" ")
            got[name] = float(v)
    return got

deadline = time.monotonic() + 60
while last.value == 0.0 and time.monotonic() < deadline:  # the child's updates are still running
    time.sleep(0.005)
assert last.value, "the child never finished its updates"
while True:
    got = current()
    now = time.time()
    if all(got.get(k) == v for k, v in want.items()):
        break
    if now - last.value > 2.0:
        os.kill(pid, signal.SIGKILL)
        raise SystemExit(f"not visible 2 s after the last update: {got}")
    time.sleep(0.01)
print(f"{MODE}: visible {now - last.value:.3f} s after the last update")
assert os.waitpid(pid, os.WNOHANG) == (0, 0), "the child left its loop"
os.kill(pid, signal.SIGKILL)
os.waitpid(pid, 0)
print("exact")
'''


def _run(mode: str, tmp_path) -> str:
    proc = subprocess.run(
        python() + ["-c", textwrap.dedent(_SCENARIO), mode, str(tmp_path / "area.shm")],
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    print(proc.stdout)
    assert proc.returncode == 0, f"exit {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    assert "exact" in proc.stdout
    return proc.stdout


def test_multiprocessing_fork_child_looping_forever_publishes_within_2_s(tmp_path):
    _run("multiprocessing", tmp_path)


def test_os_fork_child_looping_forever_publishes_within_2_s(tmp_path):
    _run("os-fork", tmp_path)


def test_child_of_a_parent_that_stopped_its_flusher_still_publishes(tmp_path):
    _run("stopped-parent-flusher", tmp_path)


def test_child_forked_from_c_publishes_once_it_resolves_a_new_label_set(tmp_path):
    # No Python fork hook ran: the package notices the new pid on its slow
    # path (here: the child's first new label set) and starts a flusher.
    _run("c-fork", tmp_path)


def test_child_forked_from_c_updating_only_inherited_series_publishes(tmp_path):
    # Neither Python's fork hooks nor any slow path of the package run in
    # the child: the library itself starts the child's flusher (inherited
    # from the parent's) at its first buffered update.
    _run("c-fork-resolved", tmp_path)

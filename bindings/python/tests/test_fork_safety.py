"""Forking while other threads use promshm: no child hangs, nothing is lost
(issue 19: locks held across fork; issue 9 item 3: fork while a flusher runs).

Each scenario runs in a fresh interpreter (a script), so the parent has only
the threads the scenario starts, and every child is bounded by a timeout."""

from __future__ import annotations

import subprocess
import textwrap

from conftest import child_env, python

# Waits for one child at most `timeout` seconds; kills it and counts it as hung.
_WAIT = '''
import os, signal, time
def wait_child(pid, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.0005)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    return None
'''


def _run(script: str, timeout: float) -> str:
    proc = subprocess.run(
        python() + ["-c", _WAIT + textwrap.dedent(script)],
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert proc.returncode == 0, f"exit {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    return proc.stdout


def test_fork_while_a_thread_creates_label_sets_1000_times():
    out = _run(
        """
        import threading
        import promshm
        reg = promshm.CollectorRegistry()
        forked = promshm.Counter("forked", "Children.", ["who"], registry=reg)
        current = [None]  # the family the thread is adding series to
        stop = threading.Event()
        def churn():
            i = 0
            while not stop.is_set():
                if i % 200 == 0:  # a fresh family on a fresh registry (its lock, and a GIL-releasing call)
                    current[0] = promshm.Counter("made", "Series made.", ["n"], registry=promshm.CollectorRegistry(pages=64))
                current[0].labels(str(i))  # a new series: the family lock and a GIL-releasing call
                i += 1
        t = threading.Thread(target=churn)
        t.start()
        while current[0] is None:
            time.sleep(0.001)
        hung = failed = 0
        for k in range(1000):
            pid = os.fork()
            if pid == 0:
                code = 1
                try:
                    current[0].labels("child").inc()
                    promshm.Counter("late", "Made in a child.", registry=promshm.CollectorRegistry()).inc()
                    forked.labels("child").inc()
                    promshm.flush()
                    code = 0
                except BaseException:
                    import traceback
                    traceback.print_exc()
                finally:
                    os._exit(code)
            rc = wait_child(pid, 5)
            if rc is None:
                hung += 1
            elif rc != 0:
                failed += 1
        stop.set()
        t.join()
        promshm.flush()
        print(hung, failed, forked.labels("child").get())
        """,
        timeout=600,
    )
    hung, failed, total = out.split()
    assert (hung, failed) == ("0", "0"), out
    assert float(total) == 1000


def test_multiprocessing_fork_children_while_a_1ms_flusher_runs():
    out = _run(
        """
        import multiprocessing, threading
        import promshm
        promshm.configure(flush_interval=0.001)
        reg = promshm.CollectorRegistry()
        work = promshm.Counter("work", "Updates.", ["who"], registry=reg)
        assert promshm.start_flusher()
        stop = threading.Event()
        def update(who):
            c = work.labels(who)
            n = 0
            while not stop.is_set():
                c.inc()
                n += 1
            return n
        counts = {}
        threads = [threading.Thread(target=lambda w=w: counts.__setitem__(w, update(w))) for w in ("t1", "t2")]
        for t in threads:
            t.start()
        def child():
            c = work.labels("child")
            for _ in range(10):
                c.inc()
            promshm.flush()
        ctx = multiprocessing.get_context("fork")
        hung = failed = 0
        for _ in range(CHILDREN):
            p = ctx.Process(target=child)
            p.start()
            p.join(10)
            if p.is_alive():
                hung += 1
                p.kill()
                p.join()
            elif p.exitcode != 0:
                failed += 1
        stop.set()
        for t in threads:
            t.join()
        promshm.flush()
        exact = all(work.labels(w).get() == counts[w] for w in ("t1", "t2"))
        print(hung, failed, work.labels("child").get(), exact)
        """.replace("CHILDREN", "300"),
        timeout=600,
    )
    hung, failed, total, exact = out.split()
    assert (hung, failed) == ("0", "0"), out
    assert float(total) == 300 * 10
    assert exact == "True"

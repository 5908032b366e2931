"""End to end: nginx + php-fpm (pm = static, 4 children) + `promshm serve`.

Each test starts its own servers on 127.0.0.1 from examples/php's configs in
a temp dir (tests/php/php_stack.py) and stops them. The app (examples/php/app)
counts each request in `app_requests_total{route}` and observes the value
it carries in the histogram `app_request_value{route}`, with PromPHP's API
over `Promshm\\Storage`; updates are flushed at request end. /metrics comes
from `promshm serve` reading the pool's area, never from php-fpm.

Checked: 2,000 concurrent requests, with every scrape taken during the run
between "200s received before it" and "requests sent before it ended", and
several scrapes after it exact (counter, histogram buckets, count and sum);
the same with pm.max_requests = 50 (children recycled during the run); with
one child `kill -9`ed mid-run (exact = requests that got a 200, its earlier
flushed requests kept, its unflushed update dropped whole); a child killed
at a random point of the load (at most its one request in doubt); a saturated pool
still scraped; `promtool check metrics` clean on every final page.
"""

from __future__ import annotations

import asyncio
import math
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

sys.path.insert(0, str(Path(__file__).resolve().parent))
from php_stack import Stack, drive, http_get, wait_for  # noqa: E402

ROUTES = ("r0", "r1", "r2", "r3")
REQUESTS = 2000


@pytest.fixture
def stack_factory():
    stacks = []

    def make(**kwargs) -> Stack:
        stack = Stack(**kwargs)
        stacks.append(stack)
        return stack.start()

    yield make
    for stack in stacks:
        stack.stop()
        stack.cleanup()


def request(i: int) -> tuple[str, float]:
    """Request i's route and value (exact in binary, so sums compare exactly)."""
    return ROUTES[i % len(ROUTES)], (i % 8) / 8


def paths(start: int, n: int) -> list[str]:
    return [f"/?route={r}&v={v}" for r, v in map(request, range(start, start + n))]


def parse(page: str) -> dict:
    """{(sample name, frozenset(labels)): value} of an exposition page."""
    out = {}
    for family in text_string_to_metric_families(page):
        for s in family.samples:
            key = (s.name, frozenset(s.labels.items()))
            assert key not in out, f"duplicate sample {key}"
            out[key] = s.value
    return out


def value(samples: dict, name: str, **labels) -> float | None:
    return samples.get((name, frozenset(labels.items())))


def buckets(samples: dict, route: str) -> list[tuple[float, float]]:
    """The (le, count) pairs of app_request_value{route}, by le."""
    out = []
    for (name, labels), v in samples.items():
        labels = dict(labels)
        if name == "app_request_value_bucket" and labels.get("route") == route:
            out.append((float(labels["le"]), v))
    return sorted(out)


def check_exact(page: str, done: list[int]) -> None:
    """The page shows exactly the requests `done` (indices into `request`)."""
    samples = parse(page)
    by_route: dict[str, list[float]] = {r: [] for r in ROUTES}
    for i in done:
        r, v = request(i)
        by_route[r].append(v)
    for r, values in by_route.items():
        n = len(values)
        assert value(samples, "app_requests_total", route=r) == n, (r, n)
        if n == 0:
            continue
        assert value(samples, "app_request_value_count", route=r) == n, (r, n)
        assert value(samples, "app_request_value_sum", route=r) == sum(values), r
        bs = buckets(samples, r)
        assert bs and bs[-1][0] == math.inf, bs
        for le, count in bs:
            assert count == sum(1 for v in values if v <= le), (r, le, count)


def check_consistent(page: str) -> dict[str, float]:
    """A scrape taken mid-run: each histogram's buckets rise to its count.
    Returns the counter per route."""
    samples = parse(page)
    for r in ROUTES:
        bs = buckets(samples, r)
        count = value(samples, "app_request_value_count", route=r)
        if not bs:
            assert count in (None, 0), (r, count)
            continue
        assert [c for _, c in bs] == sorted(c for _, c in bs), (r, bs)
        assert bs[-1] == (math.inf, count), (r, bs, count)
    return {r: value(samples, "app_requests_total", route=r) or 0 for r in ROUTES}


def check_run_scrapes(run, base: int = 0) -> None:
    """Every scrape taken during `run` is consistent, monotone, and between the
    200s received before it and the requests sent before it ended (plus `base`,
    the requests counted before the run)."""
    assert len(run.scrapes) >= 3, f"only {len(run.scrapes)} scrapes during the run"
    previous = {r: 0.0 for r in ROUTES}
    for s in run.scrapes:
        counters = check_consistent(s.page)
        total = sum(counters.values())
        assert base + s.ok_before <= total <= base + s.sent_before_end, (total, s.ok_before, s.sent_before_end)
        for r in ROUTES:
            assert counters[r] >= previous[r], (r, counters[r], previous[r])
        previous = counters


def promtool_check(page: str) -> None:
    result = subprocess.run(["promtool", "check", "metrics"], input=page.encode(),
                            capture_output=True, timeout=30)
    assert result.returncode == 0, (result.stdout + result.stderr).decode()


def final_checks(stack: Stack, done: list[int], scrapes: int = 3) -> str:
    """Several scrapes after the run, each exact; promtool clean. Returns the last."""
    page = ""
    for _ in range(scrapes):
        page = stack.scrape()
        check_exact(page, done)
        time.sleep(0.1)
    promtool_check(page)
    return page


def pids_of(results) -> Counter:
    return Counter(int(body.split("pid=")[1]) for _, status, body in results if status == 200)


def ok_indices(results, start: int = 0) -> list[int]:
    return [start + i for i, status, _ in results if status == 200]


@pytest.mark.parametrize("ffi", ["preload", "cdef"])
def test_static_pool_2000_concurrent_requests_exact(stack_factory, ffi):
    stack = stack_factory(children=4, ffi=ffi)
    run = drive(stack, paths(0, REQUESTS))
    statuses = Counter(status for _, status, _ in run.results)
    assert statuses == {200: REQUESTS}, f"{statuses}\n{stack.logs()}"
    assert len(pids_of(run.results)) == 4
    check_run_scrapes(run)
    final_checks(stack, list(range(REQUESTS)))
    print(f"static pool, FFI {ffi}: {REQUESTS} requests, {len(run.scrapes)} scrapes during the run, all exact")


def test_recycled_children_max_requests_50_exact(stack_factory):
    stack = stack_factory(children=4, max_requests=50)
    run = drive(stack, paths(0, REQUESTS))
    statuses = Counter(status for _, status, _ in run.results)
    assert statuses == {200: REQUESTS}, f"{statuses}\n{stack.logs()}"
    pids = pids_of(run.results)
    # 2,000 requests at most 50 per child: at least 40 children served them.
    assert len(pids) >= REQUESTS // 50, len(pids)
    assert max(pids.values()) <= 50, pids.most_common(3)
    check_run_scrapes(run)
    final_checks(stack, list(range(REQUESTS)))
    print(f"pm.max_requests=50: {len(pids)} children served {REQUESTS} requests, exact")


def test_child_killed_mid_run_keeps_flushed_requests(stack_factory):
    stack = stack_factory(children=4)
    first = 500
    run1 = drive(stack, paths(0, first))
    assert Counter(s for _, s, _ in run1.results) == {200: first}, stack.logs()
    check_exact(stack.scrape(), list(range(first)))

    # One child takes a long request (its update buffered, not flushed) ...
    hold: dict = {}
    holder = threading.Thread(target=lambda: hold.update(r=http_get(stack.url("/?op=hold&s=30&tag=victim"), 60)))
    holder.start()
    pidfile = stack.state / "hold-victim.pid"
    victim = int(wait_for("the victim's pid file", lambda: pidfile.exists() and pidfile.read_text()))
    assert victim in pids_of(run1.results), "the victim served none of the first requests"

    # ... and is killed with SIGKILL while the next 1,500 requests run.
    killed = {}

    def kill_mid_run(stack, counts):
        deadline = time.monotonic() + 60
        while counts["ok"] < (REQUESTS - first) // 3 and time.monotonic() < deadline:
            time.sleep(0.001)
        killed["at_ok"] = counts["ok"]
        os.kill(victim, signal.SIGKILL)

    run2 = drive(stack, paths(first, REQUESTS - first), during=kill_mid_run)
    holder.join(70)
    assert not holder.is_alive()
    assert hold["r"][0] == 502, hold["r"]
    assert 0 < killed["at_ok"] < REQUESTS - first, killed
    wait_for("the killed child replaced", lambda: len(stack.child_pids()) == 4 and victim not in stack.child_pids())

    done = list(range(first)) + ok_indices(run2.results, first)
    assert len(done) == REQUESTS, Counter(s for _, s, _ in run2.results)
    check_run_scrapes(run2, base=first)
    page = final_checks(stack, done)
    # The killed request's buffered update was never flushed: nothing of it shows.
    assert value(parse(page), "app_requests_total", route="hold") in (None, 0)
    print(f"kill -9 of pid {victim} after {killed['at_ok']} responses: exact = {len(done)} 200s")


def test_busy_child_killed_mid_run(stack_factory):
    """A child killed at a random point of the load (serving, or waiting for
    the next request): a request it held fails (502) and may or may not have
    flushed (the kill can fall between the request-end flush and the
    response); every other request is counted exactly."""
    stack = stack_factory(children=4)
    killed = {}

    def kill_busy_child(stack, counts):
        deadline = time.monotonic() + 60
        while counts["ok"] < REQUESTS // 3 and time.monotonic() < deadline:
            time.sleep(0.001)
        killed["pid"] = stack.child_pids()[0]
        killed["at_ok"] = counts["ok"]
        os.kill(killed["pid"], signal.SIGKILL)

    run = drive(stack, paths(0, REQUESTS), during=kill_busy_child)
    statuses = Counter(status for _, status, _ in run.results)
    failed = [i for i, status, _ in run.results if status != 200]
    assert len(failed) <= 1 and set(statuses) <= {200, 502}, statuses
    assert killed["at_ok"] < REQUESTS, killed
    wait_for("the killed child replaced", lambda: len(stack.child_pids()) == 4)
    done = ok_indices(run.results)
    page = stack.scrape()
    if failed and value(parse(page), "app_requests_total", route=request(failed[0])[0]) != \
            sum(1 for i in done if request(i)[0] == request(failed[0])[0]):
        done.append(failed[0])   # it flushed before it was killed
    check_run_scrapes(run)
    final_checks(stack, done)
    print(f"kill -9 of busy pid {killed['pid']} after {killed['at_ok']} responses: "
          f"{statuses}, counted {len(done)}")


def test_saturated_pool_still_scraped(stack_factory):
    stack = stack_factory(children=4)
    run = drive(stack, paths(0, 100))
    assert Counter(s for _, s, _ in run.results) == {200: 100}
    holds: dict = {}
    threads = [threading.Thread(target=lambda t=t: holds.update({t: http_get(stack.url(f"/?op=hold&s=8&tag=h{t}"), 30)}))
               for t in range(4)]
    for t in threads:
        t.start()
    wait_for("4 children busy", lambda: all((stack.state / f"hold-h{t}.pid").exists() for t in range(4)))
    busy = {int((stack.state / f"hold-h{t}.pid").read_text()) for t in range(4)}
    assert busy == set(stack.child_pids()), (busy, stack.child_pids())

    # The pool answers nothing now ...
    status, _ = asyncio.run(_timed_get(stack.port, "/?route=r0&v=0", 1.0))
    assert status == 0, "the pool was not saturated"
    # ... but /metrics does, from promshm serve, directly and through nginx.
    for url in (stack.metrics_url(), stack.url("/metrics")):
        t0 = time.monotonic()
        status, page = http_get(url, timeout=3)
        elapsed = time.monotonic() - t0
        assert status == 200 and elapsed < 2, (url, status, elapsed)
        check_exact(page, list(range(100)))
        promtool_check(page)
    for t in threads:
        t.join(40)
    assert all(holds[t][0] == 200 for t in range(4)), holds
    # Requests that end normally flush: the 4 holds now count (and the one
    # queued request that timed out on our side was still served by nginx).
    page = stack.scrape()
    assert value(parse(page), "app_requests_total", route="hold") == 4
    print("saturated pool (4 of 4 children sleeping): /metrics answered")


async def _timed_get(port: int, path: str, timeout: float):
    from php_stack import _get

    return await _get(port, path, timeout)


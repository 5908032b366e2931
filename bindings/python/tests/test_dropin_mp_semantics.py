"""promshm's own API (and the same through promshm.compat, as prometheus_client)
with prometheus_client's documented multi-process semantics, in real forked
processes: ``Counter.reset()`` resets for every process holding the counter,
gauge ``all`` keeps a dead process's value (labelled ``pid``) while
``liveall`` and the ``live*`` modes drop it. Each case runs in a fresh
interpreter on an area of its own (``PROMSHM_DIR``)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from conftest import child_env

PRELUDE = r'''
import json, os, signal, sys, time
signal.alarm(100)
if sys.argv[1] == "compat":
    import promshm.compat
    promshm.compat.install()
    from prometheus_client import REGISTRY, Counter, Gauge, generate_latest
else:
    from promshm import REGISTRY, Counter, Gauge, generate_latest
import promshm
from promshm.parser import text_string_to_metric_families


def scrape():
    """name{labels} -> value, from the text a scrape serves (and the
    ``_created`` samples, from ``REGISTRY.collect()``)."""
    out = {}
    for fam in text_string_to_metric_families(generate_latest(REGISTRY).decode()):
        for s in fam.samples:
            out[s.name + json.dumps(s.labels, sort_keys=True)] = s.value
    for fam in REGISTRY.collect():
        for s in fam.samples:
            if s.name.endswith("_created"):
                out[s.name + json.dumps(s.labels, sort_keys=True)] = s.value
    return out


def fork_children(n, body):
    """n children running body(i, read_fd, write_fd): (pid, write_fd, read_fd)
    of each, pipes both ways. A child gets only its own pipes, and ends
    within 60 s whatever happens."""
    kids = []
    for i in range(n):
        down_r, down_w = os.pipe()
        up_r, up_w = os.pipe()
        pid = os.fork()
        if pid == 0:
            try:
                signal.alarm(60)
                for _, w, r in kids:
                    os.close(w)
                    os.close(r)
                os.close(down_w)
                os.close(up_r)
                body(i, down_r, up_w)
            finally:
                os._exit(0)
        os.close(down_r)
        os.close(up_w)
        kids.append((pid, down_w, up_r))
    return kids


def say(fd, msg=b"."):
    os.write(fd, msg)


def hear(fd):
    assert os.read(fd, 1), "child or parent gone"
'''

COUNTER = PRELUDE + r'''
jobs = Counter("jobs", "Jobs.", ["kind"])
held = jobs.labels("a")          # held by every child, as a worker caches it
ticks = Counter("ticks", "Ticks.")


def child(i, rd, wr):
    for _ in range(1000):
        held.inc()
        ticks.inc()
    promshm.flush()
    say(wr)
    hear(rd)                     # the parent has reset both counters
    for _ in range(500):
        held.inc()
        ticks.inc(2)
    promshm.flush()
    say(wr)
    hear(rd)


kids = fork_children(4, child)
for _, to_kid, from_kid in kids:
    hear(from_kid)
out = {"before": scrape()}
time.sleep(0.01)
held.reset()
ticks.reset()
out["at_reset"] = scrape()
out["get_at_reset"] = [held.get(), ticks.get()]
for _, to_kid, from_kid in kids:
    say(to_kid)
for _, to_kid, from_kid in kids:
    hear(from_kid)
out["after"] = scrape()
out["get_after"] = [held.get(), ticks.get()]
for pid, to_kid, _ in kids:
    say(to_kid)
    assert os.waitpid(pid, 0)[1] == 0
print(json.dumps(out))
'''

MODES = ["all", "liveall", "sum", "livesum", "max", "livemax", "min", "livemin", "mostrecent", "livemostrecent"]

GAUGES = PRELUDE + r'''
MODES = %r
gauges = {m: Gauge("g_" + m + "_mode", "Gauge.", multiprocess_mode=m) for m in MODES}
labelled = Gauge("g_labelled", "Gauge.", ["q"], multiprocess_mode="all")


def child(i, rd, wr):
    hear(rd)                     # set in turn: child 4 sets last (most recent)
    for m, g in gauges.items():
        g.set(-(i + 1) if m.endswith("min") else i + 1)
    labelled.labels("x").set(10 * (i + 1))
    say(wr)
    hear(rd)                     # exit


kids = fork_children(4, child)
for _, to_kid, from_kid in kids:
    time.sleep(0.005)            # mostrecent compares millisecond stamps
    say(to_kid)
    hear(from_kid)
out = {"pids": [k[0] for k in kids], "parent": os.getpid(), "live": scrape()}
pid, to_kid, _ = kids[-1]        # the child with the largest and latest value exits
say(to_kid)
assert os.waitpid(pid, 0)[1] == 0
out["one_exited"] = scrape()
for pid, to_kid, _ in kids[:-1]:
    say(to_kid)
    assert os.waitpid(pid, 0)[1] == 0
out["all_exited"] = scrape()
print(json.dumps(out))
''' % (MODES,)


def _run(tmp_path, script, api):
    e = child_env(PROMSHM_DIR=str(tmp_path))
    e.pop("PROMSHM_PROMETHEUS_CLIENT", None)
    e.pop("PROMETHEUS_MULTIPROC_DIR", None)
    r = subprocess.run([sys.executable, "-c", script, api], env=e, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout.splitlines()[-1])


def _value(scrape, name, **labels):
    return scrape.get(name + json.dumps(labels, sort_keys=True))


def _series(scrape, name):
    """labels -> value of every sample called ``name``."""
    out = {}
    for k, v in scrape.items():
        n, _, labels = k.partition("{")
        if n == name:
            out[json.dumps(json.loads("{" + labels), sort_keys=True)] = v
    return out


@pytest.mark.parametrize("api", ["promshm", "compat"])
def test_counter_reset_is_seen_by_every_process_holding_it(tmp_path, api):
    out = _run(tmp_path, COUNTER, api)
    for name, labels, per_child in (("jobs_total", {"kind": "a"}, 500), ("ticks_total", {}, 1000)):
        assert _value(out["before"], name, **labels) == 4000
        assert _value(out["at_reset"], name, **labels) == 0, "0 for every process right after the reset"
        assert _value(out["after"], name, **labels) == 4 * per_child, "every child's held series counts on"
        created = name.replace("_total", "_created")
        assert _value(out["at_reset"], created, **labels) > _value(out["before"], created, **labels)
    assert out["get_at_reset"] == [0, 0]
    assert out["get_after"] == [2000, 4000]


@pytest.mark.parametrize("api", ["promshm", "compat"])
def test_gauge_all_keeps_dead_processes_and_live_modes_drop_them(tmp_path, api):
    out = _run(tmp_path, GAUGES, api)
    pids = [str(p) for p in out["pids"]]
    parent = str(out["parent"])

    def by_pid(values):
        expect = {json.dumps({"pid": p}): float(v) for p, v in values.items()}
        expect.setdefault(json.dumps({"pid": parent}), 0.0)  # made (at 0) by the parent, as prometheus_client does
        return expect

    live, one, gone = out["live"], out["one_exited"], out["all_exited"]
    every = dict(zip(pids, [1, 2, 3, 4]))
    assert _series(live, "g_all_mode") == by_pid(every)
    assert _series(one, "g_all_mode") == by_pid(every), "a dead process's last value stays, labelled by its pid"
    assert _series(gone, "g_all_mode") == by_pid(every)
    labelled = {json.dumps({"pid": p, "q": "x"}, sort_keys=True): 10.0 * v for p, v in every.items()}
    assert _series(gone, "g_labelled") == labelled
    assert sorted(_series(live, "g_liveall_mode").values()) == [1, 2, 3, 4]
    assert sorted(_series(one, "g_liveall_mode").values()) == [1, 2, 3], "liveall drops the dead worker"
    assert _series(gone, "g_liveall_mode") == {}
    expect_live = {"sum": 10, "livesum": 10, "max": 4, "livemax": 4, "min": -4, "livemin": -4, "mostrecent": 4, "livemostrecent": 4}
    expect_one = {"sum": 10, "livesum": 6, "max": 4, "livemax": 3, "min": -4, "livemin": -3, "mostrecent": 4, "livemostrecent": 3}
    for mode, v in expect_live.items():
        assert _value(live, "g_" + mode + "_mode") == v, mode
    for mode, v in expect_one.items():
        assert _value(one, "g_" + mode + "_mode") == v, f"{mode} after the child with the largest, smallest and latest value exited"
    for mode in ("sum", "max", "min", "mostrecent"):
        assert _value(gone, "g_" + mode + "_mode") == expect_one[mode], f"{mode} keeps dead processes' values"

"""``CollectorRegistry.unregister`` on a promshm metric frees its family in
the area, in every process (issue 16): a child process unregisters, the
parent's render no longer shows the family, and registering the name again
(with another type) works in both; a loop of register + unregister in a
small area never fills it."""

from __future__ import annotations

import multiprocessing

import promshm
from promshm import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

PAGES = 64  # 256 KiB


def samples(reg: CollectorRegistry, name: str) -> list:
    """The sample lines of ``name`` in a render of ``reg``."""
    promshm.flush()
    text = generate_latest(reg).decode()
    return [line for line in text.splitlines() if not line.startswith("#") and line.split("{")[0].split(" ")[0].startswith(name)]


def _child(reg: CollectorRegistry, counter: Counter, cycles: int) -> None:
    try:
        reg.unregister(counter)
        assert samples(reg, "job") == []
        counter.labels("a").inc(1000)  # a stale handle: updates nothing
        # Per-job families: register, update, unregister, in a small area.
        for i in range(cycles):
            m = (Gauge if i % 2 else Histogram)("churn", "Churned.", ["k"], registry=reg)
            m.labels(str(i)).observe(1.0) if i % 2 == 0 else m.labels(str(i)).set(i)
            reg.unregister(m)
        assert samples(reg, "churn") == []
        g = Gauge("job", "Now a gauge.", ["k"], registry=reg, multiprocess_mode="sum")
        g.labels("a").set(7)
        promshm.flush()
    except BaseException:
        import traceback

        traceback.print_exc()
        raise SystemExit(1)
    raise SystemExit(0)


def test_a_child_unregisters_and_the_parent_sees_it_gone(tmp_path):
    reg = CollectorRegistry(area=str(tmp_path / "area"), pages=PAGES)
    counter = Counter("job", "Per job.", ["k"], registry=reg)
    counter.labels("a").inc(3)
    assert samples(reg, "job_total") == ['job_total{k="a"} 3']
    ctx = multiprocessing.get_context("fork")
    p = ctx.Process(target=_child, args=(reg, counter, 3000))
    p.start()
    p.join(120)
    assert p.exitcode == 0
    # The child's unregister freed the family: the parent renders only the
    # child's gauge of the same name, and its stale counter updates nothing.
    counter.labels("a").inc(1000)
    assert samples(reg, "job") == ['job{k="a"} 7']
    # The parent unregisters it too (already gone in the area) and registers
    # the name again, as a counter with other labels.
    reg.unregister(counter)
    other = CollectorRegistry(area=str(tmp_path / "area"), pages=PAGES)
    gauge = Gauge("job", "Now a gauge.", ["k"], registry=other, multiprocess_mode="sum")
    other.unregister(gauge)
    assert samples(reg, "job") == []
    again = Counter("job", "Again.", ["j", "l"], registry=reg)
    again.labels("x", "y").inc()
    assert samples(reg, "job_total") == ['job_total{j="x",l="y"} 1']
    assert reg.area.stats()["refused"] == 0


def test_an_unregistered_metric_registered_again_is_a_fresh_family(tmp_path):
    reg = CollectorRegistry(area=str(tmp_path / "area"), pages=PAGES)
    c = Counter("jobs", "Jobs.", registry=reg)
    c.inc(2)
    assert samples(reg, "jobs_total") == ["jobs_total 2"]
    reg.unregister(c)
    assert samples(reg, "jobs") == []
    c.inc()  # updates nothing while unregistered
    reg.register(c)
    c.inc(5)
    assert samples(reg, "jobs_total") == ["jobs_total 5"]

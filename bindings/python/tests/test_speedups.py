"""The optional C fast path (``promshm._speedups``) and its ctypes fallback.

The same operations, run in a fresh interpreter with the extension and with
``PROMSHM_NO_SPEEDUPS=1``, give the same results and raise the same
exceptions; the extension uses the library the package loaded (one copy in
the process); forked and ``multiprocessing`` children count through it.

``PROMSHM_EXPECT_SPEEDUPS=1`` (set by ``scripts/test.sh``) makes a missing
extension a failure instead of the silent ctypes fallback."""

from __future__ import annotations

import json
import os
import subprocess
import textwrap
from pathlib import Path

import pytest
from conftest import child_env, python

import promshm
from promshm import _native

_OFF = os.environ.get("PROMSHM_NO_SPEEDUPS", "") not in ("", "0")


def _run(script: str, **env: str) -> str:
    proc = subprocess.run(
        python() + ["-c", textwrap.dedent(script)],
        env=child_env(**env),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, f"exit {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    return proc.stdout


def _extension_built() -> bool:
    if os.environ.get("PROMSHM_EXPECT_SPEEDUPS") == "1":
        return True
    return any(Path(promshm.__file__).resolve().parent.glob("_speedups*"))


def test_the_active_implementation_is_the_one_the_environment_asks_for():
    if _OFF:
        assert _native.IMPLEMENTATION == "ctypes"
        assert type(promshm.Counter.inc).__name__ == "function"
        assert type(promshm.Counter.labels).__name__ == "function"
        return
    if not _extension_built():
        pytest.skip("promshm._speedups is not built (no C compiler): ctypes only")
    assert _native.IMPLEMENTATION == "extension"
    for method in (
        promshm.Counter.inc,
        promshm.Gauge.inc,
        promshm.Gauge.dec,
        promshm.Gauge.set,
        promshm.Gauge.set_to_current_time,
        promshm.Histogram.observe,
        promshm.Summary.observe,
        promshm.Counter.labels,
    ):
        assert type(method).__name__ == "method_descriptor", method
    c = promshm.Counter("speedups_kind", "K.", ["a"], registry=None)
    assert type(c.labels("x")._h).__name__ == "Handle"


def test_each_mode_reports_its_implementation_in_a_fresh_interpreter():
    script = "from promshm import _native, Counter; print(_native.IMPLEMENTATION, type(Counter.inc).__name__)"
    assert _run(script, PROMSHM_NO_SPEEDUPS="1").split() == ["ctypes", "function"]
    if _extension_built():
        assert _run(script, PROMSHM_NO_SPEEDUPS="0").split() == ["extension", "method_descriptor"]


# Every call shape of the update methods and labels(), good and bad: the
# result (values read back, or the exception's type and text) of each.
_SAME_SEMANTICS = r"""
import json, math, enum
import promshm
from promshm import Counter, Gauge, Histogram, Summary
out = []
def rec(what, f):
    try:
        r = f()
        out.append([what, "ok", None if r is None else repr(r)])
    except BaseException as e:
        out.append([what, type(e).__module__ + "." + type(e).__qualname__, str(e)])
class Color(str, enum.Enum):
    RED = "red"
class F:
    def __float__(self):
        return 2.5
c = Counter("sem_c", "C.", registry=None)
cl = Counter("sem_cl", "C.", ["a", "b"], registry=None)
g = Gauge("sem_g", "G.", registry=None)
gl = Gauge("sem_gl", "G.", ["a"], registry=None)
h = Histogram("sem_h", "H.", buckets=(1, 2), registry=None)
hl = Histogram("sem_hl", "H.", ["a"], buckets=(1, 2), registry=None)
s = Summary("sem_s", "S.", registry=None)
for a in ("()", "(1)", "(2)", "(2.5)", "(True)", "(-1)", "(float('nan'))", "(float('inf'))", "('3')", "('x')",
          "(None)", "(10**400)", "(F())", "(amount=4)", "(1, {'e': 'x'})", "(1, exemplar={'e': 'x'})",
          "(1, exemplar={'bad-name': 'x'})", "(1, 2, 3)", "(nope=1)"):
    rec("c.inc" + a, lambda: eval("c.inc" + a))
    rec("cl.inc" + a, lambda: eval("cl.inc" + a))
    rec("g.inc" + a, lambda: eval("g.inc" + a))
    rec("g.dec" + a, lambda: eval("g.dec" + a))
    rec("g.set" + a, lambda: eval("g.set" + a))
    rec("gl.set" + a, lambda: eval("gl.set" + a))
    rec("h.observe" + a, lambda: eval("h.observe" + a))
    rec("hl.observe" + a, lambda: eval("hl.observe" + a))
    rec("s.observe" + a, lambda: eval("s.observe" + a))
rec("g.set_to_current_time()", lambda: g.set_to_current_time())
rec("g.set_to_current_time(1)", lambda: g.set_to_current_time(1))
rec("gl.set_to_current_time()", lambda: gl.set_to_current_time())
for args, kw in ((("x", "y"), {}), (("x", "y"), {}), ((1, 2), {}), (("1", "2"), {}), ((Color.RED, "y"), {}),
                 (("red", "y"), {}), (("x",), {}), (("x", "y", "z"), {}), ((), {}), ((), {"a": "x", "b": "y"}),
                 ((), {"b": "y", "a": "x"}), (({"a": "x"},), {}), (({"a": "x", "b": "y"},), {}), (("x\0", "y"), {}),
                 (("\udc80", "y"), {}), ((["x"], "y"), {}), (("x",), {"b": "y"}), (("x", None), {})):
    rec("cl.labels%r%r.inc()" % (args, kw), lambda: cl.labels(*args, **kw).inc())
    rec("gl.labels%r%r" % (args, kw), lambda: type(gl.labels(*args, **kw)).__name__)
rec("c.labels('x')", lambda: c.labels("x"))
rec("cl.labels('x', 'y').labels('z')", lambda: cl.labels("x", "y").labels("z"))
promshm.flush()
rec("c.get()", c.get)
rec("g.get()", g.get)
rec("h.get()", h.get)
rec("s.get()", s.get)
for k in (("x", "y"), ("1", "2"), ("red", "y")):
    rec("cl%r.get()" % (k,), lambda: cl.labels(*k).get())
rec("hl.labels('a').get()", lambda: hl.labels("a").get())
rec("gl.labels('a').get()", lambda: gl.labels("a").get())
print(json.dumps(out))
"""


def test_the_extension_and_ctypes_give_the_same_results_and_exceptions():
    if not _extension_built():
        pytest.skip("promshm._speedups is not built (no C compiler): ctypes only")
    with_ext = json.loads(_run(_SAME_SEMANTICS, PROMSHM_NO_SPEEDUPS="0"))
    without = json.loads(_run(_SAME_SEMANTICS, PROMSHM_NO_SPEEDUPS="1"))
    assert len(with_ext) == len(without) > 200
    # set_to_current_time stores the time: compare its outcome, not the value.
    mismatches = [(a, b) for a, b in zip(with_ext, without) if a != b and not a[0].startswith("g.get")]
    assert not mismatches, mismatches[:10]
    outcomes = {r[1] for r in with_ext}
    # The script does reach both the success and the error paths.
    assert "ok" in outcomes and len(outcomes) >= 4, outcomes
    by_call = {r[0]: r[2] for r in with_ext}
    # labels('x', 'y') twice, by keywords in both orders, and by a dict; 1, 2 is '1', '2'.
    assert by_call["cl('x', 'y').get()"] == "5.0", by_call
    assert by_call["cl('1', '2').get()"] == "2.0", by_call
    assert by_call["h.get()"] == repr((11, float("inf"))), by_call


def test_the_extension_calls_the_library_the_package_loaded():
    """One copy of libpromshm in the process: the extension links nothing
    but Python, and the process maps the library once."""
    if not _extension_built():
        pytest.skip("promshm._speedups is not built (no C compiler): ctypes only")
    out = _run(
        """
        import promshm, promshm._speedups as sp
        c = promshm.Counter("one_copy", "C.", registry=None)
        c.inc()
        maps = open("/proc/self/maps").read().splitlines()
        libs = {l.split()[-1] for l in maps if "libpromshm" in l}
        print(sp.__file__)
        print(len(libs), c.get())
        """,
        PROMSHM_NO_SPEEDUPS="0",
    )
    so, counts = out.strip().splitlines()
    assert counts == "1 1.0", out
    needed = subprocess.run(["readelf", "-d", so], capture_output=True, text=True, check=True).stdout
    assert "libpromshm" not in needed and "libpython" not in needed, needed


def test_forked_and_multiprocessing_children_count_through_the_extension():
    """After os.fork() and in multiprocessing children (re-bound to eager
    updates: new handles), updates through the C methods all arrive."""
    out = _run(
        """
        import os, multiprocessing as mp
        import promshm
        from promshm import _native
        c = promshm.Counter("fork_ext", "C.", ["w"])
        h = promshm.Histogram("fork_ext_h", "H.", buckets=(1,))
        c.labels("parent").inc(5)
        pids = []
        for i in range(3):
            pid = os.fork()
            if pid == 0:
                for _ in range(1000):
                    c.labels("forked").inc()
                    h.observe(0.5)
                promshm.flush()
                os._exit(0)
            pids.append(pid)
        for pid in pids:
            assert os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 0
        def work(n):
            child = c.labels("mp")
            for _ in range(n):
                child.inc()
            h.observe(1.5)
            return type(child._h).__name__
        with mp.get_context("fork").Pool(2) as pool:
            kinds = pool.map(work, [500] * 4)
        promshm.flush()
        print(_native.IMPLEMENTATION, sorted(set(kinds)), type(c.labels("parent")._h).__name__)
        print(c.labels("parent").get(), c.labels("forked").get(), c.labels("mp").get(), h.get())
        """
    )
    impl, values = out.strip().splitlines()
    assert values == "5.0 3000.0 2000.0 (3004, 1506.0)", out
    handle = "Handle" if not _OFF and _extension_built() else "c_void_p"
    assert impl == f"{'ctypes' if handle == 'c_void_p' else 'extension'} ['{handle}'] {handle}", out


def test_labels_returns_no_series_that_remove_or_clear_dropped(registry):
    """labels() hands out a cached series only while the family has it: after
    remove(), remove_by_labels() and clear(), the same values give a fresh
    series (the C method's cache, nested dicts of the values in the family's
    `_raw`, goes with the Python method's). Equal values that are other str
    objects find the cached series; another number of values still raises."""
    c = promshm.Counter("cache_c", "C.", ["a", "b"], registry=registry)

    def total(a: str, b: str):
        promshm.flush()
        return registry.get_sample_value("cache_c_total", {"a": a, "b": b})

    x, z = c.labels("x", "y"), c.labels("x", "z")
    assert c.labels("x", "y") is x and c.labels("".join(["x"]), "".join(["y"])) is x
    assert c.labels("x", "z") is z is not x
    for wrong in (("x",), ("x", "y", "z")):
        with pytest.raises(ValueError, match="label"):
            c.labels(*wrong)
    c.remove("x", "y")
    x.inc()  # a kept series still counts, but is no longer rendered
    assert total("x", "y") is None
    x2 = c.labels("x", "y")
    assert x2 is not x and c.labels("x", "y") is x2 and c.labels("x", "z") is z
    x2.inc(2)
    z.inc()
    assert (total("x", "y"), total("x", "z")) == (2, 1)
    c.remove_by_labels({"a": "x"})
    z2 = c.labels("x", "z")
    assert z2 is not z and c.labels("x", "z") is z2 and c.labels("x", "y") is not x2
    c.clear()
    z3 = c.labels("x", "z")
    assert z3 is not z2 and c.labels("x", "z") is z3
    z3.inc(5)
    assert (total("x", "y"), total("x", "z")) == (None, 5)

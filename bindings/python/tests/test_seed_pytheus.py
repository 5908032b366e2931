"""pytheus' README, top to bottom, on ``promshm.idioms.pytheus``.

Each snippet of pytheus' README (github.com/Llandy3d/pytheus, quoted here
verbatim, with the ``example.py`` it describes) runs with only its imports changed
from ``pytheus`` to ``promshm.idioms.pytheus`` (:func:`migrate`), and every
option and API the README names is checked to behave as it says. The
multi-process claim is checked with 4 forked workers selecting pytheus'
Redis backend by environment: exact totals on one page that promtool parses.

Where the README's code cannot run as written in pytheus either, the test
says so and runs the obvious fix: ``def collect():`` without ``self`` (pytheus
raises ``TypeError`` too), ``raise ValueError.`` (a syntax error), statements
that raise on purpose (run one by one, the exception expected), and the
undefined ``do_something`` (defined by the test).

Deliberate differences (see ``promshm/idioms/pytheus/__init__.py`` and
bindings/python/README.md), each asserted here: every backend is the shared
area (the printed backend class is the idiom's); a registry's page is its
namespace of the shared area; ``generate_metrics`` keeps pytheus' naming
(counters without ``_total``: promtool's lint flags exactly those, as it does
pytheus' output) while promshm's own renders add ``_total`` (promtool clean).
"""

from __future__ import annotations

import enum
import logging
import os
import re
import shutil
import subprocess
import sys
import textwrap
import threading
import time
import urllib.request
from typing import Any, Dict, Iterator, List, Optional, Tuple

import pytest

import promshm
from promshm.idioms import pytheus
from promshm.idioms.pytheus import exceptions as pexc
from promshm.idioms.pytheus.exposition import generate_metrics, make_wsgi_app
from promshm.idioms.pytheus.metrics import Counter, Gauge, Histogram, Summary
from promshm.idioms.pytheus.registry import REGISTRY, CollectorRegistry

from conftest import child_env, free_port, value

PYTHEUS_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


def migrate(src: str) -> str:
    """A pytheus snippet with its imports changed: the whole migration."""
    return textwrap.dedent(src).replace("from pytheus", "from promshm.idioms.pytheus")


def run_snippet(src: str, *, env: Optional[Dict[str, str]] = None, cwd: Optional[str] = None, timeout: float = 30) -> str:
    """Run ``src`` (already migrated) as a fresh application: its own process,
    so its own shared area and a fresh default registry. Returns stdout."""
    proc = subprocess.run(
        [sys.executable, "-c", src], env=child_env(**(env or {})), cwd=cwd, capture_output=True, text=True, timeout=timeout
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


_n = [0]


@pytest.fixture
def fresh_registry() -> Iterator[CollectorRegistry]:
    """pytheus' ``REGISTRY`` pointed at a registry of its own namespace of the
    shared area, so a snippet's metric names do not meet another test's."""
    _n[0] += 1
    reg = CollectorRegistry(prefix=f"seedpytheus{os.getpid()}_{_n[0]}")
    old = REGISTRY._registry
    REGISTRY.set_registry(reg)
    try:
        yield reg
    finally:
        REGISTRY.set_registry(old)


_SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$')
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)",?')


def parse_text(text: str) -> Dict[Any, float]:
    """The samples of a text-format page, by their names as written
    (prometheus_client's parser would add ``_total`` to a counter's)."""
    out: Dict[Any, float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = _SAMPLE.match(line)
        assert m, f"not a sample line: {line!r}"
        labels = frozenset(_LABEL.findall(m.group(2) or ""))
        key = (m.group(1), labels)
        assert key not in out, f"duplicate sample {key}"
        out[key] = float(m.group(3))
    return out


def page(registry: Any = REGISTRY) -> Dict[Any, float]:
    """The samples of ``generate_metrics(registry)``, prefix removed."""
    prefix = (registry.prefix + "_") if registry.prefix else ""
    out = {}
    for (name, labels), v in parse_text(generate_metrics(registry)).items():
        out[(name[len(prefix) :] if name.startswith(prefix) else name, labels)] = v
    return out


def run_chunks(chunks: List[Tuple[str, Optional[type]]], ns: Dict[str, Any]) -> None:
    """Run a snippet statement group by statement group; a group marked with
    an exception type must raise it (the README says it raises on purpose)."""
    for src, exc in chunks:
        code = compile(migrate(src), "<pytheus README>", "exec")
        if exc is None:
            exec(code, ns)
        else:
            with pytest.raises(exc):
                exec(code, ns)


# --------------------------------------------------------------------------
# "Partial labels support"

PARTIAL_LABELS = """
from pytheus.metrics import Counter

# without labels
my_metric = Counter('metric_name', 'desc')
my_metric.inc()  # example for counter

# with labels
my_metric = Counter('metric_name', 'desc', required_labels=['req1', 'req2'])

my_metric.labels({'req1': '1', 'req2': '2'}).inc()  # you can pass all the labels at once
partial_my_metric = my_metric.labels({'req1': '1'})  # a cacheable object with one of the required labels already set
observable_my_metric = partial_my_metric.labels({'req2': '2'})  # finish setting the remaining values before observing
observable_my_metric.inc()

"""


def test_readme_partial_labels_snippet_runs_as_written():
    # As in pytheus, the second Counter('metric_name') is a name the default
    # registry already has: a warning, the first one stays registered and the
    # second works on its own (its values are not on the page).
    out = run_snippet(
        migrate(PARTIAL_LABELS)
        + textwrap.dedent("""
            from promshm.idioms.pytheus.exposition import generate_metrics
            print(repr(observable_my_metric.get()))
            print(generate_metrics())
        """)
    )
    first, text = out.split("\n", 1)
    assert first == "2.0"
    s = parse_text(text)
    assert value(s, "metric_name") == 1
    assert not any(labels for (name, labels) in s if name == "metric_name")


def test_partial_labels_on_the_page(fresh_registry):
    m = Counter("metric_name", "desc", required_labels=["req1", "req2"])
    m.labels({"req1": "1", "req2": "2"}).inc()
    partial = m.labels({"req1": "1"})
    assert isinstance(partial, type(m._partial_cls(m, {})))
    observable = partial.labels({"req2": "2"})
    observable.inc()
    assert observable is m.labels({"req1": "1", "req2": "2"})  # cached
    with pytest.raises(pexc.UnobservableMetricException, match="metric_name"):
        partial.inc()
    with pytest.raises(pexc.UnobservableMetricException, match="metric_name"):
        m.inc()
    # issue 11: partial labels given as keywords, finished with keywords or a dict
    kw = m.labels(req1="k")
    kw.labels(req2="2").inc(3)
    kw.labels({"req2": "3"}).inc()
    assert m.labels() is m and partial.labels() is not None  # no labels: the same object
    assert m.labels(req1="c", req2="d") is m.labels(req1="c", req2="d") is m.labels({"req1": "c", "req2": "d"})

    class Kind(str, enum.Enum):  # equal to "c", but str() is "Kind.C": another series
        C = "c"

    m.labels(req1=Kind.C, req2="d").inc(2)
    assert m.labels(req1="c", req2="d").get() == 0 and m.labels({"req1": str(Kind.C), "req2": "d"}).get() == 2
    s = page(fresh_registry)
    assert value(s, "metric_name", req1="1", req2="2") == 2
    assert value(s, "metric_name", req1="k", req2="2") == 3
    assert value(s, "metric_name", req1="k", req2="3") == 1


# --------------------------------------------------------------------------
# "Default labels support"

DEFAULT_LABELS = """
from pytheus.metrics import Counter

# with default labels
my_metric = Counter('metric_name', 'desc', required_labels=['req1', 'req2'], default_labels={'req2': 'me_set!'})

my_metric.labels({'req1': '1'}).inc()  # as we have req2 as a default label we only need to set the remaining labels for observing
my_metric.labels({'req1': '1', 'req2': '2'})  # you can still override default labels!

"""


def test_readme_default_labels_snippet_runs_as_written():
    out = run_snippet(
        migrate(DEFAULT_LABELS) + "\nfrom promshm.idioms.pytheus.exposition import generate_metrics\nprint(generate_metrics())\n"
    )
    s = parse_text(out)
    assert value(s, "metric_name", req1="1", req2="me_set!") == 1
    assert value(s, "metric_name", req1="1", req2="2") == 0  # made by labels(), as pytheus does


def test_default_labels_can_be_overridden_on_a_complete_child(fresh_registry):
    m = Counter("metric_name", "desc", required_labels=["req1", "req2"], default_labels={"req2": "me_set!"})
    child = m.labels({"req1": "1"})  # complete: req2 has its default
    child.inc()
    child.labels({"req2": "2"}).inc(5)  # issue 11: override on the complete child
    child.labels(req2="3").inc(7)
    child.labels({"req1": "9"}).inc()  # any label of a child, as pytheus merges
    s = page(fresh_registry)
    assert value(s, "metric_name", req1="1", req2="me_set!") == 1
    assert value(s, "metric_name", req1="1", req2="2") == 5
    assert value(s, "metric_name", req1="1", req2="3") == 7
    assert value(s, "metric_name", req1="9", req2="me_set!") == 1
    every = Gauge("all_default", "desc", required_labels=["a"], default_labels={"a": "z"})
    every.set(4)  # every required label has a default: observable as it is
    assert value(page(fresh_registry), "all_default", a="z") == 4


# --------------------------------------------------------------------------
# "Exposing metrics" and the Flask quickstart ("Default version")

FLASK_APP = """
import time
from flask import Flask
from pytheus.metrics import Histogram
from pytheus.exposition import generate_metrics

app = Flask(__name__)

histogram = Histogram('page_visits_latency_seconds', 'used for testing')

# this is the endpoint that prometheus will use to scrape the metrics
@app.route('/metrics')
def metrics():
    return generate_metrics()

# track time with the context manager
@app.route('/')
def home():
    with histogram.time():
        return 'hello world!'

# you can also track time with the decorator shortcut
@app.route('/slow')
@histogram
def slow():
    time.sleep(3)
    return 'hello world! from slow!'

app.run(host='0.0.0.0', port=8080)
"""


def _get(url: str, timeout: float = 10) -> Tuple[str, str]:
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.read().decode(), r.headers.get("Content-Type", "")


def _wait_for(url: str, proc: subprocess.Popen, deadline: float) -> None:
    while True:
        try:
            _get(url, timeout=1)
            return
        except OSError:
            assert proc.poll() is None, proc.communicate()[1]
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.05)


#: The README's "Quickstart / Example": pytheus' example.py (the file the README
#: describes: two histograms, one labelled with a default label, the Redis backend).
EXAMPLE_PY = """
import time

from flask import Flask, Response

from pytheus.backends import load_backend
from pytheus.backends.redis import MultiProcessRedisBackend
from pytheus.exposition import PROMETHEUS_CONTENT_TYPE, generate_metrics
from pytheus.metrics import Histogram

load_backend(
    backend_class=MultiProcessRedisBackend,
    backend_config={"host": "127.0.0.1", "port": 6379},
)


app = Flask(__name__)


histogram = Histogram("page_visits_latency_seconds", "used for testing")
histogram_labeled = Histogram(
    "page_visits_latency_seconds_labeled",
    "used for testing",
    required_labels=["speed"],
    default_labels={"speed": "normal"},
)


@app.route("/metrics")
def metrics():
    data = generate_metrics()
    return Response(data, headers={"Content-Type": PROMETHEUS_CONTENT_TYPE})


# track time with the context manager
@app.route("/")
def home():
    with histogram.time():
        with histogram_labeled.time():
            return "hello world!"


# you can also track time with the decorator shortcut
@app.route("/slow")
@histogram
@histogram_labeled.labels({"speed": "slow"})
def slow():
    time.sleep(3)
    return "hello world! from slow!"


app.run(host="0.0.0.0", port=8080)
"""


def _serve(src: str) -> Tuple[subprocess.Popen, str]:
    """Start a Flask app of the README on a free port of 127.0.0.1 (the only
    change besides the import, in place of 0.0.0.0:8080)."""
    port = free_port()
    src = re.sub(r"app\.run\(host=.0\.0\.0\.0., port=8080\)", f"app.run(host='127.0.0.1', port={port})", migrate(src))
    assert f"port={port}" in src
    proc = subprocess.Popen([sys.executable, "-c", src], env=child_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return proc, f"http://127.0.0.1:{port}"


def _visit(base: str) -> threading.Thread:
    """Visit / twice and /slow once (3 s, in a thread left running)."""
    slow = threading.Thread(target=_get, args=(base + "/slow",))
    slow.start()
    assert _get(base + "/")[0] == "hello world!"
    assert _get(base + "/")[0] == "hello world!"
    return slow


def _scrape_until(base: str, name: str, want: float) -> Dict[Any, float]:
    deadline = time.monotonic() + 5
    while True:  # each request thread's updates are flushed when the thread ends
        s = parse_text(_get(base + "/metrics")[0])
        if value(s, name) == want or time.monotonic() > deadline:
            return s
        time.sleep(0.05)


def test_readme_flask_quickstart_and_example_serve_exact_counts():
    pytest.importorskip("flask")
    apps = [_serve(FLASK_APP), _serve(EXAMPLE_PY)]  # the README's "Default version", example.py
    try:
        for proc, base in apps:
            _wait_for(base + "/", proc, time.monotonic() + 15)  # the first visit of /
        slows = [_visit(base) for _proc, base in apps]  # both /slow requests sleep at once
        for t in slows:
            t.join(10)
        for _proc, base in apps:
            s = _scrape_until(base, "page_visits_latency_seconds_count", 4)
            assert value(s, "page_visits_latency_seconds_count") == 4
            assert value(s, "page_visits_latency_seconds_bucket", le="+Inf") == 4
            assert value(s, "page_visits_latency_seconds_bucket", le="2.5") == 3  # /slow only in the higher buckets
            assert value(s, "page_visits_latency_seconds_bucket", le="5") == 4  # pytheus writes int bounds as given
            assert value(s, "page_visits_latency_seconds_sum") >= 3
            les = sorted(float(dict(labels)["le"]) for (name, labels) in s if name == "page_visits_latency_seconds_bucket")
            assert les == [*PYTHEUS_BUCKETS, float("inf")]  # pytheus' default buckets
        _, example = apps[1]
        body, ctype = _get(example + "/metrics")
        assert ctype == "text/plain; version=0.0.4; charset=utf-8"
        s = parse_text(body)
        # the README's query: page_visits_latency_seconds_labeled_bucket{speed="slow"}
        assert value(s, "page_visits_latency_seconds_labeled_bucket", speed="slow", le="2.5") == 0
        assert value(s, "page_visits_latency_seconds_labeled_bucket", speed="slow", le="5") == 1
        assert value(s, "page_visits_latency_seconds_labeled_count", speed="normal") == 3
    finally:
        for proc, _base in apps:
            proc.terminate()
            proc.communicate(timeout=10)


def test_make_wsgi_app_serves_the_page_on_a_real_server(fresh_registry):
    from wsgiref.simple_server import WSGIRequestHandler, make_server

    class Quiet(WSGIRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

    Counter("served", "Served.").inc(3)
    server = make_server("127.0.0.1", 0, make_wsgi_app(), handler_class=Quiet)
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    try:
        body, ctype = _get(f"http://127.0.0.1:{server.server_port}/metrics")
        assert ctype == "text/plain; version=0.0.4; charset=utf-8"
        assert f"{fresh_registry.prefix}_served 3" in body
        assert _get(f"http://127.0.0.1:{server.server_port}/favicon.ico")[0] == ""
    finally:
        server.shutdown()
        server.server_close()
        t.join(5)


# --------------------------------------------------------------------------
# "Metric types": Counter

COUNTER = [
    (
        """
from pytheus.metrics import Counter

counter = Counter(name="my_counter", description="My description")

# increase by 1
counter.inc()

# increase by x
counter.inc(7)
""",
        None,
    ),
    (
        """
# it is possible to count exceptions
with counter.count_exceptions():
    raise ValueError  # increases counter by 1
""",
        ValueError,
    ),
    (
        # README: "raise ValueError. # increases counter by 1" (a syntax error)
        """
# you can specify which exceptions to watch for
with counter.count_exceptions((IndexError, ValueError)):
    raise ValueError  # increases counter by 1
""",
        ValueError,
    ),
    (
        """
# it is possible to use the counter as a decorator as a shortcut to count exceptions
@counter
def test():
    raise ValueError  # increases counter by 1 when called
""",
        None,
    ),
    ("test()", ValueError),
    (
        """
# specifying which exceptions to look for also works with the decorator
@counter(exceptions=(IndexError, ValueError))
def test():
    raise ValueError  # increases counter by 1 when called
""",
        None,
    ),
    ("test()", ValueError),
]


def test_readme_counter_snippet(fresh_registry):
    ns: Dict[str, Any] = {}
    run_chunks(COUNTER, ns)
    counter = ns["counter"]
    assert value(page(fresh_registry), "my_counter") == 1 + 7 + 4
    with pytest.raises(KeyError):  # only the exceptions asked for are counted
        with counter.count_exceptions((IndexError, ValueError)):
            raise KeyError
    assert counter.get() == 12


# --------------------------------------------------------------------------
# Gauge

GAUGE = """
from pytheus.metrics import Gauge

gauge = Gauge(name="my_gauge", description="My description")

# increase by 1
gauge.inc()

# increase by x
gauge.inc(7)

# decrease by 1
gauge.dec()

# set a specific value
gauge.set(7)

# set to current unix timestamp
gauge.set_to_current_time()

# it is possible to track progress so that when entered increases the value by 1, and when exited decreases it
with gauge.track_inprogress():
    do_something()

# you can also time a piece of code, will set the duration in seconds to value when exited
with gauge.time():
    do_something()

# tracking time can also be done as a decorator
@gauge
def do_something():
    ...

# tracking progress is also available via decorator with a flag
@gauge(track_inprogress=True)
def do_something():
    ...
"""


def test_readme_gauge_snippet(fresh_registry):
    seen: List[float] = []
    ns: Dict[str, Any] = {}

    def do_something() -> None:  # the README's placeholder for the user's code
        seen.append(ns["gauge"].get())
        time.sleep(0.02)

    ns["do_something"] = do_something
    before = time.time()
    exec(compile(migrate(GAUGE), "<pytheus README>", "exec"), ns)
    gauge = ns["gauge"]
    assert seen[0] >= before + 1  # inside track_inprogress: the timestamp + 1
    duration = gauge.get()
    assert 0.02 <= duration < 5  # time(): the block's duration
    ns["do_something"]()  # @gauge(track_inprogress=True): +1 while running, back after
    assert gauge.get() == duration
    for_value = Gauge("steps", "Steps.")
    for_value.inc()
    for_value.inc(7)
    for_value.dec()
    assert for_value.get() == 7
    for_value.set(2.5)

    @for_value(track_inprogress=True)
    def running() -> float:
        return for_value.get()

    assert running() == 3.5 and for_value.get() == 2.5  # +1 while the call runs

    @for_value
    def timed() -> None:
        time.sleep(0.01)

    timed()
    assert 0.01 <= for_value.get() < 5  # @gauge: the call's duration
    assert 0.01 <= value(page(fresh_registry), "steps") < 5


# --------------------------------------------------------------------------
# Histogram

HISTOGRAM = """
from pytheus.metrics import Histogram

histogram = Histogram(name="my_histogram", description="My description")
# by default it will have the following buckets: (.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10)
# note: the +Inf bucket will be added automatically, this is float('inf') in python

# create a histogram specifying buckets
histogram = Histogram(name="my_histogram", description="My description", buckets=(0.2, 1, 3))

# observe a value
histogram.observe(0.4)

# you can also time a piece of code, will set the duration in seconds to value when exited
with histogram.time():
    do_something()

# tracking time can also be done as a decorator
@histogram
def do_something():
    ...
"""


def test_readme_histogram_snippet(fresh_registry, caplog):
    ns: Dict[str, Any] = {"do_something": lambda: None}
    with caplog.at_level(logging.WARNING):
        exec(compile(migrate(HISTOGRAM), "<pytheus README>", "exec"), ns)
    ns["do_something"]()
    # As in pytheus, the second "my_histogram" is not registered (a warning;
    # the first one stays on the page) and works on its own.
    assert any("my_histogram" in r.getMessage() and "already registered" in r.getMessage() for r in caplog.records)
    h = ns["histogram"]
    assert h.buckets == (0.2, 1, 3, float("inf")) and h.get()[0] == 3
    s = page(fresh_registry)
    les = sorted(float(dict(labels)["le"]) for (name, labels) in s if name == "my_histogram_bucket")
    assert les == [*PYTHEUS_BUCKETS, float("inf")]  # the default, "+Inf" added
    written = [dict(labels)["le"] for (name, labels) in s if name == "my_histogram_bucket"]
    assert sorted(written, key=float) == [str(b) for b in PYTHEUS_BUCKETS] + ["+Inf"]  # as pytheus writes them: le="1", le="10"
    assert f'{fresh_registry.prefix}_my_histogram_bucket{{le="1.0"}} 0' in promshm.generate_latest(fresh_registry).decode()  # promshm's own
    assert Histogram.DEFAULT_BUCKETS == PYTHEUS_BUCKETS

    sized = Histogram(name="sized", description="D.", buckets=(0.2, 1, 3))
    sized.observe(0.4)
    with sized.time():
        pass
    labelled = Histogram("handled", "D.", required_labels=["handle"], buckets=(1,))
    labelled.labels(handle="1.0").observe(1)
    assert value(page(fresh_registry), "handled_bucket", handle="1.0", le="1") == 1  # only le is rewritten

    @sized
    def call() -> None:
        pass

    call()
    s = page(fresh_registry)
    assert value(s, "sized_bucket", le="0.2") == 2 and value(s, "sized_bucket", le="1") == 3
    assert value(s, "sized_bucket", le="+Inf") == 3 and value(s, "sized_count") == 3
    assert Histogram("inf_given", "D.", buckets=(1, float("inf"))).buckets == (1, float("inf"))
    assert Histogram("empty_given", "D.", buckets=()).buckets == (*PYTHEUS_BUCKETS, float("inf"))


def test_summary(fresh_registry):
    s = Summary("latency", "L.", required_labels=["route"])
    s.labels(route="/").observe(2)

    @s.labels({"route": "/x"})
    def call() -> None:
        pass

    call()
    p = page(fresh_registry)
    assert value(p, "latency_count", route="/") == 1 and value(p, "latency_sum", route="/") == 2
    assert value(p, "latency_count", route="/x") == 1


# --------------------------------------------------------------------------
# "Custom Collectors"

CUSTOM_COLLECTOR = """
from pytheus.metrics import Counter, CustomCollector
from pytheus.registry import REGISTRY

class MyCustomCollector(CustomCollector):
    def collect():
        counter = Counter('name', 'desc', registry=None)  # note that we are disabling automatic registering
        counter.inc()
        yield counter

REGISTRY.register(MyCustomCollector())
"""


def test_readme_custom_collector_snippet():
    # As written, collect() lacks self: registering calls it, a TypeError (in pytheus too).
    proc = subprocess.run([sys.executable, "-c", migrate(CUSTOM_COLLECTOR)], env=child_env(), capture_output=True, text=True, timeout=30)
    assert proc.returncode != 0 and "TypeError" in proc.stderr
    fixed = migrate(CUSTOM_COLLECTOR).replace("def collect():", "def collect(self):")
    out = run_snippet(
        fixed
        + textwrap.dedent("""
            from promshm.idioms.pytheus.exposition import generate_metrics
            from promshm.idioms.pytheus.metrics import Counter
            Counter('own', 'Own.').inc(2)
            print(generate_metrics())
            print(generate_metrics())
        """)
    )
    first, second = out.split("\n\n", 1)[0], out.split("\n\n", 1)[1]
    for text in (first, second):  # a fresh counter at each scrape: 1
        s = parse_text(text)
        assert value(s, "name") == 1 and value(s, "own") == 2


def test_custom_collector_yielding_a_taken_name_is_ignored(fresh_registry, caplog):
    Counter("name", "Taken.").inc(5)

    class MyCustomCollector(pytheus.CustomCollector):
        def collect(self):
            counter = Counter("name", "desc", registry=None)
            counter.inc()
            yield counter

    c = MyCustomCollector()
    assert c.name == "mycustomcollector"
    with caplog.at_level(logging.WARNING):
        REGISTRY.register(c)
    assert any("Ignoring custom collector" in r.getMessage() for r in caplog.records)
    assert value(page(fresh_registry), "name") == 5


# --------------------------------------------------------------------------
# "How to use different backends"

BACKEND_DEFAULT = """
from pytheus.metrics import Counter

counter = Counter(
    name="my_metric",
    description="My description",
    required_labels=["label_a", "label_b"],
)
print(counter._metric_value_backend.__class__)
# <class 'pytheus.backends.base.SingleProcessBackend'>
print(counter._metric_value_backend.config)
# {}
"""

BACKEND_EXPLICIT = """

from pytheus.metrics import Counter
from pytheus.backends import load_backend
from pytheus.backends.redis import MultiProcessRedisBackend

load_backend(
    backend_class=MultiProcessRedisBackend,
    backend_config={
      "host": "127.0.0.1",
      "port":  6379
    }
)
# Notice that if you simply call load_backend(), it would reload config from the environment.

# load_backend() is called automatically at package import, that's why we didn't need to call it
# directly in the previous example

counter = Counter(
    name="my_metric",
    description="My description",
    required_labels=["label_a", "label_b"],
)
print(counter._metric_value_backend.__class__)
# <class 'pytheus.backends.redis.MultiProcessRedisBackend'>
print(counter._metric_value_backend.config)
# {'host': '127.0.0.1', 'port': 6379}
"""

CONFIG_JSON = """{
  "host": "127.0.0.1",
  "port":  6379
}
"""

IDIOM = "promshm.idioms.pytheus"


def test_readme_backend_default(tmp_path):
    out = run_snippet(migrate(BACKEND_DEFAULT), cwd=str(tmp_path))
    assert out == f"<class '{IDIOM}.backends.base.SingleProcessBackend'>\n{{}}\n"


def test_readme_backend_from_the_environment(tmp_path):
    (tmp_path / "config.json").write_text(CONFIG_JSON)
    env = {"PYTHEUS_BACKEND_CLASS": "pytheus.backends.redis.MultiProcessRedisBackend", "PYTHEUS_BACKEND_CONFIG": "./config.json"}
    out = run_snippet(migrate(BACKEND_DEFAULT), env=env, cwd=str(tmp_path))
    assert out == f"<class '{IDIOM}.backends.redis.MultiProcessRedisBackend'>\n{{'host': '127.0.0.1', 'port': 6379}}\n"
    # The idiom's own path works too.
    env["PYTHEUS_BACKEND_CLASS"] = f"{IDIOM}.backends.redis.MultiProcessRedisBackend"
    assert run_snippet(migrate(BACKEND_DEFAULT), env=env, cwd=str(tmp_path)) == out


def test_readme_backend_given_in_python_takes_precedence(tmp_path):
    (tmp_path / "config.json").write_text('{"host": "elsewhere"}')
    env = {"PYTHEUS_BACKEND_CLASS": "pytheus.backends.base.SingleProcessBackend", "PYTHEUS_BACKEND_CONFIG": "./config.json"}
    src = migrate(BACKEND_EXPLICIT) + textwrap.dedent("""
        load_backend()  # reloads from the environment
        from promshm.idioms.pytheus.metrics import Counter
        c = Counter('after_reload', 'D.')
        print(c._metric_value_backend.__class__.__name__, c._metric_value_backend.config)
    """)
    out = run_snippet(src, env=env, cwd=str(tmp_path))
    assert out == (
        f"<class '{IDIOM}.backends.redis.MultiProcessRedisBackend'>\n{{'host': '127.0.0.1', 'port': 6379}}\n"
        "SingleProcessBackend {'host': 'elsewhere'}\n"
    )


def test_custom_backend_and_initialization_hook(fresh_registry):
    from promshm.idioms.pytheus.backends import Backend, get_backend_class, load_backend

    calls: List[Any] = []

    class MyBackend:
        def __init__(self, config, metric, histogram_bucket=None) -> None:
            self.config = config
            self.metric = metric

        @classmethod
        def _initialize(cls, config) -> None:
            calls.append(config)

        def inc(self, value: float) -> None: ...

        def dec(self, value: float) -> None: ...

        def set(self, value: float) -> None: ...

        def get(self) -> float:
            return 0.0

    assert issubclass(MyBackend, Backend)
    try:
        load_backend(backend_class=MyBackend, backend_config={"x": 1})
        assert calls == [{"x": 1}] and get_backend_class() is MyBackend
        c = Counter("custom_backend", "D.")
        assert isinstance(c._metric_value_backend, MyBackend) and c._metric_value_backend.metric is c
        c.inc(2)  # documented difference: the value is in promshm's area
        assert value(page(fresh_registry), "custom_backend") == 2
        with pytest.raises(pexc.InvalidBackendClassException):
            load_backend(backend_class=dict)  # type: ignore[arg-type]
    finally:
        load_backend(backend_config={})
    assert get_backend_class().__name__ == "SingleProcessBackend"
    g = Gauge("backend_forwards", "D.")
    g._metric_value_backend.inc(3)
    g._metric_value_backend.dec(1)
    assert g._metric_value_backend.get() == 2 == g.get()
    g._metric_value_backend.set(9)
    assert value(page(fresh_registry), "backend_forwards") == 9


def test_backend_selection_errors(tmp_path):
    src = "import promshm.idioms.pytheus"
    for cls in ("NoDots", "nowhere.at_all.Backend", "pytheus.backends.redis.Missing", "json.JSONDecoder"):
        proc = subprocess.run(
            [sys.executable, "-c", src], env=child_env(PYTHEUS_BACKEND_CLASS=cls), capture_output=True, text=True, timeout=30
        )
        assert proc.returncode != 0 and "InvalidBackendClassException" in proc.stderr, (cls, proc.stderr)
    (tmp_path / "bad.json").write_text("{not json")
    for path in (str(tmp_path / "missing.json"), str(tmp_path / "bad.json")):
        proc = subprocess.run(
            [sys.executable, "-c", src], env=child_env(PYTHEUS_BACKEND_CONFIG=path), capture_output=True, text=True, timeout=30
        )
        assert proc.returncode != 0 and "InvalidBackendConfigException" in proc.stderr, proc.stderr


# --------------------------------------------------------------------------
# Registries: "customizable registry support", "registry prefix support"


def test_registry_prefix_and_registry_none(fresh_registry):
    service_a = CollectorRegistry(prefix="service_a")
    h = Histogram("http_request_duration_seconds", "D.", registry=service_a)
    h.observe(0.3)
    detached = Counter("cache_hit_total", "description", registry=None)
    detached.inc()
    text = generate_metrics(service_a)
    assert "service_a_http_request_duration_seconds_count 1" in text
    assert "cache_hit" not in text and "cache_hit" not in generate_metrics()
    assert detached.get() == 1
    service_a.register(detached)  # a metric added to a registry by hand is on its page
    assert "cache_hit_total 1" in generate_metrics(service_a)  # its name ends in _total: kept
    service_a.unregister(detached)
    assert "cache_hit" not in generate_metrics(service_a)


def test_duplicate_names_keep_the_first_and_warn(fresh_registry, caplog):
    first = Counter("dup", "First.")
    with caplog.at_level(logging.WARNING):
        second = Counter("dup", "Second.", required_labels=["a"])
        REGISTRY.unregister(Counter("never_registered", "D.", registry=None))
    assert "collector with name 'dup' already registered" in caplog.text
    assert "no collector found" in caplog.text
    first.inc()
    second.labels(a="x").inc(4)
    s = page(fresh_registry)
    assert value(s, "dup") == 1 and not any(name == "dup" and labels for (name, labels) in s)


# --------------------------------------------------------------------------
# pytheus' error cases: its exceptions (or subclasses), messages naming the metric


def test_error_cases_raise_pytheus_exceptions(fresh_registry):
    m = Counter("errs", "D.", required_labels=["a", "b"])
    for call in (m.inc, m.labels({"a": "1"}).inc, lambda: m.count_exceptions()):
        with pytest.raises(pexc.UnobservableMetricException, match="errs") as e:
            call()
        assert isinstance(e.value, pexc.PytheusException) and isinstance(e.value, promshm.UnobservableMetricError)
    cases = [
        (lambda: m.labels({"zz": "1"}), pexc.LabelValidationException),
        (lambda: m.labels({"a": "1"}, b="2"), pexc.LabelValidationException),
        (lambda: Counter("errs_plain", "D.").labels({"a": "1"}), pexc.LabelValidationException),
        (lambda: Counter("errs_l", "D.", required_labels=["a"], labels={"a": "1"}), pexc.LabelValidationException),
        (lambda: Counter("errs_n", "D.", required_labels=["__a"]), pexc.LabelValidationException),
        (lambda: Counter("errs_n2", "D.", required_labels=["a-b"]), pexc.LabelValidationException),
        (lambda: Counter("errs_d", "D.", required_labels=["a"], default_labels={"b": "1"}), pexc.LabelValidationException),
        (lambda: Counter("errs_d2", "D.", default_labels={"b": "1"}), pexc.LabelValidationException),
        (lambda: Histogram("errs_le", "D.", required_labels=["le"]), pexc.LabelValidationException),
        (lambda: Summary("errs_q", "D.", required_labels=["quantile"]), pexc.LabelValidationException),
        (lambda: Histogram("errs_b", "D.", buckets=(3, 1)), pexc.BucketException),
        (lambda: Counter("errs_neg", "D.").inc(-1), ValueError),
        (lambda: Counter("1errs", "D."), ValueError),
    ]
    for call, exc in cases:
        with pytest.raises(exc) as e:
            call()
        assert "errs" in str(e.value), str(e.value)
        if exc is not ValueError:
            assert isinstance(e.value, pexc.PytheusException)


# --------------------------------------------------------------------------
# "multiple multiprocess support": 4 forked workers, one page

FORKED = r"""
import os, sys
from promshm.idioms.pytheus.metrics import Counter, Gauge, Histogram
from promshm.idioms.pytheus.registry import CollectorRegistry
from promshm.idioms.pytheus.exposition import generate_metrics
import promshm

requests = Counter('requests', 'Requests.', required_labels=['route', 'worker_kind'], default_labels={'worker_kind': 'web'})
errors = Counter('errors_total', 'Errors.')
busy = Gauge('busy', 'In progress.')
stamp = Gauge('stamp', 'Set by every worker.', multiprocess_mode='mostrecent')
latency = Histogram('latency_seconds', 'Latency.', required_labels=['route'])
print(type(requests._metric_value_backend).__name__, requests._metric_value_backend.config, flush=True)

@busy(track_inprogress=True)
def handle(route):
    requests.labels(route=route).inc()
    latency.labels({'route': route}).observe(0.07)

@errors
def fail():
    raise ValueError

early = CollectorRegistry(prefix='early')   # made before the fork, its metrics only in the workers
N = 250
pids = []
for w in range(4):
    pid = os.fork()
    if pid == 0:
        late = CollectorRegistry(prefix='late')   # made after the fork, in each worker
        jobs = Counter('jobs', 'Jobs.', required_labels=['kind'], registry=late)
        partial = requests.labels({'route': '/p'})
        Counter('child_made', 'Made in a worker.', registry=early).inc(3)
        for i in range(N):
            handle('/')
            partial.labels(worker_kind='batch').inc()
            jobs.labels(kind='a').inc(2)
            stamp.set(7)
            try:
                fail()
            except ValueError:
                pass
        sys.exit(0)
    pids.append(pid)
for pid in pids:
    assert os.waitpid(pid, 0)[1] == 0
print(generate_metrics(), end='')
print('----')
print(generate_metrics(CollectorRegistry(prefix='late')), end='')
print(generate_metrics(early), end='')
print('----')
print(promshm.generate_latest(promshm.CollectorRegistry(area=promshm.SHARED)).decode(), end='')
"""


def _promtool(text: str) -> Optional[subprocess.CompletedProcess]:
    promtool = shutil.which("promtool")
    if promtool is None:
        return None
    return subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=30)


def test_four_forked_workers_exact_totals_on_one_page(tmp_path):
    (tmp_path / "config.json").write_text(CONFIG_JSON)
    env = {"PYTHEUS_BACKEND_CLASS": "pytheus.backends.redis.MultiProcessRedisBackend", "PYTHEUS_BACKEND_CONFIG": "./config.json"}
    out = run_snippet(FORKED, env=env, cwd=str(tmp_path), timeout=60)
    backend, rest = out.split("\n", 1)
    assert backend == "MultiProcessRedisBackend {'host': '127.0.0.1', 'port': 6379}"
    pytheus_page, late_page, promshm_page = rest.split("----\n")
    n = 4 * 250
    s = parse_text(pytheus_page)
    assert value(s, "requests", route="/", worker_kind="web") == n
    assert value(s, "requests", route="/p", worker_kind="batch") == n
    assert value(s, "errors_total") == n  # made as errors_total: pytheus keeps the name
    assert value(s, "busy") == 0  # every call ended
    assert value(s, "stamp") == 7  # mostrecent: the value every worker set (a dead worker's kept)
    assert value(s, "latency_seconds_count", route="/") == n
    assert value(s, "latency_seconds_bucket", route="/", le="0.05") == 0
    assert value(s, "latency_seconds_bucket", route="/", le="0.1") == n
    assert value(s, "latency_seconds_sum", route="/") == pytest.approx(0.07 * n)
    assert "# TYPE requests counter" in pytheus_page and "requests_total" not in pytheus_page
    # the registry made after the fork: every worker's updates, rendered by the parent's own registry object
    late = parse_text(late_page)
    assert value(late, "late_jobs", kind="a") == 2 * n
    assert value(late, "early_child_made") == 4 * 3  # a registry made before the fork, metrics made after
    # promshm's own render of the area: Prometheus naming
    p = parse_text(promshm_page)
    assert value(p, "requests_total", route="/", worker_kind="web") == n
    assert value(p, "late_jobs_total", kind="a") == 2 * n
    checked = _promtool(pytheus_page)
    if checked is not None:
        # pytheus' naming: the page parses; the lint flags exactly the counters without _total
        findings = sorted(line for line in (checked.stdout + checked.stderr).splitlines() if line)
        assert checked.returncode in (0, 3), findings
        # (the page without a prefix is the whole area: the late registry's family too)
        assert findings == [f'{n} counter metrics should have "_total" suffix' for n in ("early_child_made", "late_jobs", "requests")], findings
        checked = _promtool(late_page)
        assert sorted(line for line in (checked.stdout + checked.stderr).splitlines() if line) == [
            f'{n} counter metrics should have "_total" suffix' for n in ("early_child_made", "late_jobs")
        ]
        clean = _promtool(promshm_page)
        assert clean.returncode == 0, clean.stdout + clean.stderr


def test_a_registry_of_the_applications_own_and_set_registry(fresh_registry):
    """pytheus' Registry protocol: a metric made with such a registry registers
    itself there (its values in a private area); ``REGISTRY.set_registry``
    sends the metrics made afterwards to another registry."""

    class MyRegistry:
        prefix = None

        def __init__(self) -> None:
            self.registered: List[Any] = []

        def register(self, collector: Any) -> None:
            self.registered.append(collector)

        def unregister(self, collector: Any) -> None:
            self.registered.remove(collector)

        def collect(self) -> Iterator[Any]:
            return iter(self.registered)

    mine = MyRegistry()
    c = Counter("in_my_registry", "D.", registry=mine)
    c.inc(2)
    assert mine.registered == [c] and c.get() == 2
    assert "in_my_registry" not in generate_metrics()
    other = CollectorRegistry(prefix=fresh_registry.prefix + "_other")
    REGISTRY.set_registry(other)
    assert REGISTRY.prefix == other.prefix
    Counter("moved", "D.").inc()
    assert value(page(other), "moved") == 1 and value(page(fresh_registry), "moved") is None

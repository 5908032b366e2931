"""instrumentor's design document (shared/seeds/instrumentor-pypi.json), top to bottom.

Every snippet runs as written with ``import instrumentor`` changed to
``from promshm.idioms import instrumentor``. The document's own slips are
fixed where Python would refuse them, each marked ``# doc:`` (a missing
comma, ``Counter(.....)``, the names ``http_request_total`` and
``termperature_celcius`` that the snippets never define, the label name
``my-label`` that Prometheus cannot parse). The items, in the document's
order (W: works as documented, D: documented deliberate difference):

 1 W namespaces: several applications in one store, each in its own
 2 W labels in any order update one series
 3 W the metric type is kept with the values (``# TYPE``, ``:t:``)
 4 W histogram/summary label names (le, quantile) refused on every type
 5 W the description is kept once (``# HELP``, ``:d:``)
 6 W the key format ``{metric_name}:{extension}:{labels}`` (InstrumentorClient.get_data)
 7 W counter example keys          8 W gauge example keys
 9 W histogram: predefined buckets, cumulative, sum, count
10 W extension letters d/s/c/t/b, type letters c/g/h/s
11 D summary with a max value: quantiles need no max; values above it counted
12 W eager=True sends every update at once; eager=False at transfer()/store()
13 W batching: one transfer() pushes every pending update
14 D CollectorRegistry(redis_host=, redis_port=, redis_db=, namespace=, eager=): Redis options mapped onto the shared area
15 W register / unregister (the metric leaves the page)
16 W Counter(name=, description=, allowed_labels=), inc(), inc(3), inc(labels=)
17 D Gauge(start_value=), inc/dec/set: the sum of each process's share
18 W Histogram(buckets={...}) (a set)
19 W LinearHistogram(start, width, count)   20 W ExponentialHistogram(start, factor, count)
21 W Summary(quantile={...}).observe
22 W CollectionRegistry(redis_client=r, namespace=) in mymetrics.py, used from another module
23 W @metric.count (counters and gauges)
24 W count(metric=, labels=)
25 W @metric.time (no parentheses)
26 W @timer(metric=)
27 D with timer(metric=, milliseconds=True, labels={"my-label": ...}): label names must be valid
28 W Django: a middleware calling transfer() at response
29 W Flask: transfer() in after_request
30 W Celery: a decorator wrapping the task decorator calls transfer()
31 W the exposition client knows only its namespace, reads in another process
32 W a separate exposition app exposes several namespaces
33 W other languages read the same store (the area, read through the C API)
34 D Redis is the store: promshm's area is (names carry the namespace; counters end in _total)

Plus the point of the library: 4 forked workers, exact totals on one page
that promtool accepts.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import types

import pytest

import promshm
from promshm.idioms import instrumentor

from conftest import child_env, parse_text, value


def _registry(namespace: str, eager: bool = False, **kw) -> instrumentor.CollectorRegistry:
    """A registry on an area of its own (tests stay independent)."""
    return instrumentor.CollectorRegistry(namespace=namespace, eager=eager, area=kw.pop("area", promshm.Area.anonymous()), **kw)


def _page(reg: instrumentor.CollectorRegistry) -> dict:
    return parse_text(reg.render().decode())


def promtool_check(text: str) -> None:
    tool = shutil.which("promtool")
    assert tool, "promtool not found (scripts/setup.sh installs it)"
    r = subprocess.run([tool, "check", "metrics"], input=text.encode(), capture_output=True, timeout=30)
    assert r.returncode == 0, f"promtool check metrics failed:\n{r.stdout.decode()}{r.stderr.decode()}\n{text}"


# --------------------------------------------------------------------------
# Design


def test_1_namespaces_share_one_store():
    area = promshm.Area.anonymous()
    app1, app2 = _registry("app1", area=area), _registry("app2", area=area)
    for reg, n in ((app1, 1), (app2, 2)):
        c = instrumentor.Counter(name="jobs_total", description="Jobs.")
        reg.register(c)
        c.inc(n)
    app1.transfer()
    assert value(_page(app1), "app1_jobs_total") == 1 and "app2" not in app1.render().decode()
    assert value(_page(app2), "app2_jobs_total") == 2
    whole = parse_text(area.render().decode())
    assert value(whole, "app1_jobs_total") == 1 and value(whole, "app2_jobs_total") == 2


def test_2_label_order_does_not_matter():
    reg = _registry("order")
    c = instrumentor.Counter(name="colors_total", description="C.", allowed_labels={"green", "red", "yellow"})
    reg.register(c)
    c.inc(labels={"green": "1", "red": "2", "yellow": "3"})
    c.inc(labels={"yellow": "3", "red": "2", "green": "1"})
    reg.transfer()
    assert value(_page(reg), "order_colors_total", green="1", red="2", yellow="3") == 2


def test_3_5_type_and_description_kept_once():
    reg = _registry("meta")
    c = instrumentor.Counter(name="api_http_requests_total", description="Total HTTP Requets to API")
    reg.register(c)
    for _ in range(3):
        c.inc()
    reg.transfer()
    text = reg.render().decode()
    assert text.count("# HELP meta_api_http_requests_total Total HTTP Requets to API\n") == 1
    assert text.count("# TYPE meta_api_http_requests_total counter\n") == 1


@pytest.mark.parametrize("cls", [instrumentor.Counter, instrumentor.Gauge])
@pytest.mark.parametrize("label", ["le", "quantile"])
def test_4_histogram_and_summary_labels_are_protected(cls, label):
    with pytest.raises(ValueError, match=f"{label} is reserved.*bad_one"):
        cls(name="bad_one", description="B.", allowed_labels={label})
    ok = cls(name="bad_two", description="B.", allowed_labels={"code"})
    reg = _registry("reserved")
    reg.register(ok)
    with pytest.raises(ValueError, match=f"{label} is reserved.*bad_two"):
        ok.inc(labels={label: "1"})


def test_6_to_10_the_key_format_of_the_store(tmp_path):
    area = promshm.Area(tmp_path / "keys.area")
    reg = _registry("keys", area=area)
    api = instrumentor.Counter(name="api_http_requests_total", description="Total HTTP Requets to API",
                               allowed_labels={"method", "handler"})
    temp = instrumentor.Gauge(name="temperature_celcius", description="Temperature", allowed_labels={"location", "sensor"})
    dur = instrumentor.Histogram(name="http_request_duration_seconds", description="Duration of HTTP requests",
                                 buckets={0.05, 0.1, 0.2, 0.5, 1})
    rpc = instrumentor.Summary(name="rpc_duration_seconds", description="Duration of RPC", quantile={0.5, 0.9})
    for m in (api, temp, dur, rpc):
        reg.register(m)
    api.inc(32 - 12)
    api.inc(12, labels={"method": "POST", "handler": "/messages"})
    temp.set(32)
    temp.set(12, labels={"location": "MainOffice", "sensor": "34"})
    for v in (0.01, 0.07, 0.15, 0.3, 0.7, 3):
        dur.observe(v)
    for v in (1, 2, 3, 4):
        rpc.observe(v)
    reg.transfer()
    data = instrumentor.InstrumentorClient(namespace="keys", area=str(tmp_path / "keys.area")).get_data()
    # 7: counter
    assert data["api_http_requests_total::"] == 20
    assert data['api_http_requests_total::handler="/messages",method="POST"'] == 12
    assert data["api_http_requests_total:d:"] == "Total HTTP Requets to API"
    assert data["api_http_requests_total:t:"] == "c"
    # 8: gauge
    assert data["temperature_celcius::"] == 32
    assert data['temperature_celcius::location="MainOffice",sensor="34"'] == 12
    assert data["temperature_celcius:t:"] == "g"
    # 9: histogram, cumulative buckets
    h = "http_request_duration_seconds"
    assert [data[f'{h}:b:le="{b}"'] for b in ("0.05", "0.1", "0.2", "0.5", "1.0", "+Inf")] == [1, 2, 3, 4, 5, 6]
    assert data[f"{h}:c:"] == 6 and data[f"{h}:s:"] == pytest.approx(4.23)
    assert data[f"{h}:d:"] == "Duration of HTTP requests" and data[f"{h}:t:"] == "h"
    # 11 (keys): summary
    assert data['rpc_duration_seconds::quantile="0.5"'] == pytest.approx(2, rel=0.02)
    assert data["rpc_duration_seconds:c:"] == 4 and data["rpc_duration_seconds:s:"] == 10
    assert data["rpc_duration_seconds:t:"] == "s"
    # 10: every extension is one letter, every type one letter
    assert {k.split(":")[1] for k in data} == {"", "b", "c", "s", "d", "t"}
    assert {v for k, v in data.items() if k.endswith(":t:")} == {"c", "g", "h", "s"}


def test_11_summary_with_a_max_value():
    reg = _registry("sm")
    s = instrumentor.Summary(name="rpc_duration_seconds", description="Duration of RPC", quantile={0.5, 0.99}, max_value=10)
    reg.register(s)
    for v in [1] * 98 + [50, 70]:
        s.observe(v)
    page = _page(reg)
    assert value(page, "sm_rpc_duration_seconds_over_max_total") == 2  # the document's extra counter
    assert value(page, "sm_rpc_duration_seconds_count") == 100
    # Difference: no clamping at the max value; quantiles hold for any value.
    assert value(page, "sm_rpc_duration_seconds", quantile="0.5") == pytest.approx(1, rel=0.01)
    assert value(page, "sm_rpc_duration_seconds", quantile="0.99") == pytest.approx(50, rel=0.01)


def _forked(fn) -> int:
    """Run fn() in a forked child that stops its flusher first (so nothing
    but fn publishes); returns its pid."""
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            promshm.stop_flusher()
            fn()
            code = 0
        finally:
            os._exit(code)
    return pid


def _wait(pid: int, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            assert os.waitstatus_to_exitcode(status) == 0
            return
        time.sleep(0.01)
    os.kill(pid, 9)
    os.waitpid(pid, 0)
    raise AssertionError(f"child {pid} did not finish within {timeout}s")


@pytest.mark.parametrize("eager", [False, True])
def test_12_13_eager_sends_at_once_else_at_transfer(tmp_path, eager):
    path = tmp_path / f"eager-{eager}.area"
    reg = _registry("eg", eager=eager, area=promshm.Area(path))
    c = instrumentor.Counter(name="events_total", description="E.")
    h = instrumentor.Histogram(name="sizes", description="S.", buckets={1, 10})
    reg.register(c)
    reg.register(h)
    r, w = os.pipe()
    go_r, go_w = os.pipe()

    def child():
        for _ in range(100):  # 100 updates of each
            c.inc()
            h.observe(5)
        os.write(w, b"1")
        os.read(go_r, 1)
        (reg.transfer if eager else reg.store)()  # the document's names
        os.write(w, b"2")
        os.read(go_r, 1)

    pid = _forked(child)
    reader = instrumentor.InstrumentorClient(namespace="eg", area=str(path))
    try:
        assert os.read(r, 1) == b"1"
        before = parse_text(reader.render().decode())
        os.write(go_w, b"g")
        assert os.read(r, 1) == b"2"
        after = parse_text(reader.render().decode())
        os.write(go_w, b"g")
    finally:
        _wait(pid)
    if eager:
        assert value(before, "eg_events_total") == 100 and value(before, "eg_sizes_count") == 100
    else:  # batched in the child until store()/transfer()
        assert value(before, "eg_events_total") in (None, 0) and value(before, "eg_sizes_count") in (None, 0)
    assert value(after, "eg_events_total") == 100 and value(after, "eg_sizes_bucket", le="10.0") == 100


def test_14_registry_snippet_with_redis_options():
    snippet = '''
reg = CollectorRegistry(redis_host='localhost',
 redis_port='6372',
 redis_db=0,
 namespace='myapp', # doc: the comma is missing
 eager=False)


http_requests_total = Counter(name='http_requests_total', description='Total amount of http requests') # doc: Counter(.....)

reg.register(http_requests_total)
reg.unregister(http_requests_total) # incase it is needed...
'''
    ns = {}
    exec("from promshm.idioms.instrumentor import CollectorRegistry, Counter\n" + snippet, ns)
    reg = ns["reg"]
    assert reg.namespace == "myapp" and reg.eager is False
    assert reg.redis_options == {"redis_host": "localhost", "redis_port": "6372", "redis_db": 0}
    assert reg.registry.area is promshm.shared_area()  # the store: the application's shared area
    with pytest.raises(TypeError, match="namespace"):
        instrumentor.CollectorRegistry(redis_host="localhost")
    with pytest.raises(ValueError, match="my-app"):
        instrumentor.CollectorRegistry(namespace="my-app")
    with pytest.raises(TypeError, match="hostname"):
        instrumentor.CollectorRegistry(namespace="x", hostname="localhost")


def test_15_register_keeps_the_namespace_and_unregister_removes_the_metric():
    reg = _registry("reg15")
    c = instrumentor.Counter(name="http_requests_total", description="R.")
    with pytest.raises(RuntimeError, match="http_requests_total is not yet registered"):
        c.inc()
    reg.register(c)
    c.inc(2)
    assert value(_page(reg), "reg15_http_requests_total") == 2
    assert reg.metrics == {"http_requests_total": c}
    reg.unregister(c)
    assert "http_requests_total" not in reg.render().decode()  # off the page, not left at 0
    assert reg.metrics == {}
    with pytest.raises(RuntimeError, match="http_requests_total"):
        c.inc()
    reg.register(c)  # registered again: counts again
    c.inc()
    assert value(_page(reg), "reg15_http_requests_total") == 1
    with pytest.raises(KeyError, match="other_total"):
        reg.unregister(instrumentor.Counter(name="other_total", description="O."))


# --------------------------------------------------------------------------
# High level API: the metrics snippets


def test_16_counter_snippet():
    reg = _registry("c16", eager=True)
    snippet = '''
http_requests_total = Counter(name='http_requests_total',
 description='Total amount of http requests',
 allowed_labels={'code', 'method', 'path'})
reg.register(http_requests_total)

http_requests_total.inc() # increment counter by 1
http_requests_total.inc(3) # increment counter by 3  (doc: http_request_total)

http_requests_total.inc(labels={"code": "200"})
'''
    ns = {"reg": reg}
    exec("from promshm.idioms.instrumentor import Counter\n" + snippet, ns)
    page = _page(reg)
    assert value(page, "c16_http_requests_total", code="", method="", path="") == 4
    assert value(page, "c16_http_requests_total", code="200", method="", path="") == 1
    c = ns["http_requests_total"]
    with pytest.raises(ValueError, match="decrease.*http_requests_total"):
        c.inc(-1)
    with pytest.raises(ValueError, match="user is not an allowed label in metric http_requests_total"):
        c.inc(labels={"user": "x"})


def test_17_gauge_snippet_and_start_value():
    reg = _registry("g17")
    snippet = '''
temperature_celcius = Gauge(name='temperature_celcius',
 description='Temperature in celcius',
 allowed_labels={'location', 'sensor'},
 start_value=2)
reg.register(temperature_celcius)

temperature_celcius.inc()
temperature_celcius.inc(3)
temperature_celcius.dec()
temperature_celcius.dec(3)
'''
    ns = {"reg": reg}
    exec("from promshm.idioms.instrumentor import Gauge\n" + snippet, ns)
    g = ns["temperature_celcius"]
    assert value(_page(reg), "g17_temperature_celcius", location="", sensor="") == 2  # start_value, +4, -4
    g.set(5)  # doc: termperature_celcius.set(5)
    assert value(_page(reg), "g17_temperature_celcius", location="", sensor="") == 5
    with pytest.raises(ValueError, match="temperature_celcius"):
        g.inc(-1)

    # Difference: the value is the sum of each process's share; set() makes
    # the total the value, inc()/dec() of other processes add to it.
    pid = _forked(lambda: (g.inc(10), g.dec(3)))
    _wait(pid)
    assert g.get() == 12
    g.set(1)
    assert value(_page(reg), "g17_temperature_celcius", location="", sensor="") == 1
    # A second registration of a gauge the area has does not add start_value again.
    again = instrumentor.Gauge(name="temperature_celcius", description="T.", allowed_labels={"location", "sensor"}, start_value=2)
    other = instrumentor.CollectorRegistry(namespace="g17", area=reg.registry.area)
    other.register(again)
    assert again.get() == 1


def test_18_to_21_histograms_and_summary_snippets():
    reg = _registry("h18", eager=True)
    snippet = '''
response_time_seconds = Histogram(name='response_time_seconds',
 description='Response time in seconds',
 allowed_labels={'path', 'method'},
 buckets={0.05, 0.2, 0.3, 0.7, 0.9, 2})
reg.register(response_time_seconds)
response_time_seconds.observe(34)

response_time_seconds = LinearHistogram(name='linear_response_time_seconds',
 description='Response time in seconds',
 allowed_labels={'path', 'method'},
 start=0.5, width=20, count=10)
reg.register(response_time_seconds)
response_time_seconds.observe(34)

response_time_seconds = ExponentialHistogram(name='exponential_response_time_seconds',
 description='Response time in seconds',
 allowed_labels={'path', 'method'},
 start=0.5, factor=2, count=10)
reg.register(response_time_seconds)
response_time_seconds.observe(34)

response_time_seconds = Summary(name='summary_response_time_seconds',
 description='Response time in seconds',
 allowed_labels={'path', 'method'},
 quantile={0.05, 0.2, 0.3, 0.7, 0.9})
reg.register(response_time_seconds)
response_time_seconds.observe(34)
'''
    # doc: the four snippets reuse one name; each gets its own here (one page holds them all).
    exec("from promshm.idioms.instrumentor import Histogram, LinearHistogram, ExponentialHistogram, Summary\n" + snippet, {"reg": reg})
    page = _page(reg)
    e = dict(path="", method="")
    assert [value(page, "h18_response_time_seconds_bucket", le=b, **e) for b in ("0.05", "0.2", "0.3", "0.7", "0.9", "2.0", "+Inf")] == [0] * 6 + [1]
    assert value(page, "h18_linear_response_time_seconds_bucket", le="40.5", **e) == 1  # 0.5, 20.5, 40.5, ...
    assert value(page, "h18_linear_response_time_seconds_bucket", le="20.5", **e) == 0
    assert value(page, "h18_linear_response_time_seconds_bucket", le="180.5", **e) == 1
    assert value(page, "h18_exponential_response_time_seconds_bucket", le="32.0", **e) == 0  # 0.5, 1, ..., 256
    assert value(page, "h18_exponential_response_time_seconds_bucket", le="64.0", **e) == 1
    assert value(page, "h18_exponential_response_time_seconds_bucket", le="256.0", **e) == 1
    assert value(page, "h18_summary_response_time_seconds", quantile="0.05", **e) == pytest.approx(34, rel=0.01)
    assert value(page, "h18_summary_response_time_seconds_count", **e) == 1
    with pytest.raises(ValueError, match="Histogram no_buckets needs its buckets"):
        instrumentor.Histogram(name="no_buckets", description="N.")


# --------------------------------------------------------------------------
# Instrumenting


@pytest.fixture
def mymetrics(monkeypatch):
    """The document's ``mymetrics.py`` as a module (and a stand-in ``redis``
    module: the client is accepted, never contacted)."""
    fake_redis = types.ModuleType("redis")
    fake_redis.Redis = lambda *a, **k: object()
    monkeypatch.setitem(sys.modules, "redis", fake_redis)
    mod = types.ModuleType("mymetrics")
    src = '''
# In a collection module, ex mymetrics.py
import redis
from promshm.idioms import instrumentor

r = redis.Redis()
reg = instrumentor.CollectionRegistry(redis_client=r, namespace='myapp')

http_requests_total = instrumentor.Counter(name='http_request_total', description='Total amount of http requests')

reg.register(http_requests_total)
http_request_total = http_requests_total  # doc: the snippets below use both names
my_func_runtime_seconds = instrumentor.Histogram(name='my_func_runtime_seconds', description='Runtime.',
                                                 buckets={0.01, 0.1, 1, 10, 1000}, allowed_labels={'my_label'})
reg.register(my_func_runtime_seconds)
'''
    exec(src, mod.__dict__)
    monkeypatch.setitem(sys.modules, "mymetrics", mod)
    yield mod
    for m in list(mod.reg.metrics.values()):
        mod.reg.unregister(m)


def _shared(name: str, **labels: str):
    promshm.flush()
    return promshm.REGISTRY.get_sample_value(name, labels or None)


def test_22_collection_module_and_another_module(mymetrics):
    assert mymetrics.reg.redis_options["redis_client"] is mymetrics.r
    ns = {}
    exec("from mymetrics import http_requests_total\n\nhttp_requests_total.inc()\n", ns)
    assert _shared("myapp_http_request_total") == 1


def test_23_24_count_decorators(mymetrics):
    ns = {}
    exec('''
from mymetrics import http_request_total

@http_request_total.count
def my_func():
 pass
''', ns)
    ns["my_func"]()
    ns["my_func"]()
    assert _shared("myapp_http_request_total") == 2
    coded = instrumentor.Counter(name="coded_total", description="C.", allowed_labels={"code"})
    mymetrics.reg.register(coded)
    mymetrics.http_requests_total = coded
    exec('''
from promshm.idioms.instrumentor import count
from mymetrics import http_requests_total

@count(metric=http_requests_total, labels={"code": "200"})
def my_func():
 pass
''', ns)
    ns["my_func"]()
    assert _shared("myapp_coded_total", code="200") == 1
    g = instrumentor.Gauge(name="calls", description="Calls.")  # "available for counters and gauges"
    mymetrics.reg.register(g)

    @g.count
    def f():
        pass

    f()
    assert g.get() == 1
    with pytest.raises(ValueError, match="my_func_runtime_seconds"):
        instrumentor.count(metric=mymetrics.my_func_runtime_seconds)


def test_25_26_27_timing(mymetrics):
    ns = {}
    exec('''
from promshm.idioms import instrumentor
from mymetrics import my_func_runtime_seconds
import time
@my_func_runtime_seconds.time
def myfund():
 time.sleep(0.05)  # doc: 1


# or

@instrumentor.timer(metric=my_func_runtime_seconds)
def myfunc():
 pass


with instrumentor.timer(
 metric=my_func_runtime_seconds,
 milliseconds=True,
 labels={"my_label": "test"}):  # doc: "my-label"

 time.sleep(0.05)  # doc: 1
''', ns)
    ns["myfund"]()
    ns["myfunc"]()
    e = {"my_label": ""}
    assert _shared("myapp_my_func_runtime_seconds_count", **e) == 2
    assert 0.05 <= _shared("myapp_my_func_runtime_seconds_sum", **e) < 1
    ms = _shared("myapp_my_func_runtime_seconds_sum", my_label="test")
    assert 50 <= ms < 1000  # milliseconds
    # Difference: "my-label" is no Prometheus label name: refused, naming the metric.
    bad = instrumentor.Histogram(name="dashed", description="D.", buckets={1}, allowed_labels={"my-label"})
    with pytest.raises(ValueError, match="dashed.*my-label"):
        mymetrics.reg.register(bad)
    with pytest.raises(ValueError, match="http_request_total"):
        instrumentor.timer(metric=mymetrics.http_requests_total)


def test_28_29_30_transfer_at_request_and_task_end(tmp_path):
    import flask
    from celery import Celery

    path = tmp_path / "web.area"
    reg = _registry("web", area=promshm.Area(path))
    hits = instrumentor.Counter(name="hits_total", description="Hits.", allowed_labels={"via"})
    reg.register(hits)
    reader = instrumentor.InstrumentorClient(namespace="web", area=str(path))
    promshm.stop_flusher()  # only transfer() publishes in this test
    try:
        # 28: a Django-style middleware: transfer() when the response returns.
        def middleware(get_response):
            def handle(request):
                response = get_response(request)
                reg.transfer()
                return response

            return handle

        middleware(lambda req: hits.inc(labels={"via": "django"}) or "ok")("GET /")
        # 29: Flask's after_request.
        app = flask.Flask("seed")

        @app.route("/")
        def index():
            hits.inc(labels={"via": "flask"})
            return "ok"

        @app.after_request
        def transfer(response):
            reg.transfer()
            return response

        assert app.test_client().get("/").status_code == 200
        # 30: a decorator wrapping Celery's task decorator.
        celery = Celery("seed", broker="memory://")
        celery.conf.task_always_eager = True

        def instrumented_task(fn):
            def run(*a, **kw):
                try:
                    return fn(*a, **kw)
                finally:
                    reg.transfer()

            run.__name__ = fn.__name__
            return celery.task(run)

        @instrumented_task
        def job():
            hits.inc(labels={"via": "celery"})

        job.delay()
        page = parse_text(reader.render().decode())  # another reader: only transferred updates
    finally:
        promshm.start_flusher()
    assert [value(page, "web_hits_total", via=v) for v in ("django", "flask", "celery")] == [1, 1, 1]


# --------------------------------------------------------------------------
# Exposition, and the point: several processes, one page


SCRAPER = r'''
import sys
from promshm.idioms import instrumentor
path = sys.argv[1]
for ns in sys.argv[2:]:
    sys.stdout.write(instrumentor.InstrumentorClient(namespace=ns, area=path).render().decode())
'''


def test_31_to_33_and_4_forked_workers_exact_on_one_page(tmp_path):
    path = tmp_path / "apps.area"
    area = promshm.Area(path)
    api = _registry("api", area=area)
    jobs = _registry("jobs", area=area, eager=True)
    requests = instrumentor.Counter(name="http_requests_total", description="Requests.", allowed_labels={"code", "method"})
    latency = instrumentor.Histogram(name="latency_seconds", description="Latency.", buckets={0.1, 1})
    inflight = instrumentor.Gauge(name="queue_depth", description="Depth.", start_value=100)
    done = instrumentor.Counter(name="done_total", description="Done.")
    rt = instrumentor.Summary(name="rt_seconds", description="RT.", quantile={0.5}, max_value=1)
    for m in (requests, latency, inflight):
        api.register(m)
    for m in (done, rt):
        jobs.register(m)

    def worker():
        for i in range(1000):
            requests.inc(labels={"method": "GET", "code": "200" if i % 4 else "500"})
            latency.observe(0.05 if i % 2 else 0.5)
            inflight.dec()
            inflight.inc()
            if i % 10 == 0:
                api.transfer()
        inflight.dec(5)
        done.inc(250)
        rt.observe(0.5)
        rt.observe(2)
        api.transfer()

    pids = [_forked(worker) for _ in range(4)]
    for pid in pids:
        _wait(pid)
    # 31/32: a separate exposition process, knowing only the namespaces, reads the area.
    out = subprocess.run([sys.executable, "-c", SCRAPER, str(path), "api", "jobs"], capture_output=True, text=True,
                         timeout=30, env=child_env())
    assert out.returncode == 0, out.stderr
    page = out.stdout
    promtool_check(page)
    s = parse_text(page)
    assert value(s, "api_http_requests_total", method="GET", code="200") == 3000
    assert value(s, "api_http_requests_total", method="GET", code="500") == 1000
    assert value(s, "api_latency_seconds_count") == 4000
    assert value(s, "api_latency_seconds_bucket", le="0.1") == 2000
    assert value(s, "api_queue_depth") == 100 - 20
    assert value(s, "jobs_done_total") == 1000
    assert value(s, "jobs_rt_seconds_count") == 8 and value(s, "jobs_rt_seconds_over_max_total") == 4
    assert "promshm_" not in page  # only the namespaces asked for
    # 33: the same values through the C API's own render of the area (what any language reads).
    whole = parse_text(promshm.Area.open(path, read_only=True).render().decode())
    assert value(whole, "api_http_requests_total", method="GET", code="200") == 3000


def test_34_names_carry_the_namespace_and_counters_end_in_total():
    reg = _registry("diff")
    c = instrumentor.Counter(name="api_http_requests", description="No _total in the name.")
    reg.register(c)
    c.inc()
    text = reg.render().decode()
    assert "diff_api_http_requests_total 1" in text  # instrumentor: api_http_requests in hash "diff"

"""Unit tests of the Python API: metrics, labels, registries, collectors,
exposition (WSGI, ASGI, HTTP server, textfile), and the seeds' idioms
(pytheus, pyprometheus, instrumentor)."""

from __future__ import annotations

import asyncio
import gzip
import math
import os
import threading
import urllib.request
from pathlib import Path
from typing import Any, Dict, List, Tuple

import pytest

import promshm
from promshm import CollectorRegistry, Counter, Enum, Gauge, Histogram, Info, Summary
from promshm.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, InfoMetricFamily

from conftest import parse_text, value


# --------------------------------------------------------------------------
# Metrics


def test_counter(registry):
    c = Counter("hits_total", "Hits.", registry=registry)
    assert c.name == "hits"
    c.inc()
    c.inc(2)
    c.inc(0.5)
    c.inc(exemplar={"trace_id": "abc"})
    assert c.get() == 4.5
    assert registry.get_sample_value("hits_total") == 4.5


def test_counter_with_unit_and_namespace(registry):
    c = Counter("bytes", "Bytes.", namespace="app", subsystem="io", unit="bytes", registry=registry)
    c.inc(10)
    assert c.name == "app_io_bytes"
    assert registry.get_sample_value("app_io_bytes_total") == 10


def test_gauge(registry):
    g = Gauge("g", "Gauge.", registry=registry)
    g.set(5)
    g.inc()
    g.inc(1.5)
    g.dec()
    g.dec(0.5)
    assert g.get() == 6
    assert g.get_local() == 6
    g.set(-3)
    assert registry.get_sample_value("g") == -3


@pytest.mark.parametrize("mode", sorted(promshm.metrics.GAUGE_MODES))
def test_gauge_modes_single_process(registry, mode):
    g = Gauge("g_" + mode + "_mode", "Gauge.", registry=registry, multiprocess_mode=mode)
    assert g.multiprocess_mode == mode
    g.set(4)
    if mode == "liveall":  # one series per live worker slot
        samples = parse_text(promshm.generate_latest(registry).decode())
        assert [v for (n, _), v in samples.items() if n == "g_" + mode + "_mode"] == [4]
    else:  # "all": one series per process, labelled by pid
        labels = {"pid": str(os.getpid())} if mode == "all" else {}
        assert registry.get_sample_value("g_" + mode + "_mode", labels) == 4


def test_gauge_set_function(registry):
    g = Gauge("queue", "Queue.", ["q"], registry=registry)
    items = [1, 2, 3]
    g.labels("a").set_function(lambda: len(items))
    assert registry.get_sample_value("queue", {"q": "a"}) == 3
    items.append(4)
    assert registry.get_sample_value("queue", {"q": "a"}) == 4


def test_histogram(registry):
    h = Histogram("lat", "Latency.", unit="seconds", buckets=[0.1, 1, math.inf], registry=registry)
    assert h.buckets == (0.1, 1.0, math.inf)
    for v in (0.05, 0.5, 5):
        h.observe(v)
    assert h.get() == (3, 5.55)
    s = parse_text(promshm.generate_latest(registry).decode())
    assert value(s, "lat_seconds_bucket", le="0.1") == 1
    assert value(s, "lat_seconds_bucket", le="1.0") == 2
    assert value(s, "lat_seconds_bucket", le="+Inf") == 3
    assert value(s, "lat_seconds_count") == 3


def test_bucket_helpers():
    assert promshm.linear_buckets(1, 2, 3) == (1, 3, 5)
    assert promshm.exponential_buckets(1, 10, 3) == (1, 10, 100)
    with pytest.raises(ValueError):
        promshm.linear_buckets(0, 0, 3)
    assert promshm.DEFAULT_BUCKETS[-1] == math.inf


def test_summary_quantiles_across_processes(registry):
    s = Summary("rt", "RT.", quantiles=(0.5, 0.9), registry=registry)
    for i in range(1, 1001):
        s.observe(i)
    assert s.get() == (1000, 500500)
    q50, q90 = s.quantiles([0.5, 0.9])
    assert abs(q50 - 500) / 500 < 0.02 and abs(q90 - 900) / 900 < 0.02
    text = promshm.generate_latest(registry).decode()
    samples = parse_text(text)
    assert abs(value(samples, "rt", quantile="0.5") - 500) < 10


def test_summary_window(registry):
    s = Summary("w", "Window.", quantiles=(0.5,), max_age_seconds=60, age_buckets=3, registry=registry)
    s.observe(1)
    assert s.get() == (1, 1)


def test_info_and_enum(registry):
    i = Info("build", "Build.", registry=registry)
    i.info({"version": "1", "commit": "a"})
    i.info({"version": "2"})
    assert registry.get_sample_value("build_info", {"version": "2"}) == 1
    assert registry.get_sample_value("build_info", {"version": "1", "commit": "a"}) is None
    e = Enum("state", "State.", ["svc"], states=["a", "b", "c"], registry=registry)
    child = e.labels("x")
    assert child.get() == "a"  # a new series starts in the first state
    child.state("c")
    assert child.get() == "c"
    assert registry.get_sample_value("state", {"svc": "x", "state": "c"}) == 1
    assert registry.get_sample_value("state", {"svc": "x", "state": "a"}) == 0
    assert e.states == ("a", "b", "c")


def test_labels_are_cached_and_accept_any_form(registry):
    c = Counter("c", "C.", ["a", "b"], registry=registry)
    s1 = c.labels("1", "2")
    assert c.labels("1", "2") is s1
    assert c.labels(a="1", b="2") is s1
    assert c.labels(b="2", a="1") is s1
    assert c.labels(1, 2) is s1  # str() of the values, as prometheus_client
    assert c.labels({"a": "1", "b": "2"}) is s1  # pytheus
    s1.inc()
    c.labels(1, 2).inc()
    assert registry.get_sample_value("c_total", {"a": "1", "b": "2"}) == 2
    assert "c" in repr(s1) and 'a="1"' in repr(s1)


def test_remove_and_clear(registry):
    c = Counter("c", "C.", ["a"], registry=registry)
    x = c.labels("x")
    x.inc()
    c.labels("y").inc()
    c.remove("x")
    assert registry.get_sample_value("c_total", {"a": "x"}) is None
    assert registry.get_sample_value("c_total", {"a": "y"}) == 1
    x.inc()  # a kept handle still works but is not rendered
    assert registry.get_sample_value("c_total", {"a": "x"}) is None
    c.labels("x").inc()  # a fresh series
    assert registry.get_sample_value("c_total", {"a": "x"}) == 1
    c.remove_by_labels({"a": "x"})
    assert registry.get_sample_value("c_total", {"a": "x"}) is None
    c.clear()
    assert registry.get_sample_value("c_total", {"a": "y"}) is None
    c.labels("y").inc(3)
    assert registry.get_sample_value("c_total", {"a": "y"}) == 3
    with pytest.raises(ValueError):
        c.remove("a", "b")


def test_clear_unlabelled(registry):
    c = Counter("c", "C.", registry=registry)
    c.inc(5)
    c.clear()
    c.inc()
    assert registry.get_sample_value("c_total") == 1


def test_count_exceptions_and_track_inprogress_as_decorators(registry):
    c = Counter("errs", "E.", registry=registry)
    g = Gauge("inprog", "I.", registry=registry)
    seen: List[float] = []

    @c.count_exceptions(ValueError)
    @g.track_inprogress()
    def f(fail: bool) -> int:
        seen.append(g.get())
        if fail:
            raise ValueError
        return 1

    assert f(False) == 1
    with pytest.raises(ValueError):
        f(True)
    assert seen == [1, 1]
    assert g.get() == 0
    assert c.get() == 1
    with pytest.raises(KeyError):
        with c.count_exceptions(ValueError):
            raise KeyError
    assert c.get() == 1


def test_async_decorators(registry):
    h = Histogram("ah", "A.", registry=registry)
    g = Gauge("ag", "A.", registry=registry)
    c = Counter("ac", "A.", registry=registry)

    @h.time()
    @g.track_in_progress()
    @c.count_exceptions()
    async def work(fail: bool) -> str:
        await asyncio.sleep(0)
        assert g.get() == 1
        if fail:
            raise RuntimeError("x")
        return "ok"

    assert asyncio.run(work(False)) == "ok"
    with pytest.raises(RuntimeError):
        asyncio.run(work(True))
    assert h.get()[0] == 2 and g.get() == 0 and c.get() == 1

    async def ctx() -> None:
        async with h.time():
            pass

    asyncio.run(ctx())
    assert h.get()[0] == 3


def test_timer_labels(registry):
    h = Histogram("tl", "T.", ["route"], registry=registry)
    with h.time() as t:
        t.labels("/x")
    assert registry.get_sample_value("tl_count", {"route": "/x"}) == 1


def test_metric_objects_as_decorators_pytheus(registry):
    c = Counter("dc", "D.", registry=registry)
    h = Histogram("dh", "D.", registry=registry)
    g = Gauge("dg", "D.", registry=registry)

    @c
    def boom() -> None:
        raise ValueError

    @c(exceptions=(KeyError,))
    def boom_key() -> None:
        raise KeyError

    @h
    @g
    def fine() -> int:
        return 3

    with pytest.raises(ValueError):
        boom()
    with pytest.raises(KeyError):
        boom_key()
    assert fine() == 3
    assert c.get() == 2 and h.get()[0] == 1 and 0 <= g.get() < 1


def test_registry_none_metrics_work_but_are_not_exposed():
    c = Counter("detached", "D.", registry=None)
    c.inc()
    assert c.get() == 1
    assert b"detached" not in promshm.generate_latest()


# --------------------------------------------------------------------------
# pytheus idioms: required, partial and default labels; registry prefix


def test_required_partial_and_default_labels(registry):
    m = Counter("metric_name", description="desc", required_labels=["req1", "req2"], registry=registry)
    m.labels({"req1": "1", "req2": "2"}).inc()
    partial = m.labels({"req1": "1"})
    assert m.labels({"req1": "1"}) is not None
    with pytest.raises(promshm.UnobservableMetricError):
        partial.inc()
    observable = partial.labels({"req2": "2"})
    observable.inc()
    assert observable is m.labels("1", "2")
    partial.labels("3").inc()  # the missing values, positionally
    assert registry.get_sample_value("metric_name_total", {"req1": "1", "req2": "2"}) == 2
    assert registry.get_sample_value("metric_name_total", {"req1": "1", "req2": "3"}) == 1
    with pytest.raises(promshm.UnobservableMetricError):
        m.inc()

    d = Counter("with_default", "desc", required_labels=["req1", "req2"], default_labels={"req2": "me_set!"}, registry=registry)
    d.labels({"req1": "1"}).inc()
    d.labels({"req1": "1", "req2": "2"}).inc()
    d.labels(req1="x").inc()  # keyword form, default filled in
    assert registry.get_sample_value("with_default_total", {"req1": "1", "req2": "me_set!"}) == 1
    assert registry.get_sample_value("with_default_total", {"req1": "1", "req2": "2"}) == 1
    assert registry.get_sample_value("with_default_total", {"req1": "x", "req2": "me_set!"}) == 1

    all_default = Gauge("all_default", "desc", ["a"], default_labels={"a": "z"}, registry=registry)
    all_default.set(3)  # every label has a default: observable directly
    assert registry.get_sample_value("all_default", {"a": "z"}) == 3
    with pytest.raises(ValueError):
        Counter("bad_default", "d", ["a"], default_labels={"nope": "1"}, registry=registry)


def test_registry_prefix_and_const_labels():
    area = promshm.Area.anonymous()
    a = CollectorRegistry(area=area, prefix="service_a", const_labels={"env": "prod"})
    b = CollectorRegistry(area=area, prefix="service_b")
    everything = CollectorRegistry(area=area)
    ca = Counter("requests", "R.", registry=a)
    cb = Counter("requests", "R.", registry=b)
    ca.inc()
    cb.inc(2)
    assert ca.name == "service_a_requests"
    ta, tb = promshm.generate_latest(a).decode(), promshm.generate_latest(b).decode()
    assert 'service_a_requests_total{env="prod"} 1' in ta and "service_b" not in ta
    assert "service_b_requests_total 2" in tb and "service_a" not in tb
    both = promshm.generate_latest(everything).decode()
    assert "service_a_requests_total" in both and "service_b_requests_total" in both


def test_instrumentor_namespaces_on_the_shared_area():
    app1 = CollectorRegistry(area=promshm.SHARED, prefix="app1")
    app2 = CollectorRegistry(area=promshm.SHARED, prefix="app2")
    Counter("jobs", "J.", registry=app1).inc()
    Counter("jobs", "J.", registry=app2).inc(2)
    promshm.transfer()  # batched updates pushed (instrumentor's name for flush)
    shared = promshm.generate_latest(promshm.REGISTRY).decode()
    assert "app1_jobs_total 1" in shared and "app2_jobs_total 2" in shared
    assert app1.area is app2.area is promshm.shared_area()
    assert "promshm_area_pages" in shared  # the default registry shows promshm's own metrics


# --------------------------------------------------------------------------
# Custom collectors


class _PCStyle:
    def collect(self):
        g = GaugeMetricFamily("queue_depth", "Jobs waiting.", labels=["queue"])
        g.add_metric(["default"], 7)
        yield g
        yield CounterMetricFamily("external_total", "External.", value=3)
        yield HistogramMetricFamily("ext_hist", "H.", buckets=[("1.0", 2), ("+Inf", 3)], sum_value=4.5)
        yield InfoMetricFamily("ext", "Ext info.", value={"a": "b"})


def test_custom_collectors(registry):
    Counter("own", "Own.", registry=registry).inc()
    coll = _PCStyle()
    registry.register(coll)
    text = promshm.generate_latest(registry).decode()
    s = parse_text(text)
    assert value(s, "own_total") == 1
    assert value(s, "queue_depth", queue="default") == 7
    assert value(s, "external_total") == 3
    assert value(s, "ext_hist_bucket", le="1.0") == 2
    assert value(s, "ext_hist_count") == 3
    assert value(s, "ext_info", a="b") == 1
    om = promshm.openmetrics.exposition.generate_latest(registry).decode()
    assert om.count("# EOF") == 1 and om.endswith("# EOF\n")
    parse_text(om, openmetrics=True)
    assert registry.get_sample_value("queue_depth", {"queue": "default"}) == 7
    registry.unregister(coll)
    assert "queue_depth" not in promshm.generate_latest(registry).decode()
    with pytest.raises(KeyError):
        registry.unregister(coll)


def test_prometheus_client_families_are_accepted(registry):
    import prometheus_client.core as pcc

    class C:
        def collect(self):
            yield pcc.GaugeMetricFamily("pc_gauge", "From prometheus_client.", value=1.5)

    registry.register(C())
    assert registry.get_sample_value("pc_gauge") == 1.5


def test_pytheus_collector_yielding_metrics(registry):
    class MyCustomCollector:
        def collect(self):
            counter = Counter("name", "desc", registry=None)
            counter.inc()
            yield counter

    registry.register(MyCustomCollector())
    for _ in range(3):  # a fresh metric each scrape: always 1
        assert registry.get_sample_value("name_total") == 1


def test_register_a_metric_of_another_registry(registry):
    other = CollectorRegistry()
    c = Counter("elsewhere", "E.", registry=other)
    c.inc(4)
    registry.register(c)
    assert registry.get_sample_value("elsewhere_total") == 4
    registry.register(Counter("mine", "M.", registry=registry))  # its own metric: a no-op


def test_collect_yields_families(registry):
    c = Counter("c", "C.", ["a"], registry=registry)
    c.labels("x").inc()
    fams = {f.name: f for f in registry.collect()}
    assert fams["c"].type == "counter"
    assert [s for s in fams["c"].samples if s.name == "c_total"][0].labels == {"a": "x"}
    assert c.collect()[0].name == "c"


def test_target_info():
    reg = CollectorRegistry(target_info={"service": "api"})
    assert reg.get_sample_value("target_info", {"service": "api"}) == 1
    assert reg.get_target_info() == {"service": "api"}


def test_multiprocess_compat():
    from promshm import multiprocess

    Counter("mp_compat", "M.").inc()
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    multiprocess.mark_process_dead(12345)
    assert registry.get_sample_value("mp_compat_total") == 1


# --------------------------------------------------------------------------
# Exposition


def _call_wsgi(app: Any, path: str = "/metrics", **env: str) -> Tuple[str, Dict[str, str], bytes]:
    out: Dict[str, Any] = {}

    def start_response(status: str, headers: List[Tuple[str, str]]) -> None:
        out["status"], out["headers"] = status, dict(headers)

    environ = {"REQUEST_METHOD": "GET", "PATH_INFO": path, "QUERY_STRING": "", **env}
    it = app(environ, start_response)
    body = b"".join(it)
    if hasattr(it, "close"):
        it.close()
    return out["status"], out["headers"], body


def test_wsgi_app_negotiates(registry):
    Counter("w", "W.", registry=registry).inc()
    app = promshm.make_wsgi_app(registry)
    status, headers, body = _call_wsgi(app)
    assert status == "200 OK" and headers["Content-Type"] == promshm.CONTENT_TYPE_LATEST
    assert b"w_total 1" in body
    status, headers, body = _call_wsgi(app, HTTP_ACCEPT="application/openmetrics-text; version=1.0.0,text/plain;q=0.5")
    assert headers["Content-Type"].startswith("application/openmetrics-text")
    assert body.endswith(b"# EOF\n")
    parse_text(body.decode(), openmetrics=True)
    status, headers, body = _call_wsgi(app, HTTP_ACCEPT_ENCODING="gzip")
    assert headers["Content-Encoding"] == "gzip" and b"w_total" in gzip.decompress(body)
    status, headers, body = _call_wsgi(promshm.make_wsgi_app(registry, disable_compression=True), HTTP_ACCEPT_ENCODING="gzip")
    assert "Content-Encoding" not in headers
    assert _call_wsgi(app, REQUEST_METHOD="POST")[0].startswith("405")


def test_wsgi_name_filter(registry):
    Counter("keep", "K.", registry=registry).inc()
    Counter("drop", "D.", registry=registry).inc()
    _, _, body = _call_wsgi(promshm.make_wsgi_app(registry), QUERY_STRING="name[]=keep_total")
    assert b"keep_total" in body and b"drop" not in body


def test_middleware_flushes_at_request_end(registry, monkeypatch):
    c = Counter("served", "S.", registry=registry)
    flushed: List[int] = []
    real = promshm._area._flush_quietly
    monkeypatch.setattr(promshm._area, "_flush_quietly", lambda: (flushed.append(1), real()))

    def app(environ: Dict[str, Any], start_response: Any) -> List[bytes]:
        c.inc()
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"hello"]

    mw = promshm.MetricsMiddleware(app, registry=registry)
    body = mw({"PATH_INFO": "/", "REQUEST_METHOD": "GET"}, lambda status, headers: None)
    assert flushed == [1], "flushed when the app returned, before the body is sent"
    assert b"".join(body) == b"hello"
    body.close()
    assert flushed == [1, 1], "flushed again when the server closes the response"
    status, _, body = _call_wsgi(mw, "/metrics")
    assert b"served_total 1" in body


def test_asgi_app_and_middleware(registry):
    c = Counter("asgi_hits", "A.", registry=registry)

    async def app(scope: Any, receive: Any, send: Any) -> None:
        c.inc()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    mw = promshm.ASGIMetricsMiddleware(app, registry=registry)

    async def call(path: str, headers: List[Tuple[bytes, bytes]]) -> Tuple[int, Dict[bytes, bytes], bytes]:
        sent: List[Dict[str, Any]] = []

        async def receive() -> Dict[str, Any]:
            return {"type": "http.request", "body": b""}

        async def send(msg: Dict[str, Any]) -> None:
            sent.append(msg)

        await mw({"type": "http", "method": "GET", "path": path, "query_string": b"", "headers": headers}, receive, send)
        return sent[0]["status"], dict(sent[0]["headers"]), sent[1]["body"]

    assert asyncio.run(call("/", []))[2] == b"ok"
    status, headers, body = asyncio.run(call("/metrics", [(b"accept", b"application/openmetrics-text")]))
    assert status == 200 and headers[b"content-type"].startswith(b"application/openmetrics-text")
    assert b"asgi_hits_total 1" in body and body.endswith(b"# EOF\n")
    status, _, body = asyncio.run(call("/metrics", []))
    assert b"asgi_hits_total 1" in body


def test_start_http_server_binds_loopback(registry):
    Counter("served_http", "S.", registry=registry).inc()
    server, thread = promshm.start_http_server(0, registry=registry)
    try:
        host, port = server.server_address[:2]
        assert host == "127.0.0.1"
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
            assert b"served_http_total 1" in r.read()
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_write_to_textfile(registry, tmp_path: Path):
    Counter("tf", "T.", registry=registry).inc(2)
    path = tmp_path / "metrics.prom"
    path.write_text("old")
    promshm.write_to_textfile(str(path), registry)
    assert "tf_total 2" in path.read_text()
    registry.register(_PCStyle())  # with a collector the Python path writes the file
    promshm.write_to_textfile(str(path), registry)
    assert "queue_depth" in path.read_text()
    assert sorted(os.listdir(tmp_path)) == ["metrics.prom"]  # no temporary left behind
    with pytest.raises(OSError):
        promshm.write_to_textfile(str(tmp_path / "missing" / "x.prom"), registry)


def test_text_helpers(registry):
    Counter("th", "T.", registry=registry).inc()
    assert "th_total 1" in promshm.generate_metrics(registry)
    assert promshm.registry_to_text(registry) == promshm.generate_metrics(registry)
    enc, ctype = promshm.choose_encoder("application/openmetrics-text")
    assert enc(registry).endswith(b"# EOF\n")
    enc, ctype = promshm.choose_encoder(None)
    assert ctype == promshm.CONTENT_TYPE_LATEST


def test_area_introspection(tmp_path: Path):
    area = promshm.Area(tmp_path / "a.area", pages=128, max_workers=8)
    reg = CollectorRegistry(area=area)
    Counter("x", "X.", registry=reg).inc()
    st = area.stats()
    assert st["pages_total"] == 128 and st["max_workers"] == 8 and st["families"] == 1
    assert area.attach() == area.attach()
    assert [w["pid"] for w in area.workers()] == [os.getpid()]
    assert area.reap() == 0
    assert b"x_total 1" in area.render()
    assert area.render("openmetrics").endswith(b"# EOF\n")
    area.render_to_file(tmp_path / "out.prom")
    assert "x_total 1" in (tmp_path / "out.prom").read_text()
    ro = promshm.Area.open(tmp_path / "a.area", read_only=True)
    assert ro.read_only and b"x_total 1" in ro.render()
    assert "read-only" in repr(ro)


def test_thread_safety_exact(registry):
    c = Counter("threads", "T.", ["t"], registry=registry)
    h = Histogram("threads_h", "T.", registry=registry, buckets=[1])
    g = Gauge("threads_g", "T.", registry=registry)
    n_threads, n = 8, 5000
    barrier = threading.Barrier(n_threads)

    def work(i: int) -> None:
        barrier.wait()
        for j in range(n):
            c.labels(str(j % 4)).inc()
            h.observe(0.5)
            g.inc()
            if j % 1000 == 0:
                promshm.generate_latest(registry)  # renders meanwhile

    threads = [threading.Thread(target=work, args=(i,)) for i in range(n_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    s = parse_text(promshm.generate_latest(registry).decode())
    assert sum(value(s, "threads_total", t=str(k)) for k in range(4)) == n_threads * n
    assert value(s, "threads_h_count") == n_threads * n
    assert value(s, "threads_g") == n_threads * n

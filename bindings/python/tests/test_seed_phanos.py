"""phanos 0.2.0's documents, walked top to bottom against promshm.idioms.phanos.

The documents are the package metadata of phanos 0.2.0 (its README) and the
PyPI project page of a later release (``phanos_profiler``, ``addHandler``,
``store_operation``, ``current_node.context``). Each snippet below is the
document's text with only the import changed (``import phanos`` ->
``from promshm.idioms import phanos``), run with ``exec``; every option and
named API is exercised and its documented effect asserted on the exposition.
Where promshm deliberately differs (listed in the idiom module's docstring
and in bindings/python/README.md), the test asserts the difference. The last
tests fork 4 workers in a fresh interpreter, have them leave with
``os._exit()`` and check exact totals on one page that promtool accepts.

Items (the document's order; test names in brackets):

README 0.2.0 -- 1 synchronous programs [test_sync_nested_contexts]; 2
asyncio [test_asyncio]; 3 threads, "unspecified" (difference: per-thread
contexts) [test_threads_have_their_own_context]; 4 time profiler on by
default, 5 response size off by default [test_sync_nested_contexts]; 6-7
``delete_metric(phanos.publisher.TIME_PROFILER / RESPONSE_SIZE)``
[test_delete_default_metrics]; 8 "must be configured"
[test_unconfigured_profiler_does_not_profile]; 9 ``job``, 10 ``logger``,
11 ``time_profile``, 12 ``response_size_profile``, 13 ``handle_records``, 14
``error_raised_label`` (+ error logging without LoggerHandler), 15
``handlers`` (class / handler_name / output; difference: measured without
handlers) [test_options_*]; 16 ``dict_config`` example
[test_readme_dict_config_example]; 17 configuration in code, 18
``add_handler`` [test_readme_config_in_code]; 19 ``@phanos.profile`` /
``@phanos.profiler.profile`` under ``@staticmethod``, 20 under
``@classmethod`` [test_readme_decorator_placement]; 21 ``delete_handler``,
22 StreamHandler, 23 LoggerHandler, 24 NamedLoggerHandler, 25 ImpProfHandler
(difference: no RabbitMQ) [test_handlers]; 26-31 Histogram, Summary,
Counter, Info, Gauge, Enum [test_basic_metric_classes]; 32 time profiler in
mS, 33 response size in bytes (difference: length of bytes)
[test_builtin_profilers_units]; 34 new custom metric (inherit,
``super().__init__``, operations, ``cleanup``) [test_custom_metric_cleanup];
35-38 the four hooks [test_hooks]; 39 the complete example
[test_readme_complete_example]; 40 ``MetricWrapper.__init__`` arguments
[test_custom_metric_cleanup]; 41 hook arguments (``func``, ``fn_result``,
packed ``args``/``kwargs``) [test_hooks].
PyPI page -- 42 ``phanos_profiler`` and ``@phanos_profiler.profile``, 43
``from phanos.publisher import LoggerHandler, ImpProfHandler`` and
``config(logger, should_time_profile, should_resp_size_profile,
should_handle_records)``, 44 ``addHandler``, 45 ``deleteHandler``, 46
records handled after the root method, 47 ``default_operation`` /
``operations`` / ``store_operation(method=phanos_profiler.current_node.context)``,
48 ``def before_function(function)``, 49 the context format (class or
module) [test_pypi_page_*].
Multi-process (the title) -- 50 4 workers, exact totals, promtool, ``os._exit``
[test_four_workers_exact_totals]; the guarantee's difference
[test_without_flush_after_root_os_exit_loses_buffered_updates].
Error cases -- 51 dict_config without job, 52 unknown handler, 53 unknown
metric, 54 wrong labels, 55 wrong value type, 56 unknown Enum state, 57
Info without dict, 58 unknown operation [test_error_cases].
"""

from __future__ import annotations

import asyncio
import io
import logging
import re
import shutil
import subprocess
import sys
import textwrap
import threading
from typing import Any, Dict

import pytest

import promshm
from promshm import profiling
from promshm.idioms import phanos

from conftest import child_env, parse_text, python, value


@pytest.fixture(autouse=True)
def fresh(registry):
    """The default profiler, unconfigured, on a private registry (a snippet's
    ``dict_config`` keeps it: it names no registry)."""
    phanos.profiler.__init__()
    phanos.profiler.registry = registry
    yield registry
    phanos.profiler.__init__()


def scrape(registry: Any = None) -> Dict[Any, float]:
    return parse_text(promshm.generate_latest(registry or promshm.REGISTRY).decode())


def run(snippet: str, **names: Any) -> Dict[str, Any]:
    """Run a document's snippet (import already changed) as a module would."""
    ns: Dict[str, Any] = {"__name__": "seed_snippet"}
    ns.update(names)
    exec(compile(textwrap.dedent(snippet), "<phanos document>", "exec"), ns)
    return ns


def count(s: Dict[Any, float], method: str, name: str = "time_profiler_seconds_count", **labels: str) -> Any:
    return value(s, name, method=method, **labels)


# --------------------------------------------------------------------------
# Profiling, default metrics, configuration


def test_sync_nested_contexts(fresh):
    phanos.profiler.dict_config({"job": "app"})

    class RootClass:
        @phanos.profile
        def root_method(self) -> bytes:
            return self.inner()

        @phanos.profile
        def inner(self) -> bytes:
            return b"x" * 10

    assert RootClass().root_method() == b"x" * 10
    s = scrape(fresh)
    base = {"job": "app", "item": "RootClass"}
    assert count(s, "RootClass:root_method", **base) == 1  # time profiler on by default
    assert count(s, "RootClass:root_method.inner", **base) == 1
    assert not any(k[0].startswith("response_size") for k in s)  # size off by default
    assert not any("error_raised" in dict(k[1]) for k in s)  # documented default: no label


def test_asyncio(fresh):
    phanos.profiler.dict_config({"job": "app"})

    class Svc:
        @phanos.profile
        async def handler(self, n: int) -> int:
            await asyncio.sleep(0.001 * (5 - n))
            return await self.step(n)

        @phanos.profile
        async def step(self, n: int) -> int:
            assert phanos.profiler.current_node.context == "Svc:handler.step"
            await asyncio.sleep(0.001)
            return n

    async def main() -> list:
        return list(await asyncio.gather(*(Svc().handler(i) for i in range(5))))

    assert asyncio.run(main()) == [0, 1, 2, 3, 4]
    s = scrape(fresh)
    assert count(s, "Svc:handler", job="app", item="Svc") == 5
    assert count(s, "Svc:handler.step", job="app", item="Svc") == 5


def test_threads_have_their_own_context(fresh):
    """Documented difference: phanos leaves threads unspecified; here each
    thread has its own call tree."""
    phanos.profiler.dict_config({"job": "app"})
    seen = []

    class T:
        @phanos.profile
        def run(self) -> None:
            self.step()

        @phanos.profile
        def step(self) -> None:
            seen.append(phanos.profiler.current_node.context)

    threads = [threading.Thread(target=lambda: [T().run() for _ in range(50)]) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert set(seen) == {"T:run.step"} and len(seen) == 200
    assert count(scrape(fresh), "T:run.step", job="app", item="T") == 200


def test_delete_default_metrics(fresh):
    phanos.profiler.dict_config({"job": "app", "request_size_profile": True})

    @phanos.profile
    def f() -> str:
        return "abc"

    f()
    phanos.profiler.delete_metric(phanos.publisher.TIME_PROFILER)
    f()
    phanos.profiler.delete_metric(phanos.publisher.RESPONSE_SIZE)
    f()
    s = scrape(fresh)
    assert count(s, "test_seed_phanos:f", job="app", item="test_seed_phanos") == 1
    assert count(s, "test_seed_phanos:f", "response_size_bytes_count", job="app", item="test_seed_phanos") == 2


def test_unconfigured_profiler_does_not_profile(fresh):
    @phanos.profile
    def f() -> int:
        return 1

    assert f() == 1
    assert not any(k[0].startswith("time_profiler") for k in scrape(fresh))
    phanos.profiler.dict_config({"job": "app"})
    f()
    assert count(scrape(fresh), "test_seed_phanos:f", job="app", item="test_seed_phanos") == 1


DICT_CONFIG = """
settings = {
    "job": "my_app", 
    "logger": "my_app_debug_logger", 
    "time_profile": True, 
    "request_size_profile": False,
    "handle_records": True, 
    "error_raised_label": False,
    "handlers": {
        "stdout_handler_ref": {
                "class": "phanos.handlers.StreamHandler", 
                "handler_name": "stdout_handler", 
                "output": "ext://sys.stdout"
            }
        }
}
from promshm.idioms import phanos
phanos.profiler.dict_config(settings)
"""


def test_readme_dict_config_example(fresh, capsys):
    ns = run(DICT_CONFIG)
    p = phanos.profiler
    assert p.job == "my_app" and p.logger is logging.getLogger("my_app_debug_logger")
    assert set(p.handlers) == {"stdout_handler"} and isinstance(p.handlers["stdout_handler"], phanos.handlers.StreamHandler)

    class Api:
        @phanos.profile
        def get(self) -> str:
            return self.load()

        @phanos.profile
        def load(self) -> str:
            return "body"

    Api().get()
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 2 and all(line.startswith("profiler: time_profiler, method: Api:get") for line in out)
    assert re.fullmatch(r"profiler: time_profiler, method: Api:get.load, value: [0-9.e-]+ mS, job: my_app", out[0])
    s = scrape(fresh)
    assert count(s, "Api:get", job="my_app", item="Api") == 1  # error_raised_label False: no such label
    assert not any(k[0].startswith("response_size") for k in s)
    # the same dict with request_size_profile True: the size histogram appears
    phanos.profiler.__init__()
    phanos.profiler.registry = fresh
    ns["settings"]["request_size_profile"] = True
    phanos.profiler.dict_config(ns["settings"])
    Api().get()
    s = scrape(fresh)
    assert count(s, "Api:get", "response_size_bytes_count", job="my_app", item="Api") == 1
    assert count(s, "Api:get", "response_size_bytes_sum", job="my_app", item="Api") == 4
    assert "profiler: response_size, method: Api:get, value: 4.0 B, job: my_app" in capsys.readouterr().out


def test_options_error_raised_label_and_error_logging(fresh, caplog):
    phanos.profiler.dict_config({"job": "my_app", "logger": "my_app_debug_logger", "error_raised_label": True, "request_size_profile": True})

    class Api:
        @phanos.profile
        def get(self) -> None:
            self.fail()

        @phanos.profile
        def fail(self) -> None:
            raise KeyError("no")

        @phanos.profile
        def ok(self) -> None:
            pass

    with caplog.at_level(logging.WARNING, logger="my_app_debug_logger"):
        with pytest.raises(KeyError):
            Api().get()
        Api().ok()
    s = scrape(fresh)
    assert count(s, "Api:get.fail", job="my_app", item="Api", error_raised="true") == 1
    assert count(s, "Api:get", job="my_app", item="Api", error_raised="true") == 1
    assert count(s, "Api:ok", job="my_app", item="Api", error_raised="false") == 1
    # a root call that raised returned nothing: no response size (difference)
    assert count(s, "Api:ok", "response_size_bytes_count", job="my_app", item="Api", error_raised="false") == 1
    assert not [k for k in s if k[0] == "response_size_bytes_count" and dict(k[1]).get("method") == "Api:get"]
    # "if error raised, profiling will be logged even if no LoggerHandler exists"
    logged = [r.getMessage() for r in caplog.records if r.name == "my_app_debug_logger"]
    assert logged == [
        m for m in logged if m.startswith("profiler: time_profiler, method: Api:get")
    ] and len(logged) == 2
    assert all("error_raised=true" in m for m in logged)


def test_options_handle_records_false_and_handlers_not_needed(fresh):
    phanos.profiler.dict_config({"job": "app", "handle_records": False})

    @phanos.profile
    def f() -> int:
        return 1

    f()
    assert not any(k[0].startswith("time_profiler") for k in scrape(fresh))
    # Difference: no handlers configured, the measurements are still in the shared area.
    phanos.profiler.dict_config({"job": "app"})
    assert phanos.profiler.handlers == {}
    f()
    assert count(scrape(fresh), "test_seed_phanos:f", job="app", item="test_seed_phanos") == 1


def test_options_time_profile_false(fresh):
    phanos.profiler.dict_config({"job": "app", "time_profile": False, "response_size_profile": True})

    @phanos.profile
    def f() -> bytes:
        return b"12345"

    f()
    s = scrape(fresh)
    assert not any(k[0].startswith("time_profiler") for k in s)
    assert count(s, "test_seed_phanos:f", "response_size_bytes_sum", job="app", item="test_seed_phanos") == 5


CONFIG_IN_CODE = """
    from promshm.idioms import phanos
    # some code
    class SomeApp(Flask):
        \"\"\"some code\"\"\" 
        phanos.profiler.config(logger, time_profile, resp_size_profile, handle_records, error_raised_label)
        log_handler = phanos.handlers.LoggerHandler('handler_name', logger_instance, logging_level)
        phanos.profiler.add_handler(log_handler)    
        # some code
"""


def test_readme_config_in_code(fresh, caplog):
    app_logger = logging.getLogger("seed-app")
    records_logger = logging.getLogger("seed-records")
    run(
        CONFIG_IN_CODE,
        Flask=type("Flask", (), {}),
        logger=app_logger,
        time_profile=True,
        resp_size_profile=True,
        handle_records=True,
        error_raised_label=True,
        logger_instance=records_logger,
        logging_level=logging.INFO,
    )
    p = phanos.profiler
    assert p.logger is app_logger and p.job == ""  # the logger is the logger, not the job
    assert p.time_profile and p.response_size_profile and p.handle_records and p.error_raised_label
    assert set(p.handlers) == {"handler_name"}

    @phanos.profile
    def endpoint() -> bytes:
        return b"ab"

    with caplog.at_level(logging.INFO, logger="seed-records"):
        endpoint()
    msgs = [r.getMessage() for r in caplog.records if r.name == "seed-records" and r.levelno == logging.INFO]
    assert len(msgs) == 2 and msgs[1] == "profiler: response_size, method: test_seed_phanos:endpoint, value: 2.0 B, labels: error_raised=false"
    s = scrape(fresh)
    assert count(s, "test_seed_phanos:endpoint", job="", item="test_seed_phanos", error_raised="false") == 1
    # phanos' keyword names
    p.config(logger=app_logger, job="kw", time_profile=True, request_size_profile=False, handle_records=True, error_raised_label=False)
    assert (p.job, p.response_size_profile, p.error_raised_label) == ("kw", False, False)
    p.config("named-logger", "job2")  # logger may be a name (the README's option list)
    assert p.logger is logging.getLogger("named-logger") and p.job == "job2"


DECORATOR_PLACEMENT = """
from promshm.idioms import phanos
   
class SomeClass:
    \"\"\" Example of @profile decorator placement\"\"\"
    @staticmethod
    @phanos.profile
    def some_method():
        pass
    
    # is equivalent to
    @staticmethod
    @phanos.profiler.profile
    def some_method():
        pass
"""


def test_readme_decorator_placement(fresh):
    phanos.profiler.dict_config({"job": "app"})
    ns = run(DECORATOR_PLACEMENT)
    assert phanos.profile == phanos.profiler.profile
    ns["SomeClass"].some_method()
    ns["SomeClass"]().some_method()

    class WithClassMethod:
        @classmethod
        @phanos.profile
        def build(cls) -> str:
            return cls.__name__

    assert WithClassMethod.build() == "WithClassMethod"
    s = scrape(fresh)
    assert count(s, "SomeClass:some_method", job="app", item="SomeClass") == 2
    assert count(s, "WithClassMethod:build", job="app", item="WithClassMethod") == 1


# --------------------------------------------------------------------------
# Handlers


def test_handlers(fresh, capsys, caplog):
    phanos.profiler.dict_config({"job": "app"})
    out = io.StringIO()
    p = phanos.profiler
    p.add_handler(phanos.handlers.StreamHandler("to_buffer", out))
    p.add_handler(phanos.handlers.StreamHandler("to_stdout"))  # default sys.stdout
    p.add_handler(phanos.handlers.LoggerHandler("own_logger"))  # no logger: phanos' own, to stdout
    p.add_handler(phanos.handlers.NamedLoggerHandler("named", "seed-named", logging.WARNING))
    imp = phanos.handlers.ImpProfHandler("imp", host="rabbit.invalid", port=5672, user="u", password="p", logger=logging.getLogger("seed-imp"))
    p.add_handler(imp)
    assert imp.connection_params["host"] == "rabbit.invalid"  # accepted, not connected

    class Api:
        @phanos.profile
        def get(self) -> None:
            pass

    with caplog.at_level(logging.DEBUG):
        Api().get()
    line = out.getvalue().strip()
    assert re.fullmatch(r"profiler: time_profiler, method: Api:get, value: [0-9.e-]+ mS, job: app", line)
    stdout = capsys.readouterr().out.splitlines()
    assert stdout == [line, line]  # StreamHandler's default output, LoggerHandler's own logger
    named = [r for r in caplog.records if r.name == "seed-named"]
    assert len(named) == 1 and named[0].levelno == logging.WARNING
    # ImpProfHandler: its records are the shared area's; it logs only error profiling
    assert not [r for r in caplog.records if r.name == "seed-imp" and r.levelno == logging.DEBUG]
    assert count(scrape(fresh), "Api:get", job="app", item="Api") == 1
    p.delete_handler("named")
    assert "named" not in p.handlers
    with pytest.raises(KeyError, match="handler named do not exist"):
        p.delete_handler("named")
    p.delete_handlers()
    assert p.handlers == {}


def test_imp_prof_handler_logs_error_profiling(fresh, caplog):
    phanos.profiler.dict_config({
        "job": "app",
        "error_raised_label": True,
        "handlers": {"imp": {"class": "phanos.publisher.ImpProfHandler", "handler_name": "imp", "host": "localhost",
                             "logger": "ext://logging.root"}},
    })

    @phanos.profile
    def boom() -> None:
        raise RuntimeError("x")

    with caplog.at_level(logging.DEBUG):
        with pytest.raises(RuntimeError):
            boom()
    msgs = [r.getMessage() for r in caplog.records if r.name == "root" and r.levelno == logging.DEBUG]
    assert any(m.startswith("profiler: time_profiler, method: test_seed_phanos:boom") and "error_raised=true" in m for m in msgs)


# --------------------------------------------------------------------------
# Metrics


def test_basic_metric_classes(fresh):
    m = phanos.metrics
    h = m.Histogram("seed_ph_latency", "app", "mS", ["route"])
    sm = m.Summary("seed_ph_payload", "app", "B", ["route"])
    c = m.Counter("seed_ph_events", "app", "events", ["kind"])
    i = m.Info("seed_ph_build", "app")
    g = m.Gauge("seed_ph_queue", "app", "items")
    e = m.Enum("seed_ph_state", "app", ["idle", "busy"])
    h.observe(12.5, {"route": "/a"})
    h.observe(3, {"route": "/a"})
    sm.observe(100.0, {"route": "/a"})
    c.inc(2, {"kind": "x"})
    c.inc(3.5, {"kind": "x"})
    i.info_({"version": "1.2"})
    g.inc(5)
    g.dec(2)
    e.state("busy")
    s = scrape()
    own = {"job": "app", "item": "", "method": ""}  # outside a profiled call: no context
    assert value(s, "seed_ph_latency_milliseconds_count", route="/a", **own) == 2
    assert value(s, "seed_ph_latency_milliseconds_sum", route="/a", **own) == 15.5
    assert value(s, "seed_ph_latency_milliseconds_bucket", route="/a", le="5.0", **own) == 1
    assert value(s, "seed_ph_payload_bytes_sum", route="/a", **own) == 100
    assert value(s, "seed_ph_events_total", kind="x", **own) == 5.5
    assert value(s, "seed_ph_build_info", version="1.2", **own) == 1
    assert value(s, "seed_ph_queue_items", **own) == 3
    assert value(s, "seed_ph_state", seed_ph_state="busy", **own) == 1
    g.set(7)
    assert value(scrape(), "seed_ph_queue_items", **own) == 7
    assert (h.metric, sm.metric, c.metric, i.metric, g.metric, e.metric) == ("histogram", "summary", "counter", "info", "gauge", "enum")


def test_builtin_profilers_units(fresh):
    phanos.profiler.dict_config({"job": "app", "request_size_profile": True})
    import time

    @phanos.profile
    def slow() -> Dict[str, int]:
        time.sleep(0.02)
        return {"a": 1}

    slow()
    s = scrape(fresh)
    seconds = value(s, "time_profiler_seconds_sum", job="app", item="test_seed_phanos", method="test_seed_phanos:slow")
    assert 0.015 < seconds < 2  # difference: seconds (records: mS)
    assert value(s, "time_profiler_seconds_bucket", job="app", item="test_seed_phanos", method="test_seed_phanos:slow", le="0.01") == 0
    assert value(s, "response_size_bytes_sum", job="app", item="test_seed_phanos", method="test_seed_phanos:slow") == sys.getsizeof({"a": 1})
    # the custom-metric forms of the two profilers
    tp = phanos.metrics.TimeProfiler("seed_ph_tp", "app")
    rs = phanos.metrics.ResponseSize("seed_ph_rs", "app")
    import datetime

    tp.stop(datetime.datetime.now() - datetime.timedelta(milliseconds=50), {})
    rs.rec(b"123", {})
    s = scrape()
    assert 49 < value(s, "seed_ph_tp_milliseconds_sum", job="app", item="", method="") < 2000
    assert value(s, "seed_ph_rs_bytes_sum", job="app", item="", method="") == 3  # difference: length of bytes, not getsizeof
    # time_unit="milliseconds": phanos' unit on the page too
    phanos.profiler.dict_config({"job": "app", "time_unit": "milliseconds"})
    slow()
    ms = value(scrape(fresh), "time_profiler_milliseconds_sum", job="app", item="test_seed_phanos", method="test_seed_phanos:slow")
    assert 15 < ms < 2000
    with pytest.raises(ValueError, match="time_profiler: time_unit"):
        phanos.profiler.config(time_unit="minutes")


def test_custom_metric_cleanup(fresh):
    phanos.profiler.dict_config({"job": "app"})
    cleaned = []

    class Hits(phanos.metrics.Gauge):
        def __init__(self, name: str, job: str, units: str) -> None:  # labels and logger optional
            super().__init__(name, job, units)
            self.seen = 0

        def hit(self, value: int = 1) -> None:
            self.seen += value
            self.inc(value)

        def cleanup(self) -> None:
            super().cleanup()
            cleaned.append(self.seen)
            self.seen = 0

    hits = Hits("seed_ph_hits", "app", "hits")
    phanos.profiler.add_metric(hits)

    class Api:
        @phanos.profile
        def get(self) -> None:
            hits.hit()
            assert hits.values == [("inc", 1.0)] and hits.method == ["Api:get"]
            self.sub()

        @phanos.profile
        def sub(self) -> None:
            hits.hit(2)

    Api().get()
    Api().get()
    assert cleaned == [3, 3] and hits.values == []
    s = scrape()
    assert value(s, "seed_ph_hits", job="app", item="Api", method="Api:get") == 2
    assert value(s, "seed_ph_hits", job="app", item="Api", method="Api:get.sub") == 4
    phanos.profiler.delete_metric("seed_ph_hits")
    phanos.profiler.delete_metrics()


def test_added_metric_gets_the_error_raised_label(fresh):
    """With error_raised_label, add_metric gives a custom metric the label
    (phanos: from sys.exc_info() at the operation)."""
    phanos.profiler.dict_config({"job": "app", "error_raised_label": True})
    failures = phanos.metrics.Counter("seed_ph_calls", "app", "calls")
    phanos.profiler.add_metric(failures)
    assert failures.label_names == ["error_raised"]
    phanos.profiler.after_func = lambda fn_result, args, kwargs: failures.inc(1)

    class Api:
        @phanos.profile
        def get(self, fail: bool) -> None:
            if fail:
                raise KeyError("no")

    Api().get(False)
    with pytest.raises(KeyError):
        Api().get(True)
    s = scrape()
    assert value(s, "seed_ph_calls_total", job="app", item="Api", method="Api:get", error_raised="false") == 1
    assert value(s, "seed_ph_calls_total", job="app", item="Api", method="Api:get", error_raised="true") == 1


def test_hooks(fresh):
    phanos.profiler.dict_config({"job": "app"})
    calls = []
    p = phanos.profiler
    p.before_root_func = lambda func, args, kwargs: calls.append(("before_root", func.__name__, args[1:], kwargs, p.current_node.context))
    p.before_func = lambda func, args, kwargs: calls.append(("before", func.__name__, args[1:], kwargs, p.current_node.context))
    p.after_func = lambda fn_result, args, kwargs: calls.append(("after", fn_result, args[1:], kwargs, p.current_node.context))
    p.after_root_func = lambda fn_result, args, kwargs: calls.append(("after_root", fn_result, args[1:], kwargs, p.current_node.context))

    class Api:
        @phanos.profile
        def get(self, n: int, *, scale: int = 1) -> int:
            return self.sub(n) * scale

        @phanos.profile
        def sub(self, n: int) -> int:
            return n + 1

    assert Api().get(1, scale=10) == 20
    assert calls == [
        ("before_root", "get", (1,), {"scale": 10}, "Api:get"),
        ("before", "get", (1,), {"scale": 10}, "Api:get"),
        ("before", "sub", (1,), {}, "Api:get.sub"),
        ("after", 2, (1,), {}, "Api:get.sub"),
        ("after", 20, (1,), {"scale": 10}, "Api:get"),
        ("after_root", 20, (1,), {"scale": 10}, "Api:get"),
    ]
    assert p.current_node is p.tree.root and p.current_node.context == ""
    # the PyPI page's forms: one parameter, or the decorated function's own arguments unpacked
    calls.clear()
    p.before_root_func = None
    p.after_root_func = None
    p.before_func = lambda function: calls.append(("before", function.__name__))
    p.after_func = lambda *args, fn_result=None, **kwargs: calls.append(("after", fn_result, args[1:], kwargs))
    assert Api().get(2, scale=3) == 9
    assert calls == [("before", "get"), ("before", "sub"), ("after", 3, (2,), {}), ("after", 9, (2,), {"scale": 3})]


COMPLETE_EXAMPLE = """
import typing
import promshm.idioms.phanos.tree
from promshm.idioms import phanos


# custom metric example
class CustomMetric(phanos.metrics.Counter):
  def __init__(self, name, job, units, labels):
    super().__init__(name, job, units, labels)
    # custom initialization
    self.count = 0

  def custom_op(self, value: int = 0, label_values: typing.Optional[typing.Dict[str,str]] = None):
    self.count += value
    self.inc(self.count, label_values)

  def helper_method(self):
    pass

  def cleanup(self) -> None:
    super().cleanup()
    self.count = 0


my_metric = CustomMetric(name="name", job="MyJob", units="units", labels=["label_name"])


def before_function(func, args, kwargs):
  # this operation will be recorded
  my_metric.custom_op(2,{"label_name": "label_value"})
  # this won't be recorded
  my_metric.helper_method()


phanos.profiler.before_func = before_function
"""


def test_a_raising_hook_is_logged_not_propagated(fresh, caplog):
    """Documented difference: phanos lets a hook's exception propagate."""
    phanos.profiler.dict_config({"job": "app", "logger": "seed-hooks"})

    def broken(func, args, kwargs):
        raise RuntimeError("hook bug")

    phanos.profiler.before_func = broken

    @phanos.profile
    def f() -> int:
        return 7

    with caplog.at_level(logging.ERROR, logger="seed-hooks"):
        assert f() == 7
    assert [r.getMessage() for r in caplog.records if r.name == "seed-hooks"] == ["profiler hook before_func failed"]
    assert count(scrape(fresh), "test_seed_phanos:f", job="app", item="test_seed_phanos") == 1


def test_readme_complete_example(fresh):
    phanos.profiler.dict_config({"job": "my_app"})
    ns = run(COMPLETE_EXAMPLE)
    assert ns["promshm"].idioms.phanos.tree.curr_node is phanos.tree.curr_node

    class Api:
        @phanos.profile
        def get(self) -> None:
            self.load()

        @phanos.profile
        def load(self) -> None:
            pass

    for _ in range(3):
        Api().get()
    s = scrape()
    lab = {"job": "MyJob", "item": "Api", "label_name": "label_value"}
    # per root call: custom_op(2) before get (count 2), before load (count 4); cleanup resets
    assert value(s, "name_units_total", method="Api:get", **lab) == 6
    assert value(s, "name_units_total", method="Api:get.load", **lab) == 12
    assert ns["my_metric"].count == 0


# --------------------------------------------------------------------------
# The PyPI page


PYPI_DECORATE = """
from promshm.idioms.phanos import phanos_profiler
# some code
@phanos_profiler.profile
def some_method():
   # some code
   return "done"
"""

PYPI_HANDLERS = """
from promshm.idioms.phanos import phanos_profiler
from promshm.idioms.phanos.publisher import LoggerHandler, ImpProfHandler
# some code
class SomeApp(Flask):
   \"\"\"some code\"\"\" 
phanos_profiler.config(logger, should_time_profile, should_resp_size_profile, should_handle_records)
log_handler = LoggerHandler('logger_name', logger_instance, logging_level)
phanos_profiler.addHandler(log_handler)    
   # some code
"""


def test_pypi_page_usage(fresh, caplog):
    assert phanos.phanos_profiler is phanos.profiler
    ns = run(
        PYPI_HANDLERS.replace("   # some code\n", "# some code\n"),
        Flask=type("Flask", (), {}),
        logger=logging.getLogger("seed-page"),
        should_time_profile=True,
        should_resp_size_profile=True,
        should_handle_records=True,
        logger_instance=logging.getLogger("seed-page-records"),
        logging_level=logging.INFO,
    )
    assert ns["ImpProfHandler"] is phanos.ImpProfHandler
    phanos.phanos_profiler.config(logging.getLogger("seed-page"))
    assert phanos.profiler.time_profile and not phanos.profiler.response_size_profile  # 0.2.0's default (page: on)
    ns = run(
        PYPI_HANDLERS.replace("   # some code\n", "# some code\n"),
        Flask=type("Flask", (), {}),
        logger=logging.getLogger("seed-page"),
        should_time_profile=True,
        should_resp_size_profile=True,
        should_handle_records=True,
        logger_instance=logging.getLogger("seed-page-records"),
        logging_level=logging.INFO,
    )
    assert phanos.profiler.logger is logging.getLogger("seed-page") and phanos.profiler.response_size_profile
    dec = run(PYPI_DECORATE)
    with caplog.at_level(logging.INFO, logger="seed-page-records"):
        assert dec["some_method"]() == "done"
    # "After root method is executed all measured records are handled by all handlers"
    msgs = [r.getMessage() for r in caplog.records if r.name == "seed-page-records"]
    assert msgs[0].startswith("profiler: time_profiler, method: seed_snippet:some_method, value: ")
    assert msgs[1] == "profiler: response_size, method: seed_snippet:some_method, value: 4.0 B"
    assert count(scrape(fresh), "seed_snippet:some_method", job="", item="seed_snippet") == 1
    phanos.phanos_profiler.deleteHandler("logger_name")
    assert phanos.profiler.handlers == {}


PYPI_STORE_OPERATION = """
def before_function(function):
   # this operation will be recorded
   my_metric.store_operation(
       operation="my_operation",
       method=phanos_profiler.current_node.context,
       value=measured_value,
       label_values={"label_name": "label_value"},
   )
   # this won't be recorded
   my_metric.my_method()
# some code 
phanos_profiler.before_func = before_function
"""


def test_pypi_page_store_operation_and_context(fresh):
    phanos.profiler.dict_config({"job": "app"})

    class MyMetric(phanos.metrics.Histogram):
        def __init__(self) -> None:
            super().__init__("seed_ph_my", "app", "mS", ["label_name"])
            self.default_operation = "my_operation"
            self.operations = {"my_operation": self.my_operation}

        def my_operation(self, value: float, label_values: Dict[str, str]) -> None:
            self.observe(value * 2, label_values)

        def my_method(self) -> None:
            pass

    my_metric = MyMetric()
    run(PYPI_STORE_OPERATION, my_metric=my_metric, phanos_profiler=phanos.phanos_profiler, measured_value=1.5)

    class Root:
        @phanos.profile
        def root_method(self) -> None:
            self.currently_executed()

        @phanos.profile
        def currently_executed(self) -> None:
            pass

    @phanos.profile
    def plain() -> None:
        pass

    Root().root_method()
    plain()
    s = scrape()
    # "root_class.__name__:root_method.__name__.currently_executed.__name__"; module name for a function
    assert value(s, "seed_ph_my_milliseconds_sum", job="app", item="Root", method="Root:root_method", label_name="label_value") == 3
    assert value(s, "seed_ph_my_milliseconds_sum", job="app", item="Root", method="Root:root_method.currently_executed", label_name="label_value") == 3
    assert value(s, "seed_ph_my_milliseconds_count", job="app", item="test_seed_phanos", method="test_seed_phanos:plain", label_name="label_value") == 1
    my_metric.store_operation(value=1.0, label_values={"label_name": "label_value"}, method="Other:ctx")  # default operation
    assert value(scrape(), "seed_ph_my_milliseconds_sum", job="app", item="Other", method="Other:ctx", label_name="label_value") == 2


# --------------------------------------------------------------------------
# Error cases: phanos' exceptions, messages naming the metric


def test_error_cases(fresh):
    with pytest.raises(KeyError, match="Job argument not found"):
        phanos.profiler.dict_config({"time_profile": True})
    with pytest.raises(KeyError, match="handler nope do not exist"):
        phanos.profiler.delete_handler("nope")
    with pytest.raises(KeyError, match="metric seed_ph_nope do not exist"):
        phanos.profiler.delete_metric("seed_ph_nope")
    c = phanos.metrics.Counter("seed_ph_err", "app", "x", ["a"])
    with pytest.raises(ValueError, match="seed_ph_err.*unknown or missing label"):
        c.inc(1, {"b": "1"})
    with pytest.raises(ValueError, match="seed_ph_err.*unknown or missing label"):
        c.inc(1)
    with pytest.raises(TypeError, match="seed_ph_err"):
        c.inc("1", {"a": "1"})
    with pytest.raises(TypeError, match="seed_ph_err"):
        c.inc(-1, {"a": "1"})
    with pytest.raises(ValueError, match="seed_ph_err_state.*invalid state 'z'"):
        phanos.metrics.Enum("seed_ph_err_state", "app", ["a"]).state("z")
    with pytest.raises(ValueError, match="seed_ph_err_info.*dictionary"):
        phanos.metrics.Info("seed_ph_err_info", "app").info_("v")
    with pytest.raises(ValueError, match="seed_ph_err.*unknown operation 'nope'"):
        c.store_operation(operation="nope", value=1.0, label_values={"a": "1"})
    with pytest.raises(ValueError, match="'bad-name'"):
        phanos.metrics.Counter("bad-name", "app", "x")
    # nothing was written by the refused operations
    assert value(scrape(), "seed_ph_err_x_total", job="app", item="", method="", a="1") is None


def test_changing_the_labels_of_a_registered_histogram_is_a_clear_error(fresh, caplog):
    phanos.profiler.dict_config({"job": "app", "error_raised_label": False})

    @phanos.profile
    def f() -> int:
        return 1

    f()
    phanos.profiler.error_raised_label = True  # another shape for time_profiler in the same registry
    with caplog.at_level(logging.ERROR):
        f()
        f()
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and errors[0].startswith("profiler metric time_profiler (labels ['job', 'item', 'method', 'error_raised']) is off")
    assert count(scrape(fresh), "test_seed_phanos:f", job="app", item="test_seed_phanos") == 1


def test_bindings_readme_phanos_section_runs(fresh, capsys):
    """The phanos example of bindings/python/README.md runs as written."""
    from conftest import REPO

    text = (REPO / "bindings" / "python" / "README.md").read_text()
    section = text[text.index("**phanos** — `promshm.idioms.phanos`") :]
    snippet = section[section.index("```python") + len("```python") : section.index("```\n", section.index("```python") + 9)]
    ns = run(snippet)
    ns["RootClass"]().root_method()
    out = capsys.readouterr().out.splitlines()
    assert [line.split(", value: ")[0] for line in out] == [
        "profiler: time_profiler, method: RootClass:root_method.inner_method",
        "profiler: time_profiler, method: RootClass:root_method",
        "profiler: response_size, method: RootClass:root_method",
    ]
    s = scrape(fresh)
    base = {"job": "my_app", "item": "RootClass", "error_raised": "false"}
    assert count(s, "RootClass:root_method", **base) == 1
    assert count(s, "RootClass:root_method.inner_method", **base) == 1
    assert count(s, "RootClass:root_method", "response_size_bytes_count", **base) == 1


def test_profiling_module_is_the_same_profiler():
    """promshm.profiling is the implementation; the idiom only changes the
    documented defaults (profiles once configured, no error_raised label)."""
    assert issubclass(phanos.Profiler, profiling.Profiler)
    assert phanos.handlers.StreamHandler is profiling.StreamHandler
    assert profiling.Profiler().error_raised_label is True and phanos.Profiler().error_raised_label is False
    assert profiling.import_external("phanos.handlers.LoggerHandler") is profiling.LoggerHandler


# --------------------------------------------------------------------------
# Multi-process: 4 forked workers, one page, exact totals


_WORKERS = r'''
import os, sys
import promshm
AREA, N, FLUSH = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "1"
promshm.configure(AREA)

COMPLETE_EXAMPLE

phanos.profiler.dict_config({
    "job": "my_app", "time_profile": True, "request_size_profile": True,
    "error_raised_label": True, "flush_after_root": FLUSH,
    "handlers": {"imp": {"class": "phanos.handlers.ImpProfHandler", "handler_name": "imp"}},
})
served = phanos.metrics.Gauge("workers_served", "my_app", "requests")
phanos.profiler.after_root_func = lambda fn_result, args, kwargs: served.inc(1)

class Api:
    @phanos.profile
    def get(self, i):
        if i % 10 == 0:
            try:
                self.fail()
            except KeyError:
                pass
        return self.load(i)

    @phanos.profile
    def load(self, i):
        return b"x" * 100

    @phanos.profile
    def fail(self):
        raise KeyError("no")

pids = []
for w in range(4):
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            api = Api()
            for i in range(N):
                assert api.get(i) == b"x" * 100
            code = 0
        finally:
            os._exit(code)  # no flush, no exit handlers
    pids.append(pid)
for pid in pids:
    assert os.waitpid(pid, 0)[1] == 0
sys.stdout.write(promshm.Area.open(AREA, read_only=True).render().decode())
'''


def _workers(tmp_path, n: int, flush: bool, **env: str) -> str:
    script = _WORKERS.replace("COMPLETE_EXAMPLE", COMPLETE_EXAMPLE)
    proc = subprocess.run(
        python() + ["-c", script, str(tmp_path / "phanos.area"), str(n), "1" if flush else "0"],
        env=child_env(**env),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def test_four_workers_exact_totals(tmp_path):
    n = 200
    text = _workers(tmp_path, n, flush=True)
    s = parse_text(text)
    base = {"job": "my_app", "item": "Api"}
    assert count(s, "Api:get", error_raised="false", **base) == 4 * n
    assert count(s, "Api:get.load", error_raised="false", **base) == 4 * n
    assert count(s, "Api:get.fail", error_raised="true", **base) == 4 * n // 10
    assert count(s, "Api:get", "response_size_bytes_sum", error_raised="false", **base) == 4 * n * 100
    assert count(s, "Api:get", "response_size_bytes_count", error_raised="false", **base) == 4 * n
    # the complete example's counter: before get count 2, before fail 4, before load 4 (6 after fail)
    lab = {"job": "MyJob", "item": "Api", "label_name": "label_value"}
    assert value(s, "name_units_total", method="Api:get", **lab) == 4 * n * 2
    assert value(s, "name_units_total", method="Api:get.fail", **lab) == 4 * (n // 10) * 4
    assert value(s, "name_units_total", method="Api:get.load", **lab) == 4 * ((n - n // 10) * 4 + (n // 10) * 6)
    assert value(s, "workers_served_requests", job="my_app", item="Api", method="Api:get") == 4 * n
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed (scripts/setup.sh installs it)")
    proc = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_without_flush_after_root_os_exit_loses_buffered_updates(tmp_path):
    """The documented guarantee depends on ``flush_after_root``: without it
    (and with no timer), workers leaving with ``os._exit()`` lose their
    buffered counter/histogram updates; gauges are written at once."""
    n = 50
    s = parse_text(_workers(tmp_path, n, flush=False, PROMSHM_FLUSH_INTERVAL="0"))
    base = {"job": "my_app", "item": "Api"}
    assert (count(s, "Api:get", error_raised="false", **base) or 0) == 0
    assert (value(s, "name_units_total", method="Api:get", job="MyJob", item="Api", label_name="label_value") or 0) == 0
    assert value(s, "workers_served_requests", job="my_app", item="Api", method="Api:get") == 4 * n

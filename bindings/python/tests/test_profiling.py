"""phanos-style @profile: execution time (and response size) by call context."""

from __future__ import annotations

import asyncio
import io
import logging
import sys

import pytest

import promshm
from promshm import profiling

from conftest import parse_text


@pytest.fixture
def prof(registry):
    p = profiling.Profiler()
    p.config(job="test_app", registry=registry, response_size_profile=True)
    return p


def samples(registry):
    return parse_text(promshm.generate_latest(registry).decode())


def _count(s, name, **labels):
    return s.get((name, frozenset(labels.items())))


def test_nested_contexts_and_error_label(prof, registry):
    class RootClass:
        @prof.profile
        def root_method(self) -> bytes:
            self.inner_method()
            return b"x" * 100

        @prof.profile
        def inner_method(self) -> None:
            self.deepest()

        @prof.profile
        def deepest(self) -> None:
            pass

        @prof.profile
        def failing(self) -> None:
            raise KeyError("no")

    obj = RootClass()
    assert obj.root_method() == b"x" * 100
    obj.root_method()
    with pytest.raises(KeyError):
        obj.failing()
    s = samples(registry)
    base = {"job": "test_app", "item": "RootClass", "error_raised": "false"}
    assert _count(s, "time_profiler_milliseconds_count", method="RootClass:root_method", **base) == 2
    assert _count(s, "time_profiler_milliseconds_count", method="RootClass:root_method.inner_method", **base) == 2
    assert _count(s, "time_profiler_milliseconds_count", method="RootClass:root_method.inner_method.deepest", **base) == 2
    err = dict(base, error_raised="true")
    assert _count(s, "time_profiler_milliseconds_count", method="RootClass:failing", **err) == 1
    # response size of the root call only: 100 bytes, twice
    assert _count(s, "response_size_bytes_count", method="RootClass:root_method", **base) == 2
    assert _count(s, "response_size_bytes_sum", method="RootClass:root_method", **base) == 200
    assert _count(s, "response_size_bytes_count", method="RootClass:root_method.inner_method", **base) is None


def test_plain_functions_use_the_module_name(prof, registry):
    @prof.profile
    def helper() -> int:
        return 1

    helper()
    s = samples(registry)
    methods = {dict(k[1]).get("method") for k in s if k[0] == "time_profiler_milliseconds_count"}
    assert methods == {"test_profiling:helper"}


def test_static_and_class_methods(prof, registry):
    class Api:
        @staticmethod
        @prof.profile
        def s() -> None:
            pass

        @classmethod
        @prof.profile
        def c(cls) -> None:
            pass

    Api.s()
    Api.c()
    s = samples(registry)
    methods = {dict(k[1]).get("method") for k in s if k[0] == "time_profiler_milliseconds_count"}
    assert methods == {"Api:s", "Api:c"}


def test_async_contexts_do_not_mix(prof, registry):
    class Svc:
        @prof.profile
        async def handler(self, n: int) -> int:
            await asyncio.sleep(0.001 * n)
            return await self.step(n)

        @prof.profile
        async def step(self, n: int) -> int:
            await asyncio.sleep(0.001)
            return n

    async def main() -> None:
        await asyncio.gather(*(Svc().handler(i) for i in range(5)))

    asyncio.run(main())
    s = samples(registry)
    base = {"job": "test_app", "item": "Svc", "error_raised": "false"}
    assert _count(s, "time_profiler_milliseconds_count", method="Svc:handler", **base) == 5
    assert _count(s, "time_profiler_milliseconds_count", method="Svc:handler.step", **base) == 5


def test_time_is_in_milliseconds(prof, registry):
    import time

    @prof.profile
    def slow() -> None:
        time.sleep(0.02)

    slow()
    s = samples(registry)
    total = [v for (n, _), v in s.items() if n == "time_profiler_milliseconds_sum"]
    assert 15 < total[0] < 2000


def test_dict_config_with_handlers(registry):
    p = profiling.Profiler()
    out = io.StringIO()
    sys.modules[__name__].OUT = out  # type: ignore[attr-defined]
    logging.getLogger("prof-test").setLevel(logging.DEBUG)
    records = []

    class Capture(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record.getMessage())

    logging.getLogger("prof-test").addHandler(Capture())
    p.dict_config(
        {
            "job": "my_app",
            "logger": "my_app_debug_logger",
            "time_profile": True,
            "response_size_profile": False,
            "handle_records": True,
            "registry": registry,
            "handlers": {
                "stdout_handler_ref": {
                    "class": "phanos.handlers.StreamHandler",
                    "handler_name": "stdout_handler",
                    "output": f"ext://{__name__}.OUT",
                },
                "log": {"class": "promshm.profiling.NamedLoggerHandler", "handler_name": "log",
                        "logger_name": "prof-test", "level": "info"},
            },
        }
    )
    assert set(p.handlers) == {"stdout_handler", "log"}

    class A:
        @p.profile
        def run(self) -> None:
            self.sub()

        @p.profile
        def sub(self) -> None:
            pass

    A().run()
    text = out.getvalue()
    assert "A:run.sub" in text and "A:run" in text and "my_app" in text
    assert len(records) == 2
    p.delete_handler("log")
    with pytest.raises(KeyError):
        p.delete_handler("log")
    with pytest.raises(KeyError):
        p.dict_config({"time_profile": True})  # job is required, as in phanos


def test_hooks_and_disabling(registry):
    p = profiling.Profiler()
    p.config(job="j", registry=registry)
    calls = []
    p.before_root_func = lambda func, args, kwargs: calls.append(("before_root", func.__name__))
    p.before_func = lambda func, args, kwargs: calls.append(("before", func.__name__))
    p.after_func = lambda result, args, kwargs: calls.append(("after", result))
    p.after_root_func = lambda result, args, kwargs: calls.append(("after_root", result))

    @p.profile
    def outer() -> int:
        return inner() + 1

    contexts = []

    @p.profile
    def inner() -> int:
        contexts.append(profiling.current_context())
        return 1

    assert outer() == 2
    assert contexts == ["test_profiling:outer.inner"]
    assert calls == [("before_root", "outer"), ("before", "outer"), ("before", "inner"), ("after", 1), ("after", 2), ("after_root", 2)]
    p.handle_records = False
    calls.clear()
    assert outer() == 2 and calls == []
    p.delete_metric(profiling.TIME_PROFILER)
    p.handle_records = True
    outer()


def test_module_level_profile_uses_the_default_registry():
    class Module:
        @promshm.profile
        def go(self) -> str:
            return "ok"

    assert Module().go() == "ok"
    text = promshm.generate_latest().decode()
    assert 'method="Module:go"' in text


def test_configuring_again_reuses_the_registered_histograms(registry):
    p = profiling.Profiler()
    p.config(job="j", registry=registry)

    @p.profile
    def work() -> int:
        return 1

    work()
    p.config(job="j", registry=registry)  # again: same histogram, no duplicate
    profiling.Profiler().config(job="j", registry=registry)
    work()
    s = samples(registry)
    assert sum(v for (name, _labels), v in s.items() if name.endswith("milliseconds_count")) == 2


def test_phanos_options_error_raised_label_false_and_request_size_profile(registry):
    """Issue 11: error_raised_label=False drops the label; the README dict's
    request_size_profile key makes the size histogram."""
    p = profiling.Profiler()
    p.dict_config({"job": "j", "registry": registry, "request_size_profile": True, "error_raised_label": False})

    @p.profile
    def body() -> bytes:
        return b"abc"

    body()
    s = samples(registry)
    labels = {"job": "j", "item": "test_profiling", "method": "test_profiling:body"}
    assert _count(s, "time_profiler_milliseconds_count", **labels) == 1
    assert _count(s, "response_size_bytes_sum", **labels) == 3


def test_phanos_config_takes_the_logger_first(registry):
    """Issue 11: phanos' Profiler.config(logger, ...) — the logger is not the job."""
    log = logging.getLogger("prof-config")
    p = profiling.Profiler()
    p.config(log, "job_name", True, True, True, False, registry=registry)
    assert p.logger is log and p.job == "job_name" and p.response_size_profile and not p.error_raised_label
    p.config(log, True, False, True, True, registry=registry)  # the README's form: no job
    assert p.job == "" and p.time_profile and not p.response_size_profile and p.error_raised_label
    p.config(logger=log, job="kw", request_size_profile=True, error_raised_label=True, registry=registry)
    assert (p.job, p.response_size_profile, p.error_raised_label) == ("kw", True, True)

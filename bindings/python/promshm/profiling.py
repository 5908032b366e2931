"""phanos-style profiling: ``@profile`` records the execution time (and
optionally the response size) of decorated functions in promshm histograms,
labelled by the *call context* and whether an error was raised.

::

    import promshm.profiling as profiling

    profiling.dict_config({
        "job": "my_app",
        "time_profile": True,
        "response_size_profile": True,
        "handlers": {
            "stdout": {"class": "promshm.profiling.StreamHandler",
                       "handler_name": "stdout", "output": "ext://sys.stdout"},
        },
    })

    class Api:
        @profiling.profile
        def get(self):
            return self.load()

        @profiling.profile
        def load(self):
            ...

Calling ``Api().get()`` observes two samples in the histogram
``time_profiler_milliseconds`` (milliseconds, as phanos): one labelled
``method="Api:get"`` and one ``method="Api:get.load"`` — the context of a
nested profiled call is its caller's context plus its own name, the root's is
``Owner:name`` (the class, or the module for a plain function). Every series
also has ``job``, ``item`` (the root owner) and ``error_raised``
(``"true"``/``"false"``) labels. ``response_size_profile`` adds the histogram
``response_size_bytes`` for root calls. The context is kept in a
``contextvars.ContextVar``, so it follows asyncio tasks and threads correctly.

Configuration keys (``dict_config``, as phanos' README): ``job`` (required),
``logger`` (a logger name for the profiler's own messages),
``time_profile`` (default True), ``response_size_profile`` (default False),
``handle_records`` (default True; False disables profiling), ``handlers``
(named handlers that publish each record: ``class`` is a dotted path, phanos'
``phanos.handlers.StreamHandler`` / ``LoggerHandler`` /
``NamedLoggerHandler`` names are accepted, ``ext://`` values are resolved).
promshm adds: ``registry`` (default: the shared ``REGISTRY``),
``namespace``, ``time_buckets``, ``size_buckets``.

Hooks (as phanos): ``profiler.before_func(func, args, kwargs)``,
``after_func(fn_result, args, kwargs)``, ``before_root_func(func, args,
kwargs)``, ``after_root_func(fn_result, args, kwargs)``; custom metrics can be
labelled with :func:`current_context`.
"""

from __future__ import annotations

import contextvars
import functools
import importlib
import inspect
import logging
import sys
import time
from typing import Any, Callable, Dict, List, Optional, Sequence, TextIO, Tuple, TypeVar, Union, cast

from .metrics import Histogram
from .registry import REGISTRY

__all__ = [
    "Profiler",
    "profiler",
    "profile",
    "config",
    "dict_config",
    "current_context",
    "BaseHandler",
    "StreamHandler",
    "LoggerHandler",
    "NamedLoggerHandler",
    "TIME_PROFILER",
    "RESPONSE_SIZE",
    "DEFAULT_TIME_BUCKETS",
    "DEFAULT_SIZE_BUCKETS",
]

F = TypeVar("F", bound=Callable[..., Any])

TIME_PROFILER = "time_profiler"
RESPONSE_SIZE = "response_size"
#: Milliseconds.
DEFAULT_TIME_BUCKETS = (1.0, 2.5, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0, 10000.0)
#: Bytes.
DEFAULT_SIZE_BUCKETS = (64.0, 256.0, 1024.0, 4096.0, 16384.0, 65536.0, 262144.0, 1048576.0, 4194304.0)
LABELS = ("job", "item", "method", "error_raised")

Record = Dict[str, Any]


class _Frame:
    __slots__ = ("context", "item", "records")

    def __init__(self, context: str, item: str, records: List[Record]) -> None:
        self.context = context
        self.item = item
        self.records = records


_current: "contextvars.ContextVar[Optional[_Frame]]" = contextvars.ContextVar("promshm_profile", default=None)


def current_context() -> str:
    """The call context of the innermost running profiled function ('' outside)."""
    f = _current.get()
    return f.context if f is not None else ""


def _owner(func: Callable[..., Any]) -> str:
    qual = getattr(func, "__qualname__", "") or ""
    parts = qual.split(".<locals>.")[-1].split(".")
    if len(parts) >= 2:
        return parts[-2]
    module = getattr(func, "__module__", "") or ""
    return module.rsplit(".", 1)[-1]


def _size_of(value: Any) -> float:
    if isinstance(value, (bytes, bytearray, memoryview)):
        return float(len(value))
    if isinstance(value, str):
        return float(len(value.encode("utf-8", "surrogatepass")))
    if isinstance(value, (list, tuple)) and all(isinstance(v, (bytes, bytearray)) for v in value):
        return float(sum(len(v) for v in value))  # a WSGI body
    return float(sys.getsizeof(value))


# --------------------------------------------------------------------------
# Handlers: publish records (besides the histograms).


class BaseHandler:
    """A named publisher of profiling records."""

    def __init__(self, handler_name: str) -> None:
        self.handler_name = handler_name

    def handle(self, records: List[Record], metric_name: str) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    @staticmethod
    def format(record: Record) -> str:
        labels = ", ".join(f"{k}={v}" for k, v in record["labels"].items())
        return (
            f"profiler: {record['job']}, method: {record['method']}, value: {record['value']:.3f} "
            f"{record['units']}, labels: {labels}"
        )


class StreamHandler(BaseHandler):
    """Write one line per record to ``output`` (default ``sys.stdout``)."""

    def __init__(self, handler_name: str, output: Optional[TextIO] = None) -> None:
        super().__init__(handler_name)
        self.output = output

    def handle(self, records: List[Record], metric_name: str) -> None:
        out = self.output or sys.stdout
        for r in records:
            out.write(self.format(r) + "\n")
        out.flush()


class LoggerHandler(BaseHandler):
    """Log one message per record with ``logger`` at ``level``."""

    def __init__(self, handler_name: str, logger: Optional[logging.Logger] = None, level: int = logging.DEBUG) -> None:
        super().__init__(handler_name)
        self.logger = logger or logging.getLogger("promshm.profiling")
        self.level = level

    def handle(self, records: List[Record], metric_name: str) -> None:
        for r in records:
            self.logger.log(self.level, self.format(r))


class NamedLoggerHandler(LoggerHandler):
    """A :class:`LoggerHandler` whose logger is ``logging.getLogger(logger_name)``."""

    def __init__(self, handler_name: str, logger_name: str, level: int = logging.DEBUG) -> None:
        super().__init__(handler_name, logging.getLogger(logger_name), level)


_HANDLER_ALIASES = {
    "phanos.handlers.StreamHandler": StreamHandler,
    "phanos.handlers.LoggerHandler": LoggerHandler,
    "phanos.handlers.NamedLoggerHandler": NamedLoggerHandler,
}


def _resolve(value: Any) -> Any:
    if isinstance(value, str) and value.startswith("ext://"):
        return _import(value[len("ext://") :])
    return value


def _import(dotted: str) -> Any:
    if dotted in _HANDLER_ALIASES:
        return _HANDLER_ALIASES[dotted]
    parts = dotted.split(".")
    for i in range(len(parts) - 1, 0, -1):
        try:
            obj: Any = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        for attr in parts[i:]:
            obj = getattr(obj, attr)
        return obj
    return importlib.import_module(dotted)


def create_handlers(settings: Dict[str, Dict[str, Any]]) -> Dict[str, BaseHandler]:
    """Handlers from a ``handlers`` configuration dict (phanos' format)."""
    out = {}
    for ref, conf in settings.items():
        conf = dict(conf)
        try:
            cls = _import(conf.pop("class"))
        except KeyError:
            raise KeyError(f"handler {ref!r}: no 'class'") from None
        if "level" in conf and isinstance(conf["level"], str):
            conf["level"] = logging.getLevelName(conf["level"].upper())
        kwargs = {k: _resolve(v) for k, v in conf.items()}
        kwargs.setdefault("handler_name", ref)
        out[ref] = cls(**kwargs)
    return out


# --------------------------------------------------------------------------


class Profiler:
    """Records execution time (and response size) of ``@profile``'d calls."""

    def __init__(self) -> None:
        self.job = ""
        self.logger = logging.getLogger("promshm.profiling")
        self.time_profile = True
        self.response_size_profile = False
        self.handle_records = True
        self.handlers: Dict[str, BaseHandler] = {}
        self.metrics: Dict[str, Any] = {}
        self.registry: Any = REGISTRY
        self.namespace = ""
        self.time_buckets: Sequence[float] = DEFAULT_TIME_BUCKETS
        self.size_buckets: Sequence[float] = DEFAULT_SIZE_BUCKETS
        self.before_func: Optional[Callable[..., Any]] = None
        self.after_func: Optional[Callable[..., Any]] = None
        self.before_root_func: Optional[Callable[..., Any]] = None
        self.after_root_func: Optional[Callable[..., Any]] = None
        self._time: Optional[Histogram] = None
        self._size: Optional[Histogram] = None
        self._series: Dict[Tuple[Any, ...], Any] = {}

    # -- configuration
    def config(
        self,
        job: str = "",
        logger: Optional[logging.Logger] = None,
        time_profile: bool = True,
        response_size_profile: bool = False,
        handle_records: bool = True,
        *,
        registry: Any = None,
        namespace: str = "",
        time_buckets: Optional[Sequence[float]] = None,
        size_buckets: Optional[Sequence[float]] = None,
    ) -> None:
        """Configure in code (phanos' ``Profiler.config``)."""
        self.job = job
        if logger is not None:
            self.logger = logger
        self.time_profile = time_profile
        self.response_size_profile = response_size_profile
        self.handle_records = handle_records
        if registry is not None:
            self.registry = registry
        self.namespace = namespace
        if time_buckets is not None:
            self.time_buckets = tuple(time_buckets)
        if size_buckets is not None:
            self.size_buckets = tuple(size_buckets)
        self._reset_metrics()

    def dict_config(self, settings: Dict[str, Any]) -> None:
        """Configure from a dict (phanos' ``Profiler.dict_config``; see the module docs)."""
        if "job" not in settings:
            raise KeyError("Job argument not found in config dictionary")
        logger = logging.getLogger(settings["logger"]) if settings.get("logger") else None
        self.config(
            job=settings["job"],
            logger=logger,
            time_profile=settings.get("time_profile", True),
            response_size_profile=settings.get("response_size_profile", False),
            handle_records=settings.get("handle_records", True),
            registry=_resolve(settings.get("registry")),
            namespace=settings.get("namespace", ""),
            time_buckets=settings.get("time_buckets"),
            size_buckets=settings.get("size_buckets"),
        )
        self.handlers = {}
        for handler in create_handlers(settings.get("handlers", {})).values():
            self.add_handler(handler)

    def add_handler(self, handler: BaseHandler) -> None:
        self.handlers[handler.handler_name] = handler

    def delete_handler(self, handler_name: str) -> None:
        try:
            del self.handlers[handler_name]
        except KeyError:
            raise KeyError(f"handler {handler_name} do not exist") from None

    def delete_handlers(self) -> None:
        self.handlers.clear()

    def add_metric(self, metric: Any) -> None:
        """Keep a custom metric under its name (updated by the hooks)."""
        self.metrics[getattr(metric, "_name", None) or str(metric)] = metric

    def delete_metric(self, item: str) -> None:
        """Stop a metric: ``TIME_PROFILER``, ``RESPONSE_SIZE`` or a custom one."""
        if item == TIME_PROFILER:
            self.time_profile = False
            self._time = None
        elif item == RESPONSE_SIZE:
            self.response_size_profile = False
            self._size = None
        else:
            try:
                del self.metrics[item]
            except KeyError:
                raise KeyError(f"metric {item} do not exist") from None
        self._series.clear()

    def _reset_metrics(self) -> None:
        self._time = None
        self._size = None
        self._series = {}

    def _histograms(self) -> Tuple[Optional[Histogram], Optional[Histogram]]:
        if self.time_profile and self._time is None:
            self._time = self._histogram(
                TIME_PROFILER, "Execution time of profiled functions, by call context.", "milliseconds", self.time_buckets
            )
        if self.response_size_profile and self._size is None:
            self._size = self._histogram(
                RESPONSE_SIZE, "Size of the value returned by profiled root functions.", "bytes", self.size_buckets
            )
        return (self._time if self.time_profile else None), (self._size if self.response_size_profile else None)

    def _histogram(self, name: str, documentation: str, unit: str, buckets: Sequence[float]) -> Histogram:
        """The profiler's histogram ``name`` in its registry: made, or the one
        made by an earlier configuration (or another profiler) if it has the
        same labels and buckets."""
        from .registry import DuplicateTimeseries

        try:
            return Histogram(name, documentation, LABELS, namespace=self.namespace, unit=unit, registry=self.registry, buckets=buckets)
        except DuplicateTimeseries as e:
            names = getattr(self.registry, "_names", {})
            existing = next((names[n] for n in sorted(e.duplicates) if n in names), None)
            if (
                isinstance(existing, Histogram)
                and existing.labelnames == tuple(LABELS)
                and existing.buckets == Histogram(name, buckets=buckets, registry=None).buckets
            ):
                return existing
            raise

    def _observe(self, which: str, hist: Histogram, item: str, context: str, error: bool, value: float, frame: _Frame) -> None:
        key = (which, item, context, error)
        series = self._series.get(key)
        if series is None:
            series = hist.labels(self.job, item, context, "true" if error else "false")
            self._series[key] = series
        series.observe(value)
        if self.handlers:
            frame.records.append(
                {
                    "item": item,
                    "metric": "histogram",
                    "units": "ms" if which == "time" else "B",
                    "job": self.job,
                    "method": context,
                    "labels": {"error_raised": "true" if error else "false"},
                    "value": value,
                    "name": which,
                }
            )

    # -- the decorator
    def profile(self, func: F) -> F:
        """Profile ``func`` (a function, method or coroutine function). Put it
        closest to the function, under ``@staticmethod``/``@classmethod``."""
        name = getattr(func, "__name__", "call")
        owner = _owner(func)

        def enter(args: Tuple[Any, ...], kwargs: Dict[str, Any]) -> Tuple[Any, ...]:
            parent = _current.get()
            if parent is None:
                frame = _Frame(f"{owner}:{name}", owner, [])
                if self.before_root_func is not None:
                    self.before_root_func(func, args, kwargs)
            else:
                frame = _Frame(f"{parent.context}.{name}", parent.item, parent.records)
            if self.before_func is not None:
                self.before_func(func, args, kwargs)
            token = _current.set(frame)
            return frame, token, parent is None, time.perf_counter()

        def leave(state: Tuple[Any, ...], result: Any, error: bool, args: Tuple[Any, ...], kwargs: Dict[str, Any]) -> None:
            frame, token, is_root, start = state
            elapsed_ms = (time.perf_counter() - start) * 1000.0
            _current.reset(token)
            try:
                t, s = self._histograms()
                if t is not None:
                    self._observe("time", t, frame.item, frame.context, error, elapsed_ms, frame)
                if self.after_func is not None:
                    self.after_func(result, args, kwargs)
                if is_root:
                    if s is not None and not error:
                        self._observe("size", s, frame.item, frame.context, error, _size_of(result), frame)
                    if self.after_root_func is not None:
                        self.after_root_func(result, args, kwargs)
                    if frame.records:
                        for h in list(self.handlers.values()):
                            h.handle(frame.records, TIME_PROFILER)
                        frame.records.clear()
            except Exception:  # profiling must never break the profiled code
                self.logger.exception("promshm profiling failed")

        if inspect.iscoroutinefunction(func):

            @functools.wraps(func)
            async def ainner(*args: Any, **kwargs: Any) -> Any:
                if not self.handle_records:
                    return await func(*args, **kwargs)
                state = enter(args, kwargs)
                try:
                    result = await func(*args, **kwargs)
                except BaseException:
                    leave(state, None, True, args, kwargs)
                    raise
                leave(state, result, False, args, kwargs)
                return result

            return cast(F, ainner)

        @functools.wraps(func)
        def inner(*args: Any, **kwargs: Any) -> Any:
            if not self.handle_records:
                return func(*args, **kwargs)
            state = enter(args, kwargs)
            try:
                result = func(*args, **kwargs)
            except BaseException:
                leave(state, None, True, args, kwargs)
                raise
            leave(state, result, False, args, kwargs)
            return result

        return cast(F, inner)


#: The default profiler.
profiler = Profiler()
profile = profiler.profile
config = profiler.config
dict_config = profiler.dict_config

_ = (Union, List)

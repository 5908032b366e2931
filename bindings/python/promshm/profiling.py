"""phanos-style profiling: ``@profile`` records the execution time (and
optionally the response size) of decorated functions in promshm histograms,
labelled by the *call context* (and, if configured, whether an error was
raised).

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
``time_profiler_milliseconds`` (milliseconds, as phanos; ``time_unit="seconds"``
makes it ``time_profiler_seconds``, Prometheus' base unit): one labelled
``method="Api:get"`` and one ``method="Api:get.load"`` — the context of a
nested profiled call is its caller's context plus its own name, the root's is
``Owner:name`` (the class, or the module for a plain function). Every series
also has ``job`` and ``item`` (the root owner) labels, and, unless
``error_raised_label=False``, ``error_raised`` (``"true"``/``"false"``).
``response_size_profile`` adds the histogram ``response_size_bytes`` for root
calls that return (bytes, str and WSGI bodies count their length in bytes,
other values ``sys.getsizeof``). The call tree is kept in a
``contextvars.ContextVar`` (:data:`curr_node`), so it follows asyncio tasks
and threads correctly.

Configuration (``Profiler.config`` in code, ``dict_config`` from a dict; the
keys of phanos' README): ``job``, ``logger`` (a logger or a logger name for
the profiler's own messages), ``time_profile`` (default True),
``request_size_profile`` / ``response_size_profile`` (default False),
``handle_records`` (default True; False disables profiling),
``error_raised_label`` (default True here, False in
:mod:`promshm.idioms.phanos` as phanos documents), ``handlers`` (named
handlers that get each root call's records: ``class`` is a dotted path,
``phanos.<module>.<name>`` resolves in :mod:`promshm.idioms.phanos`,
``ext://`` values are resolved). promshm adds: ``registry`` (default: the
shared ``REGISTRY``), ``namespace``, ``time_unit`` (``"milliseconds"``, default
here, or ``"seconds"``), ``time_buckets`` (in milliseconds), ``size_buckets`` and
``flush_after_root`` (default True: the end of every profiled root call
flushes this process's buffered updates into the shared area, so a worker that
leaves with ``os._exit()`` or is killed loses nothing of a root call that has
returned; updates made outside profiled calls reach the area within the flush
interval, at a request end or at exit).

Hooks (as phanos): ``profiler.before_func(func, args, kwargs)``,
``after_func(fn_result, args, kwargs)``, ``before_root_func(func, args,
kwargs)``, ``after_root_func(fn_result, args, kwargs)`` (a hook taking one
parameter gets only the function or the result; one with a keyword-only
``func``/``function``/``fn_result`` is called ``hook(*args, function=...,
**kwargs)``, as phanos' early releases did); they run with the call's
node current, so :func:`current_context` (``profiler.current_node.context``)
is the context of the call. A hook that raises is logged with the profiler's
logger and does not break the profiled code. If ``error_raised_label`` is set
and a record of a root call says ``error_raised="true"``, the root call's
records are logged with the profiler's logger at WARNING even without a
:class:`LoggerHandler`.
"""

from __future__ import annotations

import contextvars
import functools
import importlib
import inspect
import logging
import os
import sys
import threading
import time
from typing import Any, Callable, Dict, List, Optional, Sequence, Set, TextIO, Tuple, TypeVar, cast

from . import _area
from .metrics import Histogram
from .errors import ShapeMismatchError
from .registry import REGISTRY, DuplicateTimeseries

__all__ = [
    "Profiler",
    "profiler",
    "profile",
    "config",
    "dict_config",
    "current_context",
    "curr_node",
    "Context",
    "MethodTreeNode",
    "ContextTree",
    "OutputFormatter",
    "BaseHandler",
    "StreamHandler",
    "LoggerHandler",
    "NamedLoggerHandler",
    "create_handlers",
    "import_external",
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
#: The labels of the profiler's histograms (``error_raised`` if configured).
BASE_LABELS = ("job", "item", "method")
ERROR_LABEL = "error_raised"

Record = Dict[str, Any]
_log = logging.getLogger("promshm.profiling")


# --------------------------------------------------------------------------
# The call tree (phanos' ``phanos.tree``).


class Context:
    """The context of one profiled call: ``value`` is
    ``"Owner:root_method.nested.current"``."""

    __slots__ = ("method", "value")

    def __init__(self, method: Optional[Callable[..., Any]] = None, value: str = "") -> None:
        self.method = method
        self.value = value

    def __str__(self) -> str:
        return self.value

    __repr__ = __str__


class MethodTreeNode:
    """One running profiled call (its own :class:`Context`: ``ctx`` is the
    node, ``ctx.value`` its context). ``parent`` is the calling node (the
    tree's root for a root call, ``None`` for the root); ``root`` is the root
    call's node, whose ``records``, ``metrics`` (custom metrics that recorded)
    and ``error`` (a record says an error was raised) every node of the call
    shares."""

    __slots__ = ("method", "value", "item", "parent", "children", "root", "records", "metrics", "error")

    def __init__(self, method: Optional[Callable[..., Any]] = None, logger: Any = None, *, name: Optional[str] = None) -> None:
        self.method = method
        self.value = name if name is not None else (getattr(method, "__name__", "") if method is not None else "")
        self.item = ""
        self.parent: Optional[MethodTreeNode] = None
        self.children: List[MethodTreeNode] = []
        self.root: Optional[MethodTreeNode] = None
        self.records: Optional[List[Tuple[Any, ...]]] = None
        self.metrics: Optional[Set[Any]] = None
        self.error = False

    @property
    def ctx(self) -> "MethodTreeNode":
        """phanos' ``node.ctx`` (``.value``, ``.method``): the node itself."""
        return self

    @property
    def context(self) -> str:
        """The call context (phanos' ``current_node.context``)."""
        return self.value

    @property
    def is_root(self) -> bool:
        """Whether this is the tree's root (no call)."""
        return self.method is None

    def add_child(self, child: "MethodTreeNode", owner: Optional[str] = None) -> "MethodTreeNode":
        """Make ``child`` a call made from this node; sets its context
        (``owner``: the class or module name of a root call's function)."""
        child.parent = self
        if self.method is None:
            child.item = owner if owner is not None else _owner(child.method)
            child.value = f"{child.item}:{child.value}"
            child.root = child
            child.records = []
            child.metrics = set()
        else:
            child.item = self.item
            child.value = f"{self.value}.{child.value}"
            child.root = self.root
            child.records = self.records
            child.metrics = self.metrics
        self.children.append(child)
        return child

    def remove_child(self, child: "MethodTreeNode") -> None:
        try:
            self.children.remove(child)
        except ValueError:
            pass
        child.parent = None

    def __str__(self) -> str:
        return self.value

    def __repr__(self) -> str:
        return f"<MethodTreeNode {self.value!r}>"


class ContextTree:
    """The tree of running profiled calls of one profiler; ``root`` stands for
    "no call" (context ``""``)."""

    def __init__(self, logger: Any = None) -> None:
        self.root = MethodTreeNode(logger=logger)

    def clear(self) -> None:
        """Forget every running call (their nodes stay valid for themselves)."""
        for child in list(self.root.children):
            self.root.remove_child(child)


#: The innermost running profiled call (phanos' ``phanos.tree.curr_node``).
curr_node: "contextvars.ContextVar[Optional[MethodTreeNode]]" = contextvars.ContextVar("curr_node", default=None)


def current_context() -> str:
    """The call context of the innermost running profiled function ('' outside)."""
    node = curr_node.get()
    return node.value if node is not None else ""


def _owner(func: Any) -> str:
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


def keep_record(node: MethodTreeNode, name: str, metric: str, units: str, job: str, operation: str, value: Any, labels: Dict[str, str], method: str, error: bool) -> None:
    """Keep a record in ``node``'s root call (a tuple; :func:`make_record`
    makes the dict when handlers need it)."""
    if node.records is not None:
        node.records.append((name, metric, units, job, operation, value, labels, method))
        if error and node.root is not None:
            node.root.error = True


def make_record(kept: Tuple[Any, ...]) -> Record:
    """A phanos record (``item``, ``metric``, ``units``, ``value`` as
    ``(operation, value)``, ``job``, ``method``, ``labels``) plus ``name``,
    the metric's name."""
    name, metric, units, job, operation, value, labels, method = kept
    return {
        "item": method.split(":", 1)[0],
        "metric": metric,
        "units": units,
        "value": (operation, value),
        "job": job,
        "method": method,
        "labels": labels,
        "name": name,
    }


# --------------------------------------------------------------------------
# Handlers: publish records (besides the shared area).


class OutputFormatter:
    """Converts a record to phanos' profiling line (``profiler: <metric>,
    method: <context>, value: <value> <units>[, labels: k=v, ...]``), plus
    ``, job: <job>`` when the record has a job."""

    @staticmethod
    def record_to_str(name: str, record: Record) -> str:
        value = record["value"][1] if isinstance(record.get("value"), tuple) else record.get("value")
        line = f"profiler: {name}, method: {record.get('method')}, value: {value} {record.get('units')}"
        labels = record.get("labels")
        if labels:
            line += ", labels: " + ", ".join(f"{k}={v}" for k, v in labels.items())
        if record.get("job"):
            line += f", job: {record['job']}"
        return line


class BaseHandler:
    """A named publisher of profiling records."""

    def __init__(self, handler_name: str) -> None:
        self.handler_name = handler_name
        self.formatter = OutputFormatter()

    def handle(self, records: List[Record], profiler_name: str = "profiler") -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def format(self, record: Record, profiler_name: str = "profiler") -> str:
        return self.formatter.record_to_str(profiler_name, record)


class StreamHandler(BaseHandler):
    """Write one line per record to ``output`` (default: ``sys.stdout`` at the time of writing)."""

    def __init__(self, handler_name: str, output: Optional[TextIO] = None) -> None:
        super().__init__(handler_name)
        self.output = output

    def handle(self, records: List[Record], profiler_name: str = "profiler") -> None:
        out = self.output or sys.stdout
        for r in records:
            out.write(self.format(r, profiler_name) + "\n")
        out.flush()


class _StdoutHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """A logging handler writing to the current ``sys.stdout``."""

    @property  # type: ignore[override]
    def stream(self) -> Any:
        return sys.stdout

    @stream.setter
    def stream(self, _value: Any) -> None:
        pass


def _own_logger() -> logging.Logger:
    """phanos' "own logger" of a LoggerHandler made without one: ``PHANOS``,
    level DEBUG, writing to stdout."""
    logger = logging.getLogger("PHANOS")
    if not any(isinstance(h, _StdoutHandler) for h in logger.handlers):
        logger.addHandler(_StdoutHandler())
        logger.setLevel(logging.DEBUG)
    return logger


class LoggerHandler(BaseHandler):
    """Log one message per record with ``logger`` (default: its own ``PHANOS``
    logger writing to stdout) at ``level`` (default DEBUG)."""

    def __init__(self, handler_name: str, logger: Optional[Any] = None, level: int = logging.DEBUG) -> None:
        super().__init__(handler_name)
        self.logger = logger if logger is not None else _own_logger()
        self.level = level

    def handle(self, records: List[Record], profiler_name: str = "profiler") -> None:
        for r in records:
            self.logger.log(self.level, self.format(r, profiler_name))


class NamedLoggerHandler(LoggerHandler):
    """A :class:`LoggerHandler` whose logger is ``logging.getLogger(logger_name)``."""

    def __init__(self, handler_name: str, logger_name: str, level: int = logging.DEBUG) -> None:
        super().__init__(handler_name, logging.getLogger(logger_name), level)


EXTERNAL_PREFIX = "ext://"


def _resolve(value: Any) -> Any:
    if isinstance(value, str) and value.startswith(EXTERNAL_PREFIX):
        return import_external(value[len(EXTERNAL_PREFIX) :])
    return value


def import_external(dotted: str) -> Any:
    """The object a dotted path names (``"sys.stdout"``); ``phanos.<...>``
    names resolve in :mod:`promshm.idioms.phanos`."""
    if dotted == "phanos" or dotted.startswith("phanos."):
        dotted = "promshm.idioms." + dotted
    parts = dotted.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj: Any = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        try:
            for attr in parts[i:]:
                obj = getattr(obj, attr)
        except AttributeError:
            raise ImportError(f"cannot import {dotted!r}: {'.'.join(parts[:i])} has no {'.'.join(parts[i:])!r}") from None
        return obj
    raise ImportError(f"cannot import {dotted!r}")


def create_handlers(settings: Dict[str, Dict[str, Any]]) -> Dict[str, BaseHandler]:
    """Handlers from a ``handlers`` configuration dict (phanos' format)."""
    out = {}
    for ref, conf in settings.items():
        conf = dict(conf)
        try:
            cls = conf.pop("class")
        except KeyError:
            raise KeyError(f"handler {ref!r}: no 'class'") from None
        if isinstance(cls, str):
            cls = import_external(cls)
        if "level" in conf and isinstance(conf["level"], str):
            conf["level"] = logging.getLevelName(conf["level"].upper())
        kwargs = {k: _resolve(v) for k, v in conf.items()}
        kwargs.setdefault("handler_name", ref)
        out[ref] = cls(**kwargs)
    return out


# --------------------------------------------------------------------------
# Families shared by profilers (and custom metrics) of one registry.


#: Serializes :func:`shared_family`: a metric is claimed in its registry
#: before it is registered, so another thread must not take it half made.
#: Renewed in a forked child (a parent thread may have held it at the fork).
_family_lock = threading.Lock()


def _renew_family_lock() -> None:
    global _family_lock
    _family_lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_renew_family_lock)


def shared_family(cls: type, name: str, documentation: str, labelnames: Sequence[str], registry: Any, **kwargs: Any) -> Any:
    """The metric ``name`` of ``registry``: made, or the one an earlier
    configuration (or another profiler) made, if it has the same class and
    labels (and buckets); another shape raises ``DuplicateTimeseries``.
    Thread-safe (the lazy creation on first use may race)."""
    with _family_lock:
        try:
            return cls(name, documentation, tuple(labelnames), registry=registry, **kwargs)
        except DuplicateTimeseries as e:
            names = getattr(registry, "_names", {})
            existing = next((names[n] for n in sorted(e.duplicates) if n in names), None)
            if type(existing) is cls and existing.labelnames == tuple(labelnames) and _same_buckets(existing, kwargs):
                return existing
            raise


def _same_buckets(existing: Any, kwargs: Dict[str, Any]) -> bool:
    if "buckets" not in kwargs:
        return True
    want = [float(b) for b in kwargs["buckets"]]
    if want and want[-1] != float("inf"):
        want.append(float("inf"))
    return list(existing.buckets) == want


# --------------------------------------------------------------------------


class _Hook:
    """A profiler hook attribute: stores the user's callable and how to call it
    (``(x, args, kwargs)``, or ``(x)`` for a one-parameter hook)."""

    def __set_name__(self, owner: type, name: str) -> None:
        self.attr = "_hook_" + name

    def __get__(self, obj: Any, owner: type) -> Any:
        if obj is None:
            return self
        return getattr(obj, self.attr, (None, None))[0]

    def __set__(self, obj: Any, fn: Optional[Callable[..., Any]]) -> None:
        setattr(obj, self.attr, (fn, None if fn is None else _adapt(fn)))


_HOOK_KEYWORDS = ("func", "function", "fn_result")


def _adapt(fn: Callable[..., Any]) -> Callable[[Any, Any, Any], Any]:
    """How to call a hook: ``fn(x, args, kwargs)`` (phanos 0.2.0), ``fn(x)``
    (one parameter), or ``fn(*args, function=x, **kwargs)`` when the hook
    has a keyword-only ``func``/``function``/``fn_result`` (earlier phanos)."""
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        return fn
    keyword = next((p.name for p in params if p.kind == p.KEYWORD_ONLY and p.name in _HOOK_KEYWORDS), None)
    if keyword is not None:
        return lambda x, args, kwargs: fn(*args, **{keyword: x}, **kwargs)
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    if any(p.kind == p.VAR_POSITIONAL for p in params) or len(positional) >= 3:
        return fn
    if len(positional) == 1:
        return lambda x, args, kwargs: fn(x)
    return fn


#: Milliseconds to the time histogram's unit.
_TIME_SCALE = {"milliseconds": 1.0, "seconds": 0.001}
_POSITIONAL = ("logger", "job", "time_profile", "request_size_profile", "handle_records", "error_raised_label")
#: phanos' README form ``config(logger, time_profile, resp_size_profile, handle_records, error_raised_label)``.
_POSITIONAL_NO_JOB = ("logger", "time_profile", "request_size_profile", "handle_records", "error_raised_label")
_DICT_KEYS = {
    "job", "logger", "time_profile", "request_size_profile", "response_size_profile", "handle_records",
    "error_raised_label", "handlers", "registry", "namespace", "time_unit", "time_buckets", "size_buckets",
    "flush_after_root",
}


class Profiler:
    """Records execution time (and response size) of ``@profile``'d calls."""

    #: ``error_raised_label`` when not configured.
    error_raised_default = True
    #: Whether an unconfigured profiler profiles.
    profiles_unconfigured = True
    #: The unit of the time histogram when not configured.
    time_unit_default = "milliseconds"

    before_func = _Hook()
    after_func = _Hook()
    before_root_func = _Hook()
    after_root_func = _Hook()

    def __init__(self) -> None:
        self.job = ""
        self.logger: Any = _log
        self.time_profile = True
        self.response_size_profile = False
        self.handle_records = self.profiles_unconfigured
        self._error_raised_label = self.error_raised_default
        self.handlers: Dict[str, BaseHandler] = {}
        self.metrics: Dict[str, Any] = {}
        self.registry: Any = REGISTRY
        self.namespace = ""
        self.time_unit = self.time_unit_default
        self.time_buckets: Sequence[float] = DEFAULT_TIME_BUCKETS
        self.size_buckets: Sequence[float] = DEFAULT_SIZE_BUCKETS
        self.flush_after_root = True
        self.tree = ContextTree()
        self.before_func = None
        self.after_func = None
        self.before_root_func = None
        self.after_root_func = None
        self._time: Optional[Histogram] = None
        self._size: Optional[Histogram] = None
        self._series: Dict[Tuple[Any, ...], Any] = {}

    # -- configuration
    def config(self, *args: Any, **kwargs: Any) -> None:
        """Configure in code, as phanos' ``Profiler.config(logger=None, job="",
        time_profile=True, request_size_profile=False, handle_records=True,
        error_raised_label=...)``; also the README's positional form
        ``config(logger, time_profile, resp_size_profile, handle_records,
        error_raised_label)`` (a bool second argument), and the keywords
        ``response_size_profile``, ``registry``, ``namespace``,
        ``time_unit``, ``time_buckets``, ``size_buckets``, ``flush_after_root``. ``logger``
        is a logger or a logger name."""
        names = _POSITIONAL_NO_JOB if len(args) >= 2 and isinstance(args[1], bool) else _POSITIONAL
        if len(args) > len(names):
            raise TypeError(f"config() takes at most {len(names)} positional arguments ({len(args)} given)")
        for n, v in zip(names, args):
            if n in kwargs:
                raise TypeError(f"config() got multiple values for argument {n!r}")
            kwargs[n] = v
        self._configure(**kwargs)

    def _configure(
        self,
        logger: Any = None,
        job: str = "",
        time_profile: bool = True,
        request_size_profile: Optional[bool] = None,
        handle_records: bool = True,
        error_raised_label: Optional[bool] = None,
        *,
        response_size_profile: Optional[bool] = None,
        registry: Any = None,
        namespace: str = "",
        time_unit: Optional[str] = None,
        time_buckets: Optional[Sequence[float]] = None,
        size_buckets: Optional[Sequence[float]] = None,
        flush_after_root: bool = True,
    ) -> None:
        self.job = "" if job is None else str(job)
        if isinstance(logger, str):
            logger = logging.getLogger(logger)
        self.logger = logger if logger is not None else _log
        self.time_profile = bool(time_profile)
        size = request_size_profile if request_size_profile is not None else response_size_profile
        self.response_size_profile = bool(size)
        self.handle_records = bool(handle_records)
        self._error_raised_label = self.error_raised_default if error_raised_label is None else bool(error_raised_label)
        if registry is not None:
            self.registry = registry
        self.namespace = namespace
        time_unit = time_unit or self.time_unit_default
        if time_unit not in _TIME_SCALE:
            raise ValueError(f"{TIME_PROFILER}: time_unit must be one of {sorted(_TIME_SCALE)}, not {time_unit!r}")
        self.time_unit = time_unit
        if time_buckets is not None:
            self.time_buckets = tuple(time_buckets)
        if size_buckets is not None:
            self.size_buckets = tuple(size_buckets)
        self.flush_after_root = bool(flush_after_root)
        self.tree = ContextTree()
        self._reset_metrics()
        self.logger.debug("Profiler configured successfully")

    def dict_config(self, settings: Dict[str, Any]) -> None:
        """Configure from a dict (phanos' ``Profiler.dict_config``; see the module docs)."""
        if "job" not in settings:
            raise KeyError("Job argument not found in config dictionary")
        unknown = sorted(set(settings) - _DICT_KEYS)
        if unknown:
            _log.warning("profiler dict_config: unknown keys %s ignored", unknown)
        size = settings.get("request_size_profile", settings.get("response_size_profile", False))
        self._configure(
            logger=settings.get("logger") or None,
            job=settings["job"],
            time_profile=settings.get("time_profile", True),
            request_size_profile=size,
            handle_records=settings.get("handle_records", True),
            error_raised_label=settings.get("error_raised_label"),
            registry=_resolve(settings.get("registry")),
            namespace=settings.get("namespace", ""),
            time_unit=settings.get("time_unit"),
            time_buckets=settings.get("time_buckets"),
            size_buckets=settings.get("size_buckets"),
            flush_after_root=settings.get("flush_after_root", True),
        )
        for handler in create_handlers(settings.get("handlers", {})).values():
            self.add_handler(handler)

    @property
    def error_raised_label(self) -> bool:
        """Whether series and records have the ``error_raised`` label."""
        return self._error_raised_label

    @error_raised_label.setter
    def error_raised_label(self, value: bool) -> None:
        self._error_raised_label = bool(value)
        self._reset_metrics()

    @property
    def current_node(self) -> MethodTreeNode:
        """The innermost running profiled call (the tree's root outside)."""
        node = curr_node.get()
        return node if node is not None else self.tree.root

    def add_handler(self, handler: BaseHandler) -> None:
        if handler.handler_name in self.handlers:
            self.logger.warning("Handler %s already exist. Overwriting with new handler", handler.handler_name)
        self.handlers[handler.handler_name] = handler

    def delete_handler(self, handler_name: str) -> None:
        try:
            del self.handlers[handler_name]
        except KeyError:
            raise KeyError(f"handler {handler_name} do not exist") from None

    def delete_handlers(self) -> None:
        self.handlers.clear()

    #: The names of phanos' early releases (its PyPI page).
    addHandler = add_handler
    deleteHandler = delete_handler

    def add_metric(self, metric: Any) -> None:
        """Keep a custom metric under its name: its records go to the handlers
        and its ``cleanup()`` runs after each root call."""
        name = getattr(metric, "name", None) or getattr(metric, "_name", None) or str(metric)
        if name in self.metrics:
            self.logger.warning("Metric %s already exist. Overwriting with new metric", name)
        adopt = getattr(metric, "_adopted_by", None)
        if adopt is not None:
            adopt(self)
        self.metrics[name] = metric

    def delete_metric(self, item: str) -> None:
        """Stop a metric: ``TIME_PROFILER``, ``RESPONSE_SIZE`` or a custom one
        (``KeyError`` naming it if there is none)."""
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

    def delete_metrics(self, rm_time_profile: bool = False, rm_resp_size_profile: bool = False) -> None:
        """Delete every custom metric, and the built-in ones if asked."""
        self.metrics.clear()
        if rm_time_profile:
            self.delete_metric(TIME_PROFILER)
        if rm_resp_size_profile:
            self.delete_metric(RESPONSE_SIZE)

    def clear(self) -> None:
        """Clean every custom metric up and forget the running calls."""
        for metric in list(self.metrics.values()):
            metric.cleanup()
        self.tree.clear()

    def _reset_metrics(self) -> None:
        self._time = None
        self._size = None
        self._series = {}

    def _labels(self) -> Tuple[str, ...]:
        return BASE_LABELS + ((ERROR_LABEL,) if self._error_raised_label else ())

    def _histograms(self) -> Tuple[Optional[Histogram], Optional[Histogram]]:
        if self.time_profile and self._time is None:
            self._time = self._histogram(
                TIME_PROFILER,
                "Execution time of profiled functions, by call context.",
                self.time_unit,
                [b * _TIME_SCALE[self.time_unit] for b in self.time_buckets],
            )
            self.time_profile = self._time is not None
        if self.response_size_profile and self._size is None:
            self._size = self._histogram(
                RESPONSE_SIZE, "Size of the value returned by profiled root functions.", "bytes", self.size_buckets
            )
            self.response_size_profile = self._size is not None
        return (self._time if self.time_profile else None), (self._size if self.response_size_profile else None)

    def _histogram(self, name: str, documentation: str, unit: str, buckets: Sequence[float]) -> Optional[Histogram]:
        """The histogram ``name``, or None (logged once, the metric is then
        off) if the registry or the area has it with other labels or buckets
        (e.g. another ``error_raised_label`` in this or another process)."""
        try:
            return cast(
                Histogram,
                shared_family(
                    Histogram, name, documentation, self._labels(), self.registry, namespace=self.namespace, unit=unit, buckets=buckets
                ),
            )
        except (DuplicateTimeseries, ShapeMismatchError) as e:
            self.logger.error("profiler metric %s (labels %s) is off: %s", name, list(self._labels()), e)
            return None

    def _observe(self, which: str, hist: Histogram, node: MethodTreeNode, error: bool, value: float) -> None:
        """Observe ``value`` (milliseconds or bytes, the records' units) in
        ``hist`` (in its unit) and keep the record."""
        key = (which, node.item, node.value, error)
        series = self._series.get(key)
        if series is None:
            values = [self.job, node.item, node.value]
            if self._error_raised_label:
                values.append("true" if error else "false")
            series = hist.labels(*values)
            self._series[key] = series
        series.observe(value * _TIME_SCALE[self.time_unit] if which == "time" else value)
        records = node.records
        if records is not None and (self.handlers or self._error_raised_label):
            labels = {ERROR_LABEL: "true" if error else "false"} if self._error_raised_label else {}
            name, units = (TIME_PROFILER, "mS") if which == "time" else (RESPONSE_SIZE, "B")
            records.append((name, "histogram", units, self.job, "observe", value, labels, node.value))  # see keep_record
            if error and node.root is not None:
                node.root.error = True

    # -- the decorator
    def _enter(self, func: Callable[..., Any], name: str, owner: str, args: Tuple[Any, ...], kwargs: Dict[str, Any]) -> Tuple[Any, ...]:
        parent = curr_node.get()
        if parent is None:
            parent = self.tree.root
        node = parent.add_child(MethodTreeNode(func, name=name), owner)
        token = curr_node.set(node)
        is_root = parent.method is None
        try:
            if is_root and self._hook_before_root_func[1] is not None:
                self._call_hook("before_root_func", func, args, kwargs)
            if self._hook_before_func[1] is not None:
                self._call_hook("before_func", func, args, kwargs)
        except BaseException:
            self._unwind(node, parent, token)
            raise
        return node, parent, token, is_root, time.perf_counter()

    def _call_hook(self, hook: str, x: Any, args: Tuple[Any, ...], kwargs: Dict[str, Any]) -> None:
        call = getattr(self, "_hook_" + hook)[1]
        if call is not None:
            try:
                call(x, args, kwargs)
            except Exception:  # profiling must never break the profiled code
                self.logger.exception("profiler hook %s failed", hook)

    def _unwind(self, node: MethodTreeNode, parent: MethodTreeNode, token: Any) -> None:
        try:
            curr_node.reset(token)
        except ValueError:  # another context (a generator finished elsewhere)
            curr_node.set(None if parent.is_root else parent)
        parent.remove_child(node)

    def _leave(self, state: Tuple[Any, ...], result: Any, error: bool, args: Tuple[Any, ...], kwargs: Dict[str, Any]) -> None:
        node, parent, token, is_root, start = state
        elapsed_ms = (time.perf_counter() - start) * 1000.0
        try:
            t, s = self._histograms()
            if t is not None:
                self._observe("time", t, node, error, elapsed_ms)
            if self._hook_after_func[1] is not None:
                self._call_hook("after_func", result, args, kwargs)
            if is_root:
                if s is not None and not error:
                    self._observe("size", s, node, error, _size_of(result))
                if self._hook_after_root_func[1] is not None:
                    self._call_hook("after_root_func", result, args, kwargs)
        except Exception:  # profiling must never break the profiled code
            self.logger.exception("promshm profiling failed")
        finally:
            self._unwind(node, parent, token)
        if is_root:
            self._end_root(node)

    def _end_root(self, node: MethodTreeNode) -> None:
        """A root call ended: hand its records to the handlers, clean its
        metrics up, log it if an error was raised, flush."""
        try:
            kept = node.records
            log_error = node.error and self._error_raised_label
            if kept and (self.handlers or log_error):
                records = [make_record(k) for k in kept]
                by_name: Dict[str, List[Record]] = {}
                for r in records:
                    by_name.setdefault(r["name"], []).append(r)
                for h in list(self.handlers.values()):
                    for name, recs in by_name.items():
                        h.handle(recs, name)
                if log_error and not any(isinstance(h, LoggerHandler) for h in self.handlers.values()):
                    for r in records:
                        self.logger.warning(OutputFormatter.record_to_str(r["name"], r))
            if node.metrics or self.metrics:
                for metric in set(node.metrics or ()) | set(self.metrics.values()):
                    metric.cleanup()
        except Exception:
            self.logger.exception("promshm profiling: handling records failed")
        finally:
            if node.records is not None:
                node.records.clear()
            if self.flush_after_root:
                _area._flush_quietly()

    def profile(self, func: F) -> F:
        """Profile ``func`` (a function, method or coroutine function). Put it
        closest to the function, under ``@staticmethod``/``@classmethod``."""
        name = getattr(func, "__name__", "") or ""
        owner = _owner(func)
        if inspect.iscoroutinefunction(func):

            @functools.wraps(func)
            async def ainner(*args: Any, **kwargs: Any) -> Any:
                if not self.handle_records:
                    return await func(*args, **kwargs)
                state = self._enter(func, name, owner, args, kwargs)
                try:
                    result = await func(*args, **kwargs)
                except BaseException:
                    self._leave(state, None, True, args, kwargs)
                    raise
                self._leave(state, result, False, args, kwargs)
                return result

            return cast(F, ainner)

        @functools.wraps(func)
        def inner(*args: Any, **kwargs: Any) -> Any:
            if not self.handle_records:
                return func(*args, **kwargs)
            state = self._enter(func, name, owner, args, kwargs)
            try:
                result = func(*args, **kwargs)
            except BaseException:
                self._leave(state, None, True, args, kwargs)
                raise
            self._leave(state, result, False, args, kwargs)
            return result

        return cast(F, inner)


#: The default profiler.
profiler = Profiler()
profile = profiler.profile
config = profiler.config
dict_config = profiler.dict_config


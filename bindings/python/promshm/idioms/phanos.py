"""phanos 0.2.0's API on promshm's shared area: change ``import phanos`` to
``from promshm.idioms import phanos`` and keep the code.

::

    from promshm.idioms import phanos

    phanos.profiler.dict_config({
        "job": "my_app",
        "logger": "my_app_debug_logger",
        "time_profile": True,
        "request_size_profile": True,
        "handle_records": True,
        "error_raised_label": False,
        "handlers": {"stdout_handler_ref": {"class": "phanos.handlers.StreamHandler",
                                            "handler_name": "stdout_handler",
                                            "output": "ext://sys.stdout"}},
    })

    class SomeClass:
        @staticmethod
        @phanos.profile
        def some_method():
            pass

What is here (phanos' names): ``profiler`` (also ``phanos_profiler``) and
``profile``; ``Profiler.config(logger, job, time_profile,
request_size_profile, handle_records, error_raised_label)`` (also the
README's ``config(logger, time_profile, resp_size_profile, handle_records,
error_raised_label)``), ``dict_config``, ``add_handler``/``addHandler``,
``delete_handler``/``deleteHandler``, ``delete_handlers``, ``add_metric``,
``delete_metric``/``delete_metrics``, ``clear``, the four hooks
``before_func``/``after_func``/``before_root_func``/``after_root_func``,
``current_node`` (``.context``, ``.ctx.value``) and ``tree``; the modules
``publisher`` (``TIME_PROFILER``, ``RESPONSE_SIZE``, the handlers),
``handlers``, ``metrics`` (``MetricWrapper``, ``Histogram``, ``Summary``,
``Counter``, ``Info``, ``Gauge``, ``Enum``, ``TimeProfiler``,
``ResponseSize``), ``tree`` (``curr_node``, ``Context``,
``MethodTreeNode``, ``ContextTree``), ``config`` (``create_handlers``,
``import_external``) and ``types`` (``Record``); each is also importable as
``promshm.idioms.phanos.<module>``, and ``"phanos.<module>.<name>"`` in a
dict configuration resolves here. The profiled values are the metrics of
:mod:`promshm.profiling`: the histograms ``time_profiler_seconds`` and
``response_size_bytes``, labelled ``job``, ``item``, ``method`` (the
context) and, with ``error_raised_label``, ``error_raised``.

Custom metrics (``class M(phanos.metrics.Counter)``, ``__init__`` calling
``super().__init__(name, job, units, labels)``, operations calling the
inherited ``inc``/``dec``/``set``/``observe``/``info_``/``state``, or
``store_operation(operation=, method=, value=, label_values=)`` with
``self.operations``/``self.default_operation``) write every operation into
the shared area at once: a promshm metric named ``name`` (plus the unit:
``mS`` → ``_milliseconds``, ``B`` → ``_bytes``, ``s`` → ``_seconds``, a
lower-case word as it is; counters also ``_total``), labelled ``job``,
``item``, ``method`` (the current context, or ``method=``) and the metric's
labels. Operations inside a profiled call are also the root call's records:
after the root call the handlers get them and every metric that recorded gets
``cleanup()``. Errors are phanos': wrong label names ``ValueError``, a value
of the wrong type ``TypeError``, an unknown state ``ValueError``, an unknown
operation ``ValueError``, an unknown metric or handler to delete
``KeyError``, a dict configuration without ``job`` ``KeyError``; each message
names the metric.

Where promshm deliberately differs from phanos 0.2.0 (the tests assert each):

- **Records are published to the shared area, always.** phanos measures only
  when a handler is configured and sends records to its handlers; here every
  measurement is in the shared area (one page, exact totals across workers)
  whether or not handlers exist, and handlers get the records in addition.
- **ImpProfHandler** accepts phanos' RabbitMQ arguments (``host``, ``port``,
  ``user``, ``password``, ``heartbeat``, ``timeout``, ``retry_delay``,
  ``retry``, ``exchange_name``, ``exchange_type``, ``logger``, others) but
  connects to nothing: the records its queue would carry are in the shared
  area and reach Prometheus through promshm's exporter (``generate_latest``,
  ``make_wsgi_app``, the ``promshm`` command). As phanos', it logs a root
  call's records with its logger (DEBUG) when one says an error was raised.
- **When updates are in the area.** phanos sends a root call's records when
  the call ends. Here the end of every profiled root call flushes this
  process's buffered updates (``flush_after_root``, default True): once a root
  call has returned or raised, everything it recorded is in the area, and a
  worker that then leaves with ``os._exit()`` or is killed loses none of it.
  Updates of a root call still running when the process dies are lost, and so
  are counter/histogram updates made outside any profiled call in the last
  flush interval (1 s) before ``os._exit()`` (a normal exit flushes them).
  With ``flush_after_root=False`` root calls are flushed as promshm's other
  metrics (timer, request end, exit).
- **The time histogram is in seconds** (``time_profiler_seconds``, buckets
  1 ms to 10 s), Prometheus' base unit, so that ``promtool check metrics``
  accepts the page; the records handlers get are in ``mS`` as phanos'.
  ``time_unit="milliseconds"`` (config keyword or dict key) exposes
  ``time_profiler_milliseconds`` as :mod:`promshm.profiling` does.
- ``error_raised`` label values are ``"true"``/``"false"`` (phanos' records
  carry ``True``/``False``); the builtin histograms do not record response
  size of a root call that raised.
- Values: phanos rejects an ``int`` where it wants a ``float`` (its own README
  example ``custom_op(2, ...)`` raises ``TypeError``); here any real number
  is accepted, other types raise ``TypeError``.
- Response size is the length in bytes of ``bytes``/``str``/WSGI bodies
  (phanos: ``sys.getsizeof``, which adds the object header); other values
  ``sys.getsizeof`` as phanos.
- Gauges combine across processes as a sum of every process's value (promshm
  ``multiprocess_mode="sum"``; pass ``multiprocess_mode=`` to choose).
- A hook that raises is logged with the profiler's logger and does not break
  the profiled call (phanos lets it propagate); a custom metric's operation
  called directly raises as phanos'.
- The records of a root call's errors are logged by the profiler's logger at
  WARNING when ``error_raised_label`` is set and no ``LoggerHandler`` is
  configured (phanos: "profiling will be logged even if no LoggerHandler
  exists").
- Defaults follow the 0.2.0 README where the later PyPI page differs: the
  response size profiler is off unless configured (the page: "Default is
  turned on").
- Threads: the call tree is a ``contextvars`` variable, so threads (and
  asyncio tasks) each have their own context (phanos: "unspecified").
"""

from __future__ import annotations

import contextvars
import logging
import numbers
import re
import sys
import types as _types
import typing
from typing import Any, Callable, Dict, List, Optional

from .. import profiling as _p
from ..metrics import Counter as _Counter
from ..metrics import Enum as _Enum
from ..metrics import Gauge as _Gauge
from ..metrics import Histogram as _Histogram
from ..metrics import Info as _Info
from ..metrics import Summary as _Summary

__all__ = [
    "profiler",
    "phanos_profiler",
    "profile",
    "Profiler",
    "ImpProfHandler",
    "MethodTreeNode",
    "publisher",
    "handlers",
    "metrics",
    "tree",
    "config",
    "types",
]

TIME_PROFILER = _p.TIME_PROFILER
RESPONSE_SIZE = _p.RESPONSE_SIZE
LoggerLike = typing.Union[logging.Logger, logging.LoggerAdapter]
Record = _p.Record


class Profiler(_p.Profiler):
    """phanos' profiler: profiles once configured (``config`` or
    ``dict_config``); ``error_raised_label`` defaults to False."""

    error_raised_default = False
    profiles_unconfigured = False
    time_unit_default = "seconds"


class ImpProfHandler(_p.BaseHandler):
    """phanos' RabbitMQ handler, accepted with its arguments; connects to
    nothing: the records are in the shared area and promshm's exporter
    publishes them (see the module docs). Logs a root call's records with
    ``logger`` (DEBUG) when one of them says an error was raised."""

    def __init__(
        self,
        handler_name: str,
        host: str = "127.0.0.1",
        port: int = 5672,
        user: Optional[str] = None,
        password: Optional[str] = None,
        heartbeat: int = 47,
        timeout: float = 23,
        retry_delay: float = 0.137,
        retry: int = 3,
        exchange_name: str = "profiling",
        exchange_type: str = "fanout",
        logger: Optional[LoggerLike] = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(handler_name)
        self.connection_params = dict(
            host=host, port=port, user=user, heartbeat=heartbeat, timeout=timeout, retry_delay=retry_delay,
            retry=retry, exchange_name=exchange_name, exchange_type=exchange_type, **kwargs,
        )
        self.logger = logger or logging.getLogger("promshm.idioms.phanos")
        self.logger.info("ImpProfHandler %s: records go to the promshm shared area (no RabbitMQ connection)", handler_name)

    def handle(self, records: List[Record], profiler_name: str = "profiler") -> None:
        if any((r.get("labels") or {}).get(_p.ERROR_LABEL) in ("true", True) for r in records):
            for r in records:
                self.logger.debug(self.format(r, profiler_name))


# --------------------------------------------------------------------------
# Metrics (phanos.metrics).

#: The context ``store_operation(method=...)`` records under.
_method_override: "contextvars.ContextVar[Optional[str]]" = contextvars.ContextVar("phanos_method", default=None)
_UNITS = {"mS": "milliseconds", "ms": "milliseconds", "s": "seconds", "B": "bytes"}
_UNIT_WORD = re.compile(r"^[a-z][a-z0-9_]*$")
_OWN_LABELS = ("job", "item", "method")


def _unit_suffix(units: Optional[str]) -> str:
    if not units:
        return ""
    if units in _UNITS:
        return _UNITS[units]
    return units if _UNIT_WORD.match(units) else ""


class MetricWrapper:
    """Base of phanos' metric classes: ``MetricWrapper(name, job, units,
    labels=None, logger=None)``; promshm adds the keywords ``registry``
    (default: the shared ``REGISTRY``) and ``documentation``.

    Each operation is written into the shared area at once; inside a profiled
    call it is also a record of the root call (``values``, ``method``,
    ``label_values``, ``item`` keep them until :meth:`cleanup`)."""

    metric = ""
    _kind: Any = None
    _has_unit = True

    def __init__(
        self,
        name: str,
        job: str,
        units: Optional[str] = None,
        labels: Optional[typing.Iterable[str]] = None,
        logger: Optional[LoggerLike] = None,
        *,
        registry: Any = None,
        documentation: Optional[str] = None,
        **options: Any,
    ) -> None:
        from ..validation import valid_label_name, valid_metric_name

        if not isinstance(name, str) or not valid_metric_name(name):
            raise ValueError(f"metric {name!r}: invalid metric name")
        self.name = name
        self.job = job
        self.units = units or ""
        self.label_names: List[str] = list(dict.fromkeys(labels or ()))
        bad = [n for n in self.label_names if n in _OWN_LABELS or not valid_label_name(n)]
        if bad:
            raise ValueError(f"metric {name}: label names {bad} are invalid or the profiler's own {list(_OWN_LABELS)}")
        self.item: List[str] = []
        self.method: List[str] = []
        self.values: List[Any] = []
        self.label_values: List[Dict[str, Any]] = []
        self.operations: Dict[str, Callable[..., Any]] = {}
        self.default_operation = ""
        self.logger = logger or logging.getLogger("promshm.idioms.phanos")
        self.registry = registry
        self.documentation = documentation or f"phanos {self.metric or 'metric'} {name}" + (f" ({units})" if units else "")
        self._options = options
        self._family: Any = None
        self._series: Dict[Any, Any] = {}

    # -- phanos' API
    def to_records(self) -> List[Record]:
        """The kept operations as phanos records."""
        if not len(self.method) == len(self.values) == len(self.label_values):
            raise RuntimeError(f"metric {self.name}: {len(self.method)} methods, {len(self.values)} values, {len(self.label_values)} labels")
        return [
            {"item": m.split(":")[0], "metric": self.metric, "units": self.units, "job": self.job, "method": m, "labels": lv, "value": v}
            for m, v, lv in zip(self.method, self.values, self.label_values)
        ]

    def check_labels(self, labels: typing.List[str]) -> bool:
        """Whether ``labels`` are exactly the metric's label names."""
        return sorted(labels) == sorted(self.label_names)

    def cleanup(self) -> None:
        """Forget the kept operations (called after each root call)."""
        self.values.clear()
        self.label_values.clear()
        self.method.clear()
        self.item.clear()

    def store_operation(
        self,
        operation: Optional[str] = None,
        method: Optional[str] = None,
        value: Any = None,
        label_values: Optional[Dict[str, str]] = None,
        *args: Any,
        **kwargs: Any,
    ) -> None:
        """Run ``operation`` (default ``self.default_operation``) from
        ``self.operations`` (or the metric's method of that name) with
        ``value`` and ``label_values``, recorded under the context ``method``
        (``profiler.current_node.context``; default: the current context)."""
        op = operation or self.default_operation
        func = self.operations.get(op) if op else None
        if func is None and op and not op.startswith("_"):
            func = getattr(self, op, None)
        if not callable(func):
            known = sorted(set(self.operations) | {n for n in ("inc", "dec", "set", "observe", "info_", "state") if hasattr(self, n)})
            raise ValueError(f"metric {self.name}: unknown operation {op!r} (known: {known})")
        token = _method_override.set(method)
        try:
            func(value, label_values, *args, **kwargs)
        finally:
            _method_override.reset(token)

    # -- promshm
    def _adopted_by(self, prof: _p.Profiler) -> None:
        """``Profiler.add_metric``: with ``error_raised_label``, the metric
        gets the ``error_raised`` label (as phanos) unless it already wrote."""
        if prof.error_raised_label and _p.ERROR_LABEL not in self.label_names:
            if self._family is None:
                self.label_names.append(_p.ERROR_LABEL)
            else:
                prof.logger.warning("metric %s already recorded: no error_raised label added", self.name)

    def _family_kwargs(self) -> Dict[str, Any]:
        return dict(self._options)

    def _promshm_family(self) -> Any:
        if self._family is None:
            from ..registry import REGISTRY

            unit = _unit_suffix(self.units) if self._has_unit else ""
            self._family = _p.shared_family(
                self._kind,
                self.name,
                self.documentation,
                _OWN_LABELS + tuple(self.label_names),
                self.registry if self.registry is not None else REGISTRY,
                unit=unit,
                **self._family_kwargs(),
            )
        return self._family

    def _store(self, operation: str, value: Any, label_values: Optional[Dict[str, Any]], apply: Callable[[Any, Any], None]) -> None:
        """Validate the labels, write ``value`` with ``apply(series, value)``
        and keep the record if inside a profiled call."""
        lv = dict(label_values or {})
        if _p.ERROR_LABEL in self.label_names:
            lv[_p.ERROR_LABEL] = "true" if sys.exc_info()[0] is not None else "false"
        if not self.check_labels(list(lv)):
            self.logger.error("metric %s: expected labels %s, labels given %s", self.name, self.label_names, list(lv))
            raise ValueError(f"metric {self.name}: unknown or missing label: expected {sorted(self.label_names)}, given {sorted(lv)}")
        node = _p.curr_node.get()
        ctx = _method_override.get()
        if ctx is None:
            ctx = node.context if node is not None else ""
        item = ctx.split(":", 1)[0] if ":" in ctx else ""
        key = (item, ctx, tuple(sorted((k, str(v)) for k, v in lv.items())))
        series = self._series.get(key)
        if series is None:
            values = [str(self.job), item, ctx] + [str(lv[n]) for n in self.label_names]
            series = self._promshm_family().labels(*values)
            self._series[key] = series
        apply(series, value)
        if node is not None and node.records is not None:
            self.values.append((operation, value))
            self.method.append(ctx)
            self.label_values.append(lv)
            self.item.append(item)
            error = lv.get(_p.ERROR_LABEL) == "true"
            _p.keep_record(node, self.name, self.metric, self.units, self.job, operation, value, dict(lv), ctx, error)
            if node.metrics is not None:
                node.metrics.add(self)

    def _number(self, value: Any, op: str, non_negative: bool = False) -> float:
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise TypeError(f"metric {self.name}: {op} accepts only numbers, not {type(value).__name__}")
        if non_negative and value < 0:
            raise TypeError(f"metric {self.name}: {op} accepts only values >= 0, not {value!r}")
        return float(value)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r} labels={self.label_names}>"


class Histogram(MetricWrapper):
    """phanos' Histogram: ``observe(value, label_values=None)``; buckets: the
    profiler's time buckets for ``mS``, size buckets for ``B``, else promshm's
    defaults, or ``buckets=``."""

    metric = "histogram"
    _kind = _Histogram

    def _family_kwargs(self) -> Dict[str, Any]:
        kw = dict(self._options)
        if "buckets" not in kw:
            if self.units in ("mS", "ms"):
                kw["buckets"] = _p.DEFAULT_TIME_BUCKETS
            elif self.units == "B":
                kw["buckets"] = _p.DEFAULT_SIZE_BUCKETS
        return kw

    def observe(self, value: float, label_values: Optional[Dict[str, str]] = None) -> None:
        self._store("observe", self._number(value, "observe"), label_values, lambda s, v: s.observe(v))


class Summary(MetricWrapper):
    """phanos' Summary: ``observe(value, label_values=None)`` (count and sum)."""

    metric = "summary"
    _kind = _Summary

    def observe(self, value: float, label_values: Optional[Dict[str, str]] = None) -> None:
        self._store("observe", self._number(value, "observe"), label_values, lambda s, v: s.observe(v))


class Counter(MetricWrapper):
    """phanos' Counter: ``inc(value, label_values=None)`` (value >= 0)."""

    metric = "counter"
    _kind = _Counter

    def inc(self, value: float, label_values: Optional[Dict[str, str]] = None) -> None:
        self._store("inc", self._number(value, "inc", non_negative=True), label_values, lambda s, v: s.inc(v))


class Gauge(MetricWrapper):
    """phanos' Gauge: ``inc``, ``dec`` (values >= 0) and ``set``; across
    processes the sum of every process's value (``multiprocess_mode="sum"``)."""

    metric = "gauge"
    _kind = _Gauge

    def _family_kwargs(self) -> Dict[str, Any]:
        return dict({"multiprocess_mode": "sum"}, **self._options)

    def inc(self, value: float, label_values: Optional[Dict[str, str]] = None) -> None:
        self._store("inc", self._number(value, "inc", non_negative=True), label_values, lambda s, v: s.inc(v))

    def dec(self, value: float, label_values: Optional[Dict[str, str]] = None) -> None:
        self._store("dec", self._number(value, "dec", non_negative=True), label_values, lambda s, v: s.dec(v))

    def set(self, value: float, label_values: Optional[Dict[str, str]] = None) -> None:
        self._store("set", self._number(value, "set"), label_values, lambda s, v: s.set(v))


class Info(MetricWrapper):
    """phanos' Info: ``info_(value: dict, label_values=None)``; ``units``
    defaults to ``"info"`` (never part of the name)."""

    metric = "info"
    _kind = _Info
    _has_unit = False

    def __init__(self, name: str, job: str, units: Optional[str] = None, labels: Optional[typing.Iterable[str]] = None, logger: Optional[LoggerLike] = None, **kw: Any) -> None:
        super().__init__(name, job, units or "info", labels, logger, **kw)

    def info_(self, value: Dict[Any, Any], label_values: Optional[Dict[str, str]] = None) -> None:
        if not isinstance(value, dict):
            raise ValueError(f"metric {self.name}: info_ accepts only a dictionary, not {type(value).__name__}")
        self._store("info", {str(k): str(v) for k, v in value.items()}, label_values, lambda s, v: s.info(v))


class Enum(MetricWrapper):
    """phanos' Enum: ``Enum(name, job, states, units=None, labels=None,
    logger=None)``, ``state(value, label_values=None)``."""

    metric = "enum"
    _kind = _Enum
    _has_unit = False

    def __init__(self, name: str, job: str, states: typing.List[str], units: Optional[str] = None, labels: Optional[typing.Iterable[str]] = None, logger: Optional[LoggerLike] = None, **kw: Any) -> None:
        if not states:
            raise ValueError(f"metric {name}: an Enum needs states")
        self.states = list(states)
        super().__init__(name, job, units or "enum", labels, logger, **kw)

    def _family_kwargs(self) -> Dict[str, Any]:
        return dict(self._options, states=self.states)

    def state(self, value: str, label_values: Optional[Dict[str, str]] = None) -> None:
        if value not in self.states:
            raise ValueError(f"metric {self.name}: invalid state {value!r} for Enum (allowed: {self.states})")
        self._store("state", value, label_values, lambda s, v: s.state(v))


class TimeProfiler(Histogram):
    """phanos' time profiler as a custom metric (milliseconds):
    ``stop(start, label_values)`` observes the time since ``start``
    (a ``datetime``)."""

    def __init__(self, name: str, job: str = "", labels: Optional[typing.Iterable[str]] = None, logger: Optional[LoggerLike] = None, **kw: Any) -> None:
        super().__init__(name, job, "mS", labels, logger, **kw)
        self.operations = {"stop": self.stop}
        self.default_operation = "stop"

    def stop(self, start: Any, label_values: Optional[Dict[str, str]] = None) -> None:
        import datetime

        self.observe((datetime.datetime.now() - start).total_seconds() * 1000.0, label_values)


class ResponseSize(Histogram):
    """phanos' response size profiler as a custom metric (bytes):
    ``rec(value, label_values)`` observes the size of ``value``."""

    def __init__(self, name: str, job: str = "", labels: Optional[typing.Iterable[str]] = None, logger: Optional[LoggerLike] = None, **kw: Any) -> None:
        super().__init__(name, job, "B", labels, logger, **kw)
        self.operations = {"rec": self.rec}
        self.default_operation = "rec"

    def rec(self, value: Any, label_values: Optional[Dict[str, str]] = None) -> None:
        self.observe(_p._size_of(value), label_values)


# --------------------------------------------------------------------------
# phanos' modules.


def _module(name: str, doc: str, **members: Any) -> _types.ModuleType:
    mod = _types.ModuleType(f"{__name__}.{name}", doc)
    mod.__dict__.update(members)
    sys.modules[mod.__name__] = mod
    return mod


StreamHandler = _p.StreamHandler
LoggerHandler = _p.LoggerHandler
NamedLoggerHandler = _p.NamedLoggerHandler
BaseHandler = _p.BaseHandler
OutputFormatter = _p.OutputFormatter
MethodTreeNode = _p.MethodTreeNode

_handler_members = dict(
    BaseHandler=BaseHandler, StreamHandler=StreamHandler, LoggerHandler=LoggerHandler,
    NamedLoggerHandler=NamedLoggerHandler, ImpProfHandler=ImpProfHandler, OutputFormatter=OutputFormatter,
)
handlers = _module("handlers", "phanos.handlers: the record handlers.", **_handler_members)
publisher = _module(
    "publisher", "phanos.publisher: the profiler, its metric names and the handlers.",
    Profiler=Profiler, TIME_PROFILER=TIME_PROFILER, RESPONSE_SIZE=RESPONSE_SIZE, **_handler_members,
)
metrics = _module(
    "metrics", "phanos.metrics: metric classes (each operation goes to the shared area).",
    MetricWrapper=MetricWrapper, Histogram=Histogram, Summary=Summary, Counter=Counter, Info=Info,
    Gauge=Gauge, Enum=Enum, TimeProfiler=TimeProfiler, ResponseSize=ResponseSize,
)
tree = _module(
    "tree", "phanos.tree: the call tree of running profiled calls.",
    curr_node=_p.curr_node, Context=_p.Context, MethodTreeNode=_p.MethodTreeNode, ContextTree=_p.ContextTree,
)
config = _module(
    "config", "phanos.config: dict configuration helpers.",
    create_handlers=_p.create_handlers, import_external=_p.import_external, EXTERNAL_PREFIX=_p.EXTERNAL_PREFIX,
)
types = _module("types", "phanos.types: the record type.", Record=Record, LoggerLike=LoggerLike)

#: The default profiler (``phanos.profiler``); ``phanos_profiler`` is its old name.
profiler = Profiler()
phanos_profiler = profiler
#: ``@phanos.profile``, the default profiler's decorator.
profile = profiler.profile

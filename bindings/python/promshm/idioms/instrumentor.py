"""instrumentor's API (its 0.0.1 design document) on promshm's shared area.

Change ``import instrumentor`` to ``from promshm.idioms import instrumentor``
and the code of instrumentor's document runs as written; what it sent to a
Redis hash per namespace lands in the application's promshm area, which
every worker process updates together::

    from promshm.idioms import instrumentor

    reg = instrumentor.CollectorRegistry(redis_host="localhost", redis_port="6372",
                                         redis_db=0, namespace="myapp", eager=False)
    http_requests_total = instrumentor.Counter(name="http_requests_total",
                                               description="Total amount of http requests",
                                               allowed_labels={"code", "method", "path"})
    reg.register(http_requests_total)
    http_requests_total.inc(labels={"code": "200"})
    reg.transfer()      # push the batched updates (eager=True: nothing to push)

Mapping:

- **The store.** ``redis_client=``, ``redis_host=``, ``redis_port=``,
  ``redis_db=`` (and any other ``redis_*`` option) are accepted and kept in
  ``registry.redis_options``, and nothing connects to Redis: the store is
  the application's shared area (``promshm.configure(path=...)`` or
  ``PROMSHM_AREA`` names its file, as the Redis options named the server;
  ``area=`` puts one registry elsewhere — instrumentor's "move an
  application's metrics to another Redis instance").
- **Namespaces.** ``namespace="myapp"`` is the registry's prefix: its
  metrics are ``myapp_<name>`` on the page and the namespace's renders
  (``registry.render()``, :class:`InstrumentorClient`) show only them.
  Several applications share one area, each under its own namespace.
- **Batching.** With ``eager=False`` (default) counter and histogram
  updates are batched in the process and pushed by ``registry.transfer()``
  (or ``.store()``, the document's other name) — and also by promshm's
  flusher within a second, at the end of a request with promshm's
  WSGI/ASGI helpers, and at exit, so nothing waits for a transfer forever.
  ``transfer()`` pushes every pending update of the process (all
  registries: one cheap call). ``eager=True`` writes every update of that
  registry straight into the area.
- **Exposition** can run in another process: :class:`InstrumentorClient`
  opens the area read-only and renders one namespace (``render()``), or
  returns its values keyed as the document's Redis hash
  (``get_data()``: ``api_http_requests_total::method="POST"`` -> 12,
  ``...:d:`` description, ``...:t:`` type letter, ``:b:``/``:s:``/``:c:``
  for buckets, sum and count).

Deliberate differences (each asserted by ``tests/test_seed_instrumentor.py``):

- metric names carry the namespace (``myapp_http_requests_total``): one
  Prometheus page holds every namespace of the area, where instrumentor's
  hash key kept them apart;
- a counter whose name lacks ``_total`` is exposed with it (the
  OpenMetrics rule promshm's area follows);
- labels left out of an update are rendered with the empty value, which
  Prometheus treats as the label being absent; label names must be valid
  Prometheus names (``my-label`` raises ``ValueError`` when the metric is
  registered; instrumentor wrote pages Prometheus could not parse);
- a gauge is the sum of each process's share (``multiprocess_mode="sum"``,
  a dead process's share kept as Redis kept it): ``inc``/``dec`` add up
  exactly across processes; ``set(v)`` makes the total ``v`` by setting
  this process's share (two processes setting at the same instant may
  leave their sum: pass ``multiprocess_mode="mostrecent"`` for a gauge
  several processes set). ``start_value`` is added by the process that
  registers the gauge first (register it in a module imported before the
  fork, as the document's ``mymetrics.py``);
- ``Summary(quantile={...}, max_value=...)``: promshm's quantiles are
  exact to 1 % across processes for any value, so no maximum is needed for
  them; values above ``max_value`` are counted in ``<name>_over_max_total``
  as the document asks;
- a ``Histogram`` without buckets raises ``ValueError`` (the document:
  "you will need to predefine your buckets").

Errors are instrumentor's: ``ValueError`` (promshm's
:class:`~promshm.errors.InvalidArgumentError` and
:class:`~promshm.errors.LabelError` are subclasses) for a negative counter
increment, a reserved or not allowed label, ``count()``/``timer()`` on the
wrong metric type; ``RuntimeError`` for an update of a metric not yet
registered; each message names the metric.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import os
import time
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Tuple, Union

from .. import _bindings as B
from .. import metrics as _metrics
from .._area import SHARED, Area, area_path, flush
from ..errors import InvalidArgumentError, LabelError
from ..parser import text_string_to_metric_families
from ..registry import CollectorRegistry as _PromshmRegistry
from ..validation import valid_metric_name
from ._common import EagerRegistryMixin, families_with_samples, mark_eager, sum_gauge_class

__all__ = [
    "CollectorRegistry",
    "CollectionRegistry",
    "Metric",
    "Counter",
    "Gauge",
    "Histogram",
    "LinearHistogram",
    "ExponentialHistogram",
    "Summary",
    "count",
    "timer",
    "InstrumentorClient",
    "RESERVED_LABELS",
]

#: Label names no metric may declare (instrumentor's reserved names).
RESERVED_LABELS = ("__", "le", "quantile")
#: The document's type letters (``...:t:`` in :meth:`InstrumentorClient.get_data`).
TYPE_LETTERS = {"counter": "c", "gauge": "g", "histogram": "h", "summary": "s"}


class _Counter(EagerRegistryMixin, _metrics.Counter):
    pass


_Gauge = sum_gauge_class(_metrics.Gauge, "_Gauge")


class _Histogram(EagerRegistryMixin, _metrics.Histogram):
    pass


class _Summary(_metrics.Summary):
    pass


# --------------------------------------------------------------------------
# The registry.


class CollectorRegistry:
    """instrumentor's registry: one namespace of the shared area (see the
    module documentation for how the Redis options map)."""

    def __init__(
        self,
        redis_client: Any = None,
        namespace: Optional[str] = None,
        eager: bool = False,
        *,
        area: Union[Area, str, "os.PathLike[str]", Any] = SHARED,
        **redis_options: Any,
    ) -> None:
        if namespace is None:
            raise TypeError("CollectorRegistry() missing required argument: 'namespace'")
        if not valid_metric_name(str(namespace)):
            raise InvalidArgumentError(
                "invalid argument", B.PROMSHM_RESULT_INVALID_METRIC_NAME, f"namespace {namespace!r} is not a valid metric name prefix"
            )
        unknown = sorted(k for k in redis_options if not k.startswith("redis_"))
        if unknown:
            raise TypeError(f"CollectorRegistry() got unexpected keyword arguments {unknown}")
        self.namespace = str(namespace)
        self.eager = bool(eager)
        self.redis = redis_client
        #: The Redis options as given (the store is promshm's area; nothing connects to Redis).
        self.redis_options: Dict[str, Any] = dict(redis_options)
        if redis_client is not None:
            self.redis_options["redis_client"] = redis_client
        #: name -> registered metric (instrumentor's attribute).
        self.metrics: Dict[str, "Metric"] = {}
        self.registry = mark_eager(_PromshmRegistry(area=area, prefix=self.namespace), self.eager)

    def register(self, metric: "Metric") -> None:
        """Register ``metric`` in this namespace: from now on its updates go
        to the area, as ``myapp_<name>``."""
        if not isinstance(metric, Metric):
            raise TypeError(f"only instrumentor metrics can be registered, not {metric!r}")
        if metric.registry is self:
            return
        if metric.registry is not None:
            raise ValueError(f"metric {metric.name} is already registered in namespace {metric.registry.namespace}")
        if metric.name in self.metrics:
            raise ValueError(f"a metric named {metric.name} is already registered in namespace {self.namespace}")
        metric._bind(self)
        self.metrics[metric.name] = metric

    def unregister(self, metric: "Metric") -> None:
        """Remove ``metric``: its series leave the page (in every process's
        render); updating it raises ``RuntimeError`` until registered again."""
        if self.metrics.get(metric.name) is not metric:
            raise KeyError(f"metric {metric.name} is not registered in namespace {self.namespace}")
        del self.metrics[metric.name]
        metric._unbind()

    def transfer(self) -> None:
        """Push this process's batched updates into the area (every
        registry's: one call)."""
        flush()

    #: The document's other name for :meth:`transfer`.
    store = transfer

    def render(self, format: str = "prometheus") -> bytes:
        """This namespace's metrics as exposition text (every process's
        values; a family with no series is left out, as the library does)."""
        return families_with_samples(self.registry.render(format), self.namespace + "_")

    def collect(self) -> Iterable[Any]:
        """The namespace's families (prometheus_client-style objects)."""
        return self.registry.collect()

    def get_sample_value(self, name: str, labels: Optional[Mapping[str, str]] = None) -> Optional[float]:
        """One sample of the namespace by its full name (``myapp_...``), or None."""
        return self.registry.get_sample_value(name, labels)

    def __repr__(self) -> str:
        return f"<instrumentor.CollectorRegistry namespace={self.namespace!r} eager={self.eager}>"


#: The name the document's "Instrumenting" example uses.
CollectionRegistry = CollectorRegistry


# --------------------------------------------------------------------------
# Metrics.


class Metric:
    """What every instrumentor metric shares: a name, a description, the
    allowed label names; updates once registered."""

    TYPE_KEY = ""
    _kind: type = _metrics.MetricWrapperBase

    def __init__(self, name: str, description: str, allowed_labels: Optional[Iterable[str]] = None) -> None:
        self.name = name
        self.description = description
        self.allowed_labels = self._clean_allowed_labels(allowed_labels)
        self.registry: Optional[CollectorRegistry] = None
        self._metric: Any = None
        self._series: Dict[Tuple[Tuple[str, Any], ...], Any] = {}

    def _clean_allowed_labels(self, labels: Optional[Iterable[str]]) -> List[str]:
        out = sorted(set(labels or ()))
        for label in out:
            self._check_reserved(label)
        return out

    def _check_reserved(self, label: str) -> None:
        if label in RESERVED_LABELS:
            raise LabelError(
                "reserved label", B.PROMSHM_RESULT_RESERVED_LABEL, f"label name {label} is reserved for metric of class {type(self).__name__} ({self.name})"
            )

    # -- registration
    def _promshm_kwargs(self) -> Dict[str, Any]:
        return {}

    def _bind(self, registry: CollectorRegistry) -> None:
        try:
            self._metric = self._kind(
                self.name, self.description, self.allowed_labels, registry=registry.registry, **self._promshm_kwargs()
            )
        except InvalidArgumentError as e:
            raise type(e)(e.message, e.code, f"{type(self).__name__} {self.name}: {e.detail}") from None
        self.registry = registry

    def _unbind(self) -> None:
        m, self._metric = self._metric, None
        self._series.clear()
        self.registry = None
        if m is not None:
            m._registry._release(m)  # the names are free again in the namespace
            m._unregister_family()  # the family leaves the area (its space is reused)

    # -- series
    def _child(self, labels: Optional[Mapping[str, Any]]) -> Any:
        m = self._metric
        if m is None:
            raise RuntimeError(f"{type(self).__name__} {self.name} is not yet registered in a CollectorRegistry")
        if not self.allowed_labels:
            if labels:
                self._check_labels(labels)
            return m
        key = tuple(sorted(labels.items())) if labels else ()
        child = self._series.get(key)
        if child is None:
            self._check_labels(labels or {})
            given = labels or {}
            child = m.labels(**{n: str(given.get(n, "")) for n in self.allowed_labels})
            self._series[key] = child
        return child

    def _check_labels(self, labels: Mapping[str, Any]) -> None:
        for label in labels:
            self._check_reserved(label)
            if label not in self.allowed_labels:
                raise LabelError("unknown label", B.PROMSHM_RESULT_UNKNOWN_LABEL, f"label name {label} is not an allowed label in metric {self.name}")

    def __repr__(self) -> str:
        where = f" in {self.registry.namespace}" if self.registry is not None else " (not registered)"
        return f"<instrumentor.{type(self).__name__} {self.name}{where}>"


def _counting(metric: "Metric", func: Optional[Callable[..., Any]], labels: Optional[Mapping[str, Any]]) -> Any:
    """``@metric.count`` / ``@metric.count(labels=...)``: +1 per call that returns."""

    def decorator(f: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(f)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            result = f(*args, **kwargs)
            metric.inc(labels=labels)
            return result

        return wrapper

    return decorator if func is None else decorator(func)


class Counter(Metric):
    """A monotonically increasing counter."""

    TYPE_KEY = "c"
    _kind = _Counter

    def inc(self, value: float = 1, labels: Optional[Mapping[str, Any]] = None) -> None:
        """Add ``value`` (>= 0) to the series of ``labels``."""
        if value < 0:
            raise InvalidArgumentError(
                "invalid argument", B.PROMSHM_RESULT_INVALID_ARGUMENT, f"it is not possible to decrease a Counter: {self.name} was given {value}"
            )
        self._child(labels).inc(value)

    def count(self, _func: Optional[Callable[..., Any]] = None, *, labels: Optional[Mapping[str, Any]] = None) -> Any:
        """Decorator counting the calls of a function (``@c.count`` or ``@c.count(labels=...)``)."""
        return _counting(self, _func, labels)


class Gauge(Metric):
    """A value that goes up and down (see the module documentation: the sum
    of every process's share)."""

    TYPE_KEY = "g"
    _kind = _Gauge

    def __init__(
        self,
        name: str,
        description: str,
        allowed_labels: Optional[Iterable[str]] = None,
        start_value: float = 0,
        *,
        initial_value: Optional[float] = None,
        multiprocess_mode: str = "sum",
    ) -> None:
        super().__init__(name, description, allowed_labels)
        self.start_value = start_value if initial_value is None else initial_value
        self.multiprocess_mode = multiprocess_mode

    def _promshm_kwargs(self) -> Dict[str, Any]:
        return {"multiprocess_mode": self.multiprocess_mode}

    def _bind(self, registry: CollectorRegistry) -> None:
        default = {n: "" for n in self.allowed_labels}
        fresh = registry.registry.get_sample_value(f"{registry.namespace}_{self.name}", default) is None
        super()._bind(registry)
        if self.start_value and fresh:
            self._child(None).inc(self.start_value)

    def inc(self, value: float = 1, labels: Optional[Mapping[str, Any]] = None) -> None:
        if value < 0:
            raise InvalidArgumentError("invalid argument", B.PROMSHM_RESULT_INVALID_ARGUMENT, f"inc() of {self.name} takes a positive value; use dec() to decrease")
        self._child(labels).inc(value)

    def dec(self, value: float = 1, labels: Optional[Mapping[str, Any]] = None) -> None:
        if value < 0:
            raise InvalidArgumentError("invalid argument", B.PROMSHM_RESULT_INVALID_ARGUMENT, f"dec() of {self.name} takes a positive value; use inc() to increase")
        self._child(labels).dec(value)

    def set(self, value: float, labels: Optional[Mapping[str, Any]] = None) -> None:
        """Make the gauge's value ``value`` (see the module documentation)."""
        self._child(labels).set(value)

    def get(self, labels: Optional[Mapping[str, Any]] = None) -> float:
        """The value over every process."""
        return float(self._child(labels).get())

    def count(self, _func: Optional[Callable[..., Any]] = None, *, labels: Optional[Mapping[str, Any]] = None) -> Any:
        """Decorator adding 1 per call of a function."""
        return _counting(self, _func, labels)


class _Timed(Metric):
    """``observe`` and timing for histograms and summaries."""

    def observe(self, value: float, labels: Optional[Mapping[str, Any]] = None) -> None:
        self._child(labels).observe(value)

    def time(
        self, _func: Optional[Callable[..., Any]] = None, *, labels: Optional[Mapping[str, Any]] = None, milliseconds: bool = False
    ) -> Any:
        """``@m.time``, ``@m.time(labels=..., milliseconds=True)`` or ``with m.time():``:
        observe the duration of each call (seconds, or milliseconds)."""
        t = timer(metric=self, labels=labels, milliseconds=milliseconds)
        return t if _func is None else t(_func)


class Histogram(_Timed):
    """Observations counted in predefined buckets (any iterable, a set too)."""

    TYPE_KEY = "h"
    _kind = _Histogram

    def __init__(
        self,
        name: str,
        description: str,
        buckets: Optional[Iterable[float]] = None,
        allowed_labels: Optional[Iterable[str]] = None,
    ) -> None:
        super().__init__(name, description, allowed_labels)
        if not buckets:
            raise InvalidArgumentError("invalid buckets", B.PROMSHM_RESULT_INVALID_BUCKETS, f"Histogram {name} needs its buckets (buckets={{...}})")
        self.buckets = sorted({float(b) for b in buckets})

    def _promshm_kwargs(self) -> Dict[str, Any]:
        return {"buckets": self.buckets}


class LinearHistogram(Histogram):
    """``count`` buckets ``start, start + width, ...``."""

    def __init__(
        self, name: str, description: str, allowed_labels: Optional[Iterable[str]] = None, *, start: float, width: float, count: int
    ) -> None:
        super().__init__(name, description, _metrics.linear_buckets(start, width, count), allowed_labels)


class ExponentialHistogram(Histogram):
    """``count`` buckets ``start, start * factor, ...``."""

    def __init__(
        self, name: str, description: str, allowed_labels: Optional[Iterable[str]] = None, *, start: float, factor: float, count: int
    ) -> None:
        super().__init__(name, description, _metrics.exponential_buckets(start, factor, count), allowed_labels)


class Summary(_Timed):
    """``_count``, ``_sum`` and the ``quantile`` set, across processes;
    values above ``max_value`` are also counted in ``<name>_over_max_total``."""

    TYPE_KEY = "s"
    _kind = _Summary

    def __init__(
        self,
        name: str,
        description: str,
        allowed_labels: Optional[Iterable[str]] = None,
        quantile: Optional[Iterable[float]] = None,
        max_value: Optional[float] = None,
    ) -> None:
        super().__init__(name, description, allowed_labels)
        self.quantile = sorted({float(q) for q in (quantile or ())})
        self.max_value = None if max_value is None else float(max_value)
        self._over_max: Any = None
        self._over_series: Dict[Any, Any] = {}

    def _promshm_kwargs(self) -> Dict[str, Any]:
        return {"quantiles": self.quantile}

    def _bind(self, registry: CollectorRegistry) -> None:
        super()._bind(registry)
        if self.max_value is not None:
            self._over_max = _Counter(
                f"{self.name}_over_max",
                f"Observations of {self.name} above its max value {self.max_value:g}.",
                self.allowed_labels,
                registry=registry.registry,
            )

    def _unbind(self) -> None:
        over, self._over_max = self._over_max, None
        self._over_series.clear()
        super()._unbind()
        if over is not None:
            over._registry._release(over)
            over._clear_series()

    def observe(self, value: float, labels: Optional[Mapping[str, Any]] = None) -> None:
        self._child(labels).observe(value)
        if self.max_value is not None and value > self.max_value:
            if not self.allowed_labels:
                self._over_max.inc()
                return
            key = tuple(sorted(labels.items())) if labels else ()
            child = self._over_series.get(key)
            if child is None:
                given = labels or {}
                child = self._over_series[key] = self._over_max.labels(**{n: str(given.get(n, "")) for n in self.allowed_labels})
            child.inc()


# --------------------------------------------------------------------------
# The general decorators.


def count(*, metric: Metric, labels: Optional[Mapping[str, Any]] = None) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator counting the calls of a function in ``metric`` (a Counter or a Gauge)."""
    if not isinstance(metric, (Counter, Gauge)):
        raise InvalidArgumentError(
            "invalid argument", B.PROMSHM_RESULT_INVALID_ARGUMENT, f"the count decorator can only be used with Counters or Gauges, not {metric!r}"
        )
    return metric.count(labels=labels)


class timer(contextlib.ContextDecorator):
    """Decorator and context manager observing a duration in ``metric`` (a
    Histogram or a Summary), in seconds or with ``milliseconds=True`` in
    milliseconds; the block's duration is observed also when it raises."""

    def __init__(self, *, metric: Metric, labels: Optional[Mapping[str, Any]] = None, milliseconds: bool = False) -> None:
        if not isinstance(metric, _Timed):
            raise InvalidArgumentError("invalid argument", B.PROMSHM_RESULT_INVALID_ARGUMENT, f"timer() needs a Histogram or a Summary, not {metric!r}")
        self.metric = metric
        self.labels = labels
        self.milliseconds = milliseconds
        self._start = 0.0

    def _recreate_cm(self) -> "timer":
        return copy.copy(self)  # one start time per call (threads, recursion)

    def __enter__(self) -> "timer":
        self._start = time.perf_counter()
        return self

    def __exit__(self, *exc: Any) -> None:
        duration = max(time.perf_counter() - self._start, 0.0)
        self.metric.observe(duration * 1000 if self.milliseconds else duration, labels=self.labels)


# --------------------------------------------------------------------------
# Exposition.


class InstrumentorClient:
    """The document's exposition client: knows only its namespace, reads the
    area read-only (another process, another application, a separate
    exposition web app).

    ``area`` is an :class:`~promshm.Area`, a path, or None for this
    application's shared area (the file ``PROMSHM_AREA`` names)."""

    def __init__(self, redis_client: Any = None, namespace: Optional[str] = None, *, area: Any = None) -> None:
        if namespace is None:
            raise TypeError("InstrumentorClient() missing required argument: 'namespace'")
        self.namespace = str(namespace)
        if area is None:
            area = area_path() or os.environ.get("PROMSHM_AREA")
            if not area:
                raise InvalidArgumentError("invalid argument", B.PROMSHM_RESULT_INVALID_ARGUMENT, "no shared area in use: pass area= (an Area or its path)")
        self._area = area if isinstance(area, Area) else Area.open(area, read_only=True)

    def render(self, format: str = "prometheus") -> bytes:
        """The namespace's families as exposition text."""
        text = self._area.render(format)
        return families_with_samples(text, self.namespace + "_")

    def get_data(self) -> Dict[str, Union[float, str]]:
        """The namespace's values keyed as the document's Redis hash:
        ``{metric_name}:{extension}:{labels}`` (labels sorted, ``le`` and
        ``quantile`` among them), ``:d:`` the description, ``:t:`` the type
        letter, ``:b:``/``:s:``/``:c:`` buckets, sum and count; names without
        the namespace (the hash was the namespace)."""
        prefix = self.namespace + "_"
        out: Dict[str, Union[float, str]] = {}
        for fam in text_string_to_metric_families(self.render().decode("utf-8")):
            letter = TYPE_LETTERS.get(fam.type)
            if letter is None:
                continue
            base = fam.name[len(prefix) :] + ("_total" if fam.type == "counter" else "")
            out[f"{base}:d:"] = fam.documentation
            out[f"{base}:t:"] = letter
            for s in fam.samples:
                name = s.name[len(prefix) :]
                ext = ""
                for suffix, e in (("_bucket", "b"), ("_sum", "s"), ("_count", "c")):
                    if fam.type in ("histogram", "summary") and name == base + suffix:
                        name, ext = base, e
                if name.endswith("_created"):
                    continue
                labels = ",".join(f'{k}="{v}"' for k, v in sorted(s.labels.items()) if v != "")
                out[f"{name}:{ext}:{labels}"] = s.value
        return out

"""pytheus' metrics (``pytheus.metrics``) on promshm's shared area.

``Counter``, ``Gauge``, ``Histogram`` and ``Summary`` take pytheus' arguments
(``name, description, required_labels=None, default_labels=None,
registry=REGISTRY``; ``buckets=`` for a histogram, pytheus' default buckets)
and keep its label model: ``labels({...})`` or ``labels(a=...)`` with some of
the required labels returns a cacheable partial object, finished by more
``.labels(...)``; default labels fill in what is missing and can be overridden
by a later ``.labels(...)``, on the metric or on a child. Updating an object
with label values missing raises :class:`UnobservableMetricException`. The
metrics are decorators: ``@counter`` / ``@counter(exceptions=...)`` count
exceptions, ``@histogram``, ``@summary`` and ``@gauge`` time the call,
``@gauge(track_inprogress=True)`` counts calls in progress.

Values are promshm's: every worker's updates land in the shared area, so any
worker's ``generate_metrics()`` shows exact totals.
"""

from __future__ import annotations

import functools
import logging
import re
from typing import Any, Callable, Dict, Iterable, Mapping, Optional, Sequence, Tuple, Type, Union

from ... import metrics as _m
from ...errors import InvalidArgumentError, LabelError
from ...registry import CollectorRegistry as _PromshmRegistry
from ...registry import DuplicateTimeseries
from .backends import base as _backend_base
from .exceptions import BucketException, LabelValidationException, UnobservableMetricException
from .registry import REGISTRY, CollectorRegistryProxy, _resolve

__all__ = ["Counter", "Gauge", "Histogram", "Summary", "CustomCollector", "Labels"]

logger = logging.getLogger(__name__)

Labels = Dict[str, str]

#: pytheus' (and the Go and Rust clients') default histogram buckets (``+Inf`` implied).
DEFAULT_BUCKETS: Tuple[float, ...] = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)

_label_name_re = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")

#: Full names of the counters made here whose pytheus name ends in ``_total``
#: (pytheus naming keeps ``_total`` on these only; see :mod:`.exposition`).
_TOTAL_NAMED: set = set()

#: Full name of a histogram made here -> {its ``le`` as the area writes it:
#: as pytheus writes it} for bounds given as integers (pytheus: ``le="1"``,
#: the area: ``le="1.0"``).
_LE_TEXT: Dict[str, Dict[str, str]] = {}


class CustomCollector:
    """Base class of a custom collector: define ``collect()`` yielding metrics
    made with ``registry=None``, then ``REGISTRY.register(MyCollector())``.
    ``name`` is the lowercased class name."""

    @property
    def name(self) -> str:
        return type(self).__name__.lower()

    @name.setter
    def name(self, value: str) -> None:
        pass

    def collect(self) -> Iterable[Any]:  # pragma: no cover - to be defined
        raise NotImplementedError


def _given(obj: Any, args: Tuple[Any, ...], kwargs: Dict[str, Any]) -> Optional[Dict[str, Any]]:
    """pytheus' ``labels(dict)`` / ``labels(**kwargs)`` as a dict (None for
    promshm's positional values)."""
    if args and kwargs:
        raise LabelValidationException(f"{obj._family._name}: please use either a dict or kwargs, not both.")
    if len(args) == 1 and (isinstance(args[0], Mapping) or args[0] is None):
        return dict(args[0] or {})
    if args:
        return None
    return dict(kwargs)


def _validate(fam: Any, labels: Mapping[str, Any]) -> None:
    if not fam._labelnames:
        raise LabelValidationException(f"{fam._name}: trying to use labels while required_labels is None")
    unknown = set(labels) - set(fam._labelnames)
    if unknown:
        raise LabelValidationException(f"{fam._name}: labels different than required_labels: {set(labels)} != {set(fam._labelnames)}")


class _Labelled:
    """pytheus' ``labels()`` on a metric and its children."""

    __slots__ = ()

    def labels(self, *args: Any, **kwargs: Any) -> Any:
        fam = self._family  # type: ignore[attr-defined]
        items = None
        if self is fam:  # the hot path: the series of these labels, made before
            if kwargs and not args:
                items = tuple(kwargs.items())
            elif len(args) == 1 and args[0].__class__ is dict and not kwargs:
                items = tuple(args[0].items())
            if items is not None:
                try:
                    child = fam._rawkw.get(items)
                except TypeError:  # an unhashable value
                    child = items = None
                if child is not None:
                    for _k, v in items:
                        if v.__class__ is not str:  # e.g. a str enum member: equal, another str()
                            break
                    else:
                        return child
        given = _given(self, args, kwargs)
        if given is None:  # promshm's positional values
            return _convert_label_errors(fam, lambda: _m.MetricWrapperBase.labels(fam, *args))
        if not given:
            return self
        _validate(fam, given)
        current = dict(zip(fam._labelnames, self._values())) if self is not fam and self._h is not None else {}  # type: ignore[attr-defined]
        current.update(getattr(self, "_given", None) or {})
        current.update(given)
        child = _convert_label_errors(fam, lambda: _m.MetricWrapperBase.labels(fam, current))
        if items is not None and isinstance(child, _m._Series) and all(v.__class__ is str for _k, v in items):
            # cached as promshm caches labels(**kwargs): exact str values only
            # (1 and "1" are equal keys with other str()); remove()/clear() empty it
            fam._rawkw[items] = child
        return child


def _convert_label_errors(fam: Any, call: Callable[[], Any]) -> Any:
    try:
        return call()
    except LabelError as e:
        if isinstance(e, LabelValidationException):
            raise
        raise LabelValidationException(f"{fam._name}: {e}") from None


class _CounterOps(_Labelled, _m._CounterOps):
    __slots__ = ()

    def count_exceptions(self, exceptions: Union[Type[BaseException], Tuple[Type[BaseException], ...], None] = None) -> Any:
        """Count exceptions (of ``exceptions``, default any ``Exception``) raised in a block or function."""
        return super().count_exceptions(Exception if exceptions is None else exceptions)

    def __call__(self, func: Optional[Callable[..., Any]] = None, exceptions: Any = None) -> Any:
        """``@counter`` / ``@counter(exceptions=(...))``: count exceptions raised by the call."""
        if func is None:
            return functools.partial(self.__call__, exceptions=exceptions)
        return self.count_exceptions(exceptions)(func)


class _GaugeOps(_Labelled, _m._GaugeOps):
    __slots__ = ()

    def __call__(self, func: Optional[Callable[..., Any]] = None, track_inprogress: bool = False) -> Any:
        """``@gauge`` sets the gauge to the call's duration; ``@gauge(track_inprogress=True)``
        increments it while the call runs."""
        if func is None:
            return functools.partial(self.__call__, track_inprogress=track_inprogress)
        guard = self.track_inprogress() if track_inprogress else self.time()
        return guard(func)


class _HistogramOps(_Labelled, _m._HistogramOps):
    __slots__ = ()


class _SummaryOps(_Labelled, _m._SummaryOps):
    __slots__ = ()


#: The series and partial-labels classes of a pytheus metric type.
_classes = _m._child_classes


class _Metric:
    """What the pytheus metric classes share: pytheus' constructor."""

    _unobservable_error = UnobservableMetricException

    def __init__(
        self,
        name: str,
        description: str,
        required_labels: Optional[Sequence[str]] = None,
        labels: Optional[Labels] = None,
        default_labels: Optional[Labels] = None,
        registry: Any = REGISTRY,
        collector: Any = None,
        **kwargs: Any,
    ) -> None:
        if labels:
            raise LabelValidationException(
                f"{name}: setting labels when creating a metric is not allowed. You might be looking for default_labels."
            )
        for label in required_labels or ():
            if not isinstance(label, str) or label.startswith("__") or _label_name_re.fullmatch(label) is None:
                raise LabelValidationException(f"{name}: invalid label name: {label!r}")
        if default_labels:
            if not required_labels:
                raise LabelValidationException(f"{name}: trying to use labels while required_labels is None")
            extra = set(default_labels) - set(required_labels)
            if extra:
                raise LabelValidationException(f"{name}: labels different than required_labels: {set(default_labels)} != {set(required_labels)}")
        foreign = None
        if isinstance(registry, CollectorRegistryProxy):
            registry = _resolve(registry)
        if registry is not None and not isinstance(registry, _PromshmRegistry):
            foreign, registry = registry, None  # pytheus' Registry protocol: the metric registers itself there
        self._backend_spec = (_backend_base.get_backend_class(), _backend_base.BACKEND_CONFIG)
        self._backend: Any = None
        init = functools.partial(
            super().__init__,  # type: ignore[call-arg]
            name,
            description=description,
            required_labels=list(required_labels or ()),
            default_labels=default_labels,
            **kwargs,
        )
        try:
            init(registry=registry)
        except DuplicateTimeseries:
            logger.warning(f"collector with name '{name}' already registered. Keeping previous entry")
            init(registry=None)
        except LabelError as e:
            raise LabelValidationException(f"{name}: {e}") from None
        if self._type == "counter" and name.endswith("_total"):
            _TOTAL_NAMED.add(self.name + "_total")
        if foreign is not None:
            foreign.register(self)

    @property
    def description(self) -> str:
        """pytheus' name of the help text."""
        return self._documentation  # type: ignore[attr-defined]

    @property
    def _metric_value_backend(self) -> Any:
        """The backend object of the class selected when the metric was made
        (see :mod:`.backends`); the values themselves are in promshm's area."""
        if self._backend is None:
            cls, config = self._backend_spec
            self._backend = cls(config, self)
        return self._backend


class Counter(_Metric, _CounterOps, _m.Counter):
    """pytheus' Counter: ``inc(value=1.0)``, ``count_exceptions()``, a decorator."""

    _series_cls, _partial_cls = _classes(_CounterOps, "Counter")


class Gauge(_Metric, _GaugeOps, _m.Gauge):
    """pytheus' Gauge: ``inc``, ``dec``, ``set``, ``set_to_current_time``,
    ``track_inprogress()``, ``time()``, a decorator."""

    _series_cls, _partial_cls = _classes(_GaugeOps, "Gauge")


class Histogram(_Metric, _HistogramOps, _m.Histogram):
    """pytheus' Histogram: ``observe``, ``time()``, a decorator; pytheus'
    default buckets (:data:`DEFAULT_BUCKETS`)."""

    _series_cls, _partial_cls = _classes(_HistogramOps, "Histogram")
    DEFAULT_BUCKETS = DEFAULT_BUCKETS

    def __init__(
        self,
        name: str,
        description: str,
        required_labels: Optional[Sequence[str]] = None,
        labels: Optional[Labels] = None,
        default_labels: Optional[Labels] = None,
        registry: Any = REGISTRY,
        collector: Any = None,
        buckets: Optional[Sequence[float]] = DEFAULT_BUCKETS,
    ) -> None:
        bs = list(buckets) if buckets else list(DEFAULT_BUCKETS)
        if bs != sorted(bs):
            raise BucketException(f"{name}: buckets values are not in sorted order. {bs} != {sorted(bs)}")
        if "le" in (required_labels or ()):
            raise LabelValidationException(f"{name}: invalid label name for Histogram: le")
        try:
            super().__init__(name, description, required_labels, labels, default_labels, registry, collector, buckets=bs)
        except InvalidArgumentError as e:
            if isinstance(e, LabelValidationException) or "bucket" not in str(e):
                raise
            raise BucketException(f"{name}: {e}") from None
        texts = {repr(float(b)): str(b) for b in bs if isinstance(b, int) and str(b) != repr(float(b))}
        if texts:
            _LE_TEXT[self.name + "_bucket"] = texts


class Summary(_Metric, _SummaryOps, _m.Summary):
    """pytheus' Summary: ``_count`` and ``_sum``; ``observe``, ``time()``, a decorator."""

    _series_cls, _partial_cls = _classes(_SummaryOps, "Summary")

    def __init__(self, name: str, description: str, required_labels: Optional[Sequence[str]] = None, *args: Any, **kwargs: Any) -> None:
        if "quantile" in (required_labels or ()):
            raise LabelValidationException(f"{name}: invalid label name for Summary: quantile")
        super().__init__(name, description, required_labels, *args, **kwargs)

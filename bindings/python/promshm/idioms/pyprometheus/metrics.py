"""pyprometheus' metrics: promshm's, with pyprometheus' signatures."""

from __future__ import annotations

from typing import Any, Iterable, Sequence, Tuple

from ... import _bindings as B
from ... import metrics as _metrics
from ...errors import InvalidArgumentError, LabelError
from ...registry import REGISTRY, DuplicateTimeseries
from .._common import EagerRegistryMixin, sum_gauge_class

__all__ = ["Counter", "Gauge", "Summary", "Histogram", "InvalidLabelError", "InvalidLabelValuesError", "DuplicateMetricError"]


class DuplicateMetricError(DuplicateTimeseries, RuntimeError):
    """A second metric of the same name in one registry: pyprometheus'
    ``RuntimeError`` ("already registered"), and promshm's (and
    prometheus_client's) ``ValueError``."""

    def __init__(self, duplicates: Any, name: str) -> None:
        super().__init__(duplicates)
        self.args = (f"Collector {name} already registered (samples {sorted(duplicates)})",)


class InvalidLabelError(InvalidArgumentError, RuntimeError):
    """A label name the metric's type does not allow (``le`` on a histogram,
    ``quantile`` on a summary): pyprometheus' ``RuntimeError``, and promshm's
    :class:`~promshm.errors.InvalidArgumentError`."""


class InvalidLabelValuesError(LabelError, RuntimeError):
    """Label values that do not match the metric's label names: pyprometheus'
    ``RuntimeError``, and promshm's :class:`~promshm.errors.LabelError`."""


class _Pyprometheus(EagerRegistryMixin):
    """pyprometheus' constructor ``(name, doc, labels=(), registry=None)``
    and attributes; ``registry=None`` is promshm's default registry."""

    __slots__ = ()
    _name: str
    _documentation: str
    _labelnames: Tuple[str, ...]

    def __init__(self, name: str, doc: str, labels: Iterable[str] = (), registry: Any = None, **kwargs: Any) -> None:
        from .registry import BaseRegistry

        own = registry if isinstance(registry, BaseRegistry) else None
        target = own.registry if own is not None else (REGISTRY if registry is None else registry)
        try:
            super().__init__(name, doc, tuple(labels), registry=target, **kwargs)  # type: ignore[call-arg]
        except DuplicateTimeseries as e:
            raise DuplicateMetricError(e.duplicates, name) from None
        except InvalidArgumentError as e:
            if e.code != B.PROMSHM_RESULT_RESERVED_LABEL:
                raise
            raise InvalidLabelError(e.message, e.code, f"{name}: {e.detail}") from None
        if own is not None:
            own.register(self)

    def labels(self, *args: Any, **kwargs: Any) -> Any:
        """The series of these label values (positional, keywords or a dict)."""
        try:
            return super().labels(*args, **kwargs)  # type: ignore[misc]
        except LabelError as e:
            raise InvalidLabelValuesError(e.message, e.code, e.detail) from None

    @property
    def doc(self) -> str:
        return self._documentation

    @property
    def label_names(self) -> Tuple[str, ...]:
        return self._labelnames

    @property
    def uid(self) -> str:
        return f"{self._name}-{self._labelnames}"

    @property
    def value(self) -> Any:
        return self.get()  # type: ignore[attr-defined]


class Counter(_Pyprometheus, _metrics.Counter):
    """A counter (``_total`` is added to a name without it)."""


class Gauge(_Pyprometheus, sum_gauge_class(_metrics.Gauge, "Gauge")):  # type: ignore[misc]
    """A gauge: the sum of every process's share (``inc``/``dec`` add up
    across processes as in uWSGI's sharedarea; ``set`` sets the total)."""

    def __init__(self, name: str, doc: str, labels: Iterable[str] = (), registry: Any = None, multiprocess_mode: str = "sum") -> None:
        super().__init__(name, doc, labels, registry, multiprocess_mode=multiprocess_mode)


class Summary(_Pyprometheus, _metrics.Summary):
    """A summary; ``quantiles=[...]`` are computed (pyprometheus left them empty)."""

    def __init__(self, name: str, doc: str, labels: Iterable[str] = (), quantiles: Any = False, registry: Any = None) -> None:
        super().__init__(name, doc, labels, registry, quantiles=sorted(quantiles) if quantiles else ())


class Histogram(_Pyprometheus, _metrics.Histogram):
    """A histogram (buckets sorted, ``+Inf`` added)."""

    DEFAULT_BUCKETS: Tuple[float, ...] = _metrics.DEFAULT_BUCKETS

    def __init__(
        self, name: str, doc: str, labels: Iterable[str] = (), buckets: Sequence[float] = _metrics.DEFAULT_BUCKETS, registry: Any = None
    ) -> None:
        super().__init__(name, doc, labels, registry, buckets=sorted(buckets))

"""Metric families for custom collectors (``prometheus_client.metrics_core``).

A custom collector is any object with a ``collect()`` method that yields
metric families; registered with ``registry.register(collector)``, its
families are rendered after the area's on every scrape of that registry. The
families can be the classes below (the same names and arguments as
``prometheus_client.core``: ``GaugeMetricFamily``, ``CounterMetricFamily``,
...), ``prometheus_client``'s own family objects (anything with ``name``,
``documentation``, ``type``, ``unit`` and ``samples``), or promshm metric
objects (pytheus' idiom: ``yield Counter('x', 'help', registry=None)``)::

    class QueueCollector:
        def collect(self):
            g = GaugeMetricFamily('queue_depth', 'Jobs waiting.', labels=['queue'])
            g.add_metric(['default'], len(queue))
            yield g

    REGISTRY.register(QueueCollector())

A family whose name (or one of its type's suffixed names) the page already
has is skipped and counted in ``promshm_collector_families_skipped_total``.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence, Tuple

from .samples import Exemplar, Sample
from .validation import METRIC_TYPES, valid_metric_name

__all__ = [
    "Metric",
    "UnknownMetricFamily",
    "UntypedMetricFamily",
    "CounterMetricFamily",
    "GaugeMetricFamily",
    "SummaryMetricFamily",
    "HistogramMetricFamily",
    "GaugeHistogramMetricFamily",
    "InfoMetricFamily",
    "StateSetMetricFamily",
]


class Metric:
    """A metric family and its samples (``prometheus_client.core.Metric``)."""

    def __init__(self, name: str, documentation: str, typ: str, unit: str = "") -> None:
        if unit and not name.endswith("_" + unit):
            name += "_" + unit
        if not valid_metric_name(name):
            raise ValueError("Invalid metric name: " + name)
        self.name = name
        self.documentation = documentation
        self.unit = unit
        if typ == "untyped":
            typ = "unknown"
        if typ not in METRIC_TYPES:
            raise ValueError("Invalid metric type: " + typ)
        self.type = typ
        self.samples: List[Sample] = []

    def add_sample(
        self,
        name: str,
        labels: Dict[str, str],
        value: float,
        timestamp: Optional[float] = None,
        exemplar: Optional[Exemplar] = None,
        native_histogram: Any = None,
    ) -> None:
        self.samples.append(Sample(name, labels, value, timestamp, exemplar))

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, Metric)
            and self.name == other.name
            and self.documentation == other.documentation
            and self.type == other.type
            and self.unit == other.unit
            and self.samples == other.samples
        )

    def __repr__(self) -> str:
        return f"Metric({self.name!r}, {self.documentation!r}, {self.type!r}, {self.unit!r}, {self.samples!r})"


class _PlainMetricFamily(Metric):
    """A family of plain samples (one value per label set); subclasses set the type."""

    _family_type = "unknown"

    def __init__(self, name: str, documentation: str, value: Optional[float] = None, labels: Optional[Sequence[str]] = None, unit: str = "") -> None:
        Metric.__init__(self, name, documentation, self._family_type, unit)
        if labels is not None and value is not None:
            raise ValueError("Can only specify at most one of value and labels.")
        self._labelnames = tuple(labels or ())
        if value is not None:
            self.add_metric([], value)

    def add_metric(self, labels: Sequence[str], value: float, timestamp: Optional[float] = None) -> None:
        self.samples.append(Sample(self.name, dict(zip(self._labelnames, labels)), value, timestamp))


class UnknownMetricFamily(_PlainMetricFamily):
    _family_type = "unknown"


UntypedMetricFamily = UnknownMetricFamily


class CounterMetricFamily(Metric):
    def __init__(
        self,
        name: str,
        documentation: str,
        value: Optional[float] = None,
        labels: Optional[Sequence[str]] = None,
        created: Optional[float] = None,
        unit: str = "",
    ) -> None:
        if name.endswith("_total"):
            name = name[:-6]
        Metric.__init__(self, name, documentation, "counter", unit)
        if labels is not None and value is not None:
            raise ValueError("Can only specify at most one of value and labels.")
        self._labelnames = tuple(labels or ())
        if value is not None:
            self.add_metric([], value, created)

    def add_metric(self, labels: Sequence[str], value: float, created: Optional[float] = None, timestamp: Optional[float] = None) -> None:
        lbl = dict(zip(self._labelnames, labels))
        self.samples.append(Sample(self.name + "_total", lbl, value, timestamp))
        if created is not None:
            self.samples.append(Sample(self.name + "_created", lbl, created, timestamp))


class GaugeMetricFamily(_PlainMetricFamily):
    _family_type = "gauge"


class SummaryMetricFamily(Metric):
    def __init__(
        self,
        name: str,
        documentation: str,
        count_value: Optional[int] = None,
        sum_value: Optional[float] = None,
        labels: Optional[Sequence[str]] = None,
        unit: str = "",
    ) -> None:
        Metric.__init__(self, name, documentation, "summary", unit)
        if (sum_value is None) != (count_value is None):
            raise ValueError("count_value and sum_value must be provided together.")
        if labels is not None and count_value is not None:
            raise ValueError("Can only specify at most one of value and labels.")
        self._labelnames = tuple(labels or ())
        if count_value is not None and sum_value is not None:
            self.add_metric([], count_value, sum_value)

    def add_metric(self, labels: Sequence[str], count_value: int, sum_value: float, timestamp: Optional[float] = None) -> None:
        lbl = dict(zip(self._labelnames, labels))
        self.samples.append(Sample(self.name + "_count", lbl, count_value, timestamp))
        self.samples.append(Sample(self.name + "_sum", lbl, sum_value, timestamp))


class HistogramMetricFamily(Metric):
    def __init__(
        self,
        name: str,
        documentation: str,
        buckets: Optional[Sequence[Tuple[str, float]]] = None,
        sum_value: Optional[float] = None,
        labels: Optional[Sequence[str]] = None,
        unit: str = "",
    ) -> None:
        Metric.__init__(self, name, documentation, "histogram", unit)
        if sum_value is not None and buckets is None:
            raise ValueError("sum value cannot be provided without buckets.")
        if labels is not None and buckets is not None:
            raise ValueError("Can only specify at most one of buckets and labels.")
        self._labelnames = tuple(labels or ())
        if buckets is not None:
            self.add_metric([], buckets, sum_value)

    def add_metric(self, labels: Sequence[str], buckets: Sequence[Any], sum_value: Optional[float], timestamp: Optional[float] = None) -> None:
        lbl = dict(zip(self._labelnames, labels))
        for b in buckets:
            bound, value = b[0], b[1]
            exemplar = b[2] if len(b) > 2 else None
            self.samples.append(Sample(self.name + "_bucket", {**lbl, "le": bound}, value, timestamp, exemplar))
        # As prometheus_client: no _sum (and so no _count) with negative buckets;
        # the last bucket (+Inf) is the count.
        if float(buckets[0][0]) >= 0 and sum_value is not None:
            self.samples.append(Sample(self.name + "_count", lbl, buckets[-1][1], timestamp))
            self.samples.append(Sample(self.name + "_sum", lbl, sum_value, timestamp))


class GaugeHistogramMetricFamily(Metric):
    def __init__(
        self,
        name: str,
        documentation: str,
        buckets: Optional[Sequence[Tuple[str, float]]] = None,
        gsum_value: Optional[float] = None,
        labels: Optional[Sequence[str]] = None,
        unit: str = "",
    ) -> None:
        Metric.__init__(self, name, documentation, "gaugehistogram", unit)
        if labels is not None and buckets is not None:
            raise ValueError("Can only specify at most one of buckets and labels.")
        self._labelnames = tuple(labels or ())
        if buckets is not None:
            self.add_metric([], buckets, gsum_value)

    def add_metric(self, labels: Sequence[str], buckets: Sequence[Tuple[str, float]], gsum_value: Optional[float], timestamp: Optional[float] = None) -> None:
        lbl = dict(zip(self._labelnames, labels))
        for bound, value in buckets:
            self.samples.append(Sample(self.name + "_bucket", {**lbl, "le": bound}, value, timestamp))
        # The last bucket (+Inf) is the count; a bad value fails when rendered
        # (as prometheus_client: TypeError for None, ValueError for text).
        self.samples.append(Sample(self.name + "_gcount", lbl, buckets[-1][1], timestamp))
        self.samples.append(Sample(self.name + "_gsum", lbl, gsum_value, timestamp))


class InfoMetricFamily(Metric):
    def __init__(self, name: str, documentation: str, value: Optional[Dict[str, str]] = None, labels: Optional[Sequence[str]] = None) -> None:
        if name.endswith("_info"):
            name = name[:-5]
        Metric.__init__(self, name, documentation, "info")
        if labels is not None and value is not None:
            raise ValueError("Can only specify at most one of value and labels.")
        self._labelnames = tuple(labels or ())
        if value is not None:
            self.add_metric([], value)

    def add_metric(self, labels: Sequence[str], value: Dict[str, str], timestamp: Optional[float] = None) -> None:
        self.samples.append(Sample(self.name + "_info", {**dict(zip(self._labelnames, labels)), **value}, 1, timestamp))


class StateSetMetricFamily(Metric):
    def __init__(self, name: str, documentation: str, value: Optional[Dict[str, bool]] = None, labels: Optional[Sequence[str]] = None) -> None:
        Metric.__init__(self, name, documentation, "stateset")
        if labels is not None and value is not None:
            raise ValueError("Can only specify at most one of value and labels.")
        self._labelnames = tuple(labels or ())
        if value is not None:
            self.add_metric([], value)

    def add_metric(self, labels: Sequence[str], value: Dict[str, bool], timestamp: Optional[float] = None) -> None:
        lbl = dict(zip(self._labelnames, labels))
        for state, enabled in sorted(value.items()):
            self.samples.append(Sample(self.name, {**lbl, self.name: state}, 1 if enabled else 0, timestamp))

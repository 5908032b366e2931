"""Metric families for custom collectors, and their encoders and parser.

Kept for its import path: the code lives in :mod:`promshm.metrics_core`
(the families), :mod:`promshm.samples`, :mod:`promshm.validation`,
:mod:`promshm.encoding` and :mod:`promshm.parser`, split as
``prometheus_client`` splits its own.
"""

from __future__ import annotations

from .encoding import encode_families, float_to_go_string
from .metrics_core import (
    CounterMetricFamily,
    GaugeHistogramMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    InfoMetricFamily,
    Metric,
    StateSetMetricFamily,
    SummaryMetricFamily,
    UnknownMetricFamily,
    UntypedMetricFamily,
)
from .metrics import Counter, Enum, Gauge, Histogram, Info, Summary
from .parser import parse_openmetrics
from .registry import REGISTRY, CollectorRegistry
from .samples import Exemplar, Sample, Timestamp
from .validation import METRIC_TYPES

__all__ = [
    "Counter",
    "Gauge",
    "Histogram",
    "Summary",
    "Info",
    "Enum",
    "CollectorRegistry",
    "REGISTRY",
    "Sample",
    "Exemplar",
    "Timestamp",
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
    "METRIC_TYPES",
    "encode_families",
    "parse_openmetrics",
    "float_to_go_string",
]

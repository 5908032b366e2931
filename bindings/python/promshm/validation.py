"""Name and label checks shared by metric families, encoders and metrics."""

from __future__ import annotations

import re
from typing import Iterable

__all__ = ["METRIC_TYPES", "TYPE_SUFFIXES", "valid_metric_name", "valid_label_name", "check_reserved_label"]

#: Every metric family type (OpenMetrics' names).
METRIC_TYPES = ("counter", "gauge", "summary", "histogram", "gaugehistogram", "unknown", "info", "stateset")

#: Suffix of the area name of a metric whose own name the area reserves
#: (only with :mod:`promshm.compat` installed; see
#: ``MetricWrapperBase._register``).
RENAMED = ":promshm_renamed"

#: The suffixes of the sample names a family of each type renders
#: (prometheus_client's list): every one of these names is the family's.
TYPE_SUFFIXES = {
    "counter": ("_total", "_created"),
    "summary": ("_sum", "_count", "_created"),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
    "gaugehistogram": ("_bucket", "_gsum", "_gcount"),
    "info": ("_info",),
}

_NAME_RE = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
_LABEL_RE = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")


def valid_metric_name(name: str) -> bool:
    """Whether ``name`` is a valid metric name."""
    return bool(_NAME_RE.match(name))


def valid_label_name(name: str) -> bool:
    """Whether ``name`` is a valid label name."""
    return bool(_LABEL_RE.match(name))


def check_reserved_label(labelnames: Iterable[str], reserved: str, what: str) -> None:
    """Raise :class:`~promshm.errors.InvalidArgumentError` (``RESERVED_LABEL``)
    if ``labelnames`` has ``reserved``, a label the family renders itself."""
    from . import _bindings as B
    from .errors import InvalidArgumentError

    names = (labelnames,) if isinstance(labelnames, str) else tuple(labelnames)
    if reserved in names:
        raise InvalidArgumentError("reserved label", B.PROMSHM_RESULT_RESERVED_LABEL, f"{what} cannot have a label named {reserved!r}")

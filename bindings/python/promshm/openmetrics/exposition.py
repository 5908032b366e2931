"""``generate_latest`` in the OpenMetrics 1.0 text format, and its content type."""

from __future__ import annotations

from typing import Any

from .._formats import CONTENT_TYPE_OPENMETRICS, render
from ..registry import REGISTRY

__all__ = ["CONTENT_TYPE_LATEST", "generate_latest"]

#: ``application/openmetrics-text; version=1.0.0; charset=utf-8``
CONTENT_TYPE_LATEST: str = CONTENT_TYPE_OPENMETRICS


def generate_latest(registry: Any = REGISTRY, escaping: Any = None, version: str = "1.0.0") -> bytes:
    """The registry in the OpenMetrics text format (ending in ``# EOF``)."""
    return render(registry, "openmetrics")

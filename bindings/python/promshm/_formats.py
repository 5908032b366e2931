"""What every exposition shares: the formats' content types and the render
of a registry (or any collector) into one of them.

:mod:`promshm.exposition`, :mod:`promshm.openmetrics.exposition` and
:mod:`promshm.push` all build on this module, which imports none of them: the
expositions import in one direction (``exposition`` re-exports ``push`` and
``openmetrics.exposition``, as ``prometheus_client.exposition`` does).
"""

from __future__ import annotations

from typing import Any

from . import _bindings as B
from . import compat
from ._ffi import lib
from .encoding import encode_families

__all__ = ["CONTENT_TYPE_PLAIN_0_0_4", "CONTENT_TYPE_OPENMETRICS", "CONTENT_TYPE_PROTOBUF", "render"]

#: The Prometheus text format 0.0.4.
CONTENT_TYPE_PLAIN_0_0_4: str = lib.promshm_format_content_type(B.PROMSHM_FORMAT_PROMETHEUS).decode()
#: OpenMetrics 1.0 text.
CONTENT_TYPE_OPENMETRICS: str = lib.promshm_format_content_type(B.PROMSHM_FORMAT_OPENMETRICS).decode()
#: The Prometheus protobuf format (length-delimited ``MetricFamily`` messages).
CONTENT_TYPE_PROTOBUF: str = lib.promshm_format_content_type(B.PROMSHM_FORMAT_PROTOBUF).decode()


def render(registry: Any, fmt: str) -> bytes:
    """The text of ``registry`` (or any object with ``collect()``) in ``fmt``
    (``"prometheus"`` or ``"openmetrics"``). With :mod:`promshm.compat`
    installed, every render goes through ``collect()`` and prometheus_client's
    encoders (its order, ``1.0`` for 1, ``_created`` in 0.0.4 as gauges,
    exemplars): ``prometheus_client`` programs' golden outputs keep matching.
    Otherwise a registry renders its area directly."""
    if hasattr(registry, "render") and not compat.installed():
        return registry.render(fmt)
    # Any other collector: a prometheus_client-style object with collect().
    text = encode_families(registry.collect(), fmt == "openmetrics").encode("utf-8")
    return text + (b"# EOF\n" if fmt == "openmetrics" else b"")

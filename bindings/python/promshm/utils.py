"""``prometheus_client.utils``: ``INF``, ``MINUS_INF``, ``NaN`` and ``floatToGoString``."""

from __future__ import annotations

from .encoding import float_to_go_string as floatToGoString

__all__ = ["INF", "MINUS_INF", "NaN", "floatToGoString"]

INF = float("inf")
MINUS_INF = float("-inf")
NaN = float("NaN")

"""``prometheus_client.decorator``'s ``getargspec`` (for code that imports it)."""

from __future__ import annotations

import inspect
from typing import Any, Callable

__all__ = ["getargspec"]


def getargspec(f: Callable[..., Any]) -> inspect.FullArgSpec:
    """The argument specification of ``f`` (``inspect.getfullargspec``)."""
    return inspect.getfullargspec(f)

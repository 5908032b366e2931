"""``prometheus_client.decorator``'s ``getargspec`` (for code that imports it)."""

from __future__ import annotations

import inspect
from typing import Any, Callable, NamedTuple, Optional, Tuple

__all__ = ["getargspec", "ArgSpec"]


class ArgSpec(NamedTuple):
    args: list
    varargs: Optional[str]
    varkw: Optional[str]
    defaults: Optional[Tuple[Any, ...]]


def getargspec(f: Callable[..., Any]) -> ArgSpec:
    """The argument specification of ``f`` as decorated by promshm's metrics
    (whose wrappers keep the wrapped function's signature)."""
    spec = inspect.getfullargspec(inspect.unwrap(f))
    return ArgSpec(spec.args, spec.varargs, spec.varkw, spec.defaults)

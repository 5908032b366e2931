"""What the instrumentor and pyprometheus idiom layers share.

Both libraries kept one value per series in a store every process updated
in place (a Redis hash, a uWSGI sharedarea): ``inc``/``dec`` were atomic
additions to the shared value, ``set`` overwrote it, and a registry could
write every update through at once. promshm's equivalents:

- :class:`EagerRegistryMixin` on a metric class makes the counters and
  histograms of a registry marked with :func:`mark_eager` write straight
  into the area (promshm's eager mode, for that registry only);
- gauges use ``multiprocess_mode="sum"`` (each process's share, summed, a
  dead process's share kept as the store kept it), and
  :func:`sum_gauge_class` makes ``set()`` set the gauge's total.
"""

from __future__ import annotations

import time
from typing import Any

from .. import _bindings as B

#: Attribute of a promshm registry whose buffered metrics write through.
_EAGER_ATTR = "_promshm_idiom_eager"


def mark_eager(registry: Any, eager: bool) -> Any:
    """Mark a promshm registry: its counters and histograms made afterwards
    with an :class:`EagerRegistryMixin` class write every update through."""
    setattr(registry, _EAGER_ATTR, bool(eager))
    return registry


class EagerRegistryMixin:
    """A metric class hook: eager updates in a registry marked eager."""

    __slots__ = ()
    _registry: Any

    def _update_mode(self) -> int:
        mode = super()._update_mode()  # type: ignore[misc]
        if mode == B.PROMSHM_UPDATE_MODE_BUFFERED and getattr(self._registry, _EAGER_ATTR, False):
            return B.PROMSHM_UPDATE_MODE_EAGER
        return int(mode)


class SumGaugeMixin:
    """A gauge class hook for ``multiprocess_mode="sum"``: ``set(v)`` and
    ``set_to_current_time()`` make the gauge's total the value by setting
    this process's share to it minus the other processes' shares.

    Concurrent ``inc``/``dec`` by other processes are kept (they land after
    the set); two processes calling ``set`` at the same instant may leave
    their sum instead (use ``multiprocess_mode="mostrecent"`` for a gauge
    several processes set)."""

    __slots__ = ()
    _family: Any

    def set(self, value: float) -> None:
        value = float(value)
        if self._family._mode_name == "sum":
            others = self.get() - self.get_local()  # type: ignore[attr-defined]
            if others:
                value -= others
        super().set(value)  # type: ignore[misc]

    def set_to_current_time(self) -> None:
        self.set(time.time())


def sum_gauge_class(base: type, name: str) -> type:
    """A subclass of the gauge class ``base`` whose family and series (its
    ``labels()`` children) set totals (:class:`SumGaugeMixin`)."""
    series = type(name + "Series", (SumGaugeMixin, base._series_cls), {"__slots__": ()})
    return type(name, (SumGaugeMixin, base), {"__slots__": (), "_series_cls": series, "__module__": base.__module__})

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
from typing import Any, List

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


def families_with_samples(text: bytes, prefix: str = "") -> bytes:
    """The family blocks of an exposition ``text`` whose names start with
    ``prefix`` and that have samples: a family whose series were all removed
    (or that has none yet) is left out, as the libraries' registries leave
    it out. (An unregistered metric's family is gone from the area itself:
    ``CollectorRegistry.unregister`` frees it.)"""
    out: List[bytes] = []
    head: List[bytes] = []  # the comment lines of the current family
    body: List[bytes] = []
    name = b""
    p = prefix.encode()

    def close() -> None:
        if name.startswith(p) and body:
            out.extend(head + body)

    for line in text.splitlines(keepends=True):
        if line.startswith(b"# EOF"):
            close()
            head, body, name = [], [], b""
            out.append(line)
        elif line.startswith(b"#"):
            parts = line.split(b" ", 3)
            fam = parts[2].rstrip(b"\n") if len(parts) > 2 else b""
            if body or fam != name:
                close()
                head, body, name = [], [], fam
            head.append(line)
        else:
            body.append(line)
    close()
    return b"".join(out)

"""The optional C fast path of the update methods (``promshm._speedups``).

``setup.py`` compiles ``promshm/_speedups.c`` (limited API, one ``abi3``
build for every CPython >= 3.9) when a C compiler is there; in a source
checkout, ``(cd bindings/python && python3 setup.py build_ext --inplace)`` builds it
(``scripts/test.sh`` adds ``--build-temp``/``--build-lib`` in ``target/``).
When the module is missing, or ``PROMSHM_NO_SPEEDUPS`` is set (to anything but
``""`` or ``0``), every method stays the ctypes one: same results, same
exceptions, only slower.

The extension calls the library :mod:`promshm._ffi` loaded (the function
addresses are handed over here), so one copy of ``libpromshm`` serves both.
:func:`install` replaces the classes' update methods and ``labels()`` by C
methods that handle the common call shapes and hand every other call to the
Python method they replaced; :func:`handle` wraps a series handle for them.
"""

from __future__ import annotations

import os
from ctypes import c_void_p, cast
from typing import Any, List, Optional

from ._ffi import fast

__all__ = ["IMPLEMENTATION", "handle", "install"]


def _load() -> Optional[Any]:
    if os.environ.get("PROMSHM_NO_SPEEDUPS", "") not in ("", "0"):
        return None
    try:
        from . import _speedups  # type: ignore[attr-defined]
    except ImportError:
        return None
    return _speedups


_speedups = _load()

#: Which implementation the update methods use: ``"extension"`` (the C
#: module) or ``"ctypes"``.
IMPLEMENTATION = "ctypes" if _speedups is None else "extension"


def handle(h: c_void_p) -> Any:
    """The series handle as the update methods want it: ``h`` itself for
    ctypes, else the extension's ``Handle`` (which ctypes accepts as well)."""
    if _speedups is None:
        return h
    return _speedups.Handle(h.value)


#: (class attribute of metrics, method name, the extension's method kind).
_METHODS = (
    ("_CounterOps", "inc", "counter_inc"),
    ("_GaugeOps", "inc", "gauge_inc"),
    ("_GaugeOps", "dec", "gauge_dec"),
    ("_GaugeOps", "set", "gauge_set"),
    ("_GaugeOps", "set_to_current_time", "gauge_set_to_current_time"),
    ("_HistogramOps", "observe", "histogram_observe"),
    ("_SummaryOps", "observe", "summary_observe"),
    ("MetricWrapperBase", "labels", "labels"),
)


def install(metrics: Any) -> None:
    """Give the classes of the module ``metrics`` the extension's methods
    (nothing without the extension)."""
    if _speedups is None:
        return
    addresses = {name: cast(getattr(fast, name), c_void_p).value for name in dir(fast) if not name.startswith("_")}
    _speedups.init(addresses, metrics._fail)
    for cls_name, method, kind in _METHODS:
        cls = getattr(metrics, cls_name)
        original = cls.__dict__[method]
        setattr(cls, method, _speedups.bind(cls, kind, original))
        # A descriptor of each existing subclass too (Counter, its series and
        # partial classes, ...): a call on an instance of exactly the
        # descriptor's class skips the subclass check (a walk of the MRO).
        for sub in _subclasses(cls):
            if method not in sub.__dict__ and getattr(sub, method) is cls.__dict__[method]:
                setattr(sub, method, _speedups.bind(sub, kind, original))


def _subclasses(cls: type) -> List[type]:
    out: List[type] = []
    for sub in cls.__subclasses__():
        out += [sub] + _subclasses(sub)
    return out

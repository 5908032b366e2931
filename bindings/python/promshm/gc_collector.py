"""``GCCollector``: CPython's garbage-collector counts of this process.

Per process, as in prometheus_client's multiprocess mode: the counts are the
rendering worker's. Unlike ``process_*`` (read from every worker's ``/proc``
entry, see :mod:`promshm.process_collector`), another process's ``gc`` figures
cannot be read from outside it; publishing them would need a ``gc.callbacks``
hook writing the area on every collection of every worker.
"""

from __future__ import annotations

import gc
import platform
from typing import Any, Iterable, List

from .metrics_core import CounterMetricFamily, Metric
from .registry import REGISTRY

__all__ = ["GCCollector"]


class GCCollector:
    """Collects ``python_gc_objects_collected_total``,
    ``python_gc_objects_uncollectable_total`` and ``python_gc_collections_total``
    by ``generation`` (``gc.get_stats()``, CPython only; as prometheus_client's)."""

    def __init__(self, registry: Any = REGISTRY) -> None:
        if not hasattr(gc, "get_stats") or platform.python_implementation() != "CPython":
            return
        if registry is not None:
            registry.register(self)

    def collect(self) -> Iterable[Metric]:
        collected = CounterMetricFamily("python_gc_objects_collected", "Objects collected during gc", labels=["generation"])
        uncollectable = CounterMetricFamily("python_gc_objects_uncollectable", "Uncollectable objects found during GC", labels=["generation"])
        collections = CounterMetricFamily("python_gc_collections", "Number of times this generation was collected", labels=["generation"])
        for gen, stat in enumerate(gc.get_stats()):
            generation = str(gen)
            collected.add_metric([generation], value=stat["collected"])
            uncollectable.add_metric([generation], value=stat["uncollectable"])
            collections.add_metric([generation], value=stat["collections"])
        out: List[Metric] = [collected, uncollectable, collections]
        return out

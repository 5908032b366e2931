"""pyprometheus' registry: a promshm registry on the storage's area."""

from __future__ import annotations

from typing import Any, Dict, ItemsView, Iterator, Optional

from ...registry import CollectorRegistry as _PromshmRegistry
from .._common import families_with_samples, mark_eager
from .storage import BaseStorage, LocalMemoryStorage

__all__ = ["BaseRegistry", "CollectorRegistry"]


class BaseRegistry:
    """``BaseRegistry(storage=...)`` (also named ``CollectorRegistry``, as
    pyprometheus' README calls it): the metrics made with
    ``registry=this`` and the collectors registered here, values in the
    storage's area. Without a storage: a :class:`LocalMemoryStorage`."""

    def __init__(self, storage: Optional[BaseStorage] = None) -> None:
        if storage is None or (isinstance(storage, dict) and not storage):
            storage = LocalMemoryStorage()  # pyprometheus' default is an empty dict
        if not isinstance(storage, BaseStorage):
            raise TypeError(
                f"storage must be one of promshm's pyprometheus storages (LocalMemoryStorage, UWSGIStorage, "
                f"UWSGIFlushStorage), not {storage!r}"
            )
        self._storage = storage
        self._collectors: Dict[str, Any] = {}
        #: The promshm registry (for promshm's exposition helpers).
        self.registry = mark_eager(_PromshmRegistry(area=storage._area()), storage.eager)

    @property
    def storage(self) -> BaseStorage:
        return self._storage

    def register(self, collector: Any) -> None:
        """Add a collector (a metric of this registry, a :class:`UWSGICollector`,
        a storage, or any object with ``collect()``); a second one with the
        same ``uid`` raises ``RuntimeError``, as pyprometheus."""
        uid = _uid(collector)
        if uid in self._collectors:
            raise RuntimeError(f"Collector {uid} already registered")
        if getattr(collector, "_registry", None) is not self.registry:
            self.registry.register(collector)  # a custom collector
        elif getattr(collector, "_unregistered", False):
            self.registry.register(collector)  # unregistered before: a fresh family
        self._collectors[uid] = collector

    def unregister(self, collector: Any) -> None:
        """Remove a collector; a metric's series leave the page."""
        uid = _uid(collector)
        if self._collectors.pop(uid, None) is None:
            return
        if getattr(collector, "_registry", None) is self.registry:
            self.registry._release(collector)
            collector._unregister_family()  # the family leaves the area
        else:
            self.registry.unregister(collector)

    def is_registered(self, collector: Any) -> bool:
        return _uid(collector) in self._collectors

    def collectors(self) -> ItemsView[str, Any]:
        return self._collectors.items()

    def __len__(self) -> int:
        return len(self._collectors)

    def collect(self) -> Iterator[Any]:
        """Every family (prometheus_client-style objects), every process's values."""
        return self.registry.collect()

    def render(self, format: str = "prometheus") -> bytes:
        """The exposition text (promshm's exposition helpers call this);
        families with no series are left out, as pyprometheus does."""
        return families_with_samples(self.registry.render(format))

    def get_sample_value(self, name: str, labels: Optional[Dict[str, str]] = None) -> Optional[float]:
        return self.registry.get_sample_value(name, labels)

    def __repr__(self) -> str:
        return f"<pyprometheus.CollectorRegistry {self._storage!r}: {len(self)} collectors>"


#: The name pyprometheus' README uses.
CollectorRegistry = BaseRegistry


def _uid(collector: Any) -> str:
    uid = getattr(collector, "uid", None)
    return str(uid) if uid is not None else f"collector-{id(collector)}"

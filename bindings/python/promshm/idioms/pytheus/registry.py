"""pytheus' registries (``pytheus.registry``) on promshm's shared area.

``CollectorRegistry(prefix=...)`` is on the application's **shared area**
(pytheus' "registry prefix"), so its metrics are shared by every worker even
when the registry and its metrics are made after the fork. Its page shows
every family of its namespace in the area, from every worker. ``REGISTRY`` is
pytheus' proxy: ``REGISTRY.set_registry(CollectorRegistry(prefix='svc'))``
makes metrics created afterwards (with the default registry) go there.

As in pytheus, registering a name the registry already has logs a warning
and keeps the previous entry (no exception), a custom collector yielding a
taken name is ignored (with a warning), and unregistering something absent
logs a warning.
"""

from __future__ import annotations

import logging
from typing import Any, Iterable, Optional, Protocol

from ... import registry as _registry
from ..._area import SHARED

__all__ = ["Collector", "Registry", "CollectorRegistry", "CollectorRegistryProxy", "REGISTRY"]

logger = logging.getLogger(__name__)


class Collector(Protocol):
    """What a registry collects: a metric, or a custom collector."""

    name: str

    def collect(self) -> Iterable[Any]: ...


class Registry(Protocol):
    """pytheus' registry protocol."""

    prefix: Optional[str]

    def register(self, collector: Collector) -> None: ...

    def unregister(self, collector: Collector) -> None: ...

    def collect(self) -> Iterable[Any]: ...


class CollectorRegistry(_registry.CollectorRegistry):
    """A registry on the shared area, its families named ``<prefix>_<name>``.

    ``area=`` (an :class:`~promshm.Area`, a path, or None for a private area)
    and promshm's other registry options are accepted too."""

    def __init__(self, prefix: Optional[str] = None, **kwargs: Any) -> None:
        kwargs.setdefault("area", SHARED)
        kwargs.setdefault("self_metrics", False)
        super().__init__(prefix=prefix, **kwargs)
        self.prefix = prefix  # type: ignore[assignment]  # pytheus' value: None without a prefix

    def register(self, collector: Any) -> None:
        """Add a metric of another registry or a custom collector. A name the
        registry has already is kept and the new entry ignored (a warning)."""
        from ...metrics import MetricWrapperBase

        if isinstance(collector, MetricWrapperBase):
            if collector._registry is self:
                return
            taken = [n for n in collector._sample_names() if n in self._names]
            if taken:
                logger.warning(f"collector with name '{collector._name}' already registered. Keeping previous entry")
                return
        else:
            name = getattr(collector, "name", type(collector).__name__.lower())
            if any(c is collector for c in self._collectors):
                logger.warning(f"collector with name '{name}' already registered. Keeping previous entry")
                return
            for metric in collector.collect():
                names = metric._sample_names() if isinstance(metric, MetricWrapperBase) else [metric.name]
                if any(n in self._names for n in names):
                    logger.warning(
                        f"CustomCollector: {name} - collector with name '{names[0]}' already registered. Ignoring custom collector"
                    )
                    return
        try:
            super().register(collector)
        except ValueError:  # a name taken (DuplicateTimeseries) or already registered
            logger.warning(f"collector {collector!r} already registered. Keeping previous entry")

    def unregister(self, collector: Any) -> None:
        """Stop exposing a metric or collector (a warning if it is not registered)."""
        try:
            super().unregister(collector)
        except KeyError:
            logger.warning(f"no collector found with name '{getattr(collector, 'name', collector)}'")


class CollectorRegistryProxy:
    """pytheus' ``REGISTRY``: a registry that can be swapped with :meth:`set_registry`."""

    def __init__(self, registry: Optional[Any] = None) -> None:
        self._registry = registry if registry is not None else CollectorRegistry()
        self.prefix = self._registry.prefix

    def set_registry(self, registry: Any) -> None:
        """Metrics made from now on with the default registry go to ``registry``."""
        self._registry = registry
        self.prefix = registry.prefix

    def register(self, collector: Any) -> None:
        self._registry.register(collector)

    def unregister(self, collector: Any) -> None:
        self._registry.unregister(collector)

    def collect(self) -> Iterable[Any]:
        return self._registry.collect()

    def __getattr__(self, name: str) -> Any:  # render(), get_sample_value(), ...
        return getattr(self._registry, name)


def _resolve(registry: Any) -> Any:
    """The registry behind a proxy."""
    while isinstance(registry, CollectorRegistryProxy):
        registry = registry._registry
    return registry


#: The default registry (pytheus' proxy), on the shared area, no prefix.
REGISTRY = CollectorRegistryProxy()

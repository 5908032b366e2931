"""Compatibility with ``prometheus_client.multiprocess``.

promshm needs none of it: every process updates the shared area, dead workers
are found without hooks, and ``generate_latest()`` already shows every process.
Code written for prometheus_client's multiprocess mode keeps working::

    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)   # the registry now renders the shared area
    data = generate_latest(registry)

and ``mark_process_dead(pid)`` (gunicorn's ``child_exit`` hook) is a no-op.
"""

from __future__ import annotations

from typing import Any, Optional

from .registry import REGISTRY, CollectorRegistry

__all__ = ["MultiProcessCollector", "mark_process_dead"]


class MultiProcessCollector:
    """Makes ``registry`` also render the default registry's shared area.
    ``path`` (prometheus_client's directory) is ignored."""

    def __init__(self, registry: Optional[CollectorRegistry], path: Optional[str] = None) -> None:
        self._registry = REGISTRY
        if registry is not None and registry is not REGISTRY:
            registry.register(self)

    def collect(self) -> Any:
        return self._registry.collect()

    def render(self, format: str = "prometheus") -> bytes:
        return self._registry.render(format)


def mark_process_dead(pid: int, path: Optional[str] = None) -> None:
    """No-op: promshm reaps dead workers itself (SIGKILL and OOM included)."""

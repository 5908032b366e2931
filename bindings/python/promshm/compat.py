"""Opt-in: make ``import prometheus_client`` resolve to promshm.

For code (and test suites) written against ``prometheus_client`` that should
run on promshm's own API unchanged::

    import promshm.compat
    promshm.compat.install()      # before anything imports prometheus_client

    from prometheus_client import Counter, generate_latest   # promshm's

:func:`install` puts ``sys.modules`` aliases for ``prometheus_client`` and its
public submodules (``core``, ``registry``, ``metrics``, ``metrics_core``,
``exposition``, ``parser``, ``samples``, ``openmetrics.exposition``,
``openmetrics.parser``, ``multiprocess``, ``asgi``, ``utils``, the collectors,
...). It refuses (``RuntimeError``) if the real ``prometheus_client`` is
already imported, since objects of the two libraries do not mix.

With ``PROMETHEUS_MULTIPROC_DIR`` set (prometheus_client's multiprocess mode),
``CollectorRegistry()`` is on the shared area and updates of metrics made after
:func:`install` go straight into it (eager), so every scrape in any worker is
exact at once, as prometheus_client's multiprocess mode promises.
"""

from __future__ import annotations

import importlib
import sys
from typing import Dict

__all__ = ["install", "uninstall", "ALIASES", "installed"]

#: ``prometheus_client`` module name -> the promshm module it resolves to.
ALIASES: Dict[str, str] = {
    "prometheus_client": "promshm",
    "prometheus_client.core": "promshm.core",
    "prometheus_client.registry": "promshm.registry",
    "prometheus_client.metrics": "promshm.metrics",
    "prometheus_client.metrics_core": "promshm.metrics_core",
    "prometheus_client.exposition": "promshm.exposition",
    "prometheus_client.parser": "promshm.parser",
    "prometheus_client.samples": "promshm.samples",
    "prometheus_client.utils": "promshm.utils",
    "prometheus_client.validation": "promshm.validation",
    "prometheus_client.decorator": "promshm.decorator",
    "prometheus_client.context_managers": "promshm.metrics",
    "prometheus_client.openmetrics": "promshm.openmetrics",
    "prometheus_client.openmetrics.exposition": "promshm.openmetrics.exposition",
    "prometheus_client.openmetrics.parser": "promshm.openmetrics.parser",
    "prometheus_client.multiprocess": "promshm.multiprocess",
    "prometheus_client.asgi": "promshm.asgi",
    "prometheus_client.process_collector": "promshm.process_collector",
    "prometheus_client.platform_collector": "promshm.platform_collector",
    "prometheus_client.gc_collector": "promshm.gc_collector",
}


def installed() -> bool:
    """Whether ``prometheus_client`` currently resolves to promshm."""
    mod = sys.modules.get("prometheus_client")
    return mod is not None and mod.__name__ == "promshm"


def install() -> None:
    """Alias ``prometheus_client`` and its submodules to promshm's modules."""
    if installed():
        return
    if "prometheus_client" in sys.modules:
        raise RuntimeError("the real prometheus_client is already imported: call promshm.compat.install() first")
    for alias, target in ALIASES.items():
        sys.modules[alias] = importlib.import_module(target)
    from ._area import configure
    from .registry import _prometheus_client_multiprocess

    if _prometheus_client_multiprocess():
        # prometheus_client's multiprocess mode shows every update to every
        # process at once, and frameworks do not flush at request end:
        # families made from now on write straight into the area.
        configure(eager=True)


def uninstall() -> None:
    """Remove the aliases (modules that imported them keep their references)."""
    if not installed():
        return
    for alias in ALIASES:
        sys.modules.pop(alias, None)

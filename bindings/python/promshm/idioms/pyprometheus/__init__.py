"""pyprometheus' API (its README) on promshm's shared area and uWSGI plugin.

Change ``pyprometheus`` to ``promshm.idioms.pyprometheus`` in the imports
and the README's code runs as written::

    from promshm.idioms.pyprometheus import Counter, CollectorRegistry, LocalMemoryStorage
    from promshm.idioms.pyprometheus.contrib.uwsgi_features import UWSGIStorage
    from promshm.idioms.pyprometheus.utils.exposition import registry_to_text, write_to_textfile

    registry = CollectorRegistry(storage=UWSGIStorage(0))
    requests = Counter("requests_total", "Requests.", ["method"], registry=registry)
    requests.labels(method="get").inc()
    print(registry_to_text(registry))   # every worker's counts

Storages (``BaseRegistry(storage=...)``, also named ``CollectorRegistry``):

| pyprometheus | promshm |
| --- | --- |
| ``LocalMemoryStorage()`` | a private area of this process (threads share it; children forked after it was made update it too) |
| ``UWSGIStorage(id)`` | the application's shared area (under uWSGI: the promshm plugin's), every update written through |
| ``UWSGIFlushStorage(id)`` | the same area, updates batched: at request end (the plugin flushes), within 1 s, or on ``storage.flush()`` |
| ``UWSGICollector(namespace)`` | uWSGI's figures in Python renders; the plugin's page has its worker metrics |

Deliberate differences (each asserted by ``tests/test_seed_pyprometheus.py``):

- ``registry=None`` (a metric made without a registry) is promshm's default
  registry on the shared area; pyprometheus' metric had no storage and
  failed on its first update;
- gauges are the sum of every process's share (``multiprocess_mode="sum"``):
  ``inc``/``dec``/``track_in_progress`` add up across workers as in the
  sharedarea, ``set(v)`` makes the total ``v`` (two processes setting at
  the same instant may leave their sum; ``multiprocess_mode="mostrecent"``
  for a gauge several processes set);
- a counter named without ``_total`` gets it; histogram buckets count
  observations ``<=`` their bound (Prometheus' rule; pyprometheus counted
  ``<``); ``Summary(quantiles=[...])`` computes them (across processes,
  within 1 %), pyprometheus left them empty;
- registries on the shared area (both uWSGI storages) render every family
  of the area, where pyprometheus' rendered its own collectors: one page
  with every worker's and the plugin's metrics;
- ``registry_to_text`` has no "Generated at" comment and no sample
  timestamps; ``write_to_textfile`` also takes prometheus_client's
  ``(path, registry)`` order;
- ``UWSGIStorage`` needs no ``--sharedarea`` and works outside uWSGI;
  ``UWSGICollector`` uses Prometheus-style names unless
  ``legacy_names=True`` (see :mod:`.contrib.uwsgi_features`).

Errors are pyprometheus' ``RuntimeError`` (and promshm's errors): a second
collector with the same ``uid``, a second metric of one name in a registry
(:class:`DuplicateMetricError`); label values that do not match the label
names (:class:`InvalidLabelValuesError`, also a promshm
:class:`~promshm.errors.LabelError`); ``le`` on a histogram or ``quantile``
on a summary (:class:`InvalidLabelError`); each message names the metric.
"""

from __future__ import annotations

from .contrib.uwsgi_features import UWSGICollector, UWSGIFlushStorage, UWSGIStorage
from .metrics import Counter, DuplicateMetricError, Gauge, Histogram, InvalidLabelError, InvalidLabelValuesError, Summary
from .registry import BaseRegistry, CollectorRegistry
from .storage import BaseStorage, LocalMemoryStorage
from .utils.exposition import registry_to_text, write_to_textfile

__all__ = [
    "Counter",
    "Gauge",
    "Summary",
    "Histogram",
    "BaseStorage",
    "LocalMemoryStorage",
    "BaseRegistry",
    "CollectorRegistry",
    "UWSGIStorage",
    "UWSGIFlushStorage",
    "UWSGICollector",
    "registry_to_text",
    "write_to_textfile",
    "InvalidLabelError",
    "InvalidLabelValuesError",
    "DuplicateMetricError",
]

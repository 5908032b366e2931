"""pytheus' API on promshm's shared area: change ``pytheus`` to
``promshm.idioms.pytheus`` in the imports and a pytheus application's metrics
are shared by every worker, with exact totals on any worker's page::

    from promshm.idioms.pytheus.metrics import Counter, Histogram
    from promshm.idioms.pytheus.exposition import generate_metrics

The modules mirror pytheus': :mod:`.metrics` (``Counter``, ``Gauge``,
``Histogram``, ``Summary``, ``CustomCollector``; partial and default labels,
decorators), :mod:`.registry` (``CollectorRegistry(prefix=)``, ``REGISTRY``),
:mod:`.exposition` (``generate_metrics``, ``make_wsgi_app``), :mod:`.backends`
(``load_backend``, ``$PYTHEUS_BACKEND_CLASS``, ``$PYTHEUS_BACKEND_CONFIG``;
:mod:`.backends.redis`) and :mod:`.exceptions`.

Where promshm deliberately differs from pytheus:

- **One storage.** Every backend lands on promshm's shared area: pytheus'
  ``SingleProcessBackend`` (the default) is multi-process here, and
  ``pytheus.backends.redis.MultiProcessRedisBackend`` (by class or by
  ``$PYTHEUS_BACKEND_CLASS``, whose ``pytheus.`` paths are looked up here)
  needs no Redis: its ``host``/``port``/... options are kept in ``config``
  and connect to nothing. A backend class of the application's own is
  checked and initialized (``_initialize``) and ``_metric_value_backend`` is
  an instance of it, but the values stay in the area. The printed backend
  class is ``promshm.idioms.pytheus.backends...`` (the changed import).
- **A registry's page is its namespace of the shared area**: every family
  with its prefix (or, without a prefix, every family), from every worker,
  not only the metrics registered through that object.
- **Naming**: :func:`.exposition.generate_metrics` uses pytheus' naming
  (counters without ``_total``); promshm's own renders add ``_total``. The
  first fails promtool's lint ("counter metrics should have _total suffix"),
  as pytheus' output does; the second passes it. Integer bucket bounds are
  written as pytheus writes them (``le="1"``; promshm: ``le="1.0"``).
- **Gauges across workers**: each worker has its own value and the page
  shows their sum over live workers (promshm's ``livesum``: right for
  ``inc``/``dec``/``track_inprogress``); pass ``multiprocess_mode='mostrecent'``
  (or ``'max'``, ...) for a gauge every worker sets. pytheus' Redis
  backend keeps one value that every ``inc`` and ``set`` changes.
- ``metric.name`` is the name in the area (with the registry's prefix);
  pytheus' is the name as given.
- ``track_inprogress()`` also decrements when the block raises (pytheus
  leaves the gauge incremented).
- Label values are given as strings in pytheus; here any value is turned
  into ``str``, as promshm does.
"""

from . import backends, exceptions, exposition, metrics, registry  # noqa: F401
from .backends import load_backend
from .exceptions import (
    BucketException,
    InvalidBackendClassException,
    InvalidBackendConfigException,
    LabelValidationException,
    PytheusException,
    UnobservableMetricException,
)
from .exposition import generate_metrics, make_wsgi_app
from .metrics import Counter, CustomCollector, Gauge, Histogram, Summary
from .registry import REGISTRY, CollectorRegistry

__all__ = [
    "Counter",
    "Gauge",
    "Histogram",
    "Summary",
    "CustomCollector",
    "CollectorRegistry",
    "REGISTRY",
    "generate_metrics",
    "make_wsgi_app",
    "load_backend",
    "PytheusException",
    "UnobservableMetricException",
    "LabelValidationException",
    "BucketException",
    "InvalidBackendClassException",
    "InvalidBackendConfigException",
]

load_backend()  # as pytheus does at import: the environment's backend

"""promshm: Prometheus metrics shared by every process of a pre-fork server.

A drop-in for ``prometheus_client`` whose values live in a promshm shared
memory area, so the workers of gunicorn, uWSGI or a ``multiprocessing`` pool
update one store with no configuration, and any of them serves exact totals::

    from promshm import Counter, Histogram, generate_latest

    REQUESTS = Counter('http_requests', 'Requests.', ['method', 'path'])
    LATENCY = Histogram('http_request_duration_seconds', 'Latency.')

    @LATENCY.time()
    def handle(method, path):
        REQUESTS.labels(method, path).inc()

    generate_latest()      # every worker's counts

See ``bindings/python/README.md`` for the whole API: pytheus-style partial and
default labels and registry prefixes, instrumentor-style namespaces and
``flush()``, phanos-style ``@profile`` (:mod:`promshm.profiling`), the WSGI and
ASGI helpers, and how processes find the shared area (:mod:`promshm._area`).
"""

from __future__ import annotations

from . import _bindings
from ._area import SHARED, Area, area_path, configure, flush, shared_area, start_flusher, stop_flusher
from ._ffi import library_path, version as library_version
from .asgi import ASGIMetricsMiddleware, make_asgi_app
from .metrics_core import (
    CounterMetricFamily,
    GaugeHistogramMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    InfoMetricFamily,
    Metric,
    StateSetMetricFamily,
    SummaryMetricFamily,
    UnknownMetricFamily,
    UntypedMetricFamily,
)
from .errors import (
    AreaError,
    AreaFullError,
    AreaNotFoundError,
    AreaPermissionError,
    IncompatibleAreaError,
    InternalError,
    InvalidArgumentError,
    LabelError,
    LibraryNotFoundError,
    PromshmError,
    PromshmIOError,
    ReadOnlyAreaError,
    RegistryError,
    ShapeMismatchError,
    UnobservableMetricError,
    WrongTypeError,
)
from .exposition import (
    CONTENT_TYPE_LATEST,
    CONTENT_TYPE_OPENMETRICS,
    CONTENT_TYPE_PLAIN_0_0_4,
    MetricsMiddleware,
    choose_encoder,
    flush_after,
    generate_latest,
    generate_metrics,
    make_wsgi_app,
    registry_to_text,
    start_http_server,
    start_wsgi_server,
    write_to_textfile,
    MetricsHandler,
    push_to_gateway,
    pushadd_to_gateway,
    delete_from_gateway,
    instance_ip_grouping_key,
)
from .metrics import (
    DEFAULT_BUCKETS,
    INF,
    Counter,
    Enum,
    Gauge,
    Histogram,
    Info,
    NativeHistogram,
    Summary,
    exponential_buckets,
    linear_buckets,
)
from .profiling import profile, profiler
from .gc_collector import GCCollector
from .platform_collector import PlatformCollector
from .process_collector import ProcessCollector
from .registry import REGISTRY, CollectorRegistry
from . import multiprocess, profiling  # noqa: E402
from .openmetrics import exposition as _openmetrics_exposition  # noqa: E402,F401

__version__: str = _bindings.PROMSHM_VERSION_STRING

#: instrumentor's name for :func:`flush`: push this process's batched updates.
transfer = flush

__all__ = [
    "Counter",
    "Gauge",
    "Histogram",
    "NativeHistogram",
    "Summary",
    "Info",
    "Enum",
    "CollectorRegistry",
    "REGISTRY",
    "SHARED",
    "Area",
    "configure",
    "shared_area",
    "area_path",
    "flush",
    "transfer",
    "start_flusher",
    "stop_flusher",
    "generate_latest",
    "generate_metrics",
    "registry_to_text",
    "choose_encoder",
    "CONTENT_TYPE_LATEST",
    "CONTENT_TYPE_PLAIN_0_0_4",
    "CONTENT_TYPE_OPENMETRICS",
    "make_wsgi_app",
    "make_asgi_app",
    "MetricsMiddleware",
    "ASGIMetricsMiddleware",
    "flush_after",
    "start_http_server",
    "start_wsgi_server",
    "write_to_textfile",
    "MetricsHandler",
    "push_to_gateway",
    "pushadd_to_gateway",
    "delete_from_gateway",
    "instance_ip_grouping_key",
    "DEFAULT_BUCKETS",
    "INF",
    "linear_buckets",
    "exponential_buckets",
    "Metric",
    "CounterMetricFamily",
    "GaugeMetricFamily",
    "HistogramMetricFamily",
    "SummaryMetricFamily",
    "InfoMetricFamily",
    "StateSetMetricFamily",
    "GaugeHistogramMetricFamily",
    "UnknownMetricFamily",
    "UntypedMetricFamily",
    "profile",
    "profiler",
    "ProcessCollector",
    "PlatformCollector",
    "GCCollector",
    "PromshmError",
    "InvalidArgumentError",
    "LabelError",
    "WrongTypeError",
    "UnobservableMetricError",
    "PromshmIOError",
    "AreaNotFoundError",
    "AreaPermissionError",
    "AreaError",
    "AreaFullError",
    "IncompatibleAreaError",
    "ReadOnlyAreaError",
    "RegistryError",
    "ShapeMismatchError",
    "InternalError",
    "LibraryNotFoundError",
    "library_path",
    "library_version",
    "__version__",
]

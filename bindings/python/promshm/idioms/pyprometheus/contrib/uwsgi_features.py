"""pyprometheus' uWSGI storages and collector on promshm's uWSGI plugin.

- :class:`UWSGIStorage` is the application's **shared area**, written
  through (eager: every update is in the area when the call returns, as
  pyprometheus' sharedarea writes were). Under uWSGI with the promshm
  plugin it is the plugin's area (the plugin exports its path in
  ``PROMSHM_AREA``), so the app's metrics are on the plugin's ``/metrics``
  next to its request and worker metrics; no ``--sharedarea`` is needed
  (one given is left alone) and ``sharedarea_id`` only names the storage.
  Outside uWSGI it is promshm's zero-configuration shared area: gunicorn or
  forked workers get exact totals too (pyprometheus needed uWSGI).
- :class:`UWSGIFlushStorage` is the same area with updates batched in the
  process: they arrive at the end of each request (the plugin flushes the
  application's library then), within promshm's flush interval (1 s), and
  on ``storage.flush()``.
- :class:`UWSGICollector` yields uWSGI's own figures (``uwsgi.workers()``,
  ``uwsgi.mem()``, ...) in the renders of the process that renders in
  Python (``registry_to_text``, ``write_to_textfile``, promshm's WSGI app);
  outside uWSGI it yields nothing. The plugin's ``/metrics`` (rendered in C)
  has the master's worker metrics instead (``uwsgi_workers{state}``,
  ``uwsgi_worker_requests_total{worker}``,
  ``uwsgi_worker_respawns_total{worker}``). Names follow Prometheus'
  conventions (``promtool check metrics`` accepts them):
  ``<namespace>_processes`` for pyprometheus' ``<namespace>:processes_total``
  (":" becomes "_", no ``_total`` on gauges, see :data:`UWSGI_METRICS`);
  ``legacy_names=True`` gives pyprometheus' names exactly.
"""

from __future__ import annotations

import os
from typing import Any, Dict, Iterator, List, Mapping, Optional, Tuple

from .... import flush as _flush
from ...._area import SHARED, shared_area
from ....metrics_core import GaugeMetricFamily
from ..storage import BaseStorage

try:  # only inside uWSGI
    import uwsgi  # type: ignore[import-not-found]
except ImportError:  # pragma: no cover - outside uWSGI
    uwsgi = None

__all__ = ["UWSGIStorage", "UWSGIFlushStorage", "UWSGICollector", "UWSGI_METRICS"]

#: pyprometheus' ``PROMETHEUS_UWSGI_SHAREDAREA`` default id.
SHAREDAREA_ID = int(os.environ.get("PROMETHEUS_UWSGI_SHAREDAREA", 0))

#: UWSGICollector's metrics: (key, pyprometheus' name, promshm's name, help, extra label names).
UWSGI_METRICS: Tuple[Tuple[str, str, str, str, Tuple[str, ...]], ...] = (
    ("memory", "uwsgi_memory_bytes", "uwsgi_memory_bytes", "UWSGI memory usage in bytes", ("type",)),
    ("processes", "processes_total", "processes", "Number of UWSGI processes", ()),
    ("total_requests", "requests_total", "requests", "Total processed request", ()),
    ("buffer_size", "buffer_size_bytes", "buffer_size_bytes", "UWSGI buffer size in bytes", ()),
    ("started_on", "started_on", "started_on", "UWSGI started on timestamp", ()),
    ("cores", "cores", "cores", "system cores", ()),
    ("process:requests", "process:requests", "process_requests", "Process requests", ("id",)),
    ("process:respawn_count", "process:respawn_count", "process_respawns", "Process respawn count", ("id",)),
    ("process:running_time", "process:running_time", "process_running_time", "Process running time", ("id",)),
    ("process:exceptions", "process:exceptions", "process_exceptions", "Process exceptions", ("id",)),
    ("process:delta_requests", "process:delta_requests", "process_delta_requests", "Process delta_requests", ("id",)),
    ("process:rss", "process:rss", "process_rss", "Process rss memory", ("id",)),
    ("process:vsz", "process:vzs", "process_vsz", "Process vsz address space", ("id",)),
    ("process:last_spawn", "process:last_spawn", "process_last_spawn", "Process last spawn", ("id",)),
    ("process:tx", "process:tx", "process_tx", "Process transmitted data", ("id",)),
    ("process:avg_rt", "process:avg_rt", "process_avg_rt", "Process average response time", ("id",)),
    ("process:signals", "process:signals", "process_signals", "Process signals total", ("id",)),
    ("process:status", "process:status", "process_status", "Process status", ("id", "status")),
)


class UWSGIStorage(BaseStorage):
    """The application's shared area, written through (see the module
    documentation). ``namespace`` and ``labels`` name the storage's own
    metrics when it is registered as a collector (``registry.register(storage)``):
    ``<namespace>_memory_size`` and ``<namespace>_num_keys`` (bytes used and
    series in the area)."""

    SHAREDAREA_ID = SHAREDAREA_ID
    eager = True

    def __init__(self, sharedarea_id: int = SHAREDAREA_ID, namespace: str = "", stats: bool = False, labels: Optional[Mapping[str, str]] = None) -> None:
        self._sharedarea_id = sharedarea_id
        self._namespace = namespace
        self._stats = stats
        self._labels = dict(labels or {})

    def _area(self) -> Any:
        return SHARED

    @property
    def uid(self) -> str:
        return f"uwsgi-storage:{self._namespace}"

    def collect(self) -> Iterator[GaugeMetricFamily]:
        st = shared_area().stats()
        names = ["sharedarea"] + sorted(self._labels)
        values = [str(self._sharedarea_id)] + [str(self._labels[k]) for k in sorted(self._labels)]
        for key, help_, v in (
            ("memory_size", "Bytes of the shared area in use", (st["pages_used"]) * 4096),
            ("num_keys", "Series in the shared area", st["series"]),
        ):
            fam = GaugeMetricFamily(_name(self._namespace, key), help_, labels=names)
            fam.add_metric(values, float(v))
            yield fam

    def __repr__(self) -> str:
        return f"<UWSGIStorage sharedarea={self._sharedarea_id} (promshm shared area)>"


class UWSGIFlushStorage(UWSGIStorage):
    """The shared area with batched updates: they arrive at request end
    (the plugin's flush), within the flush interval, or on :meth:`flush`."""

    eager = False

    @property
    def persistent_storage(self) -> UWSGIStorage:
        """The write-through storage of the same area."""
        return UWSGIStorage(self._sharedarea_id, self._namespace, self._stats, self._labels)

    def flush(self) -> None:
        """Push this process's batched updates into the area now."""
        _flush()


class UWSGICollector:
    """uWSGI's own figures (see the module documentation); ``labels`` are
    added to every series."""

    def __init__(self, namespace: str, labels: Optional[Mapping[str, str]] = None, legacy_names: bool = False) -> None:
        self._namespace = namespace
        self._labels = dict(labels or {})
        self._legacy = legacy_names

    @property
    def uid(self) -> str:
        return f"uwsgi-collector:{self._namespace}"

    def _family(self, key: str) -> Tuple[GaugeMetricFamily, List[str]]:
        for k, legacy, name, help_, extra in UWSGI_METRICS:
            if k == key:
                full = f"{self._namespace}:{legacy}" if self._legacy else _name(self._namespace, name)
                names = list(extra) + sorted(self._labels)
                return GaugeMetricFamily(full, help_, labels=names), names
        raise KeyError(key)

    def _add(self, fams: Dict[str, Any], key: str, value: Any, **labels: Any) -> None:
        if key not in fams:
            fams[key] = self._family(key)
        fam, names = fams[key]
        merged = {**self._labels, **{k: str(v) for k, v in labels.items()}}
        fam.add_metric([str(merged[n]) for n in names], float(value))

    def collect(self) -> Iterator[GaugeMetricFamily]:
        if uwsgi is None:
            return iter(())
        fams: Dict[str, Any] = {}
        self._add(fams, "processes", uwsgi.numproc)
        self._add(fams, "total_requests", uwsgi.total_requests())
        self._add(fams, "buffer_size", uwsgi.buffer_size)
        self._add(fams, "started_on", uwsgi.started_on)
        self._add(fams, "cores", uwsgi.cores)
        rss, vsz = uwsgi.mem()[:2]
        self._add(fams, "memory", rss, type="rss")
        self._add(fams, "memory", vsz, type="vsz")
        for w in uwsgi.workers():
            for field in ("requests", "respawn_count", "running_time", "exceptions", "delta_requests", "rss", "vsz", "last_spawn", "tx", "avg_rt", "signals"):
                self._add(fams, "process:" + field, w.get(field, 0), id=w["id"])
            status = w.get("status", "")
            self._add(fams, "process:status", 1, id=w["id"], status=status.decode() if isinstance(status, bytes) else status)
        return iter([fam for fam, _ in fams.values()])


def _name(namespace: str, name: str) -> str:
    return f"{namespace}_{name}" if namespace else name

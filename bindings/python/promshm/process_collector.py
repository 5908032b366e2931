"""``ProcessCollector``: the standard ``process_*`` metrics, from ``/proc``.

As prometheus_client's: ``process_cpu_seconds_total``,
``process_virtual_memory_bytes``, ``process_resident_memory_bytes``,
``process_start_time_seconds``, ``process_open_fds`` and ``process_max_fds``,
read on every collect.

With the defaults (no ``pid``, ``proc="/proc"``) they have a multi-process
meaning: one series per **live worker** of the shared area, labelled by its
worker slot and pid (``worker="<slot>",pid="<pid>"``), whichever worker
renders; a dead worker's series disappear with it. Where a total makes sense
it is rendered too, unlabelled, as ``process_workers_cpu_seconds`` (a gauge:
the CPU time of the live workers), ``process_workers_resident_memory_bytes``,
``process_workers_virtual_memory_bytes``, ``process_workers_open_fds``, and
``process_workers`` (how many). With ``pid=`` (a callable returning the pid,
as in prometheus_client) the figures of that one process, unlabelled, as
prometheus_client renders them. Nothing is registered by default:
``ProcessCollector()`` adds it to :data:`~promshm.REGISTRY`.
"""

from __future__ import annotations

import os
from typing import Any, Callable, Dict, Iterable, List, Optional, Tuple, Union

from .metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from .registry import REGISTRY

__all__ = ["ProcessCollector", "attach_workers", "live_workers"]

#: (name, help) of the per-process figures, in the order rendered.
_FIGURES = (
    ("virtual_memory_bytes", "Virtual memory size in bytes."),
    ("resident_memory_bytes", "Resident memory size in bytes."),
    ("start_time_seconds", "Start time of the process since unix epoch in seconds."),
    ("cpu_seconds", "Total user and system CPU time spent in seconds."),
    ("open_fds", "Number of open file descriptors."),
    ("max_fds", "Maximum number of open file descriptors."),
)

#: Figures whose total over the live workers is rendered (``process_workers_<name>``).
_TOTALS = ("cpu_seconds", "resident_memory_bytes", "virtual_memory_bytes", "open_fds")


_attach_at_fork = False


def _attach() -> None:
    """Take this process's worker slot (a forked worker is listed from its
    start, not from its first gauge update)."""
    from ._area import shared_area

    try:
        shared_area().attach()
    except Exception:  # noqa: BLE001 - a fork hook must not fail the fork
        pass


def attach_workers() -> None:
    """Attach this process and every process forked from it from now on to
    the shared area, so that :func:`live_workers` lists them (idempotent)."""
    global _attach_at_fork
    if not _attach_at_fork:
        _attach_at_fork = True
        os.register_at_fork(after_in_child=_attach)
    _attach()


def live_workers() -> List[Tuple[str, int]]:
    """``(slot, pid)`` of the shared area's live workers, by slot (this
    process's alone when the area cannot be read)."""
    from ._area import shared_area

    try:
        area = shared_area()
        workers = sorted((w["slot"], w["pid"]) for w in area.workers() if w["alive"])
    except Exception:  # noqa: BLE001 - a collector must not break a scrape
        return [("", os.getpid())]
    return [(str(slot), pid) for slot, pid in workers]


class ProcessCollector:
    """Collects the ``process_*`` metrics of ``pid()`` from ``proc`` (``/proc``)."""

    def __init__(
        self,
        namespace: str = "",
        pid: Optional[Callable[[], Union[int, str]]] = None,
        proc: str = "/proc",
        registry: Any = REGISTRY,
    ) -> None:
        self._namespace = namespace
        self._per_worker = pid is None and proc == "/proc"
        self._pid = pid or (lambda: "self")
        self._proc = proc
        self._prefix = namespace + "_process_" if namespace else "process_"
        self._ticks = 100.0
        self._pagesize = 4096
        try:
            self._ticks = float(os.sysconf("SC_CLK_TCK"))
            self._pagesize = os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):
            pass
        self._btime: Optional[float] = None
        if self._per_worker:
            attach_workers()
        if registry is not None:
            registry.register(self)

    def _boot_time(self) -> float:
        with open(os.path.join(self._proc, "stat"), "rb") as f:
            for line in f:
                if line.startswith(b"btime "):
                    return float(line.split()[1])
        raise OSError("no btime in stat")

    def _read(self, pid: Union[int, str]) -> Dict[str, float]:
        """The figures of process ``pid`` (those that cannot be read are left out)."""
        out: Dict[str, float] = {}
        base = os.path.join(self._proc, str(pid).strip())
        try:
            with open(os.path.join(base, "stat"), "rb") as f:
                stat = f.read()
            parts = stat[stat.rindex(b")") + 1 :].split()
            if self._btime is None:
                self._btime = self._boot_time()
            out["virtual_memory_bytes"] = float(parts[20])
            out["resident_memory_bytes"] = float(parts[21]) * self._pagesize
            out["start_time_seconds"] = float(parts[19]) / self._ticks + self._btime
            out["cpu_seconds"] = (float(parts[11]) + float(parts[12])) / self._ticks
        except (OSError, ValueError, IndexError):
            pass
        try:
            with open(os.path.join(base, "limits"), "rb") as f:
                for line in f:
                    if line.startswith(b"Max open file"):
                        max_fds = float(line.split()[3])
                        break
                else:
                    raise OSError("no open-files limit")
            out["open_fds"] = float(len(os.listdir(os.path.join(base, "fd"))))
            out["max_fds"] = max_fds
        except (OSError, ValueError, IndexError):
            pass
        return out

    def _family(self, name: str, doc: str, labels: Any = None) -> Metric:
        cls = CounterMetricFamily if name == "cpu_seconds" else GaugeMetricFamily
        return cls(self._prefix + name, doc, labels=labels)

    def collect(self) -> Iterable[Metric]:
        """The families (those that cannot be read are left out)."""
        if not self._per_worker:
            figures = self._read(self._pid())
            out: List[Metric] = []
            for name, doc in _FIGURES:
                if name in figures:
                    fam = self._family(name, doc)
                    fam.add_metric([], figures[name])
                    out.append(fam)
            return out
        return self._collect_workers()

    def _collect_workers(self) -> List[Metric]:
        per = [(slot, pid, self._read(pid)) for slot, pid in live_workers()]
        per = [p for p in per if p[2]]  # exited since the worker table was read
        out = []
        for name, doc in _FIGURES:
            fam = self._family(name, doc, ["worker", "pid"])
            for slot, pid, figures in per:
                if name in figures:
                    fam.add_metric([slot, str(pid)], figures[name])
            if fam.samples:
                out.append(fam)
        workers = GaugeMetricFamily(self._prefix + "workers", "Live worker processes.", value=len(per))
        out.append(workers)
        for name, doc in _FIGURES:
            if name in _TOTALS:
                values = [f[name] for _, _, f in per if name in f]
                if values:
                    out.append(
                        GaugeMetricFamily(
                            self._prefix + "workers_" + name, "Sum over the live workers: " + doc[0].lower() + doc[1:], value=sum(values)
                        )
                    )
        return out

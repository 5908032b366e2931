"""``ProcessCollector``: the standard ``process_*`` metrics of a process, from ``/proc``.

As prometheus_client's: ``process_cpu_seconds_total``,
``process_virtual_memory_bytes``, ``process_resident_memory_bytes``,
``process_start_time_seconds``, ``process_open_fds`` and ``process_max_fds``
of the process ``pid()`` (default: this one), read on every collect. A
collector runs in the process that renders, so in a pre-fork server these are
the rendering worker's figures (unlabelled, as prometheus_client writes them).
Nothing is registered by default: ``ProcessCollector()`` adds it to
:data:`~promshm.REGISTRY`.
"""

from __future__ import annotations

import os
from typing import Any, Callable, Iterable, List, Optional, Union

from .metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from .registry import REGISTRY

__all__ = ["ProcessCollector"]


class ProcessCollector:
    """Collects the ``process_*`` metrics of ``pid()`` from ``proc`` (``/proc``)."""

    def __init__(
        self,
        namespace: str = "",
        pid: Callable[[], Union[int, str]] = lambda: "self",
        proc: str = "/proc",
        registry: Any = REGISTRY,
    ) -> None:
        self._namespace = namespace
        self._pid = pid
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
        if registry is not None:
            registry.register(self)

    def _boot_time(self) -> float:
        with open(os.path.join(self._proc, "stat"), "rb") as f:
            for line in f:
                if line.startswith(b"btime "):
                    return float(line.split()[1])
        raise OSError("no btime in stat")

    def collect(self) -> Iterable[Metric]:
        """The families (those that cannot be read are left out)."""
        out: List[Metric] = []
        base = os.path.join(self._proc, str(self._pid()).strip())
        p = self._prefix
        try:
            with open(os.path.join(base, "stat"), "rb") as f:
                stat = f.read()
            parts = stat[stat.rindex(b")") + 1 :].split()
            if self._btime is None:
                self._btime = self._boot_time()
            out.append(GaugeMetricFamily(p + "virtual_memory_bytes", "Virtual memory size in bytes.", value=float(parts[20])))
            out.append(
                GaugeMetricFamily(p + "resident_memory_bytes", "Resident memory size in bytes.", value=float(parts[21]) * self._pagesize)
            )
            start = float(parts[19]) / self._ticks + self._btime
            out.append(GaugeMetricFamily(p + "start_time_seconds", "Start time of the process since unix epoch in seconds.", value=start))
            cpu = (float(parts[11]) + float(parts[12])) / self._ticks
            out.append(CounterMetricFamily(p + "cpu_seconds", "Total user and system CPU time spent in seconds.", value=cpu))
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
            open_fds = len(os.listdir(os.path.join(base, "fd")))
            out.append(GaugeMetricFamily(p + "open_fds", "Number of open file descriptors.", value=open_fds))
            out.append(GaugeMetricFamily(p + "max_fds", "Maximum number of open file descriptors.", value=max_fds))
        except (OSError, ValueError, IndexError):
            pass
        return out

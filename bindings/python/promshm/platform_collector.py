"""``PlatformCollector``: ``python_info`` (version, implementation; the JVM on Jython).

The same in every worker of a pre-fork server (one interpreter binary), so it
is rendered once, unlabelled, by whichever worker renders."""

from __future__ import annotations

import platform as pf
from typing import Any, Dict, Iterable, Optional

from .metrics_core import GaugeMetricFamily, Metric
from .registry import REGISTRY

__all__ = ["PlatformCollector"]


class PlatformCollector:
    """Collects ``python_info{version,implementation,major,minor,patchlevel}`` 1
    (as prometheus_client's). Nothing is registered by default."""

    def __init__(self, registry: Any = REGISTRY, platform: Optional[Any] = None) -> None:
        self._platform = pf if platform is None else platform
        info = self._python_info()
        system = self._platform.system()
        if system == "Java":
            info.update(self._java_info())
        self._metrics = [self._info_metric("python_info", "Python platform information", info)]
        if registry is not None:
            registry.register(self)

    def collect(self) -> Iterable[Metric]:
        return self._metrics

    @staticmethod
    def _info_metric(name: str, documentation: str, data: Dict[str, str]) -> Metric:
        labels = data.keys()
        m = GaugeMetricFamily(name, documentation, labels=list(labels))
        m.add_metric([data[k] for k in labels], 1)
        return m

    def _python_info(self) -> Dict[str, str]:
        major, minor, patchlevel = self._platform.python_version_tuple()
        return {
            "version": self._platform.python_version(),
            "implementation": self._platform.python_implementation(),
            "major": major,
            "minor": minor,
            "patchlevel": patchlevel,
        }

    def _java_info(self) -> Dict[str, str]:
        java_version, _, vminfo, osinfo = self._platform.java_ver()
        vm_name, vm_release, vm_vendor = vminfo
        return {"jvm_version": java_version, "jvm_release": vm_release, "jvm_vendor": vm_vendor, "jvm_name": vm_name}



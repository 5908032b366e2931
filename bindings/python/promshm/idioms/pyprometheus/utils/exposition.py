"""pyprometheus' exposition helpers, with its argument order."""

from __future__ import annotations

import os
from typing import Any, Union

from ....exposition import generate_latest, write_to_textfile as _write_to_textfile

__all__ = ["registry_to_text", "write_to_textfile"]


def registry_to_text(registry: Any) -> str:
    """The registry (every process's values) in the text format 0.0.4, as
    ``str``. Unlike pyprometheus', no "Generated at" comment and no sample
    timestamps: Prometheus stamps samples at scrape time."""
    return generate_latest(registry).decode("utf-8")


def write_to_textfile(registry: Any, path: Union[str, "os.PathLike[str]"]) -> None:
    """Write the registry to ``path`` (pyprometheus' order: registry first),
    replaced atomically (temporary file, fsync, rename), for the
    node_exporter textfile collector. prometheus_client's order
    ``(path, registry)`` is accepted too."""
    if isinstance(registry, (str, os.PathLike)) and not isinstance(path, (str, os.PathLike)):
        registry, path = path, registry
    _write_to_textfile(os.fspath(path), registry)


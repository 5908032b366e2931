"""pytheus' exposition (``pytheus.exposition``): ``generate_metrics`` and ``make_wsgi_app``.

The page is the text format 0.0.4 of the registry's families in the shared
area (every worker's values), **in pytheus' naming**: a counter's sample is
its name as given (``my_counter 3``, no ``_total`` added; a name made with
``_total`` keeps it), so dashboards built on pytheus' output keep working.
promshm's own renders (``promshm.generate_latest``, the ``promshm`` command,
the exporters) follow Prometheus' convention (``my_counter_total``). A counter
that the rendering process never created (only another worker did) is shown
without ``_total``. Bucket bounds given as integers are written as pytheus
writes them (``le="1"``, where promshm writes ``le="1.0"``).
"""

from __future__ import annotations

import re
from typing import Any, Callable, Dict, Iterable, List

from ...exposition import generate_latest
from ...registry import CollectorRegistry
from .metrics import _LE_TEXT, _TOTAL_NAMED
from .registry import REGISTRY, _resolve

__all__ = ["generate_metrics", "make_wsgi_app", "PROMETHEUS_CONTENT_TYPE"]

PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

_TYPE_LINE = re.compile(r"# TYPE (\S+) counter$")
_LE = re.compile(r'(?<![a-zA-Z0-9_])le="([^"]*)"')


def _pytheus_naming(text: str) -> str:
    """``text`` with each counter family's ``<name>_total`` samples (and its
    HELP/TYPE lines) named ``<name>``, unless made as ``<name>_total``, and
    the integral bucket bounds of this process's histograms as pytheus writes them."""
    lines = text.split("\n")
    renamed = set()
    for line in lines:
        m = _TYPE_LINE.match(line)
        if m:
            fam = m.group(1)
            total = fam if fam.endswith("_total") else fam + "_total"
            if total not in _TOTAL_NAMED:
                renamed.add(total)
    if not renamed and not _LE_TEXT:
        return text
    out: List[str] = []
    for line in lines:
        if line.startswith("# HELP ") or line.startswith("# TYPE "):
            head, (name, sep, rest) = line[:7], line[7:].partition(" ")
            if name in renamed:
                line = head + name[: -len("_total")] + sep + rest
        elif line and not line.startswith("#"):
            end = min((i for i in (line.find("{"), line.find(" ")) if i >= 0), default=len(line))
            name = line[:end]
            if name in renamed:
                line = line[: end - len("_total")] + line[end:]
            else:
                texts = _LE_TEXT.get(name)
                if texts:
                    line = _LE.sub(lambda m: f'le="{texts.get(m.group(1), m.group(1))}"', line, count=1)
        out.append(line)
    return "\n".join(out)


def generate_metrics(registry: Any = REGISTRY) -> str:
    """The registry's page (text format 0.0.4, pytheus naming): every
    worker's values, this process's pending updates flushed first."""
    reg = _resolve(registry)
    # The area's own render (not prometheus_client's encoders, even with
    # promshm.compat installed): no _created samples, as in pytheus.
    text = reg.render("prometheus") if isinstance(reg, CollectorRegistry) else generate_latest(reg)
    return _pytheus_naming(text.decode("utf-8"))


def make_wsgi_app(registry: Any = REGISTRY) -> Callable[..., Iterable[bytes]]:
    """A WSGI app serving :func:`generate_metrics` at any path (``/favicon.ico``: empty)."""

    def prometheus_app(environ: Dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("PATH_INFO") == "/favicon.ico":
            start_response("200 OK", [])
            return [b""]
        output = generate_metrics(registry).encode("utf-8")
        start_response("200 OK", [("Content-Type", PROMETHEUS_CONTENT_TYPE)])
        return [output]

    return prometheus_app

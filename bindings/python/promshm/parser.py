"""A parser of OpenMetrics text as promshm renders it (for ``collect()`` and
``get_sample_value()``)."""

from __future__ import annotations

import math
import re
from typing import Dict, Iterator, Optional

from .metrics_core import Metric
from .samples import Sample
from .validation import TYPE_SUFFIXES

__all__ = ["parse_openmetrics"]

_SAMPLE_RE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{.*\})?\s+(\S+)(?:\s+(\S+))?\s*(?:#.*)?$")


def _unescape(s: str) -> str:
    out = []
    i = 0
    while i < len(s):
        c = s[i]
        if c == "\\" and i + 1 < len(s):
            n = s[i + 1]
            out.append({"n": "\n", "\\": "\\", '"': '"'}.get(n, "\\" + n))
            i += 2
        else:
            out.append(c)
            i += 1
    return "".join(out)


def _parse_labels(text: str) -> Dict[str, str]:
    labels: Dict[str, str] = {}
    i = 1  # after '{'
    n = len(text)
    while i < n:
        while i < n and text[i] in " ,":
            i += 1
        if i >= n or text[i] == "}":
            break
        eq = text.index("=", i)
        key = text[i:eq].strip()
        j = text.index('"', eq) + 1
        start = j
        while text[j] != '"':
            j += 2 if text[j] == "\\" else 1
        labels[key] = _unescape(text[start:j])
        i = j + 1
    return labels


def _parse_value(v: str) -> float:
    if v in ("+Inf", "Inf"):
        return math.inf
    if v == "-Inf":
        return -math.inf
    return float(v)


def parse_openmetrics(text: str) -> Iterator[Metric]:
    """Families of an OpenMetrics text (as promshm renders it)."""
    fam: Optional[Metric] = None
    for line in text.splitlines():
        if not line:
            continue
        if line.startswith("#"):
            parts = line.split(" ", 3)
            if len(parts) < 3:
                continue
            kind, name = parts[1], parts[2]
            rest = parts[3] if len(parts) > 3 else ""
            if kind == "EOF":
                break
            if fam is None or fam.name != name:
                if fam is not None:
                    yield fam
                fam = Metric.__new__(Metric)
                fam.name, fam.documentation, fam.unit, fam.type, fam.samples = name, "", "", "unknown", []
            if kind == "TYPE":
                fam.type = rest
            elif kind == "HELP":
                fam.documentation = _unescape(rest)
            elif kind == "UNIT":
                fam.unit = rest
            continue
        m = _SAMPLE_RE.match(line)
        if not m:
            continue
        name, lbl, value, ts = m.group(1), m.group(2), m.group(3), m.group(4)
        sample = Sample(name, _parse_labels(lbl) if lbl else {}, _parse_value(value), float(ts) if ts else None)
        if fam is None or not _belongs(fam, name):
            if fam is not None:
                yield fam
            fam = Metric.__new__(Metric)
            fam.name, fam.documentation, fam.unit, fam.type, fam.samples = name, "", "", "unknown", []
        fam.samples.append(sample)
    if fam is not None:
        yield fam


def _belongs(fam: Metric, sample_name: str) -> bool:
    if sample_name == fam.name:
        return True
    return any(sample_name == fam.name + s for s in TYPE_SUFFIXES.get(fam.type, ()))

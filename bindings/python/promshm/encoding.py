"""Text encoders of metric families (custom collectors' families on a page)."""

from __future__ import annotations

import math
from typing import Any, Dict, Iterable, List

from .validation import valid_label_name, valid_metric_name

__all__ = ["encode_families", "float_to_go_string"]


def float_to_go_string(d: Any) -> str:
    """A sample value as Prometheus writes it (``+Inf``, ``-Inf``, ``NaN``;
    ``1.0`` for 1, and Go's exponent form for large values: what
    prometheus_client writes)."""
    d = float(d)
    if d == math.inf:
        return "+Inf"
    if d == -math.inf:
        return "-Inf"
    if math.isnan(d):
        return "NaN"
    s = repr(d)
    dot = s.find(".")
    # Go switches to exponents sooner than Python (only positive values matter: le, quantile).
    if d > 0 and dot > 6:
        mantissa = f"{s[0]}.{s[1:dot]}{s[dot + 1:]}".rstrip("0.")
        return f"{mantissa}e+0{dot - 1}"
    return s


def _escape_value(v: str) -> str:
    return v.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


def _escape_help(v: str) -> str:
    return v.replace("\\", r"\\").replace("\n", r"\n")


def _labels_text(labels: Dict[str, str]) -> str:
    if not labels:
        return ""
    return "{" + ",".join(f'{k}="{_escape_value(v)}"' for k, v in sorted(labels.items())) + "}"


def _check_family(m: Any) -> None:
    if not valid_metric_name(m.name):
        raise ValueError(f"collector family with an invalid name: {m.name!r}")
    for s in m.samples:
        for k in s.labels:
            if not valid_label_name(k):
                raise ValueError(f"collector family {m.name}: invalid label name {k!r}")


def _encode_prometheus(m: Any, out: List[str]) -> None:
    mname, mtype = m.name, m.type
    if mtype == "counter":
        mname += "_total"
    elif mtype == "info":
        mname += "_info"
        mtype = "gauge"
    elif mtype == "stateset":
        mtype = "gauge"
    elif mtype == "gaugehistogram":
        mtype = "histogram"
    elif mtype == "unknown":
        mtype = "untyped"
    out.append(f"# HELP {mname} {_escape_help(m.documentation)}\n")
    out.append(f"# TYPE {mname} {mtype}\n")
    extra: Dict[str, List[str]] = {}
    for s in m.samples:
        line = f"{s.name}{_labels_text(s.labels)} {float_to_go_string(s.value)}"
        if s.timestamp is not None:
            line += f" {int(float(s.timestamp) * 1000):d}"
        line += "\n"
        for suffix in ("_created", "_gsum", "_gcount"):
            if s.name == m.name + suffix:
                extra.setdefault(suffix, []).append(line)
                break
        else:
            out.append(line)
    for suffix, lines in sorted(extra.items()):
        out.append(f"# HELP {m.name}{suffix} {_escape_help(m.documentation)}\n")
        out.append(f"# TYPE {m.name}{suffix} gauge\n")
        out.extend(lines)


def _exemplar_allowed(m: Any, s: Any) -> bool:
    if m.type == "counter" and s.name.endswith("_total"):
        return True
    return m.type in ("histogram", "gaugehistogram") and s.name.endswith("_bucket")


def _encode_openmetrics(m: Any, out: List[str]) -> None:
    out.append(f"# HELP {m.name} {_escape_value(m.documentation)}\n")
    out.append(f"# TYPE {m.name} {m.type}\n")
    if getattr(m, "unit", ""):
        out.append(f"# UNIT {m.name} {m.unit}\n")
    for s in m.samples:
        line = f"{s.name}{_labels_text(s.labels)} {float_to_go_string(s.value)}"
        if s.timestamp is not None:
            line += f" {s.timestamp}"
        ex = s.exemplar
        if ex:
            if not _exemplar_allowed(m, s):
                raise ValueError(f"Metric {m.name} has exemplars, but is not a histogram bucket or counter")
            line += f" # {_labels_text(ex.labels) or '{}'} {float_to_go_string(ex.value)}"
            if ex.timestamp is not None:
                line += f" {ex.timestamp}"
        out.append(line + "\n")


def encode_families(families: Iterable[Any], openmetrics: bool) -> str:
    """Text of metric families (prometheus_client-style objects), no ``# EOF``,
    byte for byte as prometheus_client writes them. An error raised for a
    family has the family appended to its ``args`` (as prometheus_client does)."""
    out: List[str] = []
    for m in families:
        try:
            _check_family(m)
            if openmetrics:
                _encode_openmetrics(m, out)
            else:
                _encode_prometheus(m, out)
        except Exception as e:
            e.args = (e.args or ("",)) + (m,)
            raise
    return "".join(out)

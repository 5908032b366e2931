"""Metric families for custom collectors, and the text encoders and parser.

A custom collector is any object with a ``collect()`` method that yields
metric families; registered with ``registry.register(collector)``, its
families are rendered after the area's on every scrape of that registry. The
families can be the classes below (the same names and arguments as
``prometheus_client.core``: ``GaugeMetricFamily``, ``CounterMetricFamily``,
...), ``prometheus_client``'s own family objects (anything with ``name``,
``documentation``, ``type``, ``unit`` and ``samples``), or promshm metric
objects (pytheus' idiom: ``yield Counter('x', 'help', registry=None)``)::

    class QueueCollector:
        def collect(self):
            g = GaugeMetricFamily('queue_depth', 'Jobs waiting.', labels=['queue'])
            g.add_metric(['default'], len(queue))
            yield g

    REGISTRY.register(QueueCollector())
"""

from __future__ import annotations

import math
import re
from typing import Any, Dict, Iterable, Iterator, List, NamedTuple, Optional, Sequence, Tuple

__all__ = [
    "Sample",
    "Exemplar",
    "Timestamp",
    "Metric",
    "UnknownMetricFamily",
    "UntypedMetricFamily",
    "CounterMetricFamily",
    "GaugeMetricFamily",
    "SummaryMetricFamily",
    "HistogramMetricFamily",
    "GaugeHistogramMetricFamily",
    "InfoMetricFamily",
    "StateSetMetricFamily",
    "encode_families",
    "parse_openmetrics",
    "float_to_go_string",
]

METRIC_TYPES = ("counter", "gauge", "summary", "histogram", "gaugehistogram", "unknown", "info", "stateset")
_NAME_RE = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
_LABEL_RE = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")


class Timestamp(NamedTuple):
    sec: int
    nsec: int

    def __float__(self) -> float:
        return self.sec + self.nsec / 1e9


class Exemplar(NamedTuple):
    labels: Dict[str, str]
    value: float
    timestamp: Optional[float] = None


class Sample(NamedTuple):
    name: str
    labels: Dict[str, str]
    value: float
    timestamp: Optional[float] = None
    exemplar: Optional[Exemplar] = None


class Metric:
    """A metric family and its samples (``prometheus_client.core.Metric``)."""

    def __init__(self, name: str, documentation: str, typ: str, unit: str = "") -> None:
        if unit and not name.endswith("_" + unit):
            name += "_" + unit
        if not _NAME_RE.match(name):
            raise ValueError("Invalid metric name: " + name)
        self.name = name
        self.documentation = documentation
        self.unit = unit
        if typ == "untyped":
            typ = "unknown"
        if typ not in METRIC_TYPES:
            raise ValueError("Invalid metric type: " + typ)
        self.type = typ
        self.samples: List[Sample] = []

    def add_sample(
        self,
        name: str,
        labels: Dict[str, str],
        value: float,
        timestamp: Optional[float] = None,
        exemplar: Optional[Exemplar] = None,
        native_histogram: Any = None,
    ) -> None:
        self.samples.append(Sample(name, labels, value, timestamp, exemplar))

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, Metric)
            and self.name == other.name
            and self.documentation == other.documentation
            and self.type == other.type
            and self.unit == other.unit
            and self.samples == other.samples
        )

    def __repr__(self) -> str:
        return f"Metric({self.name!r}, {self.documentation!r}, {self.type!r}, {self.unit!r}, {self.samples!r})"


class _PlainMetricFamily(Metric):
    """A family of plain samples (one value per label set); subclasses set the type."""

    _family_type = "unknown"

    def __init__(self, name: str, documentation: str, value: Optional[float] = None, labels: Optional[Sequence[str]] = None, unit: str = "") -> None:
        Metric.__init__(self, name, documentation, self._family_type, unit)
        if labels is not None and value is not None:
            raise ValueError("Can only specify at most one of value and labels.")
        self._labelnames = tuple(labels or ())
        if value is not None:
            self.add_metric([], value)

    def add_metric(self, labels: Sequence[str], value: float, timestamp: Optional[float] = None) -> None:
        self.samples.append(Sample(self.name, dict(zip(self._labelnames, labels)), value, timestamp))


class UnknownMetricFamily(_PlainMetricFamily):
    _family_type = "unknown"


UntypedMetricFamily = UnknownMetricFamily


class CounterMetricFamily(Metric):
    def __init__(
        self,
        name: str,
        documentation: str,
        value: Optional[float] = None,
        labels: Optional[Sequence[str]] = None,
        created: Optional[float] = None,
        unit: str = "",
    ) -> None:
        if name.endswith("_total"):
            name = name[:-6]
        Metric.__init__(self, name, documentation, "counter", unit)
        if labels is not None and value is not None:
            raise ValueError("Can only specify at most one of value and labels.")
        self._labelnames = tuple(labels or ())
        if value is not None:
            self.add_metric([], value, created)

    def add_metric(self, labels: Sequence[str], value: float, created: Optional[float] = None, timestamp: Optional[float] = None) -> None:
        lbl = dict(zip(self._labelnames, labels))
        self.samples.append(Sample(self.name + "_total", lbl, value, timestamp))
        if created is not None:
            self.samples.append(Sample(self.name + "_created", lbl, created, timestamp))


class GaugeMetricFamily(_PlainMetricFamily):
    _family_type = "gauge"


class SummaryMetricFamily(Metric):
    def __init__(
        self,
        name: str,
        documentation: str,
        count_value: Optional[int] = None,
        sum_value: Optional[float] = None,
        labels: Optional[Sequence[str]] = None,
        unit: str = "",
    ) -> None:
        Metric.__init__(self, name, documentation, "summary", unit)
        if (sum_value is None) != (count_value is None):
            raise ValueError("count_value and sum_value must be provided together.")
        if labels is not None and count_value is not None:
            raise ValueError("Can only specify at most one of value and labels.")
        self._labelnames = tuple(labels or ())
        if count_value is not None and sum_value is not None:
            self.add_metric([], count_value, sum_value)

    def add_metric(self, labels: Sequence[str], count_value: int, sum_value: float, timestamp: Optional[float] = None) -> None:
        lbl = dict(zip(self._labelnames, labels))
        self.samples.append(Sample(self.name + "_count", lbl, count_value, timestamp))
        self.samples.append(Sample(self.name + "_sum", lbl, sum_value, timestamp))


class HistogramMetricFamily(Metric):
    def __init__(
        self,
        name: str,
        documentation: str,
        buckets: Optional[Sequence[Tuple[str, float]]] = None,
        sum_value: Optional[float] = None,
        labels: Optional[Sequence[str]] = None,
        unit: str = "",
    ) -> None:
        Metric.__init__(self, name, documentation, "histogram", unit)
        if sum_value is not None and buckets is None:
            raise ValueError("sum value cannot be provided without buckets.")
        if labels is not None and buckets is not None:
            raise ValueError("Can only specify at most one of buckets and labels.")
        self._labelnames = tuple(labels or ())
        if buckets is not None:
            self.add_metric([], buckets, sum_value)

    def add_metric(self, labels: Sequence[str], buckets: Sequence[Any], sum_value: Optional[float], timestamp: Optional[float] = None) -> None:
        lbl = dict(zip(self._labelnames, labels))
        for b in buckets:
            bound, value = b[0], b[1]
            exemplar = b[2] if len(b) > 2 else None
            self.samples.append(Sample(self.name + "_bucket", {**lbl, "le": str(bound)}, value, timestamp, exemplar))
        if sum_value is not None:
            self.samples.append(Sample(self.name + "_count", lbl, buckets[-1][1], timestamp))
            self.samples.append(Sample(self.name + "_sum", lbl, sum_value, timestamp))


class GaugeHistogramMetricFamily(Metric):
    def __init__(
        self,
        name: str,
        documentation: str,
        buckets: Optional[Sequence[Tuple[str, float]]] = None,
        gsum_value: Optional[float] = None,
        labels: Optional[Sequence[str]] = None,
        unit: str = "",
    ) -> None:
        Metric.__init__(self, name, documentation, "gaugehistogram", unit)
        if labels is not None and buckets is not None:
            raise ValueError("Can only specify at most one of buckets and labels.")
        self._labelnames = tuple(labels or ())
        if buckets is not None:
            self.add_metric([], buckets, gsum_value)

    def add_metric(self, labels: Sequence[str], buckets: Sequence[Tuple[str, float]], gsum_value: Optional[float], timestamp: Optional[float] = None) -> None:
        lbl = dict(zip(self._labelnames, labels))
        for bound, value in buckets:
            self.samples.append(Sample(self.name + "_bucket", {**lbl, "le": str(bound)}, value, timestamp))
        if gsum_value is not None:
            self.samples.append(Sample(self.name + "_gcount", lbl, buckets[-1][1], timestamp))
            self.samples.append(Sample(self.name + "_gsum", lbl, gsum_value, timestamp))


class InfoMetricFamily(Metric):
    def __init__(self, name: str, documentation: str, value: Optional[Dict[str, str]] = None, labels: Optional[Sequence[str]] = None) -> None:
        if name.endswith("_info"):
            name = name[:-5]
        Metric.__init__(self, name, documentation, "info")
        if labels is not None and value is not None:
            raise ValueError("Can only specify at most one of value and labels.")
        self._labelnames = tuple(labels or ())
        if value is not None:
            self.add_metric([], value)

    def add_metric(self, labels: Sequence[str], value: Dict[str, str], timestamp: Optional[float] = None) -> None:
        self.samples.append(Sample(self.name + "_info", {**dict(zip(self._labelnames, labels)), **value}, 1, timestamp))


class StateSetMetricFamily(Metric):
    def __init__(self, name: str, documentation: str, value: Optional[Dict[str, bool]] = None, labels: Optional[Sequence[str]] = None) -> None:
        Metric.__init__(self, name, documentation, "stateset")
        if labels is not None and value is not None:
            raise ValueError("Can only specify at most one of value and labels.")
        self._labelnames = tuple(labels or ())
        if value is not None:
            self.add_metric([], value)

    def add_metric(self, labels: Sequence[str], value: Dict[str, bool], timestamp: Optional[float] = None) -> None:
        lbl = dict(zip(self._labelnames, labels))
        for state, enabled in sorted(value.items()):
            self.samples.append(Sample(self.name, {**lbl, self.name: state}, 1 if enabled else 0, timestamp))


# --------------------------------------------------------------------------
# Encoding.


def float_to_go_string(d: Any) -> str:
    """A sample value as Prometheus writes it (``+Inf``, ``-Inf``, ``NaN``)."""
    d = float(d)
    if d == math.inf:
        return "+Inf"
    if d == -math.inf:
        return "-Inf"
    if math.isnan(d):
        return "NaN"
    if d.is_integer() and abs(d) < 1e15:
        return repr(d)  # "1.0": what prometheus_client writes
    return repr(d)


def _escape_value(v: str) -> str:
    return v.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


def _escape_help(v: str) -> str:
    return v.replace("\\", r"\\").replace("\n", r"\n")


def _labels_text(labels: Dict[str, str]) -> str:
    if not labels:
        return ""
    return "{" + ",".join(f'{k}="{_escape_value(str(v))}"' for k, v in labels.items()) + "}"


def _check_family(m: Any) -> None:
    if not _NAME_RE.match(m.name):
        raise ValueError(f"collector family with an invalid name: {m.name!r}")
    for s in m.samples:
        for k in s.labels:
            if not _LABEL_RE.match(k):
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
            line += f" {int(float(s.timestamp) * 1000)}"
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


def _encode_openmetrics(m: Any, out: List[str]) -> None:
    out.append(f"# TYPE {m.name} {m.type}\n")
    if getattr(m, "unit", ""):
        out.append(f"# UNIT {m.name} {m.unit}\n")
    if m.documentation:
        out.append(f"# HELP {m.name} {_escape_value(m.documentation)}\n")
    for s in m.samples:
        line = f"{s.name}{_labels_text(s.labels)} {float_to_go_string(s.value)}"
        if s.timestamp is not None:
            line += f" {float(s.timestamp)}"
        ex = s.exemplar
        if ex is not None:
            line += f" # {_labels_text(ex.labels) or '{}'} {float_to_go_string(ex.value)}"
            if ex.timestamp is not None:
                line += f" {float(ex.timestamp)}"
        out.append(line + "\n")


def encode_families(families: Iterable[Any], openmetrics: bool) -> str:
    """Text of metric families (prometheus_client-style objects), no ``# EOF``."""
    out: List[str] = []
    for m in families:
        _check_family(m)
        if openmetrics:
            _encode_openmetrics(m, out)
        else:
            _encode_prometheus(m, out)
    return "".join(out)


# --------------------------------------------------------------------------
# Parsing (our own OpenMetrics output, for collect() and get_sample_value()).

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


_SUFFIXES = {
    "counter": ("_total", "_created"),
    "summary": ("_count", "_sum", "_created", ""),
    "histogram": ("_bucket", "_count", "_sum", "_created"),
    "gaugehistogram": ("_bucket", "_gcount", "_gsum"),
    "info": ("_info",),
}


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
    return any(sample_name == fam.name + s for s in _SUFFIXES.get(fam.type, ()))

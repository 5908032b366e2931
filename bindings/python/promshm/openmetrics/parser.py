"""A strict parser of the OpenMetrics 1.0 text format (``prometheus_client.openmetrics.parser``).

:func:`text_string_to_metric_families` yields the families of a text and
raises ``ValueError`` on anything the format does not allow: a missing
``# EOF``, blank lines, bad names, labels, values or timestamps, repeated or
late metadata, histograms whose buckets, ``_count`` or ``_sum`` disagree,
exemplars where the format has none, stateset/info values other than 0/1, ...
Timestamps with a fraction of a second come back as :class:`~promshm.samples.Timestamp`
(nanoseconds kept), integers as ``Timestamp(sec, 0)``.
"""

from __future__ import annotations

import io
import math
import re
from typing import Any, Dict, Iterable, Iterator, List, Optional, Set, Tuple, Union

from ..encoding import float_to_go_string
from ..metrics_core import Metric
from ..parser import _unescape as _unescape_help
from ..samples import Exemplar, Sample, Timestamp

__all__ = ["text_string_to_metric_families", "text_fd_to_metric_families"]

_NAME_RE = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_LABEL_NAME_RE = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")

#: The sample names (suffixes) each family type has.
_SUFFIXES: Dict[str, List[str]] = {
    "counter": ["_total", "_created"],
    "summary": ["", "_count", "_sum", "_created"],
    "histogram": ["_count", "_sum", "_bucket", "_created"],
    "gaugehistogram": ["_gcount", "_gsum", "_bucket"],
    "info": ["_info"],
}
_COUNTER_LIKE = ("_total", "_sum", "_count", "_bucket", "_gcount", "_gsum")


def text_string_to_metric_families(text: str) -> Iterator[Metric]:
    """The families of an OpenMetrics text (see :func:`text_fd_to_metric_families`)."""
    yield from text_fd_to_metric_families(io.StringIO(text))


def _number(token: str) -> Union[int, float]:
    if not token or token != token.strip() or "_" in token:
        raise ValueError(f"Invalid value: {token!r}")
    try:
        return int(token)
    except ValueError:
        return float(token)


def _timestamp(token: str) -> Union[Timestamp, float, None]:
    if not token:
        return None
    if token != token.strip() or "_" in token:
        raise ValueError(f"Invalid timestamp: {token!r}")
    try:
        return Timestamp(int(token), 0)
    except ValueError:
        pass
    sec, dot, frac = token.partition(".")
    try:
        return Timestamp(int(sec), int(frac[:9].ljust(9, "0")))
    except ValueError:
        ts = float(token)
        if math.isnan(ts) or math.isinf(ts):
            raise ValueError(f"Invalid timestamp: {token!r}") from None
        return ts


def _labels(line: str, i: int) -> Tuple[Dict[str, str], int]:
    """The label set starting at ``line[i] == '{'``, and the index after its ``}``."""
    labels: Dict[str, str] = {}
    i += 1
    if line.startswith("}", i):
        return labels, i + 1
    while True:
        m = _LABEL_NAME_RE.match(line, i)
        if not m or not line.startswith('="', m.end()):
            raise ValueError("Invalid labels: " + line)
        name = m.group(0)
        i = m.end() + 2
        value: List[str] = []
        while True:
            if i >= len(line):
                raise ValueError("Invalid labels: " + line)
            c = line[i]
            if c == '"':
                break
            if c == "\\" and i + 1 < len(line):
                n = line[i + 1]
                value.append({"\\": "\\", "n": "\n", '"': '"'}.get(n, "\\" + n))
                i += 2
                continue
            value.append(c)
            i += 1
        if name in labels:
            raise ValueError("Invalid line, duplicate label name: " + line)
        labels[name] = "".join(value)
        i += 1
        if line.startswith(",", i):
            i += 1
        elif line.startswith("}", i):
            return labels, i + 1
        else:
            raise ValueError("Invalid labels: " + line)


def _sample(line: str) -> Sample:
    m = _NAME_RE.match(line)
    if not m:
        raise ValueError("Invalid line: " + line)
    name, i = m.group(0), m.end()
    labels: Dict[str, str] = {}
    if line.startswith("{", i):
        labels, i = _labels(line, i)
    if not line.startswith(" ", i):
        raise ValueError("Invalid line: " + line)
    rest = line[i + 1 :]
    main, sep, ex_text = rest.partition(" # ")
    if not sep and rest.endswith(" #"):
        raise ValueError("Invalid line: " + line)
    tokens = main.split(" ")
    if len(tokens) > 2 or any(not t for t in tokens):
        raise ValueError("Invalid line: " + line)
    value = _number(tokens[0])
    ts = _timestamp(tokens[1]) if len(tokens) == 2 else None
    exemplar = None
    if sep:
        if not ex_text.startswith("{"):
            raise ValueError("Invalid line: " + line)
        ex_labels, j = _labels(ex_text, 0)
        if not ex_text.startswith(" ", j):
            raise ValueError("Invalid line: " + line)
        ex_tokens = ex_text[j + 1 :].split(" ")
        if len(ex_tokens) > 2 or any(not t for t in ex_tokens):
            raise ValueError("Invalid line: " + line)
        if sum(len(k) + len(v) for k, v in ex_labels.items()) > 128:
            raise ValueError("Exemplar labels are too long: " + line)
        exemplar = Exemplar(ex_labels, _number(ex_tokens[0]), _timestamp(ex_tokens[1]) if len(ex_tokens) == 2 else None)
    return Sample(name, labels, value, ts, exemplar)


def _group(sample: Sample, name: str, typ: str) -> Dict[str, str]:
    """The labels that identify the sample's series group (its family's
    structural labels removed)."""
    if typ == "info":
        return {}
    if typ == "summary" and sample.name == name:
        return {k: v for k, v in sample.labels.items() if k != "quantile"}
    if typ == "stateset":
        return {k: v for k, v in sample.labels.items() if k != name}
    if typ in ("histogram", "gaugehistogram") and sample.name == name + "_bucket":
        return {k: v for k, v in sample.labels.items() if k != "le"}
    return sample.labels


def _check_histogram(samples: List[Sample], name: str) -> None:
    """Every group of a (gauge) histogram: increasing buckets ending in +Inf,
    ``_count`` equal to it, ``_sum``/``_gsum`` present with ``_count``, no
    ``_sum`` with negative buckets, no negative ``_gsum`` without them."""
    state: Dict[str, Any] = {}

    def check() -> None:
        if state["bucket"] != math.inf:
            raise ValueError("+Inf bucket missing: " + name)
        count = state["count"]
        if count is not None and state["value"] != count:
            raise ValueError("Count does not match +Inf value: " + name)
        if state["sum"] and count is None:
            raise ValueError("_count must be present if _sum is present: " + name)
        if state["gsum"] and count is None:
            raise ValueError("_gcount must be present if _gsum is present: " + name)
        if not (state["sum"] or state["gsum"]) and count is not None:
            raise ValueError("_sum/_gsum must be present if _count is present: " + name)
        if state["negative"] and state["sum"]:
            raise ValueError("Cannot have _sum with negative buckets: " + name)
        if not state["negative"] and state["negative_gsum"]:
            raise ValueError("Cannot have negative _gsum with non-negative buckets: " + name)

    key: Any = None
    for s in samples:
        k = (_group(s, name, "histogram"), s.timestamp)
        if key is None or k != key:
            if key is not None:
                check()
            state = {"count": None, "bucket": None, "negative": False, "sum": False, "gsum": False, "negative_gsum": False, "value": 0}
        key = k
        suffix = s.name[len(name) :]
        if suffix == "_bucket":
            b = float(s.labels["le"])
            if b < 0:
                state["negative"] = True
            if state["bucket"] is not None and b <= state["bucket"]:
                raise ValueError("Buckets out of order: " + name)
            if s.value < state["value"]:
                raise ValueError("Bucket values out of order: " + name)
            state["bucket"], state["value"] = b, s.value
        elif suffix in ("_count", "_gcount"):
            state["count"] = s.value
        elif suffix == "_sum":
            state["sum"] = True
        elif suffix == "_gsum":
            state["gsum"] = True
            if s.value < 0:
                state["negative_gsum"] = True
    if key is not None:
        check()


def _uncanonical(s: str) -> bool:
    """Whether ``s`` spells +Inf otherwise than ``+Inf`` (the one canonical number)."""
    return float(s) == math.inf and s != float_to_go_string(math.inf)


class _Family:
    """The family being read."""

    def __init__(self, name: str, typ: Optional[str] = None) -> None:
        self.name = name
        self.typ = typ
        self.doc: Optional[str] = None
        self.unit: Optional[str] = None
        self.samples: List[Sample] = []
        self.allowed = [name]
        self.group: Optional[Tuple[Any, ...]] = None
        self.seen_groups: Set[Tuple[Any, ...]] = set()
        self.group_ts: Any = None
        self.group_series: Set[Any] = set()


def _build(f: _Family, seen: Set[str]) -> Metric:
    typ = f.typ or "unknown"
    for suffix in set(_SUFFIXES.get(typ, []) + [""]):
        if f.name + suffix in seen:
            raise ValueError("Clashing name: " + f.name + suffix)
        seen.add(f.name + suffix)
    unit = f.unit or ""
    if unit and not f.name.endswith("_" + unit):
        raise ValueError("Unit does not match metric name: " + f.name)
    if unit and typ in ("info", "stateset"):
        raise ValueError("Units not allowed for this metric type: " + f.name)
    if typ in ("histogram", "gaugehistogram"):
        _check_histogram(f.samples, f.name)
    metric = Metric(f.name, f.doc or "", typ, unit)
    metric.samples = f.samples
    return metric


def _add_sample(f: _Family, sample: Sample, line: str) -> None:
    name, typ = f.name, f.typ
    labels = sample.labels
    if typ == "stateset" and name not in labels:
        raise ValueError("Stateset missing label: " + line)
    if sample.name == name + "_bucket" and (labels.get("le", "NaN") == "NaN" or _uncanonical(labels["le"])):
        raise ValueError("Invalid le label: " + line)
    integral = isinstance(sample.value, int) or float(sample.value).is_integer()
    if sample.name == name + "_bucket" and not integral:
        raise ValueError("Bucket value must be an integer: " + line)
    if sample.name in (name + "_count", name + "_gcount") and not integral:
        raise ValueError("Count value must be an integer: " + line)
    if typ == "summary" and sample.name == name:
        if not 0 <= float(labels.get("quantile", -1)) <= 1 or _uncanonical(labels["quantile"]):
            raise ValueError("Invalid quantile label: " + line)
    g = tuple(sorted(_group(sample, name, typ or "unknown").items()))
    if f.group is not None and g != f.group and g in f.seen_groups:
        raise ValueError("Invalid metric grouping: " + line)
    if f.group is not None and g == f.group:
        if (sample.timestamp is None) != (f.group_ts is None):
            raise ValueError("Mix of timestamp presence within a group: " + line)
        if f.group_ts is not None and f.group_ts > sample.timestamp and typ != "info":
            raise ValueError("Timestamps went backwards within a group: " + line)
    else:
        f.group_series = set()
    series = (sample.name, tuple(sorted(labels.items())))
    # the same series again at the same timestamp (truncated timestamps): kept once
    if sample.timestamp != f.group_ts or series not in f.group_series:
        f.samples.append(sample)
    f.group_series.add(series)
    f.group, f.group_ts = g, sample.timestamp
    f.seen_groups.add(g)
    value = sample.value
    suffix = sample.name[len(name) :]
    if typ == "stateset" and value not in (0, 1):
        raise ValueError("Stateset samples can only have values zero and one: " + line)
    if typ == "info" and value != 1:
        raise ValueError("Info samples can only have value one: " + line)
    if typ == "summary" and sample.name == name and value < 0:
        raise ValueError("Quantile values cannot be negative: " + line)
    if suffix in _COUNTER_LIKE and math.isnan(value):
        raise ValueError("Counter-like samples cannot be NaN: " + line)
    if suffix in _COUNTER_LIKE[:5] and value < 0:
        raise ValueError("Counter-like samples cannot be negative: " + line)
    if sample.exemplar and not (
        (typ in ("histogram", "gaugehistogram") and sample.name.endswith("_bucket")) or (typ == "counter" and sample.name.endswith("_total"))
    ):
        raise ValueError("Invalid line only histogram/gaugehistogram buckets and counters can have exemplars: " + line)


def text_fd_to_metric_families(fd: Iterable[str]) -> Iterator[Metric]:
    """The families of an OpenMetrics text read line by line from ``fd``."""
    fam: Optional[_Family] = None
    seen: Set[str] = set()
    eof = False
    for line in fd:
        if line.endswith("\n"):
            line = line[:-1]
        if eof:
            raise ValueError("Received line after # EOF: " + line)
        if not line:
            raise ValueError("Received blank line")
        if line == "# EOF":
            eof = True
        elif line.startswith("#"):
            parts = line.split(" ", 3)
            if len(parts) < 4:
                raise ValueError("Invalid line: " + line)
            kind, name, rest = parts[1], parts[2], parts[3]
            if fam is not None and name == fam.name and fam.samples:
                raise ValueError("Received metadata after samples: " + line)
            if fam is None or name != fam.name:
                if fam is not None:
                    yield _build(fam, seen)
                fam = _Family(name)
            if kind == "HELP":
                if fam.doc is not None:
                    raise ValueError("More than one HELP for metric: " + line)
                fam.doc = _unescape_help(rest)
            elif kind == "TYPE":
                if fam.typ is not None:
                    raise ValueError("More than one TYPE for metric: " + line)
                if rest == "untyped":
                    raise ValueError("Invalid TYPE for metric: " + line)
                fam.typ = rest
                fam.allowed = [name + s for s in _SUFFIXES.get(rest, [""])]
            elif kind == "UNIT":
                if fam.unit is not None:
                    raise ValueError("More than one UNIT for metric: " + line)
                fam.unit = rest
            else:
                raise ValueError("Invalid line: " + line)
        else:
            sample = _sample(line)
            if fam is None or sample.name not in fam.allowed:
                if fam is not None:
                    yield _build(fam, seen)
                fam = _Family(sample.name, "unknown")
            _add_sample(fam, sample, line)
    if fam is not None:
        yield _build(fam, seen)
    if not eof:
        raise ValueError("Missing # EOF at end")

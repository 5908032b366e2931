"""Parsers: the Prometheus text format 0.0.4 (``prometheus_client.parser``'s
``text_string_to_metric_families``, as lax as prometheus_client's), and
:func:`parse_openmetrics`, a fast reader of the OpenMetrics text promshm itself
renders (for ``collect()`` and ``get_sample_value()``). The strict OpenMetrics
parser is :mod:`promshm.openmetrics.parser`."""

from __future__ import annotations

import io
import math
import re
from typing import Dict, Iterable, Iterator, List, Optional, TextIO, Tuple

from .metrics_core import Metric
from .samples import Exemplar, Sample
from .validation import TYPE_SUFFIXES

__all__ = ["parse_openmetrics", "text_string_to_metric_families", "text_fd_to_metric_families"]

_ESCAPES = {"\\\\": "\\", "\\n": "\n", '\\"': '"'}
_HELP_ESCAPE_RE = re.compile(r"\\[\\n]")
_VALUE_ESCAPE_RE = re.compile(r'\\[\\n"]')


def _unescape_help(s: str) -> str:
    return _HELP_ESCAPE_RE.sub(lambda m: _ESCAPES[m.group(0)], s)


def _unescape_value(s: str) -> str:
    return _VALUE_ESCAPE_RE.sub(lambda m: _ESCAPES[m.group(0)], s)


def _escaped(s: str, pos: int) -> bool:
    """Whether the character at ``pos`` follows an odd number of backslashes."""
    n = 0
    while pos > n and s[pos - 1 - n] == "\\":
        n += 1
    return n % 2 == 1


def _text_labels(text: str) -> Dict[str, str]:
    """The labels between ``{`` and ``}`` of a 0.0.4 sample line."""
    labels: Dict[str, str] = {}
    if "=" not in text:
        return labels
    rest = text
    try:
        while rest:
            eq = rest.index("=")
            name = rest[:eq]
            rest = rest[eq + 1 :].lstrip()
            start = rest.index('"') + 1
            value_part = rest[start:]
            i = 0
            while i < len(value_part):
                i = value_part.index('"', i)
                if not _escaped(value_part, i):
                    break
                i += 1
            end = i + 1
            value = rest[start:end]
            labels[name.strip()] = _unescape_value(value) if "\\" in text else value
            rest = rest[end + 1 :]
            rest = rest[rest.find(",") + 1 :].lstrip()
        return labels
    except ValueError:
        raise ValueError(f"Invalid labels: {text}") from None


def _text_value_and_timestamp(s: str) -> Tuple[float, Optional[float]]:
    """The value and (in seconds) the optional timestamp after a sample's name and labels."""
    s = s.lstrip()
    sep = " " if " " in s else "\t"
    values = [v.strip() for v in s.split(sep) if v.strip()]
    if not values:
        return float(s), None
    value = float(values[0])
    timestamp = float(values[-1]) / 1000 if len(values) > 1 else None
    return value, timestamp


def _text_sample(line: str) -> Sample:
    try:
        start, end = line.index("{"), line.rindex("}")
    except ValueError:
        sep = " " if " " in line else "\t"
        name_end = line.index(sep)
        value, ts = _text_value_and_timestamp(line[name_end:])
        return Sample(line[:name_end], {}, value, ts)
    value, ts = _text_value_and_timestamp(line[end + 1 :])
    return Sample(line[:start].strip(), _text_labels(line[start + 1 : end]), value, ts)


def text_string_to_metric_families(text: str) -> Iterator[Metric]:
    """The families of a text in the Prometheus text format 0.0.4."""
    yield from text_fd_to_metric_families(io.StringIO(text))


def _text_family(name: str, documentation: str, typ: str, samples: List[Sample]) -> Metric:
    # Counters as OpenMetrics has them: the family without _total, samples with it.
    if typ == "counter":
        if name.endswith("_total"):
            name = name[: -len("_total")]
        else:
            samples = [Sample(smp.name + "_total", *smp[1:]) for smp in samples]
    fam = Metric(name, documentation, typ)
    fam.samples = samples
    return fam


_TEXT_SUFFIXES = {"counter": [""], "gauge": [""], "summary": ["_count", "_sum", ""], "histogram": ["_count", "_sum", "_bucket"]}


def text_fd_to_metric_families(fd: Iterable[str]) -> Iterator[Metric]:
    """The families of a file (lines) in the Prometheus text format 0.0.4.

    As lax as prometheus_client's parser: a text that parses is not
    necessarily valid. A sample whose name does not belong to the current
    family is yielded at once as an untyped family of its own."""
    name, documentation, typ = "", "", "untyped"
    samples: List[Sample] = []
    allowed: List[str] = []
    for line in fd:
        line = line.strip()
        if line.startswith("#"):
            parts = line.split(None, 3)
            if len(parts) < 2:
                continue
            if parts[1] == "HELP":
                if parts[2] != name:
                    if name:
                        yield _text_family(name, documentation, typ, samples)
                    name, typ, samples, allowed = parts[2], "untyped", [], [parts[2]]
                documentation = _unescape_help(parts[3]) if len(parts) == 4 else ""
            elif parts[1] == "TYPE":
                if parts[2] != name:
                    if name:
                        yield _text_family(name, documentation, typ, samples)
                    name, documentation, samples = parts[2], "", []
                typ = parts[3]
                allowed = [name + x for x in _TEXT_SUFFIXES.get(typ, [""])]
        elif line:
            sample = _text_sample(line)
            if sample.name in allowed:
                samples.append(sample)
                continue
            if name:
                yield _text_family(name, documentation, typ, samples)
            name, documentation, typ, samples, allowed = "", "", "untyped", [], []
            yield _text_family(sample.name, "", "untyped", [sample])
    if name:
        yield _text_family(name, documentation, typ, samples)

_SAMPLE_RE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{.*\})?\s+(\S+)(?:\s+(\S+))?\s*(?:#.*)?$")


def _unescape(s: str) -> str:
    """An OpenMetrics label value or HELP text unescaped (``\\n``, ``\\\\``,
    ``\\"``; a backslash before anything else is kept): here and in
    :mod:`promshm.openmetrics.parser`."""
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


def _label_set_end(line: str, i: int) -> int:
    """The index after the label set that starts with ``{`` at ``i``
    (quoted values skipped, escapes included)."""
    n = len(line)
    j = i + 1
    while j < n and line[j] != "}":
        if line[j] == '"':
            j += 1
            while j < n and line[j] != '"':
                j += 2 if line[j] == "\\" else 1
        j += 1
    return j + 1


_NAME_RE = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")


def _parse_om_sample(line: str) -> Optional[Sample]:
    """An OpenMetrics sample line, with its exemplar if it has one."""
    m = _NAME_RE.match(line)
    if not m:
        return None
    name, i = m.group(0), m.end()
    labels: Dict[str, str] = {}
    if i < len(line) and line[i] == "{":
        end = _label_set_end(line, i)
        labels = _parse_labels(line[i:end])
        i = end
    rest, _, ex_text = line[i:].partition(" # ")
    parts = rest.split()
    if not parts:
        return None
    ts = float(parts[1]) if len(parts) > 1 else None
    exemplar = None
    ex_text = ex_text.strip()
    if ex_text.startswith("{"):
        end = _label_set_end(ex_text, 0)
        nums = ex_text[end:].split()
        if nums:
            exemplar = Exemplar(
                _parse_labels(ex_text[:end]), _parse_value(nums[0]), float(nums[1]) if len(nums) > 1 else None
            )
    return Sample(name, labels, _parse_value(parts[0]), ts, exemplar)


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
        parsed = _parse_om_sample(line)
        if parsed is None:
            continue
        sample, name = parsed, parsed.name
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

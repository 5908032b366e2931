"""Registries: where metrics are registered and what a scrape renders.

A registry is a view on a promshm *area* with an optional ``prefix``
(namespace) and constant labels, plus any custom collectors registered on it.

* :data:`REGISTRY`, the default, lives on the application's **shared area**
  (see :mod:`promshm._area`): every worker process of the application sees and
  renders the same metrics. Its renders include promshm's own ``promshm_*``
  metrics (area usage, workers, refused registrations).
* ``CollectorRegistry()`` made without ``area=`` is **private**, like a fresh
  prometheus_client registry: an anonymous area of its own, shared only with
  the children this process forks afterwards. Tests use it for isolation.
  Exception: with ``prometheus_client`` resolving to promshm (:mod:`promshm.compat`)
  and ``PROMETHEUS_MULTIPROC_DIR`` set, it is on the shared area, as every
  registry's values are shared in prometheus_client's multiprocess mode.
* ``CollectorRegistry(area=SHARED, prefix='app1')`` is a registry on the
  shared area under a namespace (instrumentor's model: several apps in one
  area, each rendering its own namespace); ``area=`` also takes an
  :class:`~promshm.Area` or a path.
"""

from __future__ import annotations

import os
import sys
import tempfile
import threading
from typing import Any, Callable, Dict, Iterable, Iterator, List, Mapping, Optional, Set, Union

from . import _area
from . import _bindings as B
from ._area import SHARED, Area, _format, _render
from ._ffi import check, encode, label_array, lib
from .errors import InvalidArgumentError
from .encoding import encode_families
from .metrics_core import Metric
from .parser import parse_openmetrics
from .validation import RENAMED, TYPE_SUFFIXES
from ctypes import byref, c_void_p

__all__ = ["CollectorRegistry", "REGISTRY", "Collector", "DuplicateTimeseries"]

EOF = b"# EOF\n"


class DuplicateTimeseries(ValueError):
    """A metric would render a sample name another metric of the registry renders."""

    def __init__(self, duplicates: Set[str]) -> None:
        super().__init__(f"Duplicated timeseries in CollectorRegistry: {duplicates}")
        self.duplicates = duplicates


class Collector:
    """The collector protocol: an object with ``collect()`` yielding metric families."""

    def collect(self) -> Iterable[Any]:  # pragma: no cover - protocol
        raise NotImplementedError


def _prometheus_client_multiprocess() -> bool:
    """Whether ``CollectorRegistry()`` is on the shared area: with
    ``prometheus_client`` resolving to promshm (:mod:`promshm.compat`) and
    prometheus_client's multiprocess mode asked for (``PROMETHEUS_MULTIPROC_DIR``
    set), where prometheus_client shares the values of every registry's metrics
    between processes (prometheus-flask-exporter's multiprocess classes register
    in a ``CollectorRegistry()`` and render it through ``MultiProcessCollector``)."""
    mod = sys.modules.get("prometheus_client")
    if mod is None or mod.__name__ != "promshm":
        return False
    return bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR") or os.environ.get("prometheus_multiproc_dir"))


class CollectorRegistry:
    """A registry (see the module documentation).

    ``auto_describe`` is accepted for prometheus_client compatibility.
    ``target_info`` (a dict) adds a ``target_info`` metric. ``prefix`` prefixes
    every family name (``<prefix>_<name>``) and restricts renders to that
    namespace; ``const_labels`` (or ``default_labels``) are added to every
    series of the registry. ``area`` is :data:`~promshm.SHARED`, an
    :class:`~promshm.Area`, a path, or None for a private area (with ``pages``
    pages). ``self_metrics`` includes the ``promshm_*`` metrics in renders
    (default: only for :data:`REGISTRY`).
    """

    def __init__(
        self,
        auto_describe: bool = False,
        target_info: Optional[Mapping[str, str]] = None,
        *,
        prefix: Optional[str] = None,
        const_labels: Optional[Mapping[str, str]] = None,
        default_labels: Optional[Mapping[str, str]] = None,
        area: Union[Area, str, "os.PathLike[str]", None, Any] = None,
        self_metrics: Optional[bool] = None,
        pages: int = 0,
    ) -> None:
        self.prefix = prefix or ""
        labels = dict(const_labels or {})
        labels.update(default_labels or {})
        self._const = {str(k): str(v) for k, v in labels.items()}
        self._self_metrics = (area is SHARED) if self_metrics is None else bool(self_metrics)
        if area is None and _prometheus_client_multiprocess():
            area = SHARED
        self._area_spec = area
        self._pages = pages
        self._lock = threading.RLock()
        self._h: Optional[c_void_p] = None
        self._area_obj: Optional[Area] = None
        self._metrics: List[Any] = []
        self._collectors: List[Any] = []
        self._target_info: Optional[Dict[str, str]] = None
        self._target_info_metric: Any = None  # the one Info object of set_target_info()
        self._skipped_families = 0  # collector families skipped for a taken name
        self._names: Dict[str, Any] = {}  # sample name -> the metric of this registry that renders it
        self._detached_area = False  # made for one registry=None metric
        self._auto_describe = auto_describe
        _area._registries.add(self)
        if target_info is not None:
            self.set_target_info(target_info)

    # -- the C registry, made on first use (so configure() can come after import)
    def _handle(self) -> c_void_p:
        h = self._h
        if h is not None:
            return h
        with self._lock:
            if self._h is None:
                spec = self._area_spec
                if spec is SHARED:
                    area = _area.shared_area()
                elif spec is None:
                    area = Area.anonymous(pages=self._pages)
                elif isinstance(spec, Area):
                    area = spec
                else:
                    area = Area(os.fspath(spec), pages=self._pages)
                self._area_obj = area
                arr, n = label_array((encode(k, "label name"), encode(v, "label value")) for k, v in self._const.items())
                reg = c_void_p()
                check(
                    lib.promshm_registry_new(area.handle, encode(self.prefix, "prefix") if self.prefix else None, arr, n, byref(reg)),
                    "registry",
                )
                if not self._self_metrics:
                    plain = c_void_p()
                    rc = lib.promshm_registry_without_self_metrics(reg, byref(plain))
                    lib.promshm_registry_free(reg)
                    check(rc)
                    reg = plain
                self._h = reg
            return self._h

    @property
    def area(self) -> Area:
        """The area this registry is a view on."""
        self._handle()
        assert self._area_obj is not None
        return self._area_obj

    @classmethod
    def _detached(cls) -> "CollectorRegistry":
        """A registry for a metric made with ``registry=None``: its own private
        area, rendered by nothing (unless a collector yields the metric).

        The metric owns it and it does not list the metric (no reference
        cycle), so the area is unmapped as soon as the metric is dropped: a
        collector that makes such metrics on every scrape keeps memory and
        mappings constant."""
        reg = cls(pages=64)
        reg._area_spec = None  # private even in prometheus_client's multiprocess mode
        reg._detached_area = True
        return reg

    def _claim(self, metric: Any) -> None:
        """Add a metric being made, reserving every sample name it renders;
        a name another metric of this registry renders raises
        :class:`DuplicateTimeseries` (as prometheus_client does)."""
        if self._detached_area:
            return
        names = metric._sample_names()
        with self._lock:
            taken = {n for n in names if n in self._names}
            if taken:
                raise DuplicateTimeseries(taken)
            for n in names:
                self._names[n] = metric
            self._metrics.append(metric)

    def _release(self, metric: Any) -> None:
        """Forget a metric: its names are free again."""
        with self._lock:
            self._metrics = [m for m in self._metrics if m is not metric]
            self._names = {n: m for n, m in self._names.items() if m is not metric}

    # -- prometheus_client's registry API
    def register(self, collector: Any) -> None:
        """Add a collector (an object with ``collect()``), or a promshm metric of
        another registry (then this registry renders it too)."""
        with self._lock:
            if getattr(collector, "_registry", None) is self:
                if getattr(collector, "_unregistered", False):
                    # Unregistered before: a fresh family in the area.
                    self._claim(collector)
                    collector._reregister()
                return
            if any(c is collector for c in self._collectors):
                raise ValueError(f"Collector already registered: {collector!r}")
            names = self._collector_names(collector)
            taken = {n for n in names if n in self._names}
            if taken:
                raise DuplicateTimeseries(taken)
            for n in names:
                self._names[n] = collector
            self._collectors.append(collector)

    def _collector_names(self, collector: Any) -> Set[str]:
        """The sample names a custom collector takes: from its ``describe()``,
        or with ``auto_describe=True`` from ``collect()`` (prometheus_client's rule)."""
        describe = getattr(collector, "describe", None)
        if describe is not None:
            fams = describe()
        elif self._auto_describe:
            fams = collector.collect()
        else:
            return set()
        out: Set[str] = set()
        for fam in fams:
            if hasattr(fam, "_sample_names"):
                out.update(fam._sample_names())
            else:
                out |= _names_of(fam.name, fam.type)
        return out

    def unregister(self, collector: Any) -> None:
        """Remove a collector. For a metric of this registry: its family is
        unregistered from the area, in every process (its series and its
        record are freed, their space reused; it leaves every render; its
        name is free for a new metric of any type). The metric object's
        updates change nothing from then on; registering it again with
        :meth:`register` makes a fresh family (its values start over)."""
        with self._lock:
            for i, c in enumerate(self._collectors):
                if c is collector:
                    del self._collectors[i]
                    self._release(c)
                    return
            for m in self._metrics:
                if m is collector:
                    self._release(m)
                    m._unregister_family()
                    return
        raise KeyError(f"not registered: {collector!r}")

    def set_target_info(self, labels: Optional[Mapping[str, str]]) -> None:
        """Set (or with None, clear) the ``target_info`` metric's labels."""
        with self._lock:
            info = self._target_info_metric
            if labels:
                if info is None:
                    info = self._target_info_metric = _METRICS.info("target", "Target metadata", registry=self)
                elif not any(m is info for m in self._metrics):
                    self._claim(info)  # its names again (a ValueError if another metric took them)
                if info._h is None:
                    info.clear()  # re-creates its series
                info.info(dict(labels))
            elif info is not None:
                self._release(info)  # the names are free while it is unset
                info._clear_series()  # renders nothing until set again
            self._target_info = dict(labels) if labels else None

    def get_target_info(self) -> Optional[Dict[str, str]]:
        return self._target_info

    def _run_functions(self) -> None:
        for m in list(self._metrics):
            if m._functions:
                m._run_functions()

    def render(self, format: Union[str, int] = "prometheus") -> bytes:
        """The exposition text of this registry, custom collectors included."""
        fmt = _format(format)
        om = fmt == B.PROMSHM_FORMAT_OPENMETRICS
        self._run_functions()
        if fmt == B.PROMSHM_FORMAT_PROTOBUF and self._collectors:
            raise InvalidArgumentError(
                "invalid argument", 114, "a registry with custom collectors renders the text formats only, not protobuf"
            )
        text = _render(lib.promshm_registry_render, self._handle(), fmt)
        if not self._collectors:
            return text
        if om and text.endswith(EOF):
            text = text[: -len(EOF)]
        skipped = [0]
        extra = _collectors_text(list(self._collectors), fmt, _names_in(text), skipped)
        if skipped[0]:
            with self._lock:
                self._skipped_families += skipped[0]
        if self._skipped_families:
            extra += _skipped_text(self._skipped_families, om)
        return text + extra + (EOF if om else b"")

    def render_to_file(self, path: Union[str, "os.PathLike[str]"], format: Union[str, int] = "prometheus") -> None:
        """Render into ``path``, replaced atomically."""
        if self._collectors or any(m._functions for m in self._metrics):
            _atomic_write(os.fspath(path), self.render(format))
            return
        check(lib.promshm_registry_render_to_file(self._handle(), _format(format), encode(os.fspath(path), "path")))

    def collect(self) -> Iterator[Metric]:
        """Every family as prometheus_client-style ``Metric`` objects, in
        prometheus_client's order: ``target_info``, then this process's metrics
        of the registry in the order they were made, then families in the
        area made only by other processes (by name), then custom collectors'
        families. ``_created`` samples are left out after
        :func:`~promshm.metrics.disable_created_metrics`; exemplars are this
        process's (see ``Counter.inc``)."""
        return iter(self._collect(None))

    def _collect(self, names: Optional[Set[str]]) -> List[Metric]:
        """:meth:`collect`'s families; with ``names``, only the custom
        collectors whose ``describe()`` (or, without one, ``collect()``)
        has one of these sample names are called."""
        self._run_functions()
        text = _render(lib.promshm_registry_render, self._handle(), B.PROMSHM_FORMAT_OPENMETRICS)
        area = {f.name: f for f in parse_openmetrics(text.decode("utf-8"))}
        for n in [n for n in area if n.endswith(RENAMED)]:
            area[n] = _unrenamed(area[n])
        with self._lock:
            own = list(self._metrics)
            collectors = list(self._collectors)
            info = self._target_info_metric
        if info is not None:
            own = [info] + [m for m in own if m is not info]
        out: List[Metric] = []
        for m in own:
            fam = area.pop(m.name, None)
            if fam is not None:
                out.append(_with_local_state(fam, m))
        out.extend(area[n] for n in sorted(area))
        taken = set()
        for fam in out:
            taken |= _names_of(fam.name, fam.type)
        for c in collectors:
            if names is not None and not _collector_has(c, names):
                continue
            for fam in c.collect():
                if isinstance(fam, _METRICS.base):
                    fams = _families_of(fam)
                else:
                    fams = [fam]
                for f in fams:
                    # a name the page already has is skipped (render() counts it)
                    fnames = _names_of(f.name, f.type)
                    if fnames & taken:
                        continue
                    taken |= fnames
                    out.append(f)
        if not _METRICS.use_created():
            out = [_without_created(f) for f in out]
        return out

    def get_sample_value(self, name: str, labels: Optional[Mapping[str, str]] = None) -> Optional[float]:
        """The value of one sample, or None (prometheus_client's test helper)."""
        want = dict(labels or {})
        for fam in self.collect():
            for s in fam.samples:
                if s.name == name and s.labels == want:
                    return s.value
        return None

    def restricted_registry(self, names: Iterable[str]) -> "_Restricted":
        """A view that renders only the families with these sample names."""
        return _Restricted(self, set(names))

    def __del__(self) -> None:
        h, self._h = getattr(self, "_h", None), None
        if h is not None:
            try:
                lib.promshm_registry_free(h)
            except Exception:  # interpreter shutdown
                pass

    def __repr__(self) -> str:
        where = "shared" if self._area_spec is SHARED else ("private" if self._area_spec is None else str(self._area_spec))
        return f"<promshm.CollectorRegistry {where}{' prefix=' + self.prefix if self.prefix else ''}>"


def _collector_has(collector: Any, names: Set[str]) -> bool:
    """Whether a custom collector's families have a sample name in ``names``
    (from its ``describe()`` when it has one, as prometheus_client does)."""
    describe = getattr(collector, "describe", None)
    fams = describe() if describe is not None else collector.collect()
    for fam in fams:
        if _names_of(fam.name, fam.type) & names:
            return True
    return False


#: Seconds within which the area's ``_created`` is the creation this process saw.
_SAME_TIME = 0.005


def _with_local_state(fam: Metric, metric: Any) -> Metric:
    """``fam`` with what this process knows of ``metric``'s series: its
    exemplars, and ``_created`` as the earlier of the area's time and this
    process's ``time.time()`` when it made or reset the series
    (prometheus_client's clock: the two differ by microseconds, unless the
    clock is mocked), unless another process has reset the series since."""
    kept = metric._exemplars
    created_at = metric._created_at
    names = metric._labelnames
    ex_name = fam.name + ("_bucket" if fam.type == "histogram" else "_total")
    created = fam.name + "_created"
    samples = []
    for smp in fam.samples:
        if smp.name == ex_name and kept:
            key = tuple(smp.labels.get(n, "") for n in names)
            bound = float(smp.labels["le"]) if ex_name.endswith("_bucket") else None
            ex = kept.get(key, {}).get(bound)
            if ex is not None:
                smp = smp._replace(exemplar=ex)
        elif smp.name == created:
            made = created_at.get(tuple(smp.labels.get(n, "") for n in names))
            # this process's clock, unless the area's time is a later reset
            # (by another process: after the real time this process made it)
            if made is not None and made[0] < smp.value <= made[1] + _SAME_TIME:
                smp = smp._replace(value=made[0])
        samples.append(smp)
    fam.samples = samples
    return fam


def _unrenamed(fam: Metric) -> Metric:
    """A family kept in the area as ``<name>:promshm_renamed`` (see
    ``MetricWrapperBase._register``) under its own name again (the dict key
    stays the area name, which the metric's ``name`` is)."""
    old, new = fam.name, fam.name[: -len(RENAMED)]
    fam.name = new
    samples = []
    for smp in fam.samples:
        labels = smp.labels
        if old in labels:  # an Enum's state label
            labels = {(new if k == old else k): v for k, v in labels.items()}
        samples.append(smp._replace(name=new + smp.name[len(old) :], labels=labels))
    fam.samples = samples
    return fam


def _without_created(fam: Metric) -> Metric:
    created = fam.name + "_created"
    if any(smp.name == created for smp in fam.samples):
        fam.samples = [smp for smp in fam.samples if smp.name != created]
    return fam


def _restrict(fam: Metric, names: Set[str]) -> Optional[Metric]:
    """A copy of ``fam`` with only the samples named in ``names`` (None if none)."""
    samples = [smp for smp in fam.samples if smp.name in names]
    if not samples:
        return None
    out = Metric.__new__(Metric)
    out.name, out.documentation, out.type, out.unit = fam.name, fam.documentation, fam.type, fam.unit
    out.samples = samples
    return out


class _Restricted:
    """``registry.restricted_registry(names)``: only the samples with these names."""

    def __init__(self, registry: CollectorRegistry, names: Set[str]) -> None:
        self._registry = registry
        self._names = names

    def render(self, format: Union[str, int] = "prometheus") -> bytes:
        om = _format(format) == B.PROMSHM_FORMAT_OPENMETRICS
        return encode_families(self.collect(), om).encode("utf-8") + (EOF if om else b"")

    def collect(self) -> Iterator[Metric]:
        out = []
        for fam in self._registry._collect(self._names):
            r = _restrict(fam, self._names)
            if r is not None:
                out.append(r)
        return iter(out)

    #: The value of one sample of :meth:`collect`, or None (as the registry's).
    get_sample_value = CollectorRegistry.get_sample_value


# --------------------------------------------------------------------------
# Text blocks.


def _blocks(text: bytes) -> List[List[bytes]]:
    """Split an exposition into family blocks (comment lines start a block)."""
    blocks: List[List[bytes]] = []
    cur: Optional[List[bytes]] = None
    cur_name: Optional[bytes] = None
    for line in text.splitlines(keepends=True):
        if line.startswith(b"# EOF"):
            continue
        if line.startswith(b"#"):
            parts = line.split(b" ", 3)
            name = parts[2].rstrip(b"\n") if len(parts) > 2 else b""
            if cur is None or name != cur_name or _has_samples(cur):
                cur = []
                blocks.append(cur)
                cur_name = name
            cur.append(line)
        else:
            if cur is None:
                cur = []
                blocks.append(cur)
            cur.append(line)
    return blocks


def _has_samples(block: List[bytes]) -> bool:
    return any(not line.startswith(b"#") for line in block)


def _sample_name(line: bytes) -> bytes:
    end = len(line)
    for sep in (b"{", b" "):
        i = line.find(sep)
        if 0 <= i < end:
            end = i
    return line[:end]


def filter_families(text: bytes, names: Set[str], om: Optional[bool] = None) -> bytes:
    """Keep only the family blocks of ``text`` that have a sample (or, for an
    empty family, a family name) in ``names``."""
    bnames = {n.encode() for n in names}
    if om is None:
        om = text.endswith(EOF)
    out = []
    for block in _blocks(text):
        samples = {_sample_name(line) for line in block if not line.startswith(b"#")}
        fam_names = {line.split(b" ", 3)[2].rstrip(b"\n") for line in block if line.startswith(b"#") and len(line.split(b" ")) > 2}
        if samples & bnames or (not samples and fam_names & bnames):
            out.extend(block)
    body = b"".join(out)
    return body + (EOF if om else b"")


def _metric_text(metric: Any, fmt: int) -> bytes:
    """The block of one promshm metric object, from a render of its registry."""
    name = metric.name
    names = {name, name + "_total", name + "_info"}
    reg = metric._registry
    metric._run_functions()
    text = _render(lib.promshm_registry_render, reg._handle(), fmt)
    out = []
    for block in _blocks(text):
        fam = {line.split(b" ", 3)[2].rstrip(b"\n") for line in block if line.startswith(b"#") and len(line.split(b" ")) > 2}
        if fam & {n.encode() for n in names}:
            out.extend(block)
    return b"".join(out)


#: The counter a page shows when a custom collector yielded a taken name.
SKIPPED_FAMILIES = "promshm_collector_families_skipped"


def _names_of(name: str, typ: str) -> Set[str]:
    """Every name a family called ``name`` of type ``typ`` takes, in either
    format (0.0.4 writes a counter's family as ``<name>_total`` and an info's
    as a gauge ``<name>_info``: their base names are taken too)."""
    out = {name}
    out.update(name + x for x in TYPE_SUFFIXES.get(typ, ()))
    for typ_, suffix in (("counter", "_total"), ("info", "_info")):
        if name.endswith(suffix):
            base = name[: -len(suffix)]
            out.add(base)
            out.update(base + x for x in TYPE_SUFFIXES[typ_])
    return out


def _names_in(text: bytes) -> Set[str]:
    """The names the families of an exposition take (from its TYPE lines)."""
    out: Set[str] = set()
    for line in text.splitlines():
        if line.startswith(b"# TYPE "):
            parts = line.decode("utf-8", "replace").split(" ")
            if len(parts) >= 4:
                out |= _names_of(parts[2], parts[3])
    return out


def _collectors_text(collectors: List[Any], fmt: int, taken: Set[str], skipped: List[int]) -> bytes:
    """The text of the custom collectors' families. A family that takes a
    name already in ``taken`` (the area's families, or an earlier
    collector's) is skipped and counted in ``skipped[0]``: a page never has
    two families of one name."""
    MetricWrapperBase = _METRICS.base
    om = fmt == B.PROMSHM_FORMAT_OPENMETRICS
    parts: List[bytes] = []

    def add(text: bytes) -> None:
        names = _names_in(text)
        if names & taken:
            skipped[0] += 1
            return
        taken.update(names)
        parts.append(text)

    for c in collectors:
        if isinstance(c, MetricWrapperBase):
            add(_metric_text(c, fmt))
            continue
        for fam in c.collect():
            if isinstance(fam, MetricWrapperBase):
                add(_metric_text(fam, fmt))
            else:
                add(encode_families([fam], om).encode("utf-8"))
    return b"".join(parts)


def _skipped_text(total: int, om: bool) -> bytes:
    """The ``promshm_collector_families_skipped_total`` counter of a page."""
    name = SKIPPED_FAMILIES if om else SKIPPED_FAMILIES + "_total"
    help_ = "Families yielded by custom collectors that were skipped because the page already had their name."
    return f"# HELP {name} {help_}\n# TYPE {name} counter\n{SKIPPED_FAMILIES}_total {total}\n".encode()


def _families_of(metric: Any) -> List[Metric]:
    fmt = B.PROMSHM_FORMAT_OPENMETRICS
    return list(parse_openmetrics((_metric_text(metric, fmt) + EOF).decode("utf-8")))


class _NoMetric:
    """Stands for the metrics' base class until :mod:`promshm.metrics` registers it."""


class _MetricsLayer:
    """What the registry needs of :mod:`promshm.metrics` (to tell its metrics
    from other collectors, to make ``target_info``, whether ``_created``
    samples are wanted), registered by that module with
    :func:`_register_metrics` when it is imported: the registry is the layer
    below the metrics and imports nothing of them."""

    base: type = _NoMetric
    info: Any = None
    use_created: Callable[[], bool] = staticmethod(lambda: True)


_METRICS = _MetricsLayer()


def _register_metrics(base: type, info: type, use_created: Callable[[], bool]) -> None:
    """Called once by :mod:`promshm.metrics`: its ``MetricWrapperBase``, ``Info``,
    and whether ``_created`` samples are rendered (see ``disable_created_metrics``)."""
    _METRICS.base = base
    _METRICS.info = info
    _METRICS.use_created = use_created  # type: ignore[method-assign]


def _atomic_write(path: str, data: bytes) -> None:
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def _umask() -> int:
    # os.umask() can only be read by setting it, which races with other
    # threads; Linux reports it in /proc.
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    return 0o022


#: The default registry, on the application's shared area.
REGISTRY = CollectorRegistry(area=SHARED)

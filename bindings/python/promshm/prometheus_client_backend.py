"""A promshm backend for the real ``prometheus_client``: no change in the app.

With the backend installed, every ``Counter``, ``Gauge``, ``Histogram``,
``Summary``, ``Info`` and ``Enum`` that any code creates with the real
``prometheus_client`` (in ``REGISTRY`` or in any ``CollectorRegistry()``)
keeps its value in the application's promshm shared area, so it is exact
across the workers of gunicorn, uWSGI, uvicorn and ``multiprocessing``,
whatever ``PROMETHEUS_MULTIPROC_DIR`` says (no ``.db`` files are written, no
directory needs wiping, ``mark_process_dead`` is a no-op).

Switching it on
---------------
* For an existing app, with no code change: ``PROMSHM_PROMETHEUS_CLIENT=1``
  in the environment. The ``promshm-prometheus-client.pth`` file installed
  with promshm arms an import hook that calls :func:`install` right after
  ``prometheus_client`` is imported (it does nothing when the variable is
  unset or ``0``).
* In code: ``promshm.prometheus_client_backend.install()`` before the first
  metric is created (before importing the libraries that create metrics at
  import time).

What a scrape shows
-------------------
Collecting a metric (``generate_latest(registry)``, ``registry.collect()``,
``get_sample_value``) renders the metric's family from the shared area: the
totals of every process, including label sets only other workers have used.
``prometheus_client.multiprocess.MultiProcessCollector(registry)`` is
replaced by a collector that renders every family of the area (its ``path``
is ignored), so the documented multiprocess setup keeps working unchanged.

Gauges: ``multiprocess_mode`` combines the processes' values as
prometheus_client documents: ``all`` (its default) renders one series per
process labelled ``pid``, a dead process's last value included (as
prometheus_client keeps a dead process's file: series pile up as workers are
recycled); ``liveall`` the same for live processes only; ``sum``, ``max``,
``min``, ``mostrecent`` combine every process's value, dead ones included;
``livesum``, ``livemax``, ``livemin``, ``livemostrecent`` only the live
workers' (a dead worker's value disappears without ``mark_process_dead``).
``mostrecent`` compares the times of the updates to the millisecond. In the
area, an ``all`` gauge has a ``pid`` label; ``liveall``/``livemax``/
``livemin``/``livemostrecent`` are kept per worker slot under
``<name>:promshm_<mode>`` (and ``<name>:promshm_stamp``, the update times)
and combined when rendered. ``get()`` of a gauge is this process's value.

``Counter.reset()`` resets the counter for every process: promshm's own
``Counter.reset()`` zeroes the one total in the area every process adds to
(``_created`` becomes the time of the reset), and every process's later
increments count (prometheus_client's multiprocess mode resets only the
calling process's part).

``process_*`` (prometheus_client's ``ProcessCollector`` in ``REGISTRY``):
one series per live worker, labelled ``worker`` and ``pid``, plus the
``process_workers_*`` totals, from any worker (see
:mod:`promshm.process_collector`).

Exemplars (``Counter.inc(1, exemplar={...})``, ``Histogram.observe(v,
exemplar={...})``) are stored in the area: the newest of any process, per
counter series and per histogram bucket, is what OpenMetrics shows
(``prometheus_client.openmetrics.exposition.generate_latest``), in every
worker (prometheus_client's multiprocess mode has none).

Limits: ``Gauge.set_function`` is evaluated
in the process that scrapes. A metric whose name promshm reserves (a gauge named ``*_total`` or
``*_sum``, ...) is kept in the area as ``<name>:promshm_renamed`` and
rendered under its own name. A metric whose name is already used in the area
with another type, label names, buckets or states, or whose value or label
promshm refuses, stays per-process and a :class:`RuntimeWarning` says so.
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import os
import sys
import threading
import time
import warnings
from typing import Any, Dict, Optional, Tuple

from . import _bindings as B
from .errors import InvalidArgumentError, PromshmError
from .validation import RENAMED as _RENAMED

__all__ = ["install", "installed", "install_import_hook", "MultiProcessCollector", "ENV_VAR"]

#: The environment variable that arms the import hook of the ``.pth`` file.
ENV_VAR = "PROMSHM_PROMETHEUS_CLIENT"

_lock = threading.RLock()
_installed = False
_tls = threading.local()
_families: Dict[Tuple[Any, ...], Any] = {}
_companions: Dict[Tuple[Any, ...], Any] = {}  # (metric key, tag) -> a companion family
_failed: Dict[Tuple[Any, ...], bool] = {}
_pm_registry: Any = None  # the promshm registry the shadow families live in
_view: Any = None  # a promshm registry rendering the whole area


def enabled_by_env(env: Optional[Dict[str, str]] = None) -> bool:
    """Whether ``$PROMSHM_PROMETHEUS_CLIENT`` asks for the backend."""
    v = (os.environ if env is None else env).get(ENV_VAR, "").strip().lower()
    return v not in ("", "0", "false", "no", "off")


def installed() -> bool:
    """Whether :func:`install` has run in this process."""
    return _installed


# --------------------------------------------------------------------------
# Shadow families: one promshm metric per prometheus_client metric name.


def _eager_classes() -> Dict[str, type]:
    """promshm metric classes whose updates go straight to the area, so a
    scrape in any worker right after a request sees it (as prometheus_client's
    multiprocess files do)."""
    from . import metrics as M

    out = {}
    for typ, base in (
        ("counter", M.Counter),
        ("gauge", M.Gauge),
        ("histogram", M.Histogram),
        ("summary", M.Summary),
        ("info", M.Info),
        ("stateset", M.Enum),
    ):

        def _update_mode(self: Any) -> int:
            return B.PROMSHM_UPDATE_MODE_EAGER if self._buffered else B.PROMSHM_UPDATE_MODE_DEFAULT

        out[typ] = type("Backend" + base.__name__, (base,), {"__slots__": (), "_update_mode": _update_mode})
    return out


_classes: Dict[str, type] = {}


def _shape(metric: Any) -> Tuple[Tuple[Any, ...], Dict[str, Any]]:
    """The cache key of a prometheus_client metric and the promshm kwargs."""
    typ = metric._type
    kw: Dict[str, Any] = {}
    extra: Tuple[Any, ...] = ()
    if typ == "gauge":
        mode = metric._multiprocess_mode
        kw["multiprocess_mode"] = _GAUGE_STORAGE.get(mode, mode)
        extra = (mode,)
    elif typ == "histogram":
        kw["buckets"] = tuple(float(b) for b in metric._upper_bounds)
        extra = kw["buckets"]
    elif typ == "stateset":
        kw["states"] = tuple(metric._states)
        extra = kw["states"]
    key = (typ, metric._name, tuple(metric._labelnames)) + extra
    return key, kw


#: Prefix of the tag on an area family name that says how to render it.
_TAG = ":promshm_"

#: Suffix of the area name of a metric whose own name promshm reserves.
_RENAMED = _TAG + "renamed"

#: Companion families of a metric, ``<name>:promshm_<tag>``, and the promshm
#: gauge mode each is kept in: a ``livemostrecent`` gauge's update times per
#: worker (``stamp``).
_COMPANIONS = {"stamp": "liveall"}

#: How a prometheus_client gauge mode is kept in the area (promshm's mode),
#: when it is not promshm's mode of the same name:
#:
#: * ``all``: one series per process, with a ``pid`` label added, in promshm's
#:   ``sum`` mode: only that process writes it, and a dead process's value
#:   stays (as prometheus_client's ``all`` keeps a dead process's file).
#: * ``liveall``/``livemax``/``livemin``/``livemostrecent``: promshm's ``liveall``
#:   (a value per live worker slot; a dead worker's disappears), the family
#:   name tagged with the mode, combined when rendered: ``worker="<slot>"``
#:   becomes ``pid="<pid>"``, or the max/min/most recent value is taken (the
#:   update times of ``livemostrecent`` in a ``<name>:promshm_stamp`` family).
_GAUGE_STORAGE = {"all": "sum", "liveall": "liveall", "livemax": "liveall", "livemin": "liveall", "livemostrecent": "liveall"}

#: Gauge modes whose area family name carries the mode (combined when rendered).
_TAGGED_MODES = ("liveall", "livemax", "livemin", "livemostrecent")


def _family_for(metric: Any) -> Any:
    """The promshm family holding ``metric``'s values (None: stays local).
    Raises AttributeError while the metric's constructor has not set its
    shape yet (an Enum's states)."""
    key, kw = _shape(metric)
    fam = _families.get(key)
    if fam is not None or key in _failed:
        return fam
    with _lock:
        fam = _families.get(key)
        if fam is not None or key in _failed:
            return fam
        cls = _classes.get(key[0])
        if cls is None:
            _failed[key] = True
            return None

        mode = kw.get("multiprocess_mode") and metric._multiprocess_mode
        labelnames = tuple(metric._labelnames) + (("pid",) if mode == "all" else ())

        def make(name: str) -> Any:
            return cls(
                name,
                metric._documentation,
                labelnames=labelnames,
                unit=getattr(metric, "_unit", ""),
                registry=_pm_registry,
                **kw,
            )

        try:
            if mode in _TAGGED_MODES:
                fam = make(metric._name + _TAG + mode)
            else:
                try:
                    fam = make(metric._name)
                except InvalidArgumentError as e:
                    # A name promshm reserves (a gauge named *_total, *_sum, ...):
                    # kept in the area under "<name>:promshm_renamed", rendered as <name>.
                    if e.code != B.PROMSHM_RESULT_INVALID_METRIC_NAME:
                        raise
                    fam = make(metric._name + _RENAMED)
        except (PromshmError, ValueError, TypeError) as e:  # another shape under this name, a full area, ...
            _failed[key] = True
            _warn(f"{key[0]} {metric._name!r} stays per-process: {e}")
            return None
        _families[key] = fam
        return fam


_MISSING = object()


def _gauge_mode(metric: Any) -> Optional[str]:
    return getattr(metric, "_multiprocess_mode", None) if metric._type == "gauge" else None


def _series_of(metric: Any) -> Any:
    """The promshm series of a prometheus_client child or unlabelled metric
    (cached on it; None: the metric stays per-process). An ``all`` gauge's is
    this process's (``pid`` label), looked up again after a fork."""
    d = metric.__dict__
    s = d.get("_promshm_series", _MISSING)
    if s is not _MISSING and d.get("_promshm_pid", 0) in (0, os.getpid()):
        return s
    try:
        fam = _family_for(metric)
    except AttributeError:
        return None  # not constructed yet: resolved on first use
    s = None
    per_pid = _gauge_mode(metric) == "all"
    if fam is not None:
        values = tuple(metric._labelvalues) + ((str(os.getpid()),) if per_pid else ())
        try:
            s = fam.labels(*values) if values else fam
        except PromshmError as e:  # a full area, a label value promshm refuses, ...
            _warn(f"{metric._name}{list(values)} stays per-process: {e}")
    d["_promshm_series"] = s
    if per_pid:
        d["_promshm_pid"] = os.getpid()
    return s


def _companion(metric: Any, tag: str) -> Any:
    """The ``<name>:promshm_<tag>`` family of ``metric`` (see :data:`_COMPANIONS`),
    made in the area on first use (None: it could not be)."""
    key = (_shape(metric)[0], tag)
    fam = _companions.get(key, _MISSING)
    if fam is not _MISSING:
        return fam
    with _lock:
        fam = _companions.get(key, _MISSING)
        if fam is not _MISSING:
            return fam
        try:
            fam = _classes["gauge"](
                metric._name + _TAG + tag,
                f"promshm backend: {tag} of {metric._name}.",
                labelnames=tuple(metric._labelnames),
                registry=_pm_registry,
                multiprocess_mode=_COMPANIONS[tag],
            )
        except (PromshmError, ValueError, TypeError) as e:
            _warn(f"{metric._name}: no {tag} family: {e}")
            fam = None
        _companions[key] = fam
        return fam


def _companion_series(metric: Any, tag: str) -> Any:
    """``metric``'s series in its ``tag`` companion family (cached on it)."""
    d = metric.__dict__
    attr = "_promshm_" + tag
    s = d.get(attr, _MISSING)
    if s is not _MISSING:
        return s
    s = None
    fam = _companion(metric, tag)
    if fam is not None:
        try:
            s = fam.labels(*metric._labelvalues) if metric._labelnames else fam
        except PromshmError as e:
            _warn(f"{metric._name}{list(metric._labelvalues)}: no {tag}: {e}")
    d[attr] = s
    return s


def _companion_families(metric: Any) -> list:
    """The companion families rendered with ``metric``'s."""
    if _gauge_mode(metric) == "livemostrecent":
        return [f for f in (_companion(metric, "stamp"),) if f is not None]
    return []


def _warn(msg: str) -> None:
    warnings.warn("promshm backend: " + msg, RuntimeWarning, stacklevel=3)


# --------------------------------------------------------------------------
# The value class prometheus_client's Counter/Gauge/Histogram/Summary use.


#: This process's pid, renewed in every forked child (``os.register_at_fork``:
#: os.fork, multiprocessing, gunicorn, and uWSGI, which runs Python's
#: after-fork handlers), so the hot paths compare two ints instead of making
#: a ``getpid`` system call on every update.
_PID = os.getpid()


def _renew_pid() -> None:
    global _PID
    _PID = os.getpid()


os.register_at_fork(after_in_child=_renew_pid)

#: How a :class:`PromshmValue` forwards its updates.
_PLAIN, _OBSERVE, _LOCAL, _COUNTER, _PER_PID = range(5)


class PromshmValue:
    """``prometheus_client.values.ValueClass`` with the backend on.

    Made inside a metric's ``_metric_init``, it forwards the updates to the
    metric's promshm series: a counter's ``inc``, a gauge's ``inc``/``set``,
    and the ``_sum`` of a histogram or summary, whose ``inc(amount)`` is called
    once per observation (it becomes ``observe(amount)``; the bucket and
    ``_count`` values are not needed: the promshm series counts them).
    ``get()`` of a counter is the area's total (since its last ``reset()``);
    of a gauge, this process's value (as prometheus_client's multiprocess
    values). A value made outside a metric, or whose metric stays
    per-process, is a plain local float."""

    _multiprocess = False
    __slots__ = ("_value", "_exemplar", "_lock", "_series", "_how", "_metric", "_pid", "_ex_series")

    def __init__(
        self,
        typ: str,
        metric_name: str,
        name: str,
        labelnames: Any,
        labelvalues: Any,
        help_text: str,
        *args: Any,
        **kwargs: Any,
    ) -> None:
        self._value = 0.0
        self._exemplar = None
        self._lock = threading.Lock()
        self._series: Any = None
        self._how = _PLAIN
        self._metric: Any = None
        self._pid = os.getpid()
        self._ex_series: Any = None  # where set_exemplar stores (a histogram bucket's series)
        metric = getattr(_tls, "metric", None)
        if metric is None:
            return
        if typ == "histogram" and name == metric_name + "_bucket":
            self._ex_series = _series_of(metric)
            self._metric = metric
        if typ in ("counter", "gauge"):
            self._series = _series_of(metric)
            self._metric = metric
            mode = _gauge_mode(metric)
            if typ == "counter":
                self._how = _COUNTER
            elif mode == "all":
                self._how = _PER_PID  # the series of this process's pid
            elif mode in _TAGGED_MODES:
                self._how = _LOCAL  # the area keeps one value per worker: get() is ours
        elif typ in ("histogram", "summary") and name == metric_name + "_sum":
            self._series = _series_of(metric)
            self._how = _OBSERVE

    def _forked(self) -> None:
        """After a fork: this process's value starts at 0 (its worker slot's,
        or its own pid's series)."""
        self._pid = os.getpid()
        self._value = 0.0
        if self._how == _PER_PID:
            self._series = _series_of(self._metric)

    def _refork(self) -> Any:
        """:meth:`_forked` under the lock; the series now (None: local)."""
        with self._lock:
            self._forked()
        return self._series

    def inc(self, amount: float) -> None:
        s = self._series
        if s is None:
            with self._lock:
                self._value += amount
            return
        how = self._how
        try:
            if how == _COUNTER or how == _PLAIN:
                s.inc(amount)
            elif how == _OBSERVE:
                s.observe(amount)
            elif how == _PER_PID:
                if self._pid != _PID and self._refork() is None:
                    return self.inc(amount)  # stays in this process
                self._series.inc(amount)
            else:
                with self._lock:
                    if self._pid != _PID:
                        self._forked()
                        s = self._series
                    self._value += amount
                    s.set(self._value)
        except PromshmError as e:
            _warn(f"{'observe' if how == _OBSERVE else 'inc'}({amount!r}) not shared: {e}")

    def set(self, value: float, timestamp: Optional[float] = None) -> None:
        s = self._series
        how = self._how
        if s is None or how == _OBSERVE:
            with self._lock:
                self._value = value
            return
        try:
            if how == _PLAIN:
                s.set(value)
            elif how == _PER_PID:
                if self._pid != _PID and self._refork() is None:
                    return self.set(value)  # stays in this process
                self._series.set(value)
            elif how == _COUNTER:
                s.reset()  # Counter.reset() sets 0: for every process
            else:
                with self._lock:
                    if self._pid != _PID:
                        self._forked()
                        s = self._series
                    s.set(value)
                    self._value = value
                    if _gauge_mode(self._metric) == "livemostrecent":  # and when
                        t = _companion_series(self._metric, "stamp")
                        if t is not None:
                            t.set(timestamp or time.time())
        except PromshmError as e:
            _warn(f"set({value!r}) not shared: {e}")

    def set_exemplar(self, exemplar: Any) -> None:
        with self._lock:
            self._exemplar = exemplar
        if self._how == _COUNTER:
            s = self._series
        else:
            if self._ex_series is None and self._metric is not None:
                self._ex_series = _series_of(self._metric)
            s = self._ex_series
        if s is None:
            return
        try:
            s._set_exemplar(exemplar.labels, exemplar.value, exemplar.timestamp)
        except PromshmError as e:
            _warn(f"exemplar {exemplar.labels!r} not shared: {e}")

    def get(self) -> float:
        s = self._series
        how = self._how
        if s is not None and how != _OBSERVE:
            with self._lock:
                if how in (_LOCAL, _PER_PID) and self._pid != _PID:
                    self._forked()
                    s = self._series
                if how == _LOCAL:
                    return self._value
            try:
                if how == _COUNTER:
                    return float(s.get())
                return float(s.get())
            except PromshmError as e:
                _warn(f"get() reads this process's value: {e}")
        with self._lock:
            return self._value

    def get_exemplar(self) -> Any:
        with self._lock:
            return self._exemplar


# --------------------------------------------------------------------------
# Rendering: promshm families -> prometheus_client Metric objects.


def _use_created() -> bool:
    from prometheus_client import metrics as pm

    return bool(getattr(pm, "_use_created", True))


def _split_name(area_name: str) -> Tuple[str, str]:
    """An area family name -> (prometheus_client name, tag or "")."""
    i = area_name.find(_TAG)
    if i < 0:
        return area_name, ""
    return area_name[:i], area_name[i + len(_TAG) :]


def _live_pids() -> Dict[str, str]:
    """Worker slot -> pid of the area's live workers (as label values)."""
    from ._area import shared_area

    try:
        return {str(w["slot"]): str(w["pid"]) for w in shared_area().workers() if w["alive"]}
    except (PromshmError, OSError):
        return {}


def _per_worker(f: Any, stamps: Optional[Dict[Any, float]], pids: Dict[str, str], mode: str) -> list:
    """The samples of a tagged gauge family (one per live worker slot),
    combined as ``mode`` says: ``(labels, value)`` pairs."""
    groups: Dict[Any, list] = {}
    for smp in f.samples:
        labels = dict(smp.labels)
        slot = labels.pop("worker", None)
        if slot not in pids:  # a worker that died since the render
            continue
        if mode == "liveall":
            labels["pid"] = pids[slot]
            groups[tuple(sorted(labels.items()))] = [(labels, smp.value)]
            continue
        key = tuple(sorted(labels.items()))
        t = stamps.get(key + (("worker", slot),), 0.0) if stamps is not None else 0.0
        groups.setdefault(key, []).append((labels, smp.value, t))
    out = []
    for members in groups.values():
        if mode == "liveall":
            out.extend(members)
        elif mode == "livemax":
            out.append((members[0][0], max(m[1] for m in members)))
        elif mode == "livemin":
            out.append((members[0][0], min(m[1] for m in members)))
        else:  # livemostrecent: the value set last
            labels, v, _ = max(members, key=lambda m: m[2])
            out.append((labels, v))
    return out


def _convert(
    fams: Any,
    name: Optional[str] = None,
    doc: Optional[str] = None,
    unit: Optional[str] = None,
) -> list:
    """promshm families of the area -> prometheus_client ``Metric`` objects
    (tagged families combined)."""
    from prometheus_client.metrics_core import Metric

    fams = list(fams)
    created = _use_created()
    companions: Dict[Tuple[str, str], Dict[Any, float]] = {}  # (name, tag) -> labels -> value
    for f in fams:
        base, tag = _split_name(f.name)
        if tag in _COMPANIONS:
            companions[(base, tag)] = {tuple(sorted(smp.labels.items())): smp.value for smp in f.samples}
    pids: Optional[Dict[str, str]] = None
    out = []
    for f in fams:
        fname, tag = _split_name(f.name)
        if tag in _COMPANIONS:
            continue
        m = Metric(fname if name is None else name, f.documentation if doc is None else doc, f.type, f.unit if unit is None else unit)
        if tag in _TAGGED_MODES:
            if pids is None:
                pids = _live_pids()
            for labels, v in _per_worker(f, companions.get((fname, "stamp")), pids, tag):
                m.add_sample(fname, labels, v)
            out.append(m)
            continue
        for smp in f.samples:
            if not created and smp.name.endswith("_created"):
                continue
            sname, labels = smp.name, dict(smp.labels)
            v = smp.value
            if fname != f.name:  # back to the prometheus_client name
                sname = sname.replace(f.name, fname, 1)
                if f.name in labels:  # an Enum's state label
                    labels[fname] = labels.pop(f.name)
            m.add_sample(sname, labels, v, smp.timestamp, smp.exemplar)
        out.append(m)
    return out


#: The area's families by name, rendered once per ``CollectorRegistry.collect()``
#: (a scrape) of this thread and shared by its metrics' ``collect()``.
_scrape = threading.local()


def _snapshot() -> Optional[Dict[str, Any]]:
    """The current scrape's families by area name (None: not in a scrape)."""
    if not getattr(_scrape, "depth", 0):
        return None
    snap = getattr(_scrape, "families", None)
    if snap is None:
        snap = {f.name: f for f in _view.collect()}
        _scrape.families = snap
    return snap


def _registry_collect(self: Any, _orig: Any) -> Any:
    """``CollectorRegistry.collect()``: the area is rendered once for all its
    metrics (not once per metric)."""
    _scrape.depth = getattr(_scrape, "depth", 0) + 1
    try:
        yield from _orig(self)
    finally:
        _scrape.depth -= 1
        if not _scrape.depth:
            _scrape.families = None


def _collect_metric(self: Any, _orig: Any) -> Any:
    if "_child_samples" in self.__dict__:  # Gauge.set_function: evaluated here
        return _orig(self)
    fam = _family_for(self)
    if fam is None:
        return _orig(self)
    companions = _companion_families(self)
    try:
        snap = _snapshot()
        if snap is not None:
            fams = [snap[f.name] for f in [fam] + companions if f.name in snap]
            if not any(f.name == fam.name for f in fams):  # not in the area (yet): nothing to render
                fams = list(fam.collect())
        else:
            fams = list(fam.collect())
            for companion in companions:
                fams.extend(companion.collect())
    except PromshmError as e:
        _warn(f"{self._name}: rendering this process's values: {e}")
        return _orig(self)
    return _convert(fams, self._name, self._documentation, self._unit)


class MultiProcessCollector:
    """``prometheus_client.multiprocess.MultiProcessCollector`` with the
    backend on: renders every family of the shared area (``path`` and
    ``$PROMETHEUS_MULTIPROC_DIR`` are not used)."""

    def __init__(self, registry: Any, path: Optional[str] = None) -> None:
        self._path = path
        if registry is not None:
            registry.register(self)

    def collect(self) -> list:
        return _convert(_view.collect())


def _mark_process_dead(pid: int, path: Optional[str] = None) -> None:
    """No-op: promshm reaps dead workers itself."""


# --------------------------------------------------------------------------
# Installing.


def _wrap_metric_init(cls: type) -> None:
    orig = cls.__dict__.get("_metric_init")
    if orig is None or getattr(orig, "_promshm", False):
        return

    def _metric_init(self: Any) -> None:
        _series_of(self)  # the series exists in the area from now on
        prev = getattr(_tls, "metric", None)
        _tls.metric = self
        try:
            orig(self)
        finally:
            _tls.metric = prev

    _metric_init._promshm = True  # type: ignore[attr-defined]
    cls._metric_init = _metric_init  # type: ignore[attr-defined]


def _wrap_init(cls: type) -> None:
    """The family is made in the area when the metric is (so a name clash
    shows at once, and the family renders before its first update)."""
    orig = cls.__init__
    if getattr(orig, "_promshm", False):
        return

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        orig(self, *args, **kwargs)
        if not getattr(self, "_labelvalues", ()):
            try:
                _family_for(self)
            except AttributeError:
                pass

    __init__._promshm = True  # type: ignore[attr-defined]
    __init__.__doc__ = orig.__doc__
    cls.__init__ = __init__  # type: ignore[misc]


def _install(cls: type, name: str, orig: Any, method: Any) -> None:
    """Make ``method`` (which calls ``orig``) ``cls``'s method ``name``,
    marked as promshm's so that it is wrapped once."""
    method._promshm = True
    method.__name__ = name
    method.__doc__ = orig.__doc__
    setattr(cls, name, method)


def _wrap_method(cls: type, name: str, forward: Any) -> None:
    orig = cls.__dict__.get(name)
    if orig is None or getattr(orig, "_promshm", False):
        return

    def method(self: Any, *args: Any, **kwargs: Any) -> Any:
        r = orig(self, *args, **kwargs)
        s = _series_of(self)
        if s is not None:
            try:
                forward(s, *args, **kwargs)
            except PromshmError as e:
                _warn(f"{name}() not shared: {e}")
        return r

    _install(cls, name, orig, method)


def _wrap_parent_method(cls: type, name: str, forward: Any) -> None:
    """remove()/clear() on a labelled parent: also in the area."""
    orig = cls.__dict__.get(name)
    if orig is None or getattr(orig, "_promshm", False):
        return

    def method(self: Any, *args: Any, **kwargs: Any) -> Any:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "not implemented in multi process mode"
            r = orig(self, *args, **kwargs)
        fam = _family_for(self) if self._labelnames else None
        if fam is not None:
            try:
                if name == "remove" and _gauge_mode(self) == "all":
                    args = args + (str(os.getpid()),)  # this process's series
                forward(fam, *args, **kwargs)
                if _gauge_mode(self) == "livemostrecent":
                    for companion in _companion_families(self):
                        forward(companion, *args, **kwargs)
            except PromshmError as e:
                _warn(f"{name}() not shared: {e}")
        return r

    _install(cls, name, orig, method)


def install() -> None:
    """Put the real ``prometheus_client``'s metric values in the promshm
    shared area (idempotent). Call it before the first metric is created."""
    global _installed, _pm_registry, _view
    with _lock:
        if _installed:
            return
        import prometheus_client.metrics as pm
        import prometheus_client.multiprocess as mp
        import prometheus_client.registry as pr
        import prometheus_client.values as pv

        from ._area import SHARED
        from .registry import CollectorRegistry

        _classes.update(_eager_classes())
        _pm_registry = CollectorRegistry(area=SHARED, self_metrics=False)
        _view = CollectorRegistry(area=SHARED, self_metrics=False)

        pv.ValueClass = PromshmValue
        for cls in (pm.Counter, pm.Gauge, pm.Histogram, pm.Summary, pm.Info, pm.Enum):
            _wrap_metric_init(cls)
            _wrap_init(cls)
        _wrap_method(pm.Info, "info", lambda s, val: s.info(val))
        _wrap_method(pm.Enum, "state", lambda s, state: s.state(state))
        _wrap_parent_method(pm.MetricWrapperBase, "remove", lambda f, *v: f.remove(*v))
        _wrap_parent_method(pm.MetricWrapperBase, "clear", lambda f: f.clear())

        _route(pr.CollectorRegistry, "collect", _registry_collect)
        _route(pm.MetricWrapperBase, "collect", _collect_metric)
        _wrap_process_collector()
        mp.MultiProcessCollector = MultiProcessCollector  # type: ignore[misc,assignment]
        mp.mark_process_dead = _mark_process_dead
        _installed = True
        _warn_earlier_metrics(pm)


def _route(cls: type, name: str, through: Any) -> None:
    """Make ``cls.<name>(self)`` call ``through(self, original)`` (once)."""
    orig = getattr(cls, name)
    if getattr(orig, "_promshm", False):
        return

    def method(self: Any) -> Any:
        return through(self, orig)

    _install(cls, name, orig, method)


def _wrap_process_collector() -> None:
    """``prometheus_client``'s ``ProcessCollector`` of this process (the one in
    ``REGISTRY``): rendered per live worker of the area, with totals (see
    :mod:`promshm.process_collector`), from any worker. One made for another
    ``pid`` or ``proc`` directory renders as before."""
    try:
        import prometheus_client.process_collector as ppc
    except ImportError:
        return
    from .process_collector import ProcessCollector as Workers
    from .process_collector import attach_workers

    attach_workers()

    def collect(self: Any, orig: Any) -> Any:
        try:
            own = self._proc == "/proc" and str(self._pid()).strip() == "self"
        except Exception:  # noqa: BLE001 - the original reports it
            own = False
        if not own:
            return orig(self)
        return _convert(Workers(getattr(self, "_namespace", ""), registry=None)._collect_workers())

    _route(ppc.ProcessCollector, "collect", collect)


def _warn_earlier_metrics(pm: Any) -> None:
    """Metrics of REGISTRY made before install() keep per-process values: say so."""
    try:
        from prometheus_client import REGISTRY

        with REGISTRY._lock:
            collectors = list(REGISTRY._collector_to_names)
    except Exception:
        return
    early = sorted(c._name for c in collectors if isinstance(c, pm.MetricWrapperBase) and c._name)
    if early:
        _warn(f"metrics made before install() keep per-process values: {', '.join(early[:10])}")


# --------------------------------------------------------------------------
# The import hook armed by the .pth file.


class _Loader(importlib.abc.Loader):
    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def create_module(self, spec: Any) -> Any:
        return self._inner.create_module(spec)

    def exec_module(self, module: Any) -> None:
        self._inner.exec_module(module)
        install()


class _Finder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> Any:
        if fullname != "prometheus_client":
            return None
        try:
            sys.meta_path.remove(self)
        except ValueError:
            pass
        spec = importlib.util.find_spec(fullname)
        if spec is None or spec.loader is None:
            return spec
        spec.loader = _Loader(spec.loader)
        return spec


def install_import_hook() -> None:
    """Call :func:`install` when ``prometheus_client`` is imported (now, if it
    already is). Used by the ``.pth`` file when ``$PROMSHM_PROMETHEUS_CLIENT``
    is set."""
    if "prometheus_client" in sys.modules:
        install()
        return
    if not any(isinstance(f, _Finder) for f in sys.meta_path):
        sys.meta_path.insert(0, _Finder())


def _pth_hook() -> None:
    """Entry point of the ``.pth`` file: arm the hook if the variable asks."""
    if enabled_by_env():
        install_import_hook()

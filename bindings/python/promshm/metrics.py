"""Counter, Gauge, Histogram, Summary, Info and Enum.

The classes take ``prometheus_client``'s constructor arguments and methods, and
also pytheus' (``description=``, ``required_labels=``, ``default_labels=``,
``labels({...})`` with partial labels, metrics as decorators) and
pyprometheus' (``track_in_progress()``). The values live in a promshm area, so
every process of the application that uses the same registry updates the same
series.

A metric *family* is registered in the area when the object is made. Series are
resolved once per label values by :meth:`labels` (validating, may take the area
lock) and cached: keep the returned object, or call ``labels()`` again (a dict
lookup). Updates on a series are one call into the library.
"""

from __future__ import annotations

import functools
import inspect
import os
import sys
import threading
import time as _time
from ctypes import byref, c_bool, c_char_p, c_double, c_size_t, c_uint32, c_uint64, c_void_p, sizeof
from typing import (
    Any,
    Callable,
    Dict,
    Iterable,
    List,
    Mapping,
    Optional,
    Sequence,
    Tuple,
    Type,
    TypeVar,
    Union,
    cast,
)

from . import _area, _native, compat
from . import _bindings as B
from ._ffi import check, encode, fast, label_array, lib, raise_for, str_array
from .errors import (
    InvalidArgumentError,
    LabelError,
    UnobservableMetricError,
)
from .registry import REGISTRY, CollectorRegistry, _families_of, _register_metrics
from .validation import RENAMED, TYPE_SUFFIXES, check_reserved_label, valid_label_name

__all__ = [
    "Counter",
    "Gauge",
    "Histogram",
    "NativeHistogram",
    "Summary",
    "Info",
    "Enum",
    "MetricWrapperBase",
    "DEFAULT_BUCKETS",
    "INF",
    "GAUGE_MODES",
    "linear_buckets",
    "exponential_buckets",
    "disable_created_metrics",
    "enable_created_metrics",
]

F = TypeVar("F", bound=Callable[..., Any])
#: A metric class: ``labels()`` returns an object with that class's operations
#: (a series, typed as the metric class, as prometheus_client types it).
_M = TypeVar("_M", bound="MetricWrapperBase")

INF = float("inf")
#: Prometheus' default histogram buckets (``+Inf`` is implied).
DEFAULT_BUCKETS: Tuple[float, ...] = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, INF)

#: ``multiprocess_mode`` names accepted by :class:`Gauge`, and the promshm mode
#: each is kept in, as prometheus_client documents them: ``sum``, ``max``,
#: ``min``, ``mostrecent`` keep a dead process's last value, ``livesum``,
#: ``livemax``, ``livemin``, ``livemostrecent`` combine the live workers only
#: (promshm reaps dead workers itself); ``liveall`` is one series per live
#: worker (``worker="<slot>"``); ``all`` one series per process, labelled
#: ``pid="<pid>"``, a dead process's last value kept (see :data:`PER_PID_MODES`).
GAUGE_MODES: Dict[str, int] = {
    "livesum": B.PROMSHM_GAUGE_MODE_LIVESUM,
    "sum": B.PROMSHM_GAUGE_MODE_SUM,
    "max": B.PROMSHM_GAUGE_MODE_MAX,
    "min": B.PROMSHM_GAUGE_MODE_MIN,
    "mostrecent": B.PROMSHM_GAUGE_MODE_MOSTRECENT,
    "all": B.PROMSHM_GAUGE_MODE_SUM,
    "liveall": B.PROMSHM_GAUGE_MODE_ALL,
    "livemax": B.PROMSHM_GAUGE_MODE_LIVEMAX,
    "livemin": B.PROMSHM_GAUGE_MODE_LIVEMIN,
    "livemostrecent": B.PROMSHM_GAUGE_MODE_LIVEMOSTRECENT,
}

#: Gauge modes kept as one series per process: the family has a ``pid`` label
#: more, each process writes only its own pid's series (in promshm's ``sum``
#: mode: the one writer's value, kept after it dies), re-resolved after fork.
PER_PID_MODES = ("all",)
PID_LABEL = "pid"

_NULL = B.PROMSHM_RESULT_NULL_PARAMETER

def _real_time() -> float:
    """The wall clock, even while a test mocks ``time.time``."""
    return _time.clock_gettime(_time.CLOCK_REALTIME)


def _get_use_created() -> bool:
    """Whether ``PROMETHEUS_DISABLE_CREATED_SERIES`` leaves ``_created`` on."""
    return os.environ.get("PROMETHEUS_DISABLE_CREATED_SERIES", "False").lower() not in ("true", "1", "t")


#: Whether collect() and the compat renders show ``_created`` samples
#: (prometheus_client's switch, read from ``PROMETHEUS_DISABLE_CREATED_SERIES`` at import).
_use_created: bool = _get_use_created()


def disable_created_metrics() -> None:
    """Leave ``_created`` samples out of every render (prometheus_client's call)."""
    global _use_created
    _use_created = False


def enable_created_metrics() -> None:
    """Show ``_created`` samples again (the default)."""
    global _use_created
    _use_created = True


def linear_buckets(start: float, width: float, count: int) -> Tuple[float, ...]:
    """``count`` buckets ``start, start + width, ...`` (``+Inf`` implied)."""
    out = (c_double * max(count, 1))()
    check(lib.promshm_buckets_linear(float(start), float(width), int(count), out))
    return tuple(out[:count])


def exponential_buckets(start: float, factor: float, count: int) -> Tuple[float, ...]:
    """``count`` buckets ``start, start * factor, ...`` (``+Inf`` implied)."""
    out = (c_double * max(count, 1))()
    check(lib.promshm_buckets_exponential(float(start), float(factor), int(count), out))
    return tuple(out[:count])


# --------------------------------------------------------------------------
# Decorator and context-manager helpers (sync and async functions alike).


def _wrap(func: F, enter: Callable[[], Any], exit_: Callable[[Any, Optional[BaseException]], None]) -> F:
    if inspect.iscoroutinefunction(func):

        @functools.wraps(func)
        async def awrapper(*args: Any, **kwargs: Any) -> Any:
            token = enter()
            try:
                result = await func(*args, **kwargs)
            except BaseException as e:
                exit_(token, e)
                raise
            exit_(token, None)
            return result

        return cast(F, awrapper)

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        token = enter()
        try:
            result = func(*args, **kwargs)
        except BaseException as e:
            exit_(token, e)
            raise
        exit_(token, None)
        return result

    return cast(F, wrapper)


class _Guard:
    """A context manager that is also a decorator (sync or async)."""

    __slots__ = ("_enter", "_exit", "_token")

    def __init__(self, enter: Callable[[], Any], exit_: Callable[[Any, Optional[BaseException]], None]) -> None:
        self._enter = enter
        self._exit = exit_
        self._token: Any = None

    def __enter__(self) -> "_Guard":
        self._token = self._enter()
        return self

    def __exit__(self, typ: Any, value: Any, tb: Any) -> None:
        self._exit(self._token, value)

    async def __aenter__(self) -> "_Guard":
        return self.__enter__()

    async def __aexit__(self, typ: Any, value: Any, tb: Any) -> None:
        self.__exit__(typ, value, tb)

    def __call__(self, func: F) -> F:
        return _wrap(func, self._enter, self._exit)


class Timer:
    """``metric.time()``: a context manager and decorator that records the
    duration of a block or call in seconds (``observe`` for histograms and
    summaries, ``set`` for gauges). Inside ``with m.time() as t:``,
    ``t.labels(...)`` picks the series of a labelled metric."""

    __slots__ = ("_metric", "_method", "_start")

    def __init__(self, metric: Any, method: str) -> None:
        self._metric = metric
        self._method = method
        self._start = 0.0

    def _new(self) -> "Timer":
        return Timer(self._metric, self._method)

    def labels(self, *args: Any, **kwargs: Any) -> None:
        self._metric = self._metric.labels(*args, **kwargs)

    def __enter__(self) -> "Timer":
        self._start = _time.perf_counter()
        return self

    def __exit__(self, typ: Any, value: Any, tb: Any) -> None:
        duration = max(_time.perf_counter() - self._start, 0.0)
        getattr(self._metric, self._method)(duration)

    async def __aenter__(self) -> "Timer":
        return self.__enter__()

    async def __aexit__(self, typ: Any, value: Any, tb: Any) -> None:
        self.__exit__(typ, value, tb)

    def __call__(self, func: F) -> F:
        metric, method = self._metric, self._method

        def enter() -> float:
            return _time.perf_counter()

        def exit_(start: float, _e: Optional[BaseException]) -> None:
            getattr(metric, method)(max(_time.perf_counter() - start, 0.0))

        return _wrap(func, enter, exit_)


# --------------------------------------------------------------------------
# Operations, shared by a family without labels (its default series), a series
# (a labelled child) and a partial-labels object (which has no series: every
# update raises UnobservableMetricError). `_h` is the series handle or None.


def _fail(obj: Any, rc: int) -> None:
    if rc == _NULL and getattr(obj, "_h", None) is None:
        _raise_unobservable(obj, rc)
    raise_for(rc, repr(obj))


def _raise_unobservable(obj: Any, rc: int = _NULL) -> None:
    raise obj._family._unobservable_error(
        "missing label values",
        rc,
        f"{obj!r} has label names {list(obj._family._labelnames)}: call .labels(...) first",
    )


def _check_observable(obj: Any) -> None:
    """Raise :class:`UnobservableMetricError` (a ``ValueError``, "missing label
    values", as prometheus_client) if ``obj`` has no series: a labelled parent."""
    if obj._h is None:
        _raise_unobservable(obj)


#: The most characters an exemplar's label names and values may have together.
_EXEMPLAR_MAX_RUNES = 128


def _check_exemplar(exemplar: Mapping[str, str]) -> Dict[str, str]:
    """Validate an exemplar's labels as prometheus_client does: valid label
    names, at most 128 characters in names and values together."""
    runes = 0
    out: Dict[str, str] = {}
    for k, v in exemplar.items():
        if not isinstance(k, str) or not valid_label_name(k):
            raise InvalidArgumentError("invalid label name", B.PROMSHM_RESULT_INVALID_LABEL_NAME, f"invalid exemplar label name: {k!r}")
        v = str(v)
        runes += len(k) + len(v)
        out[k] = v
    if runes > _EXEMPLAR_MAX_RUNES:
        raise InvalidArgumentError(
            "invalid argument", 114, f"exemplar labels have {runes} UTF-8 characters, exceeding the limit of {_EXEMPLAR_MAX_RUNES}"
        )
    return out


def _keep_exemplar(obj: Any, exemplar: Mapping[str, str], amount: float, timestamp: Optional[float] = None) -> None:
    """Validate ``exemplar`` and store it in the shared area as the series'
    (or, for a histogram, the observation's bucket's) newest exemplar, for
    every process: OpenMetrics renders of any process show it."""
    labels = _check_exemplar(exemplar)
    _check_observable(obj)
    arr, n = label_array((encode(k, "exemplar label name"), encode(v, "exemplar label value")) for k, v in labels.items())
    _succeed(obj, lib.promshm_series_set_exemplar(obj._h, float(amount), _time.time() if timestamp is None else float(timestamp), arr, n))


def _label_count_error(detail: str) -> LabelError:
    """The error of label values that do not match the label names in number."""
    return LabelError("wrong label count", B.PROMSHM_RESULT_LABEL_COUNT, detail)


def _unknown_label_error(detail: str) -> LabelError:
    """The error of a label name the family does not have."""
    return LabelError("unknown label", B.PROMSHM_RESULT_UNKNOWN_LABEL, detail)


def _label_str(v: Any) -> str:
    """A label value as text: ``str(v)``, as prometheus_client does, for
    everything but an exact ``str`` (a str enum member becomes ``Cls.NAME``)."""
    return v if v.__class__ is str else str(v)


def _update(obj: Any, func: Any, value: Any) -> None:
    """One hot-path update: ``func(series, float(value))``, raising on failure."""
    if value.__class__ is not float:
        value = float(value)
    rc = func(obj._h, value)
    if rc:
        _fail(obj, rc)


def _method(func: Callable[..., None], qualname: str, doc: str) -> Callable[..., None]:
    """``func`` named as the method ``qualname`` (``Class.name``), with ``doc``."""
    func.__name__ = qualname.rsplit(".", 1)[-1]
    func.__qualname__ = qualname
    func.__doc__ = doc
    return func


def _step(qualname: str, one: Any, by: Any, doc: str) -> Callable[..., None]:
    """An ``inc``/``dec`` method: ``one(series)`` for the default amount 1,
    else ``by(series, float(amount))`` (the C functions differ by method)."""

    def step(self: Any, amount: float = 1) -> None:
        if amount == 1:
            rc = one(self._h)
            if rc:
                _fail(self, rc)
        else:
            _update(self, by, amount)

    return _method(step, qualname, doc)


def _observe_keeping_exemplar(qualname: str, observe_c: Any, doc: str) -> Callable[..., None]:
    """A histogram's ``observe(amount, exemplar=None)``: one ``observe_c``
    call; ``exemplar`` validated before it and kept in the area after it."""

    def observe(self: Any, amount: float, exemplar: Optional[Mapping[str, str]] = None) -> None:
        if exemplar is not None:
            _check_exemplar(exemplar)
        _update(self, observe_c, amount)
        if exemplar is not None:
            _keep_exemplar(self, exemplar, amount)

    return _method(observe, qualname, doc)


def _succeed(obj: Any, rc: int) -> None:
    """Raise for ``rc``, the result of a C call on ``obj``'s series, unless it is OK."""
    if rc:
        _fail(obj, rc)


def _read(obj: Any, get: Any, out: Any) -> Any:
    """``get(series, &out)`` (a C getter), then ``out``'s value."""
    _succeed(obj, get(obj._h, byref(out)))
    return out.value


def _read_count_sum(obj: Any, get: Any) -> Tuple[int, float]:
    """``(count, sum)`` from ``get(series, &count, &sum)`` (a histogram's or summary's getter)."""
    n, s = c_uint64(), c_double()
    _succeed(obj, get(obj._h, byref(n), byref(s)))
    return n.value, s.value


class _Ops:
    __slots__ = ()
    _h: Optional[c_void_p]
    _family: Any  # the family object (a MetricWrapperBase)
    # _values() (the series' label values) comes from the family, series or
    # partial class: not defined here, where a series class's MRO would find
    # it before _Series's.
    _values: Callable[[], Tuple[str, ...]]


class _CounterOps(_Ops):
    __slots__ = ()

    #: ``_set_exemplar(exemplar, value, timestamp=None)``: store an exemplar
    #: of ``value`` (counted already) in the area.
    _set_exemplar = _keep_exemplar

    def inc(self, amount: float = 1, exemplar: Optional[Mapping[str, str]] = None) -> None:
        """Add ``amount`` (>= 0) to the counter. ``exemplar`` (labels) is
        validated as prometheus_client does and stored in the shared area:
        the series' newest exemplar of any process (OpenMetrics renders)."""
        if exemplar is not None:
            _check_exemplar(exemplar)
        if amount == 1:
            rc = fast.counter_inc(self._h)
            if rc:
                _fail(self, rc)
        else:
            _update(self, fast.counter_add, amount)
        if exemplar is not None:
            _keep_exemplar(self, exemplar, amount)

    def count_exceptions(self, exception: Union[Type[BaseException], Tuple[Type[BaseException], ...]] = Exception) -> _Guard:
        """Count exceptions of type ``exception`` raised in a block or function
        (context manager and decorator); the exception propagates."""
        _check_observable(self)

        def exit_(_t: Any, e: Optional[BaseException]) -> None:
            if e is not None and isinstance(e, exception):
                self.inc()

        return _Guard(lambda: None, exit_)

    def reset(self) -> None:
        """Reset the series to 0 for every process, with ``_created`` now:
        the total every process adds to is zeroed in place, so every
        process's held series (an unlabelled counter, a cached ``labels()``
        child) keeps counting from 0. This process's buffered increments are
        flushed first (counted before the reset); another process's that are
        still buffered are counted after it."""
        _check_observable(self)
        check(lib.promshm_flush(), "flush")
        _succeed(self, lib.promshm_counter_reset(self._h))
        self._family._created_at[self._values()] = (_time.time(), _real_time())

    def get(self) -> float:
        """The counter's total in the area: every process's flushed updates,
        this process's included (it flushes first)."""
        check(lib.promshm_flush(), "flush")
        return cast(float, _read(self, lib.promshm_counter_get, c_double()))

    def __call__(self, func: Optional[F] = None, *, exceptions: Any = Exception) -> Any:
        """pytheus: ``@counter`` / ``@counter(exceptions=(...))`` counts exceptions."""
        if func is None:
            return self.count_exceptions(exceptions)
        return self.count_exceptions(exceptions)(func)


class _GaugeOps(_Ops):
    __slots__ = ()

    inc = _step("_GaugeOps.inc", fast.gauge_inc, fast.gauge_add, "Add ``amount`` to this process's value.")
    dec = _step("_GaugeOps.dec", fast.gauge_dec, fast.gauge_sub, "Subtract ``amount`` from this process's value.")

    def set(self, value: float) -> None:
        """Set this process's value."""
        _update(self, fast.gauge_set, value)

    def set_to_current_time(self) -> None:
        """Set this process's value to the current Unix time in seconds."""
        _succeed(self, fast.gauge_set_to_current_time(self._h))

    def track_inprogress(self) -> _Guard:
        """Increment on entry, decrement on exit (context manager and decorator)."""
        _check_observable(self)
        return _Guard(lambda: self.inc(), lambda _t, _e: self.dec())

    #: pyprometheus' name.
    track_in_progress = track_inprogress

    def time(self) -> Timer:
        """Set the gauge to the duration of a block or call, in seconds."""
        return Timer(self, "set")

    def set_function(self, f: Callable[[], float]) -> None:
        """Call ``f()`` to get the value whenever this process renders.

        Other processes render the value this process set last."""
        _check_observable(self)
        self._family._functions[self._values()] = (self, f)

    def get(self) -> float:
        """The value as a render shows it (the family's mode over every process)."""
        return cast(float, _read(self, lib.promshm_gauge_get, c_double()))

    def get_local(self) -> float:
        """This process's own value."""
        return cast(float, _read(self, lib.promshm_gauge_get_local, c_double()))

    def __call__(self, func: F) -> F:
        """pytheus: ``@gauge`` sets the gauge to the call's duration."""
        return self.time()(func)


class _ObserveOps(_Ops):
    __slots__ = ()

    def time(self) -> Timer:
        """Observe the duration of a block or call, in seconds (context manager and decorator)."""
        return Timer(self, "observe")

    def __call__(self, func: F) -> F:
        """pytheus: ``@histogram`` observes the call's duration."""
        return self.time()(func)


class _HistogramOps(_ObserveOps):
    __slots__ = ()

    #: ``_set_exemplar(exemplar, value, timestamp=None)``: store an exemplar
    #: of ``value`` (observed already) in the area, on its bucket.
    _set_exemplar = _keep_exemplar

    observe = _observe_keeping_exemplar(
        "_HistogramOps.observe",
        fast.histogram_observe,
        """Record one observation. ``exemplar`` (labels) is validated as
        prometheus_client does and stored in the shared area: the bucket's
        newest exemplar of any process (OpenMetrics renders).""",
    )

    def get(self) -> Tuple[int, float]:
        """``(count, sum)`` in the area: every process's flushed observations,
        this process's included (it flushes first)."""
        check(lib.promshm_flush(), "flush")
        return _read_count_sum(self, lib.promshm_histogram_get)


class _NativeHistogramOps(_ObserveOps):
    __slots__ = ()

    observe = _observe_keeping_exemplar(
        "_NativeHistogramOps.observe",
        lib.promshm_native_histogram_observe,
        """Record one observation: one atomic add into its bucket in the
        shared area (no buffer), seen by every process's render. ``exemplar``
        (labels), validated as prometheus_client does, becomes one of the
        series' newest exemplars of any process (protobuf renders).""",
    )

    def get(self) -> Tuple[int, float]:
        """``(count, sum)`` over every process."""
        return _read_count_sum(self, lib.promshm_native_histogram_get)


class _SummaryOps(_ObserveOps):
    __slots__ = ()

    def observe(self, amount: float) -> None:
        """Record one observation."""
        _update(self, fast.summary_observe, amount)

    def get(self) -> Tuple[int, float]:
        """``(count, sum)`` over every process."""
        return _read_count_sum(self, lib.promshm_summary_get)

    def quantiles(self, qs: Sequence[float]) -> List[float]:
        """Estimates of the quantiles ``qs`` across every process (NaN if empty)."""
        n = len(qs)
        arr = (c_double * max(n, 1))(*qs)
        out = (c_double * max(n, 1))()
        _succeed(self, lib.promshm_summary_quantiles(self._h, arr, n, out))
        return list(out[:n])


class _InfoOps(_Ops):
    __slots__ = ()

    def info(self, val: Mapping[str, str]) -> None:
        """Set the info key/value pairs."""
        fam = self._family
        overlap = set(val) & set(fam._labelnames)
        if overlap:
            raise LabelError("invalid label name", 102, f"overlapping labels for info metric {fam._name}: {sorted(overlap)}")
        bad = [k for k, v in val.items() if v is None]
        if bad:
            raise LabelError("invalid label value", 114, f"Label value cannot be None: {bad} of info metric {fam._name}")
        arr, n = label_array((encode(k, "info name"), encode(v, "info value")) for k, v in val.items())
        _succeed(self, lib.promshm_info_set(self._h, arr, n))


class _EnumOps(_Ops):
    __slots__ = ()

    def state(self, state: str) -> None:
        """Make ``state`` the current state."""
        try:
            idx = self._family._state_index[state]
        except KeyError:
            raise InvalidArgumentError(
                "invalid state", B.PROMSHM_RESULT_INVALID_STATE, f"{state!r} is not a state of {self._family._name}"
            ) from None
        _succeed(self, lib.promshm_stateset_set_index(self._h, idx))

    def get(self) -> str:
        """The current state."""
        return cast(str, self._family._states[_read(self, lib.promshm_stateset_get, c_size_t())])


# --------------------------------------------------------------------------
# Series (labelled children) and partial labels.


class _Series:
    __slots__ = ("_h", "_family", "_labelvalues", "__weakref__")

    def __init__(self, family: "MetricWrapperBase", values: Tuple[str, ...], h: c_void_p) -> None:
        self._family = family
        self._labelvalues = values
        self._h: Optional[c_void_p] = h

    def _values(self) -> Tuple[str, ...]:
        return self._labelvalues

    def labels(self, *args: Any, **kwargs: Any) -> Any:
        raise ValueError(f"{self!r} already has all its label values")

    def __repr__(self) -> str:
        labels = ",".join(f'{k}="{v}"' for k, v in zip(self._family._labelnames, self._labelvalues))
        return f"<{type(self._family).__name__} {self._family._name}{{{labels}}}>"

    def __del__(self) -> None:
        h = self._h
        if h is not None:
            self._h = None
            try:
                lib.promshm_series_free(h)
            except Exception:
                pass


class _PartialLabels:
    """pytheus' partial labels: ``m.labels({'a': '1'})`` on a metric that needs
    more labels returns this cacheable object; ``.labels({'b': '2'})`` finishes
    it. Updates raise :class:`~promshm.errors.UnobservableMetricError`."""

    __slots__ = ("_family", "_given", "__weakref__")
    _h = None

    def __init__(self, family: "MetricWrapperBase", given: Dict[str, str]) -> None:
        self._family = family
        self._given = given

    def _values(self) -> Tuple[str, ...]:
        return ()

    def labels(self, *args: Any, **kwargs: Any) -> Any:
        if len(args) == 1 and isinstance(args[0], Mapping) and not kwargs:
            more = dict(args[0])
        elif args:
            missing = [n for n in self._family._labelnames if n not in self._given]
            if len(args) != len(missing):
                raise _label_count_error(f"expected values for {missing}")
            more = dict(zip(missing, args))
        else:
            more = dict(kwargs)
        return self._family.labels({**self._given, **more})

    def __repr__(self) -> str:
        return f"<partial {type(self._family).__name__} {self._family._name} {self._given}>"


def _child_classes(ops: type, kind: str) -> Tuple[type, type]:
    """A metric class's series class (``<kind>Series``) and partial-labels
    class (``<kind>Partial``), both with the operations ``ops``."""
    return (
        type(kind + "Series", (ops, _Series), {"__slots__": ()}),
        type(kind + "Partial", (ops, _PartialLabels), {"__slots__": ()}),
    )


# --------------------------------------------------------------------------
# Families.

_DEFAULT = object()  # "registry not given": the default REGISTRY


class MetricWrapperBase(_Ops):
    """What every metric class shares: naming, registration, labels, remove, clear."""

    _type = ""
    _c_register = ""
    _series_cls: type = _Series
    _partial_cls: type = _PartialLabels
    _buffered = False  # counter/histogram: updates go to a thread buffer
    #: What an update on a series-less object raises (an idiom layer's subclass,
    #: e.g. pytheus' ``UnobservableMetricException``).
    _unobservable_error: Type[UnobservableMetricError] = UnobservableMetricError

    __slots__ = (
        "_h",
        "_name",
        "_documentation",
        "_unit",
        "_labelnames",
        "_default_labels",
        "_registry",
        "_fam",
        "_fam_mode",
        "_children",
        "_raw",
        "_rawkw",
        "_lock",
        "_functions",
        "_exemplars",
        "_created_at",
        "_kwargs",
        "__weakref__",
        "__dict__",
    )

    def __init__(
        self,
        name: str,
        documentation: str = "",
        labelnames: Iterable[str] = (),
        namespace: str = "",
        subsystem: str = "",
        unit: str = "",
        registry: Any = _DEFAULT,
        _labelvalues: Optional[Sequence[str]] = None,
        *,
        description: Optional[str] = None,
        required_labels: Optional[Iterable[str]] = None,
        default_labels: Optional[Mapping[str, Any]] = None,
        **kwargs: Any,
    ) -> None:
        if _labelvalues is not None:  # prometheus_client's private child constructor
            raise InvalidArgumentError("invalid argument", 114, "_labelvalues is not supported; use .labels()")
        if description is not None:
            documentation = description
        if isinstance(labelnames, str):
            labelnames = (labelnames,)
        names = tuple(labelnames)
        if required_labels is not None:
            names = names + tuple(n for n in required_labels if n not in names)
        self._h: Optional[c_void_p] = None
        self._fam: Optional[c_void_p] = None
        self._name = "_".join(p for p in (namespace, subsystem, name) if p)
        if not isinstance(name, str) or not name:
            raise InvalidArgumentError("invalid metric name", B.PROMSHM_RESULT_INVALID_METRIC_NAME, f"{name!r}")
        self._documentation = documentation or ""
        self._unit = unit or ""
        self._labelnames = names
        self._default_labels = {str(k): str(v) for k, v in (default_labels or {}).items()}
        unknown = set(self._default_labels) - set(names)
        if unknown:
            raise _unknown_label_error(f"default labels {sorted(unknown)} are not label names {list(names)}")
        self._children: Dict[Tuple[str, ...], Any] = {}
        # labels(*values) as given -> series; with the C fast path also its own
        # cache, nested dicts under str keys (_speedups.c: cached_child), which
        # every self._raw.clear() clears with the rest
        self._raw: Dict[Any, Any] = {}
        self._rawkw: Dict[Any, Any] = {}  # labels(**kv) items as given -> series
        self._lock = threading.Lock()
        self._functions: Dict[Tuple[str, ...], Tuple[Any, Callable[[], float]]] = {}
        # label values -> bucket bound (None for a counter) -> this process's last exemplar
        self._exemplars: Dict[Tuple[str, ...], Dict[Optional[float], Any]] = {}
        # label values -> (time.time(), the real clock) when this process first
        # made (or last reset) the series: see registry._with_local_state
        self._created_at: Dict[Tuple[str, ...], Tuple[float, float]] = {}
        self._kwargs = kwargs
        self._check_kwargs(kwargs)
        if registry is _DEFAULT:
            registry = REGISTRY
        if registry is None:
            registry = CollectorRegistry._detached()
        self._registry: "CollectorRegistry" = registry
        registry._claim(self)  # raises for a name this registry already has
        try:
            self._register()
        except BaseException:
            registry._release(self)
            raise
        _area._families.add(self)
        self._resolve_default()

    def _sample_names(self) -> List[str]:
        """Every sample name this family renders (before the registry prefix):
        no other family of the registry may use one of them."""
        base = self._name
        if self._type == "counter" and base.endswith("_total"):
            base = base[: -len("_total")]
        if self._unit and not base.endswith("_" + self._unit):
            base += "_" + self._unit
        return [base] + [base + x for x in TYPE_SUFFIXES.get(self._type, ())]

    # -- type-specific hooks
    def _check_kwargs(self, kwargs: Dict[str, Any]) -> None:
        if kwargs:
            raise TypeError(f"{type(self).__name__}() got unexpected keyword arguments {sorted(kwargs)}")

    def _c_args(self) -> Tuple[Any, ...]:
        return ()

    def _own_labels(self) -> Tuple[str, ...]:
        """Label names the area family has after the metric's own (a
        per-process gauge's ``pid``), filled in by :meth:`_resolve`."""
        return ()

    def _own_values(self) -> Tuple[str, ...]:
        return ()

    def _forked(self) -> None:
        """In a forked child (``os.register_at_fork``): re-resolve what is
        this process's own (a per-process gauge's series)."""

    # -- registration
    def _opts(self, mode: int) -> Tuple[B.promshm_metric_opts, Any]:
        names = [encode(n, "label name") for n in self._labelnames + self._own_labels()]
        arr = str_array(names)
        opts = B.promshm_metric_opts(
            size=sizeof(B.promshm_metric_opts),
            name=encode(self._name, "metric name"),
            help=encode(self._documentation, "documentation") if self._documentation else None,
            unit=encode(self._unit, "unit") if self._unit else None,
            label_names=arr,
            n_label_names=len(names),
            update_mode=mode,
        )
        return opts, arr

    def _update_mode(self) -> int:
        """The update mode to register with now. A ``registry=None`` metric
        writes eagerly: it is private to this process (nothing to batch
        against), and a thread buffer would keep its area mapped after the
        metric is gone."""
        if not self._buffered:
            return B.PROMSHM_UPDATE_MODE_DEFAULT
        if self._registry._detached_area:
            return B.PROMSHM_UPDATE_MODE_EAGER
        return _area.update_mode()

    def _register(self) -> None:
        mode = self._update_mode()
        reg = self._registry._handle()
        opts, _keep = self._opts(mode)
        fam = c_void_p()
        func = getattr(lib, self._c_register)
        rc = func(reg, byref(opts), *self._c_args(), byref(fam))
        if rc == B.PROMSHM_RESULT_INVALID_METRIC_NAME and compat.installed():
            # A name prometheus_client accepts but the area reserves (a gauge
            # named *_total or *_count): kept in the area as <name>:promshm_renamed,
            # rendered under its own name by collect() (how the drop-in renders).
            renamed = B.promshm_metric_opts.from_buffer_copy(opts)
            renamed.name = encode(self._name + RENAMED, "metric name")
            if func(reg, byref(renamed), *self._c_args(), byref(fam)) == B.PROMSHM_RESULT_OK:
                rc = B.PROMSHM_RESULT_OK
        check(rc, f"registering {self._name}")
        old = self._fam
        self._fam = fam
        self._fam_mode = mode
        if old is not None:
            lib.promshm_family_free(old)
        if self._buffered and mode == B.PROMSHM_UPDATE_MODE_BUFFERED:
            _area._need_flusher()

    def _resolve(self, values: Tuple[str, ...]) -> c_void_p:
        if self._fam_mode == B.PROMSHM_UPDATE_MODE_BUFFERED:
            _area._need_flusher()
        self._created_at.setdefault(values, (_time.time(), _real_time()))
        enc = [encode(v, "label value") for v in values + self._own_values()]
        arr = str_array(enc)
        h = c_void_p()
        check(lib.promshm_family_labels(self._fam, arr, len(enc), byref(h)), f"{self._name}{list(values)}")
        return _native.handle(h)

    def _resolve_default(self) -> None:
        """Resolve the default series: the one of a family without labels, or
        whose every label has a default value (``default_labels``)."""
        if all(n in self._default_labels for n in self._labelnames):
            self._h = self._resolve(self._values())

    def _reresolve(self, freed_too: bool) -> None:
        """Resolve again (under the lock) the default series, if held, and
        every cached series (``freed_too``: a child whose handle is gone as
        well), freeing the handles they replace."""
        if self._h is not None:
            old, self._h = self._h, self._resolve(self._values())
            lib.promshm_series_free(old)
        for values, child in list(self._children.items()):
            if child._h is not None or freed_too:
                old, child._h = child._h, self._resolve(values)
                if old is not None:
                    lib.promshm_series_free(old)

    def _forget(self, key: Optional[Tuple[str, ...]] = None) -> None:
        """Forget (under the lock) this process's state of the series ``key``
        (None: of every series) and the caches of ``labels()`` as given."""
        self._raw.clear()
        self._rawkw.clear()
        for state in (self._children, self._functions, self._exemplars, self._created_at):
            if key is None:
                state.clear()
            else:
                state.pop(key, None)

    def _rebind(self) -> None:
        """Re-register with this process's update mode and re-resolve every cached series."""
        if self._fam_mode == self._update_mode():
            return
        with self._lock:
            self._register()
            self._reresolve(freed_too=True)

    def _unregister_family(self) -> None:
        """Unregister the family from the area, in every process: its series
        and its record are freed (their space is reused), it leaves every
        render, and its name is free for any registration. This object's
        series handles (and every other process's) update nothing from then
        on; registering the metric again makes a fresh family
        (:meth:`_reregister`)."""
        with self._lock:
            fam = self._fam
            if fam is not None and not getattr(self, "_unregistered", False):
                check(lib.promshm_registry_unregister(self._registry._handle(), fam, None), f"unregistering {self._name}")
            self._unregistered = True
            self._raw.clear()
            self._rawkw.clear()

    def _reregister(self) -> None:
        """Register the family again after :meth:`_unregister_family` (a
        fresh family: its values start over) and re-resolve every series
        this object holds."""
        if not getattr(self, "_unregistered", False):
            return
        self._unregistered = False
        self._fam_mode = None
        self._rebind()

    # -- labels
    def labels(self: _M, *labelvalues: Any, **labelkwargs: Any) -> _M:
        """The series with these label values: ``labels('GET', '/')``,
        ``labels(method='GET', path='/')``, or pytheus' ``labels({'method': 'GET'})``
        (which may leave labels out: a partial object, finished by another
        ``.labels(...)``). Missing values come from ``default_labels``. The
        result is cached; keep it for the updates."""
        # The caches hold only keys whose values are all exact ``str``: a value
        # of another type that compares equal (1, True, 1.0; a str enum member)
        # may have another str(), so it is never looked up in them.
        if labelvalues:
            if not labelkwargs:
                try:
                    child = self._raw.get(labelvalues)
                except TypeError:  # a dict (pytheus) or an unhashable value
                    child = None
                if child is not None:
                    for v in labelvalues:
                        if v.__class__ is not str:
                            break
                    else:
                        return child
                n = len(labelvalues)
                if n == len(self._labelnames) and not (n == 1 and isinstance(labelvalues[0], Mapping)):
                    child = self._children.get(tuple([_label_str(v) for v in labelvalues]))
                    if child is not None:
                        return child
        elif labelkwargs:
            items = tuple(labelkwargs.items())
            try:
                child = self._rawkw.get(items)
            except TypeError:
                child = None
            if child is not None:
                for _k, v in items:
                    if v.__class__ is not str:
                        break
                else:
                    return child
        return cast(_M, self._labels_slow(labelvalues, labelkwargs))

    def _no_labels_error(self) -> LabelError:
        """What ``labels()`` and ``remove_by_labels()`` raise on a family without labels."""
        return _label_count_error(f"no label names were set when constructing {self!r}")

    def _labels_slow(self, labelvalues: Tuple[Any, ...], labelkwargs: Dict[str, Any]) -> Any:
        names = self._labelnames
        if not names:
            raise self._no_labels_error()
        partial_ok = False
        if labelvalues and labelkwargs:
            raise _label_count_error("can't pass both *args and **kwargs")
        if len(labelvalues) == 1 and isinstance(labelvalues[0], Mapping):
            given = {str(k): v for k, v in labelvalues[0].items()}
            partial_ok = True
        elif labelkwargs:
            given = labelkwargs
        else:
            if len(labelvalues) != len(names):
                raise _label_count_error(
                    f"incorrect label count for {self._name}: expected {len(names)} values for {list(names)}, got {len(labelvalues)}",
                )
            given = dict(zip(names, labelvalues))
        unknown = [k for k in given if k not in names]
        if unknown:
            raise _unknown_label_error(f"incorrect label names {unknown} for {self._name} (labels: {list(names)})")
        merged = dict(self._default_labels)
        for k, v in given.items():
            merged[k] = _label_str(v)
        if len(merged) < len(names):
            if partial_ok:
                return self._partial_cls(self, merged)
            missing = [n for n in names if n not in merged]
            raise _label_count_error(f"missing label values for {missing} of {self._name}")
        key = tuple(merged[n] for n in names)
        child = self._children.get(key)
        if child is None:
            with self._lock:
                child = self._children.get(key)
                if child is None:
                    child = self._series_cls(self, key, self._resolve(key))
                    self._children[key] = child
        if not partial_ok:
            if labelvalues and all(v.__class__ is str for v in labelvalues):
                self._raw[labelvalues] = child
            elif labelkwargs and all(v.__class__ is str for v in labelkwargs.values()):
                # keyword order matters for this key: each order is cached once
                self._rawkw[tuple(labelkwargs.items())] = child
        return child

    def remove(self, *labelvalues: Any) -> None:
        """Remove the series with these label values, in every process."""
        if len(labelvalues) == 1 and isinstance(labelvalues[0], Mapping):
            d = {**self._default_labels, **{k: _label_str(v) for k, v in labelvalues[0].items()}}
            try:
                labelvalues = tuple(d[n] for n in self._labelnames)
            except KeyError as e:
                raise _label_count_error(f"missing label value for {e}") from None
        if len(labelvalues) != len(self._labelnames):
            raise _label_count_error(
                f"incorrect label count for {self._name}: expected {len(self._labelnames)}, got {len(labelvalues)}",
            )
        self._remove_key(tuple(_label_str(v) for v in labelvalues))

    def _remove_key(self, key: Tuple[str, ...]) -> None:
        self._remove_values(key, key)

    def _remove_values(self, key: Tuple[str, ...], values: Tuple[str, ...]) -> None:
        """Remove the area series of ``values`` (the label values in the
        area) and forget this process's state of ``key`` (the metric's)."""
        enc = [encode(v, "label value") for v in values]
        removed = c_bool()
        with self._lock:
            check(lib.promshm_family_remove(self._fam, str_array(enc), len(enc), byref(removed)))
            self._forget(key)

    def remove_by_labels(self, labels: Mapping[str, Any]) -> None:
        """Remove every series whose labels include ``labels`` (prometheus_client
        0.21+), in every process: series made by other processes too."""
        if not self._labelnames:
            raise self._no_labels_error()
        if not isinstance(labels, Mapping):
            raise TypeError("labels must be a dict of {label_name: label_value}")
        unknown = [k for k in labels if k not in self._labelnames]
        if unknown:
            raise _unknown_label_error(f"unknown label names {unknown}; expected {list(self._labelnames)}")
        if not labels:
            return
        want = [(self._labelnames.index(k), _label_str(v)) for k, v in labels.items()]
        for key in self._series_keys():
            if all(key[i] == v for i, v in want):
                self._remove_key(key)

    def _series_keys(self) -> List[Tuple[str, ...]]:
        """The label values of every series of the family in the area (every
        process's, read from a render) and of every series cached here."""
        names = self._labelnames
        keys = dict.fromkeys(self._children)
        for fam in _families_of(self):
            for sample in fam.samples:
                if all(n in sample.labels for n in names):
                    keys[tuple(sample.labels[n] for n in names)] = None
        return list(keys)

    def clear(self) -> None:
        """Remove every series of the family, in every process."""
        self._clear_series()
        self._resolve_default()

    def _clear_series(self) -> None:
        """Remove every series, the default one included (not re-created)."""
        with self._lock:
            check(lib.promshm_family_clear(self._fam, None))
            self._forget()
            old, self._h = self._h, None
        if old is not None:
            lib.promshm_series_free(old)

    # -- introspection
    @property
    def _family(self) -> "MetricWrapperBase":
        return self

    def _values(self) -> Tuple[str, ...]:
        return tuple(self._default_labels.get(n, "") for n in self._labelnames)

    @property
    def name(self) -> str:
        """The full name in the area (registry prefix and unit included, no ``_total``)."""
        n = lib.promshm_family_name(self._fam)
        return n.decode() if n else self._name

    @property
    def documentation(self) -> str:
        return self._documentation

    @property
    def labelnames(self) -> Tuple[str, ...]:
        return self._labelnames

    def _run_functions(self) -> None:
        for _key, (target, f) in list(self._functions.items()):
            try:
                target.set(f())
            except Exception:
                pass

    def describe(self) -> List[Any]:
        return []

    def collect(self) -> List[Any]:
        """The family as prometheus_client-style metric objects (from a render)."""
        return _families_of(self)

    def __repr__(self) -> str:
        module = "prometheus_client.metrics" if compat.installed() else type(self).__module__
        return f"{module}.{type(self).__name__}({self._sample_names()[0]})"

    def __del__(self) -> None:
        try:
            if self._h is not None:
                lib.promshm_series_free(self._h)
                self._h = None
            if self._fam is not None:
                lib.promshm_family_free(self._fam)
                self._fam = None
        except Exception:
            pass


class Counter(_CounterOps, MetricWrapperBase):
    """A monotonic total, exposed as ``<name>_total`` (a trailing ``_total``
    in ``name`` is dropped, as prometheus_client does)::

        requests = Counter('requests', 'Requests served.', ['method'])
        requests.labels('GET').inc()
        with requests.labels('POST').count_exceptions():
            ...
    """

    _type = "counter"
    _c_register = "promshm_registry_counter"
    _series_cls, _partial_cls = _child_classes(_CounterOps, "Counter")
    _buffered = True
    __slots__ = ()


class Gauge(_GaugeOps, MetricWrapperBase):
    """A value that goes up and down.

    Each process has its own value; ``multiprocess_mode`` says how they
    combine, as prometheus_client documents (see :data:`GAUGE_MODES`):
    ``'livesum'`` (default here; the sum over live processes, so a dead
    worker's value disappears), ``'sum'``, ``'max'``, ``'min'``,
    ``'mostrecent'`` (the last value set by any process; these four keep a
    dead process's value), ``'livemax'``, ``'livemin'``, ``'livemostrecent'``
    (live processes only), ``'liveall'`` (one series per live worker,
    labelled ``worker="<slot>"``) and ``'all'`` (one series per process,
    labelled ``pid="<pid>"``, a dead process's last value kept, as
    prometheus_client keeps its file: series pile up as workers are
    recycled). prometheus_client's default is ``'all'``; promshm's is
    ``'livesum'``, which renders a single process's gauge exactly as
    prometheus_client's single-process mode does.
    """

    _type = "gauge"
    _c_register = "promshm_registry_gauge"
    _series_cls, _partial_cls = _child_classes(_GaugeOps, "Gauge")
    __slots__ = ()

    def __init__(
        self,
        name: str,
        documentation: str = "",
        labelnames: Iterable[str] = (),
        namespace: str = "",
        subsystem: str = "",
        unit: str = "",
        registry: Any = _DEFAULT,
        _labelvalues: Optional[Sequence[str]] = None,
        multiprocess_mode: str = "livesum",
        **kwargs: Any,
    ) -> None:
        if multiprocess_mode not in GAUGE_MODES:
            raise InvalidArgumentError(
                "invalid argument", 114, f"invalid multiprocess mode {multiprocess_mode!r} (one of {sorted(GAUGE_MODES)})"
            )
        self._mode_name = multiprocess_mode
        labelnames = (labelnames,) if isinstance(labelnames, str) else tuple(labelnames)
        if multiprocess_mode in PER_PID_MODES:
            check_reserved_label(labelnames, PID_LABEL, f"gauge in mode {multiprocess_mode!r}")
        super().__init__(name, documentation, labelnames, namespace, subsystem, unit, registry, _labelvalues, **kwargs)

    def _c_args(self) -> Tuple[Any, ...]:
        return (GAUGE_MODES[self._mode_name],)

    def _per_pid(self) -> bool:
        return self._mode_name in PER_PID_MODES

    def _own_labels(self) -> Tuple[str, ...]:
        return (PID_LABEL,) if self._per_pid() else ()

    def _own_values(self) -> Tuple[str, ...]:
        return (str(os.getpid()),) if self._per_pid() else ()

    def _forked(self) -> None:
        """A per-process gauge's series in a forked child: this pid's, from 0."""
        if not self._per_pid():
            return
        with self._lock:
            self._reresolve(freed_too=False)

    def _remove_key(self, key: Tuple[str, ...]) -> None:
        if not self._per_pid():
            return super()._remove_key(key)
        # every process's series of these label values
        pids = {str(os.getpid())}
        for fam in _families_of(self):
            for smp in fam.samples:
                if tuple(smp.labels.get(n) for n in self._labelnames) == key and PID_LABEL in smp.labels:
                    pids.add(smp.labels[PID_LABEL])
        for pid in sorted(pids):
            self._remove_values(key, key + (pid,))

    @property
    def multiprocess_mode(self) -> str:
        return self._mode_name


#: ``Histogram``'s keyword arguments that make it native (prometheus_client's
#: and client_golang's names); the positional parameters before ``buckets``.
_NATIVE_OPTIONS = (
    "native_histogram_bucket_factor",
    "native_histogram_zero_threshold",
    "native_histogram_max_bucket_number",
    "native_histogram_min_value",
    "native_histogram_max_value",
)
_HISTOGRAM_POSITIONAL = 8


def _classic_bounds(buckets: Sequence[Union[float, str]]) -> Tuple[float, ...]:
    """A histogram's ``buckets`` checked as prometheus_client checks them,
    without the trailing ``+Inf``."""
    bs = [float(b) for b in buckets]
    if bs != sorted(bs):
        raise InvalidArgumentError("invalid buckets", B.PROMSHM_RESULT_INVALID_BUCKETS, f"buckets not in sorted order: {list(buckets)}")
    if bs and bs[-1] == INF:
        bs = bs[:-1]
    if not bs:
        raise InvalidArgumentError("invalid buckets", B.PROMSHM_RESULT_INVALID_BUCKETS, "must have at least two buckets (one besides +Inf)")
    return tuple(bs)


class Histogram(_HistogramOps, MetricWrapperBase):
    """Observations counted in buckets, with ``_count`` and ``_sum``.

    ``buckets`` are the upper bounds, increasing (``+Inf`` is added if
    missing); default :data:`DEFAULT_BUCKETS`.

    **Native histograms** (prometheus_client's and client_golang's option
    names): ``Histogram(..., native_histogram_bucket_factor=1.1)`` with a
    factor above 1 makes a native histogram family instead, and returns a
    :class:`NativeHistogram` (so ``isinstance(h, Histogram)`` is false),
    with ``native_histogram_zero_threshold``,
    ``native_histogram_max_bucket_number`` (default 160),
    ``native_histogram_min_value`` and ``native_histogram_max_value`` as
    :class:`NativeHistogram` documents them. As in client_golang, a native
    histogram has no classic buckets unless ``buckets=`` is given
    explicitly: with it, the one family has both (every observation counts
    in its native bucket and in its classic one; the protobuf format carries
    both views in one histogram, the text formats show the classic buckets);
    without it, the text formats show only ``_count``, ``_sum`` and one
    ``+Inf`` bucket, and only the protobuf format carries the native
    buckets. Without the factor, or with one of at most 1 (as client_golang:
    no native histogram), the other ``native_histogram_*`` options are
    ignored and the histogram is classic."""

    _type = "histogram"
    _c_register = "promshm_registry_histogram"
    _series_cls, _partial_cls = _child_classes(_HistogramOps, "Histogram")
    _buffered = True
    __slots__ = ()

    def __new__(cls, *args: Any, **kwargs: Any) -> Any:
        factor = kwargs.get("native_histogram_bucket_factor")
        if cls is not Histogram or factor is None or float(factor) <= 1.0:
            return super().__new__(cls)
        # As client_golang: explicit buckets give both views, none native only.
        if len(args) > _HISTOGRAM_POSITIONAL:
            kwargs["buckets"] = args[_HISTOGRAM_POSITIONAL]
        return NativeHistogram(*args[:_HISTOGRAM_POSITIONAL], **kwargs)

    def __init__(
        self,
        name: str,
        documentation: str = "",
        labelnames: Iterable[str] = (),
        namespace: str = "",
        subsystem: str = "",
        unit: str = "",
        registry: Any = _DEFAULT,
        _labelvalues: Optional[Sequence[str]] = None,
        buckets: Sequence[Union[float, str]] = DEFAULT_BUCKETS,
        **kwargs: Any,
    ) -> None:
        for option in _NATIVE_OPTIONS:  # no factor above 1: a classic histogram
            kwargs.pop(option, None)
        bs = _classic_bounds(buckets)
        self._buckets = bs
        self._bucket_arr = (c_double * max(len(bs), 1))(*bs)
        check_reserved_label(labelnames, "le", "histogram")
        super().__init__(name, documentation, labelnames, namespace, subsystem, unit, registry, _labelvalues, **kwargs)

    def _c_args(self) -> Tuple[Any, ...]:
        return (self._bucket_arr, len(self._buckets))

    @property
    def buckets(self) -> Tuple[float, ...]:
        return self._buckets + (INF,)

    @property
    def _upper_bounds(self) -> List[float]:
        """prometheus_client's name of the bucket bounds (``+Inf`` included)."""
        return list(self.buckets)

    #: Prometheus' default buckets (prometheus_client's class attribute).
    DEFAULT_BUCKETS: Tuple[float, ...] = DEFAULT_BUCKETS


# What ``inspect.signature(Histogram)`` shows: ``__init__``'s (prometheus_client's)
# parameters, not ``__new__``'s catch-all.
Histogram.__signature__ = inspect.signature(Histogram.__init__).replace(  # type: ignore[attr-defined]
    parameters=list(inspect.signature(Histogram.__init__).parameters.values())[1:]
)


class NativeHistogram(_NativeHistogramOps, MetricWrapperBase):
    """A native (sparse, exponential-bucket) histogram shared by every
    process: each observation is an atomic add into its bucket in the area,
    so buckets, count and sum are exact across processes. The options have
    client_golang's meanings (0 picks the default):
    ``native_histogram_bucket_factor`` (1.1: schema 3) picks the resolution,
    ``native_histogram_zero_threshold`` (2^-128; negative: 0) the zero
    bucket, ``native_histogram_max_bucket_number`` (0: no limit) the most
    buckets a scrape shows (the schema is reduced to fit), and
    ``native_histogram_min_value``/``native_histogram_max_value`` (2^-32 and
    2^32) the window of buckets kept (values outside it count in its edge
    bucket). Only the protobuf exposition carries its buckets; the text
    formats show ``_count``, ``_sum`` and one ``+Inf`` bucket.

    ``buckets`` (classic upper bounds, as :class:`Histogram`'s; default
    none) adds classic buckets to the same family, as client_golang's
    ``Buckets`` beside ``NativeHistogramBucketFactor``: each observation
    then also counts in its classic bucket, the protobuf exposition carries
    both views in one histogram and the text formats show the classic
    buckets; exemplars are kept per classic bucket."""

    _type = "histogram"
    _c_register = "promshm_registry_native_histogram_buckets"
    _series_cls, _partial_cls = _child_classes(_NativeHistogramOps, "NativeHistogram")
    __slots__ = ()

    def __init__(
        self,
        name: str,
        documentation: str = "",
        labelnames: Iterable[str] = (),
        namespace: str = "",
        subsystem: str = "",
        unit: str = "",
        registry: Any = _DEFAULT,
        _labelvalues: Optional[Sequence[str]] = None,
        native_histogram_bucket_factor: float = 1.1,
        native_histogram_zero_threshold: float = 0.0,
        native_histogram_max_bucket_number: int = 160,
        native_histogram_min_value: float = 0.0,
        native_histogram_max_value: float = 0.0,
        buckets: Optional[Sequence[Union[float, str]]] = None,
        **kwargs: Any,
    ) -> None:
        bs = () if buckets is None else _classic_bounds(buckets)
        self._buckets = bs
        self._native = (
            c_double(float(native_histogram_bucket_factor)),
            c_double(float(native_histogram_zero_threshold)),
            c_uint32(int(native_histogram_max_bucket_number)),
            c_double(float(native_histogram_min_value)),
            c_double(float(native_histogram_max_value)),
            (c_double * max(len(bs), 1))(*bs),
            len(bs),
        )
        check_reserved_label(labelnames, "le", "histogram")
        super().__init__(name, documentation, labelnames, namespace, subsystem, unit, registry, _labelvalues, **kwargs)

    def _c_args(self) -> Tuple[Any, ...]:
        return self._native

    @property
    def buckets(self) -> Tuple[float, ...]:
        """The classic bucket bounds with ``+Inf`` (empty: native only)."""
        return self._buckets + (INF,) if self._buckets else ()


class Summary(_SummaryOps, MetricWrapperBase):
    """Observations' ``_count`` and ``_sum`` and, unlike prometheus_client,
    optional **quantiles that are correct across processes** (a mergeable
    sketch, within 1 % relative error): ``Summary(..., quantiles=(0.5, 0.9,
    0.99))``, over every observation or, with ``max_age_seconds``, over a
    sliding window of ``age_buckets`` steps. Without ``quantiles`` it renders
    exactly like prometheus_client's Summary."""

    _type = "summary"
    _c_register = "promshm_registry_summary"
    _series_cls, _partial_cls = _child_classes(_SummaryOps, "Summary")
    __slots__ = ()

    def __init__(
        self,
        name: str,
        documentation: str = "",
        labelnames: Iterable[str] = (),
        namespace: str = "",
        subsystem: str = "",
        unit: str = "",
        registry: Any = _DEFAULT,
        _labelvalues: Optional[Sequence[str]] = None,
        quantiles: Sequence[float] = (),
        max_age_seconds: float = 0,
        age_buckets: int = 0,
        **kwargs: Any,
    ) -> None:
        qs = [float(q) for q in quantiles]
        self._quantiles = tuple(qs)
        self._q_arr = (c_double * max(len(qs), 1))(*qs)
        self._max_age_ms = int(max_age_seconds * 1000)
        self._age_buckets = int(age_buckets)
        check_reserved_label(labelnames, "quantile", "summary")
        super().__init__(name, documentation, labelnames, namespace, subsystem, unit, registry, _labelvalues, **kwargs)

    def _c_args(self) -> Tuple[Any, ...]:
        return (self._q_arr, len(self._quantiles), self._max_age_ms, self._age_buckets)


class Info(_InfoOps, MetricWrapperBase):
    """Key/value information, exposed as ``<name>_info{...} 1``::

        Info('build', 'Build.').info({'version': '1.2.3'})
    """

    _type = "info"
    _c_register = "promshm_registry_info"
    _series_cls, _partial_cls = _child_classes(_InfoOps, "Info")
    __slots__ = ()


class Enum(_EnumOps, MetricWrapperBase):
    """One of a fixed set of states (an OpenMetrics state set)::

        e = Enum('task_state', 'State.', states=['starting', 'running', 'stopped'])
        e.state('running')

    A new series starts in the first state."""

    _type = "stateset"
    _c_register = "promshm_registry_stateset"
    _series_cls, _partial_cls = _child_classes(_EnumOps, "Enum")
    __slots__ = ()

    def __init__(
        self,
        name: str,
        documentation: str = "",
        labelnames: Sequence[str] = (),
        namespace: str = "",
        subsystem: str = "",
        unit: str = "",
        registry: Any = _DEFAULT,
        _labelvalues: Optional[Sequence[str]] = None,
        states: Optional[Sequence[str]] = None,
        **kwargs: Any,
    ) -> None:
        if not states:
            raise InvalidArgumentError("invalid state", B.PROMSHM_RESULT_INVALID_STATE, f"no states provided for Enum {name}")
        self._states = tuple(str(s) for s in states)
        self._state_index = {s: i for i, s in enumerate(self._states)}
        enc = [encode(s, "state") for s in self._states]
        self._states_arr = (c_char_p * len(enc))(*enc)
        full = "_".join(p for p in (namespace, subsystem, name) if p)
        check_reserved_label(labelnames, full, f"Enum metric {full}")
        super().__init__(name, documentation, labelnames, namespace, subsystem, unit, registry, _labelvalues, **kwargs)

    def _c_args(self) -> Tuple[Any, ...]:
        return (self._states_arr, len(self._states))

    @property
    def states(self) -> Tuple[str, ...]:
        return self._states


# registry is the layer below this one and imports nothing of it: it knows
# what it needs of the metrics only as registered here.
_register_metrics(MetricWrapperBase, Info, lambda: _use_created)

# The C update methods when promshm._speedups is there (see promshm._native).
_native.install(sys.modules[__name__])

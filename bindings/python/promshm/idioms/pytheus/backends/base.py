"""pytheus' backend selection (``pytheus.backends.base``), onto promshm's area.

pytheus keeps each value in a *backend* (its process memory, or Redis for
several processes). promshm keeps every value in its shared area, so every
backend here is multi-process: :class:`SingleProcessBackend` and
:class:`~promshm.idioms.pytheus.backends.redis.MultiProcessRedisBackend` both
land on the shared area. A backend object (``metric._metric_value_backend``)
forwards ``inc``/``dec``/``set``/``get`` to its metric. A backend class of
the application's own (the ``Backend`` protocol) is accepted, checked, its
``_initialize(config)`` hook runs and ``_metric_value_backend`` is an instance
of it, but the metric's values stay in the area (promshm is the storage).

Selection as in pytheus: ``load_backend(backend_class, backend_config)``, else
``$PYTHEUS_BACKEND_CLASS`` (a dotted class path; a path under ``pytheus.`` is
looked up under ``promshm.idioms.pytheus.``, so an application keeps its
environment) and ``$PYTHEUS_BACKEND_CONFIG`` (a JSON file), else
:class:`SingleProcessBackend` with ``{}``. ``load_backend()`` runs when the
package is imported.
"""

from __future__ import annotations

import importlib
import json
import os
from typing import TYPE_CHECKING, Any, Dict, Optional, Protocol, Type, runtime_checkable

from ..exceptions import InvalidBackendClassException, InvalidBackendConfigException

if TYPE_CHECKING:  # pragma: no cover
    from ..metrics import _Metric

__all__ = [
    "Backend",
    "BackendConfig",
    "SingleProcessBackend",
    "load_backend",
    "get_backend",
    "get_backend_class",
]

BackendConfig = Dict[str, Any]

#: The environment variables pytheus reads.
BACKEND_CLASS_ENV = "PYTHEUS_BACKEND_CLASS"
BACKEND_CONFIG_ENV = "PYTHEUS_BACKEND_CONFIG"

#: Where a ``pytheus.`` class path is looked up.
_IDIOM_PACKAGE = __name__.rsplit(".backends.", 1)[0]


@runtime_checkable
class Backend(Protocol):
    """What a metric value backend implements (pytheus' protocol)."""

    def __init__(self, config: BackendConfig, metric: "_Metric", histogram_bucket: Optional[str] = None) -> None: ...

    def inc(self, value: float) -> None: ...

    def dec(self, value: float) -> None: ...

    def set(self, value: float) -> None: ...

    def get(self) -> float: ...


class _AreaBackend:
    """A backend whose values are the metric's own, in promshm's area."""

    def __init__(self, config: BackendConfig, metric: Any, histogram_bucket: Optional[str] = None) -> None:
        self.config = config
        self._metric = metric
        self._histogram_bucket = histogram_bucket

    @classmethod
    def _initialize(cls, config: BackendConfig) -> None:
        """pytheus' one-time hook: nothing to set up, the area opens on first use."""

    def inc(self, value: float) -> None:
        self._metric.inc(value)

    def dec(self, value: float) -> None:
        self._metric.dec(value)

    def set(self, value: float) -> None:
        self._metric.set(value)

    def get(self) -> float:
        return self._metric.get()


class SingleProcessBackend(_AreaBackend):
    """pytheus' default backend. Here too the values are in the shared area:
    every worker of the application updates the same series."""


def _import_backend_class(path: str) -> Type[Backend]:
    try:
        module_path, class_name = path.rsplit(".", 1)
    except ValueError:
        raise InvalidBackendClassException(
            f"Backend class {path!r} could not be imported. Full import path needs to be provided, e.g. my_package.my_module.MyClass"
        ) from None
    if module_path == "pytheus" or module_path.startswith("pytheus."):
        module_path = _IDIOM_PACKAGE + module_path[len("pytheus") :]
    try:
        module = importlib.import_module(module_path)
    except ImportError as e:
        raise InvalidBackendClassException(f"Module '{module_path}' could not be imported: {e}") from None
    cls = getattr(module, class_name, None)
    if cls is None:
        raise InvalidBackendClassException(f"Class '{class_name}' could not be found in module '{module_path}'")
    _check_backend_class(cls)
    return cls


def _check_backend_class(cls: Any) -> None:
    if not isinstance(cls, type) or not issubclass(cls, Backend):
        raise InvalidBackendClassException(f"{cls!r} is not a Backend class (it needs inc, dec, set and get)")


def _load_config(path: str) -> BackendConfig:
    try:
        with open(path) as f:
            config = json.load(f)
    except Exception as e:
        raise InvalidBackendConfigException(f"{e.__class__}: {e}") from None
    if not isinstance(config, dict):
        raise InvalidBackendConfigException(f"{path}: the backend configuration must be a JSON object, not {type(config).__name__}")
    return config


BACKEND_CLASS: Type[Any] = SingleProcessBackend
BACKEND_CONFIG: BackendConfig = {}


def load_backend(backend_class: Optional[Type[Backend]] = None, backend_config: Optional[BackendConfig] = None) -> None:
    """Choose the backend of metrics made from now on: the arguments, else
    the environment, else :class:`SingleProcessBackend` with ``{}``; then
    run the class's ``_initialize(config)`` hook if it has one."""
    global BACKEND_CLASS, BACKEND_CONFIG
    if backend_class is not None:
        _check_backend_class(backend_class)
        cls: Type[Any] = backend_class
    elif BACKEND_CLASS_ENV in os.environ:
        cls = _import_backend_class(os.environ[BACKEND_CLASS_ENV])
    else:
        cls = SingleProcessBackend
    if backend_config is not None:
        config = backend_config
    elif BACKEND_CONFIG_ENV in os.environ:
        config = _load_config(os.environ[BACKEND_CONFIG_ENV])
    else:
        config = {}
    init = getattr(cls, "_initialize", None)
    if init is not None:
        init(config)
    BACKEND_CLASS, BACKEND_CONFIG = cls, config


def get_backend_class() -> Type[Any]:
    """The backend class of metrics made now."""
    return BACKEND_CLASS


def get_backend(metric: Any, histogram_bucket: Optional[str] = None) -> Any:
    """A backend object of the current class for ``metric``."""
    return BACKEND_CLASS(BACKEND_CONFIG, metric, histogram_bucket=histogram_bucket)

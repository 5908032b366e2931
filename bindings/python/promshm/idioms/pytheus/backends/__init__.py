"""pytheus' ``pytheus.backends``: backend selection (see :mod:`.base`)."""

from .base import Backend, BackendConfig, SingleProcessBackend, get_backend, get_backend_class, load_backend

__all__ = ["Backend", "BackendConfig", "SingleProcessBackend", "get_backend", "get_backend_class", "load_backend"]

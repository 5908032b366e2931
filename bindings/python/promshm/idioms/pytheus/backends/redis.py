"""pytheus' Redis backend class path (``pytheus.backends.redis``), onto promshm's area.

An application that selects ``pytheus.backends.redis.MultiProcessRedisBackend``
(``$PYTHEUS_BACKEND_CLASS`` or ``load_backend``) gets this class: its values are
in promshm's shared area, which every worker of the application updates, so
no Redis server is needed. The Redis options of the configuration (``host``,
``port``, ``db``, ``key_prefix``, ``expire_key_time``, ...) are accepted and
kept in ``config``; they connect to nothing.
"""

from __future__ import annotations

from typing import Any

from .base import BackendConfig, _AreaBackend

__all__ = ["MultiProcessRedisBackend"]


class MultiProcessRedisBackend(_AreaBackend):
    """Multi-process values: promshm's shared area in place of Redis."""

    #: pytheus' class attributes, kept for code that reads them.
    EXPIRE_KEY_TIME = 3600
    CONNECTION_POOL: Any = None

    @classmethod
    def _initialize(cls, config: BackendConfig) -> None:
        if "expire_key_time" in config:
            cls.EXPIRE_KEY_TIME = config["expire_key_time"]

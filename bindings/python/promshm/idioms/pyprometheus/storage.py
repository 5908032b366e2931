"""pyprometheus' storages, mapped onto promshm areas (see the package documentation)."""

from __future__ import annotations

from typing import Any

from ..._area import Area

__all__ = ["BaseStorage", "LocalMemoryStorage"]


class BaseStorage:
    """Where a registry's metrics keep their values: a promshm area.

    ``eager`` says whether counter and histogram updates write straight
    into it (pyprometheus' write-through storages) or are batched in the
    process until a flush."""

    eager = False

    def _area(self) -> Any:
        """The ``area=`` of the promshm registry on this storage."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<{type(self).__name__}>"


class LocalMemoryStorage(BaseStorage):
    """Values in this process's memory: a private promshm area, as isolated
    from other processes as pyprometheus' dict — except that the children
    this process forks after making it update the same area (promshm's
    anonymous areas are shared with forked children): a pre-fork server
    that makes it in the master gets exact totals instead of one value per
    worker. Threads share it, as pyprometheus'."""

    def __init__(self) -> None:
        self.area = Area.anonymous()

    def _area(self) -> Any:
        return self.area

"""Optional gunicorn server hooks (``gunicorn.conf.py``)::

    from promshm.gunicorn_hooks import post_fork, post_request, child_exit  # noqa: F401

None is needed when the app is wrapped in :class:`promshm.MetricsMiddleware`
(or :func:`promshm.flush_after`), which flushes at the end of every request:
``post_request`` does the same for an unwrapped app, ``post_fork`` attaches the
new worker to the shared area at once (failing early if it has no free worker
slot), and ``child_exit`` is prometheus_client's ``mark_process_dead`` hook,
which promshm does not need (dead workers are found without hooks).
"""

from __future__ import annotations

from typing import Any

from . import _area

__all__ = ["post_fork", "post_request", "child_exit", "worker_exit"]


def post_fork(server: Any, worker: Any) -> None:
    """Attach the new worker to the shared area if it is already in use."""
    area = _area._state.area
    if area is not None:
        area.attach()


def post_request(worker: Any, req: Any, environ: Any, resp: Any) -> None:
    """Flush this worker's buffered updates at the end of each request."""
    _area._request_end()


def worker_exit(server: Any, worker: Any) -> None:
    """Flush before the worker exits."""
    _area._flush_quietly()


def child_exit(server: Any, worker: Any) -> None:
    """Nothing to do: promshm reaps dead workers itself."""

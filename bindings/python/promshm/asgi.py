"""ASGI: ``make_asgi_app()`` serves a registry; :class:`ASGIMetricsMiddleware`
also flushes promshm at the end of every request of the wrapped app."""

from __future__ import annotations

from typing import Any, Awaitable, Callable, Dict, List, MutableMapping, Optional
from urllib.parse import parse_qs

from . import _area, compat
from .exposition import _bake_output
from .registry import REGISTRY

__all__ = ["make_asgi_app", "ASGIMetricsMiddleware"]

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def _header(scope: Scope, name: bytes) -> Optional[str]:
    values: List[str] = [v.decode("latin-1") for k, v in scope.get("headers") or () if k.lower() == name]
    return ",".join(values) if values else None


def make_asgi_app(registry: Any = REGISTRY, disable_compression: bool = False) -> ASGIApp:
    """An ASGI app that serves the registry (as :func:`promshm.make_wsgi_app`)."""

    async def prometheus_app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope.get("type") == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope.get("type") != "http":
            raise ValueError(f"promshm's ASGI app serves HTTP only, not {scope.get('type')!r}")
        method = scope.get("method", "GET")
        if method not in ("GET", "HEAD"):
            status, headers, output = 405, [(b"allow", b"OPTIONS,GET")], b""
            if method == "OPTIONS":
                status = 200
        else:
            params: Dict[str, List[str]] = parse_qs(scope.get("query_string", b"").decode("utf-8"))
            code, hdrs, output = _bake_output(
                registry, _header(scope, b"accept"), _header(scope, b"accept-encoding"), params, disable_compression
            )
            status = int(code.split(" ")[0])
            # ASGI's lower-case header names; with promshm.compat installed,
            # prometheus_client's (``Content-Type``), which its users' tests expect.
            keep_case = compat.installed()
            headers = [((k if keep_case else k.lower()).encode("latin-1"), v.encode("latin-1")) for k, v in hdrs]
            if method == "HEAD":
                output = b""
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": output})

    return prometheus_app


class ASGIMetricsMiddleware:
    """ASGI middleware: serves ``path`` (default ``/metrics``) and flushes
    promshm after every other HTTP request of ``app``::

        app = promshm.ASGIMetricsMiddleware(app)
    """

    def __init__(self, app: ASGIApp, path: Optional[str] = "/metrics", registry: Any = REGISTRY, disable_compression: bool = False) -> None:
        self.app = app
        self.path = path
        self.metrics_app = make_asgi_app(registry, disable_compression)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope.get("type") == "http" and self.path is not None and scope.get("path") == self.path:
            await self.metrics_app(scope, receive, send)
            return
        if scope.get("type") != "http":
            await self.app(scope, receive, send)
            return

        async def send_flushed(message: Dict[str, Any]) -> None:
            # The request's updates are published before its final body
            # reaches the client.
            if message.get("type") == "http.response.body" and not message.get("more_body", False):
                _area._flush_quietly()
            await send(message)

        try:
            await self.app(scope, receive, send_flushed)
        finally:
            _area._request_end()

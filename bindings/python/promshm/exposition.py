"""Exposition: ``generate_latest``, the WSGI app and middleware, the HTTP server,
``write_to_textfile``.

The same names and signatures as ``prometheus_client.exposition``. Every
render reads the area, so a scrape served by any worker shows every worker's
metrics; it flushes this process's buffers first.

Differences from prometheus_client, on purpose:

* ``start_http_server(port, addr='127.0.0.1')``: promshm listeners bind the
  loopback interface unless told otherwise (prometheus_client binds
  ``0.0.0.0``); pass ``addr='0.0.0.0'`` to be scraped from other hosts.
* ``CONTENT_TYPE_LATEST`` is the Prometheus text format 0.0.4 content type
  (the format promshm writes); OpenMetrics is chosen from the ``Accept``
  header by :func:`choose_encoder` and the apps.
"""

from __future__ import annotations

import gzip
import socket
import threading
from typing import Any, Callable, Dict, Iterable, List, Optional, Tuple
from http.server import BaseHTTPRequestHandler
from urllib.parse import parse_qs, urlparse
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server
from socketserver import ThreadingMixIn

from . import _area, compat
from . import _bindings as B
from ._ffi import encode, lib
from ._formats import CONTENT_TYPE_OPENMETRICS, CONTENT_TYPE_PLAIN_0_0_4, CONTENT_TYPE_PROTOBUF
from ._formats import render as _render
from .openmetrics.exposition import generate_latest as generate_openmetrics
from .push import (
    basic_auth_handler,
    default_handler,
    delete_from_gateway,
    instance_ip_grouping_key,
    passthrough_redirect_handler,
    push_to_gateway,
    pushadd_to_gateway,
    tls_auth_handler,
)
from .registry import REGISTRY, CollectorRegistry, _atomic_write, filter_families

__all__ = [
    "CONTENT_TYPE_LATEST",
    "CONTENT_TYPE_PLAIN_0_0_4",
    "CONTENT_TYPE_OPENMETRICS",
    "generate_latest",
    "generate_metrics",
    "registry_to_text",
    "choose_encoder",
    "make_wsgi_app",
    "MetricsMiddleware",
    "flush_after",
    "start_http_server",
    "start_wsgi_server",
    "write_to_textfile",
    "gzip_accepted",
    "MetricsHandler",
    "push_to_gateway",
    "pushadd_to_gateway",
    "delete_from_gateway",
    "instance_ip_grouping_key",
    "default_handler",
    "basic_auth_handler",
    "tls_auth_handler",
    "passthrough_redirect_handler",
]

#: The content type of :func:`generate_latest`'s output (text format 0.0.4).
CONTENT_TYPE_LATEST: str = CONTENT_TYPE_PLAIN_0_0_4


def generate_latest(registry: Any = REGISTRY, escaping: Any = None) -> bytes:
    """The registry in the Prometheus text format 0.0.4, as bytes."""
    return _render(registry, "prometheus")


def generate_metrics(registry: Any = REGISTRY) -> str:
    """pytheus' name: the registry as text (a ``str``)."""
    return generate_latest(registry).decode("utf-8")


#: pyprometheus' name.
registry_to_text = generate_metrics


def _renders_protobuf(registry: Any) -> bool:
    """Whether ``registry`` renders protobuf itself: a promshm registry without
    custom collectors, or an area, and :mod:`promshm.compat` not installed
    (prometheus_client's encoders are text only)."""
    if compat.installed():
        return False
    if isinstance(registry, CollectorRegistry):
        return not registry._collectors
    return isinstance(registry, _area.Area)


def _generate_protobuf(registry: Any) -> bytes:
    return registry.render("protobuf")


def choose_encoder(accept_header: Optional[str], registry: Any = None) -> Tuple[Callable[[Any], bytes], str]:
    """``(encoder, content_type)`` for an HTTP ``Accept`` header: OpenMetrics
    when it is acceptable with the highest preference, else text 0.0.4. With
    ``registry`` given and able to render it natively (see
    ``_renders_protobuf``), also the protobuf format when that is preferred."""
    accept = encode(accept_header, "Accept header") if accept_header else None
    if registry is not None and _renders_protobuf(registry):
        fmt = lib.promshm_format_from_accept_any(accept)
    else:
        fmt = lib.promshm_format_from_accept(accept)
    if fmt == B.PROMSHM_FORMAT_PROTOBUF:
        return _generate_protobuf, CONTENT_TYPE_PROTOBUF
    if fmt == B.PROMSHM_FORMAT_OPENMETRICS:
        return generate_openmetrics, CONTENT_TYPE_OPENMETRICS
    return generate_latest, CONTENT_TYPE_PLAIN_0_0_4


def gzip_accepted(accept_encoding_header: Optional[str]) -> bool:
    for enc in (accept_encoding_header or "").split(","):
        if enc.split(";")[0].strip().lower() == "gzip":
            return True
    return False


def _bake_output(
    registry: Any, accept: Optional[str], accept_encoding: Optional[str], params: Dict[str, List[str]], disable_compression: bool
) -> Tuple[str, List[Tuple[str, str]], bytes]:
    # ?name[]= filters text: then the text formats only.
    encoder, content_type = choose_encoder(accept, None if "name[]" in params else registry)
    output = encoder(registry)
    if "name[]" in params:
        output = filter_families(output, set(params["name[]"]))
    headers = [("Content-Type", content_type)]
    if not disable_compression and gzip_accepted(accept_encoding):
        output = gzip.compress(output)
        headers.append(("Content-Encoding", "gzip"))
    return "200 OK", headers, output


def make_wsgi_app(registry: Any = REGISTRY, disable_compression: bool = False) -> Callable[..., Iterable[bytes]]:
    """A WSGI app that serves the registry (any path; ``?name[]=`` filters
    families; ``Accept`` chooses OpenMetrics; gzip when accepted)."""

    def prometheus_app(environ: Dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        method = environ.get("REQUEST_METHOD", "GET")
        if method == "OPTIONS":
            status, headers, output = "200 OK", [("Allow", "OPTIONS,GET")], b""
        elif method != "GET":
            status = "405 Method Not Allowed"
            headers = [("Allow", "OPTIONS,GET")]
            output = f"# HTTP {status}: {method}; use OPTIONS or GET\n".encode()
        elif environ.get("PATH_INFO") == "/favicon.ico":
            status, headers, output = "200 OK", [], b""
        else:
            params = parse_qs(environ.get("QUERY_STRING", ""))
            status, headers, output = _bake_output(
                registry, environ.get("HTTP_ACCEPT"), environ.get("HTTP_ACCEPT_ENCODING"), params, disable_compression
            )
        start_response(status, headers)
        return [output]

    return prometheus_app


class _FlushingIterable:
    """Wraps a WSGI response whose app has returned (its updates already
    flushed): flushes again when the server closes it, for updates made
    while the body was sent (a streaming body, an outer middleware)."""

    __slots__ = ("_it",)

    def __init__(self, it: Iterable[bytes]) -> None:
        self._it = it

    def __iter__(self) -> Any:
        return iter(self._it)

    def close(self) -> None:
        try:
            close = getattr(self._it, "close", None)
            if close is not None:
                close()
        finally:
            _area._request_end()


def flush_after(app: Callable[..., Iterable[bytes]]) -> Callable[..., Iterable[bytes]]:
    """Wrap a WSGI app so promshm flushes each request's updates before its
    response is sent (when the app returns), and again when the server
    closes the response: a client that has its response is counted on every
    worker's page."""

    def wrapped(environ: Dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        try:
            result = app(environ, start_response)
        except BaseException:
            _area._request_end()
            raise
        _area._flush_quietly()
        return _FlushingIterable(result)

    wrapped.__wrapped__ = app  # type: ignore[attr-defined]
    return wrapped


class MetricsMiddleware:
    """WSGI middleware: serves ``path`` (default ``/metrics``) from the
    registry and passes every other request to ``app``, flushing promshm at
    the end of each request (so other workers' scrapes see it at once)::

        app = promshm.MetricsMiddleware(app)     # gunicorn app:app
    """

    def __init__(
        self,
        app: Callable[..., Iterable[bytes]],
        path: Optional[str] = "/metrics",
        registry: Any = REGISTRY,
        disable_compression: bool = False,
    ) -> None:
        self.app = flush_after(app)
        self.path = path
        self.metrics_app = make_wsgi_app(registry, disable_compression)

    def __call__(self, environ: Dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if self.path is not None and environ.get("PATH_INFO") == self.path:
            return self.metrics_app(environ, start_response)
        return self.app(environ, start_response)


class MetricsHandler(BaseHTTPRequestHandler):
    """An ``http.server`` handler that serves ``registry`` (default :data:`REGISTRY`)
    on GET; ``MetricsHandler.factory(registry)`` makes one for another registry."""

    registry: Any = REGISTRY

    def do_GET(self) -> None:
        params = parse_qs(urlparse(self.path).query)
        status, headers, output = _bake_output(
            self.registry, self.headers.get("Accept"), self.headers.get("Accept-Encoding"), params, False
        )
        self.send_response(int(status.split(" ")[0]))
        for header in headers:
            self.send_header(*header)
        self.end_headers()
        self.wfile.write(output)

    def log_message(self, format: str, *args: Any) -> None:
        """Log nothing."""

    @classmethod
    def factory(cls, registry: Any) -> type:
        """A subclass of this handler that serves ``registry``."""
        return type(str(cls.__name__), (cls, object), {"registry": registry})


class _SilentHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


class ThreadingWSGIServer(ThreadingMixIn, WSGIServer):
    """Thread per request HTTP server."""

    daemon_threads = True


def _best_family(addr: str, port: int) -> Tuple[socket.AddressFamily, str]:
    infos = socket.getaddrinfo(addr, port)
    family, _, _, _, sockaddr = next(iter(infos))
    return family, str(sockaddr[0])


def start_wsgi_server(
    port: int,
    addr: str = "127.0.0.1",
    registry: Any = REGISTRY,
    certfile: Optional[str] = None,
    keyfile: Optional[str] = None,
    client_cafile: Optional[str] = None,
    client_capath: Optional[str] = None,
    protocol: Optional[int] = None,
    client_auth_required: bool = False,
    tls_min_version: Any = None,
    tls_max_version: Any = None,
) -> Tuple[WSGIServer, threading.Thread]:
    """Serve the registry over HTTP from a daemon thread; returns
    ``(server, thread)``. Binds ``127.0.0.1`` unless ``addr`` says otherwise
    (prometheus_client's default is ``0.0.0.0``). ``port=0`` picks a free port
    (``server.server_port``)."""

    class _Server(ThreadingWSGIServer):
        pass

    _Server.address_family, addr = _best_family(addr, port)
    httpd = make_server(addr, port, make_wsgi_app(registry), _Server, handler_class=_SilentHandler)
    if certfile and keyfile:
        import ssl

        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER if protocol is None else protocol)
        ctx.load_cert_chain(certfile, keyfile)
        if client_cafile or client_capath:
            ctx.load_verify_locations(cafile=client_cafile, capath=client_capath)
        if client_auth_required:
            ctx.verify_mode = ssl.CERT_REQUIRED
        if tls_min_version is not None:
            ctx.minimum_version = tls_min_version
        if tls_max_version is not None:
            ctx.maximum_version = tls_max_version
        httpd.socket = ctx.wrap_socket(httpd.socket, server_side=True)
    t = threading.Thread(target=httpd.serve_forever, name="promshm-http", daemon=True)
    t.start()
    return httpd, t


start_http_server = start_wsgi_server


def write_to_textfile(path: str, registry: Any = REGISTRY, escaping: Any = None, tmpdir: Optional[str] = None) -> None:
    """Write the registry to ``path`` in the text format, replacing the file
    atomically (for the node_exporter textfile collector: name it ``*.prom``)."""
    if isinstance(registry, CollectorRegistry):
        registry.render_to_file(path, "prometheus")
    else:
        _atomic_write(path, generate_latest(registry))

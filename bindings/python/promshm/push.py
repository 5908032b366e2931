"""Pushing to a Prometheus Pushgateway (``prometheus_client``'s functions).

``push_to_gateway`` (PUT: replaces the group), ``pushadd_to_gateway`` (POST:
replaces the pushed families) and ``delete_from_gateway`` (DELETE) send a
registry's text (format 0.0.4) to ``<gateway>/metrics/job/<job>[/<k>/<v>...]``
through a *handler*: :func:`default_handler` (plain ``urllib``),
:func:`basic_auth_handler`, :func:`tls_auth_handler`,
:func:`passthrough_redirect_handler`, or any callable with the same arguments
returning a function that does the request. Label values that are empty or
contain ``/`` are sent base64-encoded, as the Pushgateway expects.
"""

from __future__ import annotations

import base64
import socket
import ssl
from contextlib import closing
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union
from urllib.error import HTTPError
from urllib.parse import quote_plus, urlparse
from urllib.request import BaseHandler, HTTPHandler, HTTPRedirectHandler, HTTPSHandler, Request, build_opener

from ._formats import CONTENT_TYPE_PLAIN_0_0_4, render
from .registry import REGISTRY

__all__ = [
    "push_to_gateway",
    "pushadd_to_gateway",
    "delete_from_gateway",
    "instance_ip_grouping_key",
    "default_handler",
    "basic_auth_handler",
    "tls_auth_handler",
    "passthrough_redirect_handler",
]

Handler = Callable[..., Callable[[], None]]


class _RedirectHandler(HTTPRedirectHandler):
    """Follows redirects for every method (PUT and POST too), keeping the
    method, headers and body: only for a gateway whose redirects you trust."""

    def redirect_request(self, req: Any, fp: Any, code: int, msg: str, headers: Any, newurl: str) -> Optional[Request]:
        method = getattr(req, "method", None) or req.get_method()
        if not (code in (301, 302, 303, 307) and method in ("GET", "HEAD") or code in (301, 302, 303) and method in ("POST", "PUT")):
            raise HTTPError(req.full_url, code, msg, headers, fp)
        new = Request(newurl.replace(" ", "%20"), headers=req.headers, origin_req_host=req.origin_req_host, unverifiable=True, data=req.data)
        new.method = method
        return new


def _make_handler(
    url: str, method: str, timeout: Optional[float], headers: Sequence[Tuple[str, Any]], data: bytes, base: Union[BaseHandler, type]
) -> Callable[[], None]:
    def handle() -> None:
        request = Request(url, data=data)
        request.get_method = lambda: method  # type: ignore[method-assign]
        for k, v in headers:
            request.add_header(k, v)
        resp = build_opener(base).open(request, timeout=timeout)
        if resp.code >= 400:
            raise OSError(f"error talking to pushgateway: {resp.code} {resp.msg}")

    return handle


def default_handler(url: str, method: str, timeout: Optional[float], headers: List[Tuple[str, Any]], data: bytes) -> Callable[[], None]:
    """A plain HTTP/HTTPS request (``urllib``)."""
    return _make_handler(url, method, timeout, headers, data, HTTPHandler)


def passthrough_redirect_handler(
    url: str, method: str, timeout: Optional[float], headers: List[Tuple[str, Any]], data: bytes
) -> Callable[[], None]:
    """As :func:`default_handler`, following redirects with the same method and body."""
    return _make_handler(url, method, timeout, headers, data, _RedirectHandler)


def basic_auth_handler(
    url: str,
    method: str,
    timeout: Optional[float],
    headers: List[Tuple[str, Any]],
    data: bytes,
    username: Optional[str] = None,
    password: Optional[str] = None,
) -> Callable[[], None]:
    """As :func:`default_handler`, with HTTP basic authentication when both
    ``username`` and ``password`` are given."""

    def handle() -> None:
        if username is not None and password is not None:
            token = base64.b64encode(f"{username}:{password}".encode())
            headers.append(("Authorization", b"Basic " + token))
        default_handler(url, method, timeout, headers, data)()

    return handle


def tls_auth_handler(
    url: str,
    method: str,
    timeout: Optional[float],
    headers: List[Tuple[str, Any]],
    data: bytes,
    certfile: str,
    keyfile: str,
    cafile: Optional[str] = None,
    protocol: int = ssl.PROTOCOL_TLS_CLIENT,
    insecure_skip_verify: bool = False,
) -> Callable[[], None]:
    """HTTPS with a client certificate (``certfile``/``keyfile``), verifying
    the gateway against ``cafile`` (or the system's CAs) unless
    ``insecure_skip_verify``."""
    context = ssl.SSLContext(protocol=protocol)
    if cafile is not None:
        context.load_verify_locations(cafile)
    else:
        context.load_default_certs()
    if insecure_skip_verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    context.load_cert_chain(certfile=certfile, keyfile=keyfile)
    return _make_handler(url, method, timeout, headers, data, HTTPSHandler(context=context))


def push_to_gateway(
    gateway: str,
    job: str,
    registry: Any,
    grouping_key: Optional[Dict[str, Any]] = None,
    timeout: Optional[float] = 30,
    handler: Handler = default_handler,
) -> None:
    """PUT ``registry`` to the group ``job`` (+ ``grouping_key``): replaces every metric of the group."""
    _use_gateway("PUT", gateway, job, registry, grouping_key, timeout, handler)


def pushadd_to_gateway(
    gateway: str,
    job: str,
    registry: Any,
    grouping_key: Optional[Dict[str, Any]] = None,
    timeout: Optional[float] = 30,
    handler: Handler = default_handler,
) -> None:
    """POST ``registry`` to the group: replaces the group's metrics of the same names."""
    _use_gateway("POST", gateway, job, registry, grouping_key, timeout, handler)


def delete_from_gateway(
    gateway: str, job: str, grouping_key: Optional[Dict[str, Any]] = None, timeout: Optional[float] = 30, handler: Handler = default_handler
) -> None:
    """DELETE the group ``job`` (+ ``grouping_key``) from the gateway."""
    _use_gateway("DELETE", gateway, job, None, grouping_key, timeout, handler)


def _use_gateway(
    method: str, gateway: str, job: str, registry: Any, grouping_key: Optional[Dict[str, Any]], timeout: Optional[float], handler: Handler
) -> None:
    parsed = urlparse(gateway)
    if not parsed.scheme or parsed.scheme not in ("http", "https"):
        gateway = f"http://{gateway}"
    gateway = gateway.rstrip("/")
    url = "{}/metrics/{}/{}".format(gateway, *_escape_grouping_key("job", job))
    data = b""
    if method != "DELETE":
        data = render(REGISTRY if registry is None else registry, "prometheus")
    url += "".join("/{}/{}".format(*_escape_grouping_key(str(k), str(v))) for k, v in sorted((grouping_key or {}).items()))
    handler(url=url, method=method, timeout=timeout, headers=[("Content-Type", CONTENT_TYPE_PLAIN_0_0_4)], data=data)()


def _escape_grouping_key(k: str, v: str) -> Tuple[str, str]:
    if v == "":
        return k + "@base64", "="
    if "/" in v:
        return k + "@base64", base64.urlsafe_b64encode(v.encode("utf-8")).decode("utf-8")
    return k, quote_plus(v)


def instance_ip_grouping_key() -> Dict[str, Any]:
    """``{'instance': <this host's IP address>}`` for a grouping key."""
    with closing(socket.socket(socket.AF_INET, socket.SOCK_DGRAM)) as s:
        s.connect(("localhost", 0))
        return {"instance": s.getsockname()[0]}

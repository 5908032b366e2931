"""A WSGI app instrumented with promshm, served by gunicorn with 4 workers.

Every worker updates the same shared area, so ``/metrics`` -- whichever worker
answers it -- shows exact totals for the whole server. Nothing is configured:
the workers find the area on their own (see ``promshm._area``).

Routes:

* ``/``                       a greeting
* ``/order?item=apple&qty=2`` counts an order (an application counter)
* ``/fail``                   answers 500 (counted with its status)
* ``/metrics``                the Prometheus exposition (OpenMetrics if asked)
"""

from __future__ import annotations

import os
from typing import Any, Callable, Dict, Iterable, List, Tuple
from urllib.parse import parse_qs

import promshm
from promshm import Counter, Gauge, Histogram, Info

REQUESTS = Counter("http_requests", "HTTP requests served.", ["method", "path", "status"])
LATENCY = Histogram("http_request_duration_seconds", "Time spent serving requests.", ["path"])
INFLIGHT = Gauge("http_requests_inflight", "Requests being served.", multiprocess_mode="livesum")
PER_WORKER = Gauge("worker_requests", "Requests served by each live worker.", multiprocess_mode="liveall")
ORDERS = Counter("shop_orders", "Items ordered.", ["item"])
BUILD = Info("example_build", "Build information.")
BUILD.info({"version": promshm.__version__, "server": "gunicorn"})

ROUTES = ("/", "/order", "/fail")


def application(environ: Dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    path = environ.get("PATH_INFO", "/")
    route = path if path in ROUTES else "other"
    with INFLIGHT.track_inprogress(), LATENCY.labels(route).time():
        status, body = handle(route, environ)
    REQUESTS.labels(environ.get("REQUEST_METHOD", "GET"), route, status.split()[0]).inc()
    PER_WORKER.inc()
    start_response(status, [("Content-Type", "text/plain; charset=utf-8")])
    return [body]


def handle(route: str, environ: Dict[str, Any]) -> Tuple[str, bytes]:
    if route == "/":
        return "200 OK", f"hello from worker {os.getpid()}\n".encode()
    if route == "/order":
        q: Dict[str, List[str]] = parse_qs(environ.get("QUERY_STRING", ""))
        item = q.get("item", ["unknown"])[0]
        qty = int(q.get("qty", ["1"])[0])
        ORDERS.labels(item).inc(qty)
        return "200 OK", f"ordered {qty} {item}\n".encode()
    if route == "/fail":
        return "500 Internal Server Error", b"failed on purpose\n"
    return "404 Not Found", b"not found\n"


# Serves /metrics and flushes this worker's buffered updates at the end of
# every request, so the next scrape (by any worker) sees them.
app = promshm.MetricsMiddleware(application)

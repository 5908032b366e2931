"""django-prometheus under ``gunicorn -w 4 --max-requests``, unmodified app and
library, through the promshm backend for the real prometheus_client switched
on by PROMSHM_PROMETHEUS_CLIENT=1 alone (issue 10, item 2): 2,000 concurrent
requests while workers are recycled, every one of several scrapes exact."""

from __future__ import annotations

import collections
from concurrent.futures import ThreadPoolExecutor

import pytest

from conftest import parse_text, value
from test_prometheus_client_backend import gunicorn  # noqa: F401  (the fixture)

pytest.importorskip("django")
pytest.importorskip("django_prometheus")

APP = """
import django
from django.conf import settings
from django.http import HttpResponse
from django.urls import include, path

settings.configure(
    DEBUG=False,
    SECRET_KEY="test",
    ALLOWED_HOSTS=["*"],
    ROOT_URLCONF=__name__,
    INSTALLED_APPS=["django_prometheus"],
    MIDDLEWARE=[
        "django_prometheus.middleware.PrometheusBeforeMiddleware",
        "django_prometheus.middleware.PrometheusAfterMiddleware",
    ],
)
django.setup()


def index(request):
    return HttpResponse("ok")


def fail(request):
    return HttpResponse("no", status=500)


urlpatterns = [path("", index), path("fail", fail), path("", include("django_prometheus.urls"))]

from django.core.wsgi import get_wsgi_application  # noqa: E402

application = get_wsgi_application()
"""


def test_django_prometheus_gunicorn_max_requests_exact(gunicorn):  # noqa: F811
    server = gunicorn(
        "--max-requests",
        "100",
        files={"djapp.py": APP},
        app="djapp:application",
        ready_path="/metrics",
        PROMSHM_PROMETHEUS_CLIENT="1",
    )
    n = 2000
    paths = ["/fail" if i % 4 == 3 else "/" for i in range(n)]
    with ThreadPoolExecutor(max_workers=32) as pool:
        statuses = collections.Counter(st for st, _ in pool.map(server.get, paths))
    assert statuses == {200: n * 3 // 4, 500: n // 4}, statuses
    ok, failed = n * 3 // 4, n // 4
    view = {"method": "GET", "transport": "http"}
    for _ in range(4):
        body = server.get("/metrics")[1].decode()
        s = parse_text(body)
        assert value(s, "django_http_requests_total_by_view_transport_method_total", view="djapp.index", **view) == ok, body
        assert value(s, "django_http_requests_total_by_view_transport_method_total", view="djapp.fail", **view) == failed
        assert value(s, "django_http_responses_total_by_status_view_method_total", method="GET", status="500", view="djapp.fail") == failed
        assert value(s, "django_http_requests_latency_seconds_by_view_method_count", method="GET", view="djapp.index") == ok
        # every request, the scrapes (and the readiness probe) included
        scrapes = value(s, "django_http_requests_total_by_view_transport_method_total", view="prometheus-django-metrics", **view)
        assert value(s, "django_http_requests_total_by_method_total", method="GET") == ok + failed + scrapes
    assert server.stop() == 0, server.logs()

"""django-prometheus under ``gunicorn -w 4 --max-requests``, unmodified app and
library, through the promshm backend for the real prometheus_client switched
on by PROMSHM_PROMETHEUS_CLIENT=1 alone (issue 10, item 2): 2,000 concurrent
requests while workers are recycled, every one of several scrapes exact."""

from __future__ import annotations

from typing import List

import pytest

from conftest import parse_text, value
from http_checks import Server, blast_ok_and_fail
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
    django_prometheus_exact(server, 2000)
    assert server.stop() == 0, server.logs()


def django_prometheus_exact(server: Server, n: int) -> List[str]:
    """``n`` concurrent requests (every 4th fails), then several scrapes,
    every one exact, whichever worker serves it; their bodies."""
    ok, failed = blast_ok_and_fail(server, n)
    view = {"method": "GET", "transport": "http"}
    bodies = []
    for _ in range(4):
        body = server.get("/metrics")[1].decode()
        bodies.append(body)
        s = parse_text(body)
        assert value(s, "django_http_requests_total_by_view_transport_method_total", view="djapp.index", **view) == ok, body
        assert value(s, "django_http_requests_total_by_view_transport_method_total", view="djapp.fail", **view) == failed
        assert value(s, "django_http_responses_total_by_status_view_method_total", method="GET", status="500", view="djapp.fail") == failed
        assert value(s, "django_http_requests_latency_seconds_by_view_method_count", method="GET", view="djapp.index") == ok
        # every request, the scrapes (and the readiness probe) included
        scrapes = value(s, "django_http_requests_total_by_view_transport_method_total", view="prometheus-django-metrics", **view)
        assert value(s, "django_http_requests_total_by_method_total", method="GET") == ok + failed + scrapes
    return bodies

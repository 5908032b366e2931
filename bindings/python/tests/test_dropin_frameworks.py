"""The framework end-to-end runs of issue 10, item 2, "once through promshm's
own API": the same apps, libraries, servers and checks as
test_prometheus_client_backend_{flask,django,asgi}.py, but with the module name
``prometheus_client`` resolving to promshm's drop-in (``promshm.compat``),
installed by dropin_site/sitecustomize.py on the app's PYTHONPATH before
anything imports prometheus_client. The real prometheus_client is never
imported by the app processes (the backend's .pth stays off).

4 workers, 2,000 concurrent requests, every one of several scrapes exact."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Dict

import pytest

from conftest import child_env, free_port
from test_prometheus_client_backend import gunicorn  # noqa: F401  (the fixture)

DROPIN_SITE = Path(__file__).resolve().parent / "dropin_site"


def dropin_env(tmp_path: Path) -> Dict[str, str]:
    """Environment overrides: the sitecustomize first on PYTHONPATH, the
    backend's switch off, and a directory for the per-process marks."""
    marks = tmp_path / "dropin-marks"
    marks.mkdir(exist_ok=True)
    return {
        "PYTHONPATH": os.pathsep.join([str(DROPIN_SITE), child_env()["PYTHONPATH"]]),
        "PROMSHM_PROMETHEUS_CLIENT": "0",
        "PROMSHM_DROPIN_MARKS": str(marks),
    }


def assert_dropin_used(tmp_path: Path, at_least: int) -> None:
    marks = sorted((tmp_path / "dropin-marks").iterdir())
    assert len(marks) >= at_least, [m.name for m in marks]
    assert {m.read_text() for m in marks} == {"promshm"}, "prometheus_client resolved to promshm in every process"


@pytest.mark.parametrize("recycle", [False, True], ids=["steady", "max-requests"])
def test_dropin_flask_gunicorn_internal_prometheus_metrics_exact(gunicorn, tmp_path, recycle):  # noqa: F811
    flask_test = pytest.importorskip("test_prometheus_client_backend_flask")
    mpdir = tmp_path / "prometheus_multiproc"  # the library insists on one
    mpdir.mkdir()
    args = ["--max-requests", "150"] if recycle else []
    files = {"fapp.py": flask_test.APP.format(cls="GunicornInternalPrometheusMetrics")}
    server = gunicorn(*args, files=files, app="fapp:app", ready_path="/", PROMETHEUS_MULTIPROC_DIR=str(mpdir), **dropin_env(tmp_path))
    flask_test._blast_and_check_with_probe(server, 2000, lambda: server.get("/metrics")[1])
    assert list(mpdir.iterdir()) == [], "promshm writes no prometheus_client .db file"
    assert server.stop() == 0, server.logs()
    assert_dropin_used(tmp_path, 1)


def test_dropin_flask_gunicorn_prometheus_metrics_master_endpoint_exact(gunicorn, tmp_path):  # noqa: F811
    flask_test = pytest.importorskip("test_prometheus_client_backend_flask")
    mpdir = tmp_path / "prometheus_multiproc"
    mpdir.mkdir()
    port = free_port()
    files = {"fapp.py": flask_test.APP.format(cls="GunicornPrometheusMetrics"), "gconf.py": flask_test.CONF.format(port=port)}
    server = gunicorn(
        "-c", "gconf.py", files=files, app="fapp:app", ready_path="/", PROMETHEUS_MULTIPROC_DIR=str(mpdir), **dropin_env(tmp_path)
    )
    master = f"http://127.0.0.1:{port}"
    flask_test._blast_and_check_with_probe(server, 2000, lambda: server.get("/metrics", base=master)[1])
    assert server.stop() == 0, server.logs()
    assert_dropin_used(tmp_path, 1)


def test_dropin_django_prometheus_gunicorn_max_requests_exact(gunicorn, tmp_path):  # noqa: F811
    """django-prometheus's gauge django_migrations_unapplied_total (a name the
    area reserves for counters) is kept renamed in the area and rendered under
    its own name. PROMETHEUS_MULTIPROC_DIR as django-prometheus's docs ask for
    multi-process servers."""
    django_test = pytest.importorskip("test_prometheus_client_backend_django")
    mpdir = tmp_path / "prometheus_multiproc"
    mpdir.mkdir()
    server = gunicorn(
        "--max-requests",
        "100",
        files={"djapp.py": django_test.APP},
        app="djapp:application",
        ready_path="/metrics",
        PROMETHEUS_MULTIPROC_DIR=str(mpdir),
        **dropin_env(tmp_path),
    )
    for body in django_test.django_prometheus_exact(server, 2000):
        # labelled, no database: no sample, but the family under its own name
        assert "# TYPE django_migrations_unapplied_total gauge\n" in body, body
        assert ":promshm_renamed" not in body, body
    assert server.stop() == 0, server.logs()
    assert_dropin_used(tmp_path, 1)


def test_dropin_uvicorn_four_workers_instrumentator_and_starlette_exporter_exact(tmp_path):
    import sys

    asgi_test = pytest.importorskip("test_prometheus_client_backend_asgi")
    # spawned workers: each is a fresh interpreter and runs the sitecustomize itself
    server = asgi_test.Uvicorn(sys.executable, tmp_path, **dropin_env(tmp_path))
    try:
        asgi_test.instrumentator_and_starlette_exact(server, 2000)
    finally:
        server.stop()
    assert_dropin_used(tmp_path, 5)  # the uvicorn master and its 4 spawned workers

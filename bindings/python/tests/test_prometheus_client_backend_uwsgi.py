"""uWSGI (Debian's uwsgi-core and python3 plugin, if installed), a master and 4
workers, serving an app that uses the real prometheus_client only, through the
promshm backend switched on by PROMSHM_PROMETHEUS_CLIENT=1 (issue 10, item 1).

The embedded interpreter does not read the test's site directory, so a module
given to ``--pyimport`` adds it with ``site.addsitedir`` (what site-packages
is for an installed promshm): the shipped .pth file is processed, the app is
not changed. 2,000 concurrent requests, several scrapes exact, with the app
loaded in the master (default) and in each worker (``--lazy-apps``)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from conftest import child_env, free_port
from http_checks import UWSGI, Server, needs_uwsgi
from test_prometheus_client_backend import APP, app_exact, pth_site_and_app

prometheus_client = pytest.importorskip("prometheus_client")

pytestmark = needs_uwsgi


class UWSGIServer(Server):
    name = "uwsgi"

    def __init__(self, tmp_path: Path, lazy: bool, **env: str) -> None:
        port = free_port()
        site, app_dir = pth_site_and_app(tmp_path, {"pcapp.py": APP})
        (app_dir / "pthsite.py").write_text(f"import site\nsite.addsitedir({str(site)!r})\n")
        args = [
            UWSGI, "--plugin", "python3", "--master", "--processes", "4",
            "--http-socket", f"127.0.0.1:{port}", "--pythonpath", str(app_dir),
            "--pyimport", "pthsite", "--module", "pcapp:app",
            "--die-on-term", "--disable-logging", "--need-app",
        ]
        if lazy:
            args.append("--lazy-apps")
        e = child_env(PROMSHM_DIR=str(tmp_path), **env)
        # prometheus_client (pure Python) for the system interpreter uWSGI embeds
        pc_dir = str(Path(prometheus_client.__file__).resolve().parent.parent)
        e["PYTHONPATH"] = os.pathsep.join([e["PYTHONPATH"], pc_dir])
        super().__init__(
            args, port=port, cwd=app_dir, env=e, log_path=tmp_path / f"uwsgi-{port}.log", ready_path="/metrics/default", kill_group=True
        )


@pytest.mark.parametrize("lazy", [False, True], ids=["master-loads", "lazy-apps"])
def test_uwsgi_four_workers_exact_through_the_backend(tmp_path, lazy):
    server = UWSGIServer(tmp_path, lazy, PROMSHM_PROMETHEUS_CLIENT="1")
    try:
        app_exact(server, 2000)
    finally:
        server.stop()

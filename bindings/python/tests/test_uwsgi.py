"""uWSGI (Debian's uwsgi-core and python3 plugin, if installed) with a master
and 4 worker processes serving examples/python/app.py with no promshm
configuration: the workers find the area through ``uwsgi.masterpid()``
(``--lazy-apps``) or inherit it from the master (the default, where the
master loads the app and forks). Bounded: uWSGI is stopped whatever happens."""

from __future__ import annotations

from pathlib import Path
from typing import List

import pytest

from conftest import REPO, child_env, free_port, value
from http_checks import UWSGI, Server, needs_uwsgi, _blast, _check_exact, _plan

EXAMPLE = REPO / "examples" / "python"
pytestmark = needs_uwsgi


class UWSGIServer(Server):
    name = "uwsgi"

    def __init__(self, tmp_path: Path, lazy: bool) -> None:
        port = free_port()
        self.rundir = tmp_path / "run"
        self.rundir.mkdir(exist_ok=True)
        args = [
            UWSGI, "--plugin", "python3", "--master", "--processes", "4",
            "--http-socket", f"127.0.0.1:{port}", "--wsgi-file", "app.py", "--callable", "app",
            "--die-on-term", "--disable-logging", "--need-app",
        ]
        if lazy:
            args.append("--lazy-apps")
        super().__init__(
            args,
            port=port,
            cwd=EXAMPLE,
            env=child_env(PROMSHM_DIR=str(self.rundir)),
            log_path=tmp_path / "uwsgi.log",
            ready_path="/metrics",
            kill_group=True,
        )


@pytest.mark.parametrize("lazy", [True, False], ids=["lazy-apps", "master-loads-app"])
def test_uwsgi_four_workers_exact(tmp_path, lazy):
    server = UWSGIServer(tmp_path, lazy)
    try:
        paths = _plan(800)
        bodies: List[bytes] = []
        statuses = _blast(server, paths, bodies)
        assert statuses == {200: 600, 500: 200}, statuses
        s = _check_exact(server.get("/metrics")[1].decode(), paths)
        # Every worker that answered a request holds a worker slot of the one
        # area (a worker still loading the app under load may answer none).
        answered = {b for b in bodies if b.startswith(b"hello from worker ")}
        assert len(answered) >= 2, answered
        assert value(s, "promshm_workers") >= len(answered)
        assert len(list(server.rundir.glob("promshm-*.area"))) == 1, "one area for the master and its workers"
    finally:
        server.stop()

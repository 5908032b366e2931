"""Shared fixtures and helpers for the promshm Python tests.

Run from the repository with the built library::

    PROMSHM_LIBRARY=target/release/libpromshm.so PYTHONPATH=bindings/python \
        python3 -m pytest bindings/python/tests

or against an installed package (``pip install ./bindings/python``), from any
directory, without PYTHONPATH.
"""

from __future__ import annotations

import atexit
import faulthandler
import os
import shutil
import socket
import sys
import tempfile
from pathlib import Path
from typing import Dict, FrozenSet, Iterator, List, Optional, Tuple

import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent.parent
HEADER = REPO / "include" / "promshm.h"

# Keep zero-configuration area files of this test session out of /dev/shm,
# and start without an inherited area.
if "PROMSHM_TEST_SESSION_DIR" not in os.environ:  # not in a child of the session
    _SESSION_DIR = tempfile.mkdtemp(prefix="promshm-pytest-")
    os.environ["PROMSHM_TEST_SESSION_DIR"] = os.environ["PROMSHM_DIR"] = _SESSION_DIR
    _SESSION_PID = os.getpid()
    os.environ.pop("PROMSHM_AREA", None)

    @atexit.register
    def _remove_session_dir() -> None:
        if os.getpid() == _SESSION_PID:
            shutil.rmtree(_SESSION_DIR, ignore_errors=True)

import promshm  # noqa: E402

# A hung test must not hang CI: dump every thread's stack and exit.
faulthandler.dump_traceback_later(int(os.environ.get("PROMSHM_TEST_TIMEOUT", "900")), exit=True)


def _gunicorn_args() -> Dict[str, str]:
    """gunicorn 27 and later open a control socket by default, at one fixed
    path (``~/.gunicorn/gunicorn.ctl``) that every test server running at the
    same time would share, served by a thread of the arbiter, which forks
    its workers beside that thread. The tests' gunicorn servers do without
    it (older releases do not know the option)."""
    try:
        from importlib.metadata import version

        major = int(version("gunicorn").split(".")[0])
    except Exception:
        return {}
    return {"GUNICORN_CMD_ARGS": "--no-control-socket"} if major >= 27 else {}


def child_env(**extra: str) -> Dict[str, str]:
    """An environment for a child process: this one without the test
    process's shared area, with promshm importable as in this process
    (and gunicorn's control socket off, see ``_gunicorn_args``)."""
    env = dict(os.environ)
    env.pop("PROMSHM_AREA", None)
    for k, v in _gunicorn_args().items():
        env.setdefault(k, v)
    pkg_parent = str(Path(promshm.__file__).resolve().parent.parent)
    paths = [pkg_parent] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    env["PROMSHM_LIBRARY"] = str(promshm.library_path)
    env.update(extra)
    return env


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


Samples = Dict[Tuple[str, FrozenSet[Tuple[str, str]]], float]


def parse_text(text: str, openmetrics: bool = False) -> Samples:
    """Samples of an exposition, parsed by prometheus_client's own parsers."""
    if openmetrics:
        from prometheus_client.openmetrics.parser import text_string_to_metric_families
    else:
        from prometheus_client.parser import text_string_to_metric_families
    out: Samples = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            key = (s.name, frozenset(s.labels.items()))
            assert key not in out, f"duplicate sample {key}"
            out[key] = s.value
    return out


def value(samples: Samples, name: str, **labels: str) -> Optional[float]:
    return samples.get((name, frozenset(labels.items())))


@pytest.fixture
def registry() -> Iterator[promshm.CollectorRegistry]:
    """A fresh private registry (its own anonymous area)."""
    yield promshm.CollectorRegistry()


@pytest.fixture
def area_file(tmp_path: Path) -> Path:
    return tmp_path / "test.area"


def python() -> List[str]:
    return [sys.executable]

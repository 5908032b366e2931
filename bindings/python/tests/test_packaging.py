"""Packaging: the build step's library lookup, and loading errors."""

from __future__ import annotations

import runpy
import subprocess
import sys
from pathlib import Path

import pytest

import promshm

from conftest import HERE, child_env

SETUP = HERE.parent / "setup.py"


@pytest.fixture
def setup_module(monkeypatch):
    if not SETUP.is_file():
        pytest.skip("setup.py not found")
    setuptools = pytest.importorskip("setuptools")
    monkeypatch.setattr(setuptools, "setup", lambda **kw: None)
    return runpy.run_path(str(SETUP), run_name="promshm_setup")


def test_build_fails_clearly_without_cargo(setup_module, monkeypatch, tmp_path):
    monkeypatch.delenv("PROMSHM_LIBRARY", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setenv("HOME", str(tmp_path))
    with pytest.raises(SystemExit) as ei:
        setup_module["_built_library"]()
    assert "cargo" in str(ei.value) and "PROMSHM_LIBRARY" in str(ei.value)


def test_build_uses_promshm_library(setup_module, monkeypatch, tmp_path):
    monkeypatch.setenv("PROMSHM_LIBRARY", str(promshm.library_path))
    assert setup_module["_built_library"]() == Path(promshm.library_path)
    monkeypatch.setenv("PROMSHM_LIBRARY", str(tmp_path / "missing.so"))
    with pytest.raises(SystemExit, match="not a file"):
        setup_module["_built_library"]()


def test_wheel_is_tagged_for_any_python(setup_module):
    cmd = setup_module["cmdclass"].get("bdist_wheel")
    if cmd is None:
        pytest.skip("no bdist_wheel available")
    assert cmd.__name__ == "PlatformWheel"


def test_a_missing_library_is_a_clear_import_error(tmp_path):
    env = child_env(PROMSHM_LIBRARY=str(tmp_path / "nope.so"))
    out = subprocess.run([sys.executable, "-c", "import promshm"], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode != 0
    assert "LibraryNotFoundError" in out.stderr and "PROMSHM_LIBRARY" in out.stderr
    assert "Segmentation" not in out.stderr

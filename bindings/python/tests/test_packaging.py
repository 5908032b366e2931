"""Packaging: the build step's library lookup, loading errors, the manylinux
wheel (tag, bundled library, RPATH, `auditwheel show`, an install that needs
no cargo) and the sdist's crate.

The wheel tests check the wheel named by PROMSHM_WHEEL (scripts/test.sh sets
it to the one scripts/build-wheel.sh made); without it they build one with
scripts/build-wheel.sh around the library this session loaded.
"""

from __future__ import annotations

import ctypes
import os
import platform
import re
import runpy
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path
from typing import Dict

import pytest

import promshm

from conftest import HERE, REPO, child_env

SETUP = HERE.parent / "setup.py"
BUILD_WHEEL = REPO / "scripts" / "build-wheel.sh"
INSTALL_CHECK = HERE / "install_check.py"
LIB_IN_WHEEL = "promshm/libpromshm.so"
# What a manylinux library may need from the system (PEP 600 / auditwheel's
# policy whitelist, the part a Rust cdylib can use).
SYSTEM_LIBS = {"libc.so.6", "libgcc_s.so.1", "libm.so.6", "libpthread.so.0", "libdl.so.2", "librt.so.1"}


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


def test_setup_tags_wheels_for_the_platform_not_for_any_python(setup_module, tmp_path):
    cmd = setup_module["cmdclass"].get("bdist_wheel")
    assert cmd is not None, "bdist_wheel missing: install `wheel` or setuptools >= 70.1 (scripts/setup.sh)"
    from setuptools.dist import Distribution

    dist = setup_module["BinaryDistribution"]({"name": "promshm", "version": "0"})
    assert isinstance(dist, Distribution) and dist.has_ext_modules()
    bdist = cmd(dist)
    bdist.ensure_finalized()
    bdist.bdist_dir = str(tmp_path)
    python, abi, plat = bdist.get_tag()
    assert (python, abi) == ("py3", "none")
    assert plat != "any" and plat.endswith(platform.machine()), plat
    # With the C fast path (limited API) in the wheel: every CPython >= 3.9.
    (tmp_path / "promshm").mkdir()
    (tmp_path / "promshm" / "_speedups.abi3.so").write_bytes(b"")
    assert bdist.get_tag() == ("cp39", "abi3", plat)
    assert setup_module["LIMITED_API"] == ("0x03090000", "cp39")


def _no_cargo_env(base: Dict[str, str]) -> Dict[str, str]:
    """``base`` with every Rust toolchain directory off PATH and cargo's and
    rustup's variables unset."""
    env = {k: v for k, v in base.items() if not k.startswith(("CARGO", "RUSTC", "RUSTUP", "RUST_"))}
    keep = []
    for d in env.get("PATH", "").split(os.pathsep):
        if d and not any(Path(d, tool).exists() for tool in ("cargo", "rustc", "rustup")):
            keep.append(d)
    env["PATH"] = os.pathsep.join(keep)
    for var in ("PROMSHM_LIBRARY", "PYTHONPATH", "PROMSHM_AREA"):
        env.pop(var, None)
    return env


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    given = os.environ.get("PROMSHM_WHEEL")
    if given:
        path = Path(given)
        assert path.is_file(), f"PROMSHM_WHEEL={given!r} is not a file"
        return path
    if not BUILD_WHEEL.is_file():
        pytest.skip("scripts/build-wheel.sh not found (not a source checkout) and no PROMSHM_WHEEL")
    out = tmp_path_factory.mktemp("wheelhouse")
    env = dict(os.environ, PROMSHM_LIBRARY=str(promshm.library_path))
    run = subprocess.run(
        ["bash", str(BUILD_WHEEL), str(out)], env=env, capture_output=True, text=True, timeout=600
    )
    assert run.returncode == 0, run.stdout + run.stderr
    return Path(run.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def wheel_lib(wheel, tmp_path_factory) -> Path:
    dest = tmp_path_factory.mktemp("unpacked")
    with zipfile.ZipFile(wheel) as zf:
        zf.extract(LIB_IN_WHEEL, dest)
    return dest / LIB_IN_WHEEL


def _wheel_tags(wheel: Path):
    m = re.fullmatch(r"promshm-[^-]+-(?P<py>[^-]+)-(?P<abi>[^-]+)-(?P<plat>[^-]+)\.whl", wheel.name)
    assert m, wheel.name
    return m["py"], m["abi"], m["plat"]


def _speedups_in(wheel: Path):
    with zipfile.ZipFile(wheel) as zf:
        return [n for n in zf.namelist() if n.startswith("promshm/_speedups")]


def test_wheel_is_tagged_manylinux_for_every_python3(wheel):
    """py3-none without the C fast path; with it (limited API, abi3)
    cp39-abi3: every CPython >= 3.9 either way."""
    py, abi, plat = _wheel_tags(wheel)
    ext = _speedups_in(wheel)
    if os.environ.get("PROMSHM_EXPECT_SPEEDUPS") == "1":
        assert ext == ["promshm/_speedups.abi3.so"], (wheel.name, ext)
    assert (py, abi) == (("cp39", "abi3") if ext else ("py3", "none")), (wheel.name, ext)
    assert re.fullmatch(r"manylinux_2_\d+_" + re.escape(platform.machine()), plat), plat
    with zipfile.ZipFile(wheel) as zf:
        meta = zf.read("promshm-%s.dist-info/WHEEL" % wheel.name.split("-")[1]).decode()
    assert "Root-Is-Purelib: false" in meta
    tags = re.findall(r"^Tag: (\S+)$", meta, re.M)
    assert tags == [f"{py}-{abi}-{plat}"], meta


def test_wheel_extension_needs_only_glibc_and_no_second_library(wheel, tmp_path):
    """The C fast path links against neither libpython (abi3) nor
    libpromshm (it calls the library ctypes loaded)."""
    ext = _speedups_in(wheel)
    if not ext:
        pytest.skip("the wheel has no C fast path (built without a compiler)")
    with zipfile.ZipFile(wheel) as zf:
        zf.extract(ext[0], tmp_path)
    out = subprocess.run(["readelf", "-d", str(tmp_path / ext[0])], capture_output=True, text=True, timeout=60, check=True)
    needed = set(re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", out.stdout))
    assert needed <= SYSTEM_LIBS, needed


def test_wheel_bundles_a_working_library(wheel, wheel_lib):
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        record = zf.read(next(n for n in names if n.endswith(".dist-info/RECORD"))).decode()
    assert {"promshm/__init__.py", "promshm/_ffi.py", "promshm/py.typed", LIB_IN_WHEEL} <= names
    # The prometheus_client backend's import hook, at the root of site-packages.
    assert "promshm-prometheus-client.pth" in names, sorted(names)
    assert any(line.startswith(LIB_IN_WHEEL + ",sha256=") for line in record.splitlines())
    # The bundled file is libpromshm itself: load it and call into it.
    lib = ctypes.CDLL(str(wheel_lib))
    lib.promshm_result_message.restype = ctypes.c_char_p
    lib.promshm_result_message.argtypes = [ctypes.c_int]
    assert lib.promshm_result_message(0)
    # Nothing grafted by auditwheel: the library needs only the system's libraries.
    assert not any(".libs/" in n for n in names), sorted(names)


def test_wheel_library_has_no_absolute_rpath_and_needs_only_glibc(wheel_lib):
    out = subprocess.run(["readelf", "-d", str(wheel_lib)], capture_output=True, text=True, timeout=60, check=True)
    paths = re.findall(r"\((?:RPATH|RUNPATH)\)\s+Library (?:rpath|runpath): \[([^\]]*)\]", out.stdout)
    for entry in paths:
        for p in entry.split(":"):
            assert p.startswith("$ORIGIN"), f"absolute or relative-to-cwd RPATH {p!r}"
    needed = set(re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", out.stdout))
    assert "libc.so.6" in needed
    extra = {n for n in needed - SYSTEM_LIBS if not n.startswith("ld-linux")}
    assert not extra, extra


def test_auditwheel_show_says_the_wheels_manylinux_tag(wheel):
    out = subprocess.run(
        [sys.executable, "-m", "auditwheel", "show", str(wheel)], capture_output=True, text=True, timeout=120
    )
    if out.returncode != 0 and "No module named auditwheel" in out.stderr:
        pytest.fail("auditwheel is not installed (scripts/setup.sh installs it)")
    assert out.returncode == 0, out.stdout + out.stderr
    text = " ".join(out.stdout.split())
    m = re.search(r'is consistent with the following platform tag: "([^"]+)"', text)
    assert m, out.stdout
    assert m[1].startswith("manylinux_"), out.stdout
    # The wheel claims exactly what auditwheel allows: no older glibc than
    # the library's symbol versions need, no newer one than necessary.
    assert _wheel_tags(wheel)[2] == m[1], (wheel.name, out.stdout)


def test_wheel_installs_and_counts_exactly_without_cargo(wheel, tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    py = venv / "bin" / "python"
    env = _no_cargo_env(dict(os.environ))
    probe = subprocess.run(
        ["sh", "-c", "command -v cargo || command -v rustc || echo none"], env=env, capture_output=True, text=True
    )
    assert probe.stdout.strip() == "none", probe.stdout
    # Only the wheel: no index, nothing to build.
    subprocess.run(
        [str(py), "-m", "pip", "install", "-q", "--no-index", "--only-binary=:all:", str(wheel)],
        env=env,
        check=True,
        timeout=300,
        cwd=tmp_path,
    )
    env["PROMSHM_DIR"] = str(tmp_path)
    out = subprocess.run(
        [str(py), str(INSTALL_CHECK)], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "install_check_jobs_total 4000" in out.stdout, out.stdout


def test_installed_run_uses_the_venvs_package():
    """scripts/test.sh runs the suite from a venv holding only the wheel
    (PROMSHM_EXPECT_INSTALLED=1, cargo off PATH): promshm comes from that venv."""
    if os.environ.get("PROMSHM_EXPECT_INSTALLED") != "1":
        pytest.skip("not the installed-package run")
    pkg = Path(promshm.__file__).resolve().parent
    assert str(pkg).startswith(str(Path(sys.prefix).resolve())), (pkg, sys.prefix)
    assert Path(promshm.library_path).resolve() == pkg / "libpromshm.so"
    if os.environ.get("PROMSHM_EXPECT_NO_CARGO") == "1":
        assert shutil.which("cargo") is None and shutil.which("rustc") is None


def test_sdist_carries_a_standalone_crate(setup_module, tmp_path):
    # setuptools writes promshm.egg-info next to setup.py: leave no trace in
    # the source tree (on PYTHONPATH, it would pass for an installed promshm).
    egg_info = SETUP.parent / "promshm.egg-info"
    had_egg_info = egg_info.exists()
    try:
        build = subprocess.run(
            [sys.executable, "-m", "build", "--sdist", "--no-isolation", "--outdir", str(tmp_path), str(SETUP.parent)],
            capture_output=True,
            text=True,
            timeout=300,
        )
    finally:
        if not had_egg_info:
            shutil.rmtree(egg_info, ignore_errors=True)
    if "No module named build" in build.stderr:
        pytest.fail("the `build` package is not installed (scripts/setup.sh installs it)")
    assert build.returncode == 0, build.stdout + build.stderr
    (sdist,) = tmp_path.glob("promshm-*.tar.gz")
    with tarfile.open(sdist) as tf:
        names = {n.split("/", 1)[1] for n in tf.getnames() if "/" in n}
        tf.extractall(tmp_path / "x")
    assert {"setup.py", "pyproject.toml", "promshm/__init__.py", "promshm/_speedups.c", "rust/Cargo.toml", "rust/Cargo.lock",
            "rust/build.rs", "rust/src/lib.rs", "rust/src/ffi/promshm.map"} <= names, sorted(names)
    assert not any(n.endswith(".so") for n in names), "the sdist must not carry a built library"
    crate = next((tmp_path / "x").iterdir()) / "rust"
    manifest = (crate / "Cargo.toml").read_text()
    assert "members" not in manifest and "[dev-dependencies]" not in manifest and "[[bench]]" not in manifest
    assert re.search(r"^\[workspace\]$", manifest, re.M)
    # cargo reads it as a package of its own, resolved offline from the lock.
    cargo = shutil.which("cargo")
    if cargo is None:
        pytest.skip("cargo not on PATH (the installed-package run): the manifest is checked above")
    meta = subprocess.run(
        [cargo, "metadata", "--offline", "--format-version", "1", "--manifest-path", str(crate / "Cargo.toml")],
        capture_output=True, text=True, timeout=300,
    )
    assert meta.returncode == 0, meta.stderr
    assert '"workspace_members":["path+file://' in meta.stdout.replace(" ", "")


def test_a_missing_library_is_a_clear_import_error(tmp_path):
    env = child_env(PROMSHM_LIBRARY=str(tmp_path / "nope.so"))
    out = subprocess.run([sys.executable, "-c", "import promshm"], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode != 0
    assert "LibraryNotFoundError" in out.stderr and "PROMSHM_LIBRARY" in out.stderr
    assert "Segmentation" not in out.stderr

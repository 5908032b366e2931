"""Build step: compile the Rust library with cargo and bundle it in the package.

``pip install ./bindings/python`` runs ``cargo build --release --lib`` in the
repository root (two directories up) and copies ``libpromshm.so`` into the
``promshm`` package. With ``PROMSHM_LIBRARY=/path/to/libpromshm.so`` set, that
file is bundled instead and cargo is not needed. The wheel holds no CPython
library is loaded with ctypes. The optional C fast path ``promshm._speedups``
(``promshm/_speedups.c``, CPython's limited API) is compiled when a C compiler
is there and ``PROMSHM_NO_SPEEDUPS`` is unset (or ``0``); when it cannot be
built the package works without it (ctypes). A wheel with it is tagged
``cp39-abi3-<platform>`` (every CPython >= 3.9), one without it
``py3-none-<platform>``: one wheel per OS and architecture
(``scripts/build-wheel.sh`` turns it into a manylinux wheel with auditwheel).

The sdist carries the library crate's sources in ``rust/`` (the manifest
without the workspace, dev-dependencies and benches, ``Cargo.lock``,
``build.rs``, ``src/``), so that ``pip install promshm-X.tar.gz`` builds it
with cargo like a checkout does.
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

from setuptools import Distribution, Extension, setup
from setuptools.command.build_ext import build_ext
from setuptools.command.build_py import build_py
from setuptools.command.sdist import sdist

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
# Where the sdist keeps the crate (see RustSdist).
SDIST_CRATE = "rust"
# What the library build needs from the crate, beside its manifest.
CRATE_FILES = ("Cargo.lock", "build.rs", "src")
# Manifest sections the library build does not need (and whose files the
# sdist does not carry).
CRATE_SECTIONS_DROPPED = ("[workspace]", "[dev-dependencies]", "[[bench]]", "[[test]]", "[[example]]")


def _crate_dir() -> Path:
    """The Rust crate: the sdist's copy if this is an unpacked sdist, else the repository."""
    bundled = HERE / SDIST_CRATE
    return bundled if (bundled / "Cargo.toml").is_file() else ROOT


def _standalone_manifest(text: str) -> str:
    """The crate's Cargo.toml as its own workspace, for the library build only."""
    out, keep = [], True
    for line in text.splitlines():
        if line.startswith("["):
            keep = line.strip() not in CRATE_SECTIONS_DROPPED
        if keep and not line.startswith("readme"):
            out.append(line)
    return "\n".join(out).rstrip() + "\n\n# The library crate alone (promshm's Python sdist).\n[workspace]\n"
# The .pth file that arms the prometheus_client backend (copied to the wheel's root).
PTH = "promshm-prometheus-client.pth"
LIBNAME = "libpromshm.dylib" if sys.platform == "darwin" else "libpromshm.so"


def _built_library() -> Path:
    env = os.environ.get("PROMSHM_LIBRARY")
    if env:
        p = Path(env)
        if not p.is_file():
            sys.exit(f"promshm: PROMSHM_LIBRARY={env!r} is not a file")
        print(f"promshm: bundling {p} (PROMSHM_LIBRARY)")
        return p
    crate = _crate_dir()
    if not (crate / "Cargo.toml").is_file():
        sys.exit(
            "promshm: the Rust sources are not here (expected the promshm repository at "
            f"{ROOT} or the sdist's {SDIST_CRATE}/); build from the repository "
            "(pip install ./bindings/python) or set PROMSHM_LIBRARY to a built libpromshm.so"
        )
    cargo = shutil.which("cargo") or str(Path.home() / ".cargo" / "bin" / "cargo")
    if not Path(cargo).is_file():
        sys.exit(
            "promshm: cargo (the Rust toolchain) is needed to build libpromshm: install it "
            "(https://rustup.rs) or set PROMSHM_LIBRARY to an already built libpromshm.so"
        )
    cmd = [cargo, "build", "--release", "--lib"]
    print(f"promshm: {' '.join(cmd)} (in {crate})")
    subprocess.run(cmd, cwd=crate, check=True)
    target = Path(os.environ.get("CARGO_TARGET_DIR", crate / "target"))
    if not target.is_absolute():
        target = crate / target
    lib = target / "release" / LIBNAME
    if not lib.is_file():
        sys.exit(f"promshm: cargo did not produce {lib}")
    return lib


class BuildWithCargo(build_py):
    def run(self) -> None:
        super().run()
        # The prometheus_client backend's import hook (inert unless
        # $PROMSHM_PROMETHEUS_CLIENT is set): site-packages runs .pth files.
        shutil.copyfile(HERE / PTH, Path(self.build_lib) / PTH)
        lib = _built_library()
        dest = Path(self.build_lib) / "promshm" / LIBNAME
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(lib, dest)
        os.chmod(dest, 0o755)
        # The release profile keeps line tables for backtraces; the wheel does not need them.
        strip = shutil.which("strip")
        if strip and sys.platform.startswith("linux"):
            subprocess.run([strip, "--strip-debug", str(dest)], check=False)


#: The oldest CPython the limited-API extension serves (as Py_LIMITED_API and a wheel tag).
LIMITED_API = ("0x03090000", "cp39")
SPEEDUPS = Extension(
    "promshm._speedups",
    ["promshm/_speedups.c"],
    define_macros=[("Py_LIMITED_API", LIMITED_API[0])],
    py_limited_api=True,
    optional=True,
)


def _want_speedups() -> bool:
    return os.environ.get("PROMSHM_NO_SPEEDUPS", "") in ("", "0")


class OptionalBuildExt(build_ext):
    """Build the C fast path if possible; without a compiler, say so and go on."""

    def run(self) -> None:
        try:
            super().run()
        except Exception as e:  # no compiler at all (setuptools raises before `optional` applies)
            print(f"promshm: not building the C fast path ({e}); the package uses ctypes")

    def build_extension(self, ext: Extension) -> None:
        try:
            super().build_extension(ext)
        except Exception as e:
            print(f"promshm: not building the C fast path ({e}); the package uses ctypes")


class BinaryDistribution(Distribution):
    """The package carries a native library: install it as platform-specific."""

    def has_ext_modules(self) -> bool:
        return True


class RustSdist(sdist):
    """An sdist that builds with cargo: the crate's sources go in ``rust/``."""

    def make_release_tree(self, base_dir: str, files) -> None:  # type: ignore[no-untyped-def]
        super().make_release_tree(base_dir, files)
        crate = _crate_dir()
        if not (crate / "Cargo.toml").is_file():
            sys.exit(f"promshm: no Rust crate at {crate}: an sdist needs the repository")
        dest = Path(base_dir) / SDIST_CRATE
        dest.mkdir(exist_ok=True)
        manifest = (crate / "Cargo.toml").read_text(encoding="utf-8")
        (dest / "Cargo.toml").write_text(_standalone_manifest(manifest), encoding="utf-8")
        for name in CRATE_FILES:
            src = crate / name
            if src.is_dir():
                shutil.copytree(src, dest / name, dirs_exist_ok=True)
            else:
                shutil.copyfile(src, dest / name)


cmdclass = {"build_py": BuildWithCargo, "sdist": RustSdist, "build_ext": OptionalBuildExt}

try:
    try:
        from setuptools.command.bdist_wheel import bdist_wheel
    except ImportError:
        from wheel.bdist_wheel import bdist_wheel  # type: ignore[no-redef]

    class PlatformWheel(bdist_wheel):
        def get_tag(self):  # type: ignore[no-untyped-def]
            _, _, plat = super().get_tag()
            if any(Path(self.bdist_dir).glob("promshm/_speedups*")):
                return LIMITED_API[1], "abi3", plat
            return "py3", "none", plat

    cmdclass["bdist_wheel"] = PlatformWheel
except ImportError:
    pass

setup(cmdclass=cmdclass, distclass=BinaryDistribution, ext_modules=[SPEEDUPS] if _want_speedups() else [])

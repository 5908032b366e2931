"""Build step: compile the Rust library with cargo and bundle it in the package.

``pip install ./bindings/python`` runs ``cargo build --release --lib`` in the
repository root (two directories up) and copies ``libpromshm.so`` into the
``promshm`` package. With ``PROMSHM_LIBRARY=/path/to/libpromshm.so`` set, that
file is bundled instead and cargo is not needed. The wheel holds no CPython
extension (the library is loaded with ctypes), so it is tagged
``py3-none-<platform>``: one wheel per OS and architecture.
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

from setuptools import Distribution, setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
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
    if not (ROOT / "Cargo.toml").is_file():
        sys.exit(
            "promshm: the Rust sources are not here (expected the promshm repository at "
            f"{ROOT}); build from the repository (pip install ./bindings/python) or set "
            "PROMSHM_LIBRARY to a built libpromshm.so"
        )
    cargo = shutil.which("cargo") or str(Path.home() / ".cargo" / "bin" / "cargo")
    if not Path(cargo).is_file():
        sys.exit(
            "promshm: cargo (the Rust toolchain) is needed to build libpromshm: install it "
            "(https://rustup.rs) or set PROMSHM_LIBRARY to an already built libpromshm.so"
        )
    cmd = [cargo, "build", "--release", "--lib"]
    print(f"promshm: {' '.join(cmd)} (in {ROOT})")
    subprocess.run(cmd, cwd=ROOT, check=True)
    target = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
    if not target.is_absolute():
        target = ROOT / target
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


class BinaryDistribution(Distribution):
    """The package carries a native library: install it as platform-specific."""

    def has_ext_modules(self) -> bool:
        return True


cmdclass = {"build_py": BuildWithCargo}

try:
    try:
        from setuptools.command.bdist_wheel import bdist_wheel
    except ImportError:
        from wheel.bdist_wheel import bdist_wheel  # type: ignore[no-redef]

    class PlatformWheel(bdist_wheel):
        def get_tag(self):  # type: ignore[no-untyped-def]
            _, _, plat = super().get_tag()
            return "py3", "none", plat

    cmdclass["bdist_wheel"] = PlatformWheel
except ImportError:
    pass

setup(cmdclass=cmdclass, distclass=BinaryDistribution)

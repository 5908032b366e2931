"""Shared by tests/ffi: the paths, and the ns/op table printed at the end."""

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
RESULTS = {}  # loader -> (status line, ns per inc)


@pytest.fixture(scope="session")
def library() -> Path:
    lib = Path(os.environ.get("PROMSHM_LIBRARY", ROOT / "target" / "release" / "libpromshm.so"))
    if not lib.exists():
        pytest.fail(f"{lib} not found: build it with `cargo build --release --lib` or set PROMSHM_LIBRARY")
    return lib


def pytest_terminal_summary(terminalreporter):
    if not RESULTS:
        return
    w = terminalreporter.write_line
    w("")
    w("counter inc through each FFI, ns/op (one run on this machine; a shared, noisy machine varies 2x):")
    w("| FFI | ns/op | loader result |")
    w("| --- | ---: | --- |")
    for name, (line, ns) in sorted(RESULTS.items(), key=lambda kv: kv[1][1]):
        w(f"| {name} | {ns:.0f} | {line} |")

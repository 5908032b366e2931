"""The ctypes declarations match include/promshm.h, and the library matches both."""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import promshm
from promshm import _bindings as B
from promshm import _ffi

from conftest import HEADER, HERE

TOOL = HERE.parent / "tools" / "gen_bindings.py"


def _tool():
    spec = importlib.util.spec_from_file_location("gen_bindings", TOOL)
    mod = importlib.util.module_from_spec(spec)
    sys.modules["gen_bindings"] = mod  # dataclasses look their module up
    assert spec.loader is not None
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def gen():
    if not HEADER.is_file():
        pytest.skip("include/promshm.h not found (tests run outside the repository)")
    return _tool()


def test_bindings_are_generated_from_the_current_header(gen):
    """_bindings.py is exactly what the generator makes from the header: any
    change of the C API without regenerating fails here."""
    committed = (HERE.parent / "promshm" / "_bindings.py").read_text(encoding="utf-8")
    fresh = gen.generate(HEADER.read_text(encoding="utf-8"))
    assert fresh == committed, "bindings/python/promshm/_bindings.py is stale: run python3 bindings/python/tools/gen_bindings.py"


def test_installed_bindings_match_the_header(gen):
    """The module actually imported (maybe an installed copy) matches too."""
    fresh = gen.generate(HEADER.read_text(encoding="utf-8"))
    assert Path(B.__file__).read_text(encoding="utf-8") == fresh


def _prototypes(text: str) -> dict:
    """An independent, simpler reading of the header: name -> number of parameters."""
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    out = {}
    for m in re.finditer(r"\b(promshm_\w+)\s*\(([^()]*)\)\s*;", text):
        params = m.group(2).strip()
        out[m.group(1)] = 0 if params in ("", "void") else params.count(",") + 1
    return out


def test_every_header_function_is_declared_with_its_arity(gen):
    protos = _prototypes(HEADER.read_text(encoding="utf-8"))
    assert protos, "no prototypes found in the header"
    assert set(protos) == set(B.FUNCTIONS)
    for name, n in protos.items():
        assert len(B.FUNCTIONS[name][1]) == n, name


def test_generator_detects_a_signature_change(gen):
    text = HEADER.read_text(encoding="utf-8")
    changed = text.replace("promshm_result promshm_counter_add(const promshm_series *series, double value);",
                           "promshm_result promshm_counter_add(const promshm_series *series, uint64_t value);")
    if changed == text:  # the prototype is written differently now: change any double parameter
        changed = re.sub(r"double value\)", "uint64_t value)", text, count=1)
    assert changed != text
    assert gen.generate(changed) != gen.generate(text)


def test_generator_rejects_unknown_types(gen):
    bad = HEADER.read_text(encoding="utf-8") + "\nstruct_mystery promshm_new_thing(struct_mystery x);\n"
    with pytest.raises(gen.ParseError):
        gen.generate(bad)


def test_check_mode_passes(gen):
    assert gen.main(["--check", "--header", str(HEADER), "--output", str(HERE.parent / "promshm" / "_bindings.py")]) == 0


def test_every_declared_function_is_in_the_library():
    for name in B.FUNCTIONS:
        assert hasattr(_ffi.lib, name), name


@pytest.mark.skipif(shutil.which("nm") is None, reason="nm not installed")
def test_library_exports_only_the_header_functions():
    out = subprocess.run(["nm", "-D", "--defined-only", str(_ffi.library_path)], capture_output=True, text=True, check=True).stdout
    exported = {line.split()[-1] for line in out.splitlines() if " T " in line and line.split()[-1].startswith("promshm_")}
    assert exported == set(B.FUNCTIONS)


def test_versions_agree():
    assert promshm.__version__ == B.PROMSHM_VERSION_STRING
    assert _ffi.lib.promshm_version_number() == B.PROMSHM_VERSION_NUMBER
    assert promshm.library_version() == B.PROMSHM_VERSION_STRING


def test_result_codes_have_messages():
    for name in dir(B):
        if name.startswith("PROMSHM_RESULT_"):
            code = getattr(B, name)
            msg = _ffi.lib.promshm_result_message(code)
            assert msg and msg != b"unknown result code", name


def test_py_typed_is_shipped():
    assert (Path(promshm.__file__).parent / "py.typed").is_file()


def test_installed_package_bundles_the_library():
    """Run by scripts/test.sh against `pip install ./bindings/python` with
    PROMSHM_EXPECT_INSTALLED=1: the package and its library come from site-packages."""
    if os.environ.get("PROMSHM_EXPECT_INSTALLED") != "1":
        pytest.skip("not the installed-package run")
    pkg = Path(promshm.__file__).resolve().parent
    assert "site-packages" in str(pkg), pkg
    assert Path(_ffi.library_path).resolve().parent == pkg
    assert "PROMSHM_LIBRARY" not in os.environ

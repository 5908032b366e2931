"""The C API from other languages, as their users would load it.

- include/promshm_ffi.h (generated with promshm.h by scripts/gen-header) has
  no preprocessor directive, every constant as an enum member, nothing from
  libc, and compiles; `gcc -E -P` of promshm.h keeps every constant too.
- docs/promshm-api.json describes the same functions, struct layouts (as the
  C compiler lays them out) and constants; the Python binding's ctypes
  declarations match it.
- One loader per FFI (tests/ffi/*_loader.*): cffi (ABI mode) and LuaJIT and
  PHP FFI::cdef read promshm_ffi.h as it is; koffi, ruby-ffi and ctypes are
  declared from docs/promshm-api.json alone; Go uses cgo with promshm.h.
  Each creates an area file, registers a labelled counter and histogram with
  the _simple calls and an error object, updates from 2 processes, renders
  with render_alloc, frees, and checks exact totals; this test checks the
  totals again in the page the loader wrote, and collects the ns/op of a
  counter increment through that FFI (printed at the end of the run).

PROMSHM_FFI_ITERATIONS sets the updates per process (default 200000).
A loader whose runtime is missing is skipped with the reason (scripts/setup.sh
installs all of them).
"""

import copy
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import RESULTS, ROOT

HERE = Path(__file__).resolve().parent
FFI_H = ROOT / "include" / "promshm_ffi.h"
PROMSHM_H = ROOT / "include" / "promshm.h"
API = ROOT / "docs" / "promshm-api.json"
N = int(os.environ.get("PROMSHM_FFI_ITERATIONS", "200000"))
TIMEOUT = 300


def api():
    return json.loads(API.read_text())


def header_constants():
    """Every integer #define constant of promshm.h."""
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"^#define (PROMSHM_\w+) (-?\d+)$", PROMSHM_H.read_text(), re.M)}


def test_ffi_header_has_no_directives_and_every_constant():
    text = FFI_H.read_text()
    assert not [l for l in text.splitlines() if l.lstrip().startswith("#")]
    assert "extern" not in text and "__attribute__" not in text and "max_align_t" not in text
    consts = header_constants()
    assert len(consts) >= 18
    for name, value in consts.items():
        assert f"enum {{ {name} = {value} }};" in text, name
    for name in ("PROMSHM_RESULT_BUFFER_TOO_SMALL = 115", "PROMSHM_METRIC_TYPE_STATE_SET = 6"):
        assert name in text
    assert "typedef uint32_t promshm_result;" in text and "typedef uint32_t promshm_format;" in text
    # The same functions as promshm.h, less its static inline ones (C only).
    fns = lambda t: set(re.findall(r"\b(promshm_\w+)\(", re.sub(r"/\*.*?\*/", "", t, flags=re.S)))
    inline = r"/\* ---- inline functions \(not for FFI parsers\) ---- \*/.*?/\* ---- end of inline functions ---- \*/"
    exported = re.sub(inline, "", PROMSHM_H.read_text(), flags=re.S)
    assert "static inline" not in text
    assert fns(text) == fns(exported)


def test_ffi_header_compiles_with_only_the_integer_types(tmp_path):
    src = tmp_path / "t.c"
    src.write_text("#include <stdbool.h>\n#include <stddef.h>\n#include <stdint.h>\n"
                   f'#include "{FFI_H}"\nint main(void) {{ return PROMSHM_FORMAT_OPENMETRICS - 1; }}\n')
    subprocess.run(["cc", "-std=c11", "-Wall", "-Wextra", "-Werror", "-fsyntax-only", str(src)], check=True)


def test_preprocessed_promshm_h_keeps_every_constant():
    out = subprocess.run(["cc", "-E", "-P", "-std=c11", str(PROMSHM_H)], check=True, capture_output=True, text=True).stdout
    for name, value in header_constants().items():
        assert f"enum {{ {name} = {value} }};" in out, name


def test_api_description_matches_the_c_compiler(tmp_path):
    """Struct sizes and offsets, constants, and every function's presence,
    checked by compiling a program against promshm.h."""
    a = api()
    lines = ['#include <stdio.h>', '#include <stddef.h>', f'#include "{PROMSHM_H}"', "int main(void) {"]
    for s in a["structs"]:
        lines.append(f'printf("%s %zu\\n", "{s["name"]}", sizeof({s["name"]}));')
        for f in s["fields"]:
            lines.append(f'printf("%s %zu\\n", "{s["name"]}.{f["name"]}", offsetof({s["name"]}, {f["name"]}));')
    for c in a["constants"]:
        if isinstance(c["value"], int):
            lines.append(f'printf("%s %lld\\n", "{c["name"]}", (long long){c["name"]});')
    for f in a["functions"]:
        lines.append(f'printf("%s %d\\n", "{f["name"]}", (int)(sizeof(&{f["name"]}) > 0));')
    lines.append("return 0; }")
    src = tmp_path / "layout.c"
    src.write_text("\n".join(lines))
    exe = tmp_path / "layout"
    subprocess.run(["cc", "-std=c11", "-Wall", "-Werror", "-o", str(exe), str(src)], check=True)
    got = dict(l.rsplit(" ", 1) for l in subprocess.run([str(exe)], check=True, capture_output=True, text=True).stdout.splitlines())
    for s in a["structs"]:
        assert int(got[s["name"]]) == s["size"], s["name"]
        for f in s["fields"]:
            assert int(got[f'{s["name"]}.{f["name"]}']) == f["offset"], (s["name"], f["name"])
    for c in a["constants"]:
        if isinstance(c["value"], int):
            assert int(got[c["name"]]) == c["value"], c["name"]
    assert len(a["functions"]) >= 130
    # Every fallible function can report into an error object.
    fallible = [f for f in a["functions"] if f["fallible"] and f["name"] != "promshm_last_error"]
    assert [f["name"] for f in fallible if not f.get("error_object")] == []
    for f in a["functions"]:
        for p in f["params"]:
            assert p["direction"] in ("in", "out", "inout"), (f["name"], p)
            if "*" in p["type"]:
                assert "nullable" in p, (f["name"], p["name"])


def test_python_bindings_match_the_api_description():
    sys.path.insert(0, str(ROOT / "bindings" / "python" / "tools"))
    try:
        import gen_bindings
    finally:
        sys.path.pop(0)
    bindings = ROOT / "bindings" / "python" / "promshm" / "_bindings.py"
    a = api()
    assert gen_bindings.check_api(a, bindings) == []
    # The check sees a difference: a changed parameter type, a missing function.
    b = copy.deepcopy(a)
    inc = next(f for f in b["functions"] if f["name"] == "promshm_counter_add")
    inc["params"][1]["type"] = "float"
    b["functions"].append({"name": "promshm_nothing", "params": [], "returns": {"type": "void"}})
    assert len(gen_bindings.check_api(b, bindings)) == 2
    # And it is generated from the same header the description was.
    subprocess.run([sys.executable, str(ROOT / "bindings/python/tools/gen_bindings.py"), "--check"], check=True)


def _run(name, cmd, tmp_path, env=None):
    out = tmp_path / "page.txt"
    full = cmd + [str(tmp_path / "area"), str(out), str(N)]
    p = subprocess.run(full, capture_output=True, text=True, timeout=TIMEOUT, env=env, cwd=tmp_path)
    assert p.returncode == 0, f"{name}: exit {p.returncode}\n{p.stdout}\n{p.stderr}"
    line = p.stdout.strip().splitlines()[-1]
    assert line.startswith(f"{name} ok counter={2 * N}"), line
    page = out.read_text().splitlines()
    label = f'lang="{name}"'
    assert f"ffi_requests_total{{{label}}} {2 * N}" in page
    assert f"ffi_latency_count{{{label}}} {2 * N}" in page
    assert f'ffi_latency_bucket{{{label},le="1.0"}} {2 * N}' in page
    assert f'ffi_latency_bucket{{{label},le="0.1"}} 0' in page
    assert f"ffi_requests_total{{lang=\"{name}-bench\"}} {N}" in page
    RESULTS[name] = (line, float(line.rsplit("ns_per_inc=", 1)[1].split()[0]))


def need(tool):
    path = shutil.which(tool)
    if not path:
        pytest.skip(f"{tool} is not installed (scripts/setup.sh installs it)")
    return path


def test_cffi_abi_mode(library, tmp_path):
    pytest.importorskip("cffi")
    _run("cffi", [sys.executable, str(HERE / "cffi_loader.py"), str(library), str(FFI_H)], tmp_path)


def test_luajit(library, tmp_path):
    _run("luajit", [need("luajit"), str(HERE / "luajit_loader.lua"), str(library), str(FFI_H)], tmp_path)


def test_php_ffi_cdef(library, tmp_path):
    _run("php", [need("php"), "-n", "-d", "extension=ffi", "-d", "ffi.enable=1", str(HERE / "php_loader.php"), str(library), str(FFI_H)], tmp_path)


def test_ctypes_from_the_description(library, tmp_path):
    _run("ctypes", [sys.executable, str(HERE / "ctypes_loader.py"), str(library), str(API)], tmp_path)


def test_koffi_from_the_description(library, tmp_path):
    node = need("node")
    env = dict(os.environ)
    root = subprocess.run(["npm", "root", "-g"], capture_output=True, text=True).stdout.strip() if shutil.which("npm") else ""
    env["NODE_PATH"] = os.pathsep.join(filter(None, [env.get("NODE_PATH"), root]))
    if subprocess.run([node, "-e", "require('koffi')"], env=env, capture_output=True).returncode != 0:
        pytest.skip("the koffi npm package is not installed (scripts/setup.sh installs it)")
    _run("koffi", [node, str(HERE / "koffi_loader.js"), str(library), str(API)], tmp_path, env)


def test_ruby_ffi_from_the_description(library, tmp_path):
    ruby = need("ruby")
    if subprocess.run([ruby, "-e", "require 'ffi'"], capture_output=True).returncode != 0:
        pytest.skip("ruby-ffi is not installed (scripts/setup.sh installs it)")
    _run("ruby", [ruby, str(HERE / "ruby_loader.rb"), str(library), str(API)], tmp_path)


def test_go_cgo(library, tmp_path):
    go = need("go")
    exe = tmp_path / "go_loader"
    env = dict(os.environ)
    env.update(
        CGO_CFLAGS=f"-I{ROOT / 'include'}",
        CGO_LDFLAGS=f"-L{library.parent} -Wl,-rpath,{library.parent}",
        GOFLAGS="-mod=mod",
        GOCACHE=env.get("GOCACHE", str(ROOT / "target" / "go-cache")),
        GOPATH=env.get("GOPATH", str(ROOT / "target" / "go-path")),
    )
    subprocess.run([go, "build", "-o", str(exe), "."], cwd=HERE / "go_loader", env=env, check=True, timeout=TIMEOUT)
    _run("go", [str(exe)], tmp_path, env)

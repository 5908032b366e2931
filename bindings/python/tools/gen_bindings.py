#!/usr/bin/env python3
"""Generate ``promshm/_bindings.py`` (ctypes declarations) from ``include/promshm.h``.

    python3 bindings/python/tools/gen_bindings.py           rewrite _bindings.py
    python3 bindings/python/tools/gen_bindings.py --check   exit 1 (with a diff) if it is stale
    ... --check-api [JSON]   also check it against docs/promshm-api.json (the
                             machine-readable description made with the header)

The header is produced by cbindgen, so its shape is regular: ``#define``
constants, C enums, ``typedef uint32_t`` aliases, opaque and plain structs,
one function-pointer typedef and function prototypes. A small parser (regular
expressions over the header with comments and preprocessor lines removed) is
enough, needs no C compiler and no extra package, and fails loudly on any
C type it does not know, so a new kind of declaration cannot slip through.

The test suite (``tests/test_bindings.py``) regenerates the file in memory and
compares it with the committed one: Python declarations that drift from the
header fail the tests.
"""

from __future__ import annotations

import argparse
import difflib
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Tuple

HERE = Path(__file__).resolve().parent
DEFAULT_HEADER = HERE.parent.parent.parent / "include" / "promshm.h"
DEFAULT_OUTPUT = HERE.parent / "promshm" / "_bindings.py"

# C scalar types and their ctypes names.
SCALARS = {
    "void": "None",
    "bool": "c_bool",
    "char": "c_char",
    "int": "c_int",
    "double": "c_double",
    "size_t": "c_size_t",
    "uint8_t": "c_uint8",
    "uint32_t": "c_uint32",
    "uint64_t": "c_uint64",
    "int32_t": "c_int32",
    "int64_t": "c_int64",
}


@dataclass
class Param:
    name: str
    ctype: str  # the C type as written, normalised
    py: str  # the ctypes expression


@dataclass
class Function:
    name: str
    ret_c: str
    ret_py: str
    params: List[Param]


@dataclass
class Header:
    defines: List[Tuple[str, str]] = field(default_factory=list)
    enums: List[Tuple[str, List[Tuple[str, str]]]] = field(default_factory=list)
    aliases: Dict[str, str] = field(default_factory=dict)  # typedef name -> scalar C type
    opaque: List[str] = field(default_factory=list)
    structs: List[Tuple[str, List[Tuple[str, str, str]]]] = field(default_factory=list)
    fnptrs: List[Tuple[str, str, List[Param]]] = field(default_factory=list)
    functions: List[Function] = field(default_factory=list)


class ParseError(Exception):
    """The header holds a declaration this generator does not understand."""


def _strip(text: str) -> Tuple[str, List[Tuple[str, str]]]:
    """Remove comments and preprocessor lines; return the rest and the #defines."""
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
    text = re.sub(r"//[^\n]*", "", text)
    defines = []
    kept = []
    for line in text.splitlines():
        s = line.strip()
        if s.startswith("#"):
            m = re.match(r"#\s*define\s+(PROMSHM_\w+)\s+(.+)$", s)
            # `{ ... }` struct initialisers (PROMSHM_*_INIT) are C-only.
            if m and not m.group(2).startswith("{"):
                defines.append((m.group(1), m.group(2).strip()))
            continue
        kept.append(line)
    body = "\n".join(kept)
    body = body.replace('extern "C" {', "")
    return body, defines


def _norm(ctype: str) -> str:
    """Normalise spacing: 'const char*const  *' -> 'const char *const *'."""
    ctype = re.sub(r"\s+", " ", ctype.replace("*", " * ")).strip()
    ctype = re.sub(r"\*\s+(?=\*)", "*", ctype)  # '* *' -> '**'
    return re.sub(r"\*(?=\w)", "* ", ctype)


def _split_decl(decl: str) -> Tuple[str, str]:
    """'const char *const *values' -> ('const char *const *', 'values')."""
    decl = decl.strip()
    m = re.match(r"^(.*?)([A-Za-z_]\w*)$", decl, flags=re.S)
    if not m:
        raise ParseError(f"cannot split declaration {decl!r}")
    return m.group(1).strip(), m.group(2)


class _Types:
    def __init__(self, header: Header):
        self.h = header
        self.struct_names = {n for n, _ in header.structs}
        self.fnptr_names = {n for n, _, _ in header.fnptrs}

    def base(self, name: str) -> str:
        name = name.replace("struct ", "").strip()
        if name in SCALARS:
            return SCALARS[name]
        if name in self.h.aliases:
            return SCALARS[self.h.aliases[name]]
        if name in self.struct_names or name in self.fnptr_names:
            return name
        if name in self.h.opaque:
            return "OPAQUE"
        raise ParseError(f"unknown C type {name!r}")

    def py(self, ctype: str) -> str:
        """The ctypes expression for a C type."""
        t = re.sub(r"\bconst\b", "", ctype)
        stars = t.count("*")
        base = self.base(t.replace("*", "").strip())
        if base == "OPAQUE":
            # Handles are opaque pointers: c_void_p; an out-handle is a pointer to one.
            if stars == 1:
                return "c_void_p"
            if stars == 2:
                return "POINTER(c_void_p)"
            raise ParseError(f"unexpected handle type {ctype!r}")
        if stars == 0:
            return base
        if base == "None":
            if stars == 1:
                return "c_void_p"
            raise ParseError(f"unexpected type {ctype!r}")
        if base == "c_char":
            # const char * is an input string; char * an output buffer.
            if stars == 1:
                return "c_char_p" if re.match(r"^\s*const\b", ctype) else "POINTER(c_char)"
            if stars == 2:
                return "POINTER(c_char_p)"
        if stars == 1:
            return f"POINTER({base})"
        raise ParseError(f"unexpected type {ctype!r}")

    def ret(self, ctype: str) -> str:
        t = re.sub(r"\bconst\b", "", ctype)
        base = self.base(t.replace("*", "").strip())
        stars = t.count("*")
        if stars == 1 and base == "c_char":
            return "c_char_p"  # static or borrowed NUL-terminated string
        return self.py(ctype)


# The header's static inline functions (between these markers, written by
# cbindgen.toml's trailer) are C only: FFI declarations leave them out.
INLINE_SECTION = re.compile(
    r"/\* ---- inline functions \(not for FFI parsers\) ---- \*/.*?/\* ---- end of inline functions ---- \*/",
    flags=re.S,
)


def parse(text: str) -> Header:
    body, defines = _strip(INLINE_SECTION.sub("", text))
    h = Header(defines=defines)

    # `enum { PROMSHM_X = 1 };` repeats a `#define PROMSHM_X 1` (read above).
    body = re.sub(r"\benum\s*\{\s*PROMSHM_\w+\s*=\s*-?\d+\s*\}\s*;", " ", body)
    for m in re.finditer(r"\benum\s+(\w+)\s*(?::\s*\w+\s*)?\{(.*?)\}\s*;", body, flags=re.S):
        entries = []
        for item in m.group(2).split(","):
            item = item.strip()
            if not item:
                continue
            em = re.match(r"^(\w+)\s*=\s*(.+)$", item)
            if not em:
                raise ParseError(f"enum {m.group(1)}: entry without a value: {item!r}")
            entries.append((em.group(1), em.group(2).strip()))
        h.enums.append((m.group(1), entries))
    body = re.sub(r"\benum\s+\w+\s*(?::\s*\w+\s*)?\{.*?\}\s*;", " ", body, flags=re.S)

    # Scalar aliases (including the uint32_t forms of the C enums).
    for m in re.finditer(r"\btypedef\s+([a-z0-9_]+)\s+(promshm_\w+)\s*;", body):
        if m.group(1) in SCALARS:
            h.aliases[m.group(2)] = m.group(1)
    body = re.sub(r"\btypedef\s+enum\s+\w+\s+\w+\s*;", " ", body)
    body = re.sub(r"\btypedef\s+[a-z0-9_]+\s+promshm_\w+\s*;", " ", body)

    # Function-pointer typedefs.
    for m in re.finditer(r"\btypedef\s+([\w\s\*]+?)\s*\(\s*\*\s*(\w+)\s*\)\s*\((.*?)\)\s*;", body, flags=re.S):
        h.fnptrs.append((m.group(2), _norm(m.group(1)), _params_raw(m.group(3))))
    body = re.sub(r"\btypedef\s+[\w\s\*]+?\(\s*\*\s*\w+\s*\)\s*\(.*?\)\s*;", " ", body, flags=re.S)

    # Structs with a body: `typedef struct [tag] { ... } name;` or `struct name { ... };`.
    for m in re.finditer(r"\btypedef\s+struct\s*(\w*)\s*\{(.*?)\}\s*(\w+)\s*;", body, flags=re.S):
        h.structs.append((m.group(3), _fields_raw(m.group(2))))
    body = re.sub(r"\btypedef\s+struct\s*\w*\s*\{.*?\}\s*\w+\s*;", " ", body, flags=re.S)
    for m in re.finditer(r"\bstruct\s+(\w+)\s*\{(.*?)\}\s*;", body, flags=re.S):
        h.structs.append((m.group(1), _fields_raw(m.group(2))))
    body = re.sub(r"\bstruct\s+\w+\s*\{.*?\}\s*;", " ", body, flags=re.S)

    # Opaque types.
    for m in re.finditer(r"\btypedef\s+struct\s+(\w+)\s+(\w+)\s*;", body):
        h.opaque.append(m.group(2))
    body = re.sub(r"\btypedef\s+struct\s+\w+\s+\w+\s*;", " ", body)

    # Function prototypes.
    funcs_raw = []
    for m in re.finditer(r"([\w\s\*]+?)\b(promshm_\w+)\s*\(([^()]*)\)\s*;", body, flags=re.S):
        funcs_raw.append((_norm(m.group(1)), m.group(2), m.group(3)))
    body = re.sub(r"([\w\s\*]+?)\b(promshm_\w+)\s*\(([^()]*)\)\s*;", " ", body, flags=re.S)
    leftover = re.sub(r"[\s};]", "", body)
    if leftover:
        raise ParseError(f"unparsed text left in the header: {leftover[:200]!r}")

    types = _Types(h)
    # Resolve the types now that every name is known.
    h.structs = [
        (name, [(fname, fc, types.py(fc)) for fname, fc, _ in fields]) for name, fields in h.structs
    ]
    h.fnptrs = [
        (name, ret, [Param(p.name, p.ctype, types.py(p.ctype)) for p in params])
        for name, ret, params in h.fnptrs
    ]
    for ret_c, name, params in funcs_raw:
        ps = [Param(p.name, p.ctype, types.py(p.ctype)) for p in _params_raw(params)]
        h.functions.append(Function(name, ret_c, types.ret(ret_c), ps))
    return h


def _params_raw(text: str) -> List[Param]:
    text = text.strip()
    if text in ("", "void"):
        return []
    out = []
    for part in text.split(","):
        ctype, name = _split_decl(part)
        out.append(Param(name, _norm(ctype), ""))
    return out


def _fields_raw(text: str) -> List[Tuple[str, str, str]]:
    out = []
    for decl in text.split(";"):
        decl = decl.strip()
        if not decl:
            continue
        ctype, name = _split_decl(decl)
        out.append((name, _norm(ctype), ""))
    return out


def _decl(ctype: str, name: str) -> str:
    """'const char *' + 'path' -> 'const char *path'."""
    return f"{ctype}{name}" if ctype.endswith("*") else f"{ctype} {name}"


def _py_value(v: str) -> str:
    v = v.strip()
    if re.fullmatch(r'"(?:[^"\\]|\\.)*"', v):
        return v
    if re.fullmatch(r"-?\d+[uUlL]*", v):
        return str(int(re.sub(r"[uUlL]+$", "", v)))
    if re.fullmatch(r"0[xX][0-9a-fA-F]+[uUlL]*", v):
        return str(int(re.sub(r"[uUlL]+$", "", v), 16))
    raise ParseError(f"cannot translate the constant value {v!r}")


def generate(text: str) -> str:
    """The text of ``_bindings.py`` for the header text ``text``."""
    h = parse(text)
    out: List[str] = []
    w = out.append
    w('"""ctypes declarations of ``include/promshm.h``.')
    w("")
    w("Generated by ``bindings/python/tools/gen_bindings.py`` from the header. DO NOT EDIT:")
    w("run the tool instead (the tests fail when this file and the header differ).")
    w('"""')
    w("")
    w("# fmt: off")
    w("from ctypes import (")
    w("    CFUNCTYPE, POINTER, Structure, c_bool, c_char, c_char_p, c_double, c_int,")
    w("    c_int32, c_int64, c_size_t, c_uint8, c_uint32, c_uint64, c_void_p,")
    w(")")
    w("from typing import Any, Dict, List, Tuple")
    w("")
    w("# Constants (#define).")
    for name, value in h.defines:
        w(f"{name} = {_py_value(value)}")
    for ename, entries in h.enums:
        w("")
        w(f"# enum {ename}")
        for name, value in entries:
            w(f"{name} = {_py_value(value)}")
    w("")
    w("# Opaque handle types (passed as c_void_p).")
    w(f"OPAQUE_TYPES = {tuple(h.opaque)!r}")
    w("")
    w("# Scalar typedefs.")
    w(f"ALIASES = {dict(sorted(h.aliases.items()))!r}")
    for sname, fields in h.structs:
        w("")
        w("")
        w(f"class {sname}(Structure):")
        w(f'    """``{sname}``."""')
        w("")
        w("    _fields_ = [")
        for fname, fc, fpy in fields:
            w(f"        ({fname!r}, {fpy}),  # {fc}")
        w("    ]")
    for fname, ret, params in h.fnptrs:
        w("")
        args = ", ".join(p.py for p in params)
        w(f"# typedef {ret} (*{fname})({', '.join(_decl(p.ctype, p.name) for p in params)})")
        w(f"{fname} = CFUNCTYPE({SCALARS.get(ret, ret)}, {args})")
    w("")
    w("# name: (restype, argtypes, C prototype), sorted by name")
    w("FUNCTIONS: Dict[str, Tuple[Any, List[Any], str]] = {")
    for f in sorted(h.functions, key=lambda f: f.name):
        proto = f"{_decl(f.ret_c, f.name)}({', '.join(_decl(p.ctype, p.name) for p in f.params) or 'void'})"
        args = ", ".join(p.py for p in f.params)
        w(f"    {f.name!r}: ({f.ret_py}, [{args}],")
        w(f"        {proto!r}),")
    w("}")
    w("# fmt: on")
    w("")
    return "\n".join(out)


DEFAULT_API = HERE.parent.parent.parent / "docs" / "promshm-api.json"


def check_api(api: dict, bindings_path: Path) -> List[str]:
    """Compare the declarations in ``bindings_path`` with the machine-readable
    description (docs/promshm-api.json, generated from the same source by
    scripts/gen-header): every function with the same prototype and number
    of ctypes arguments, every struct with the same size and field offsets,
    every constant with the same value. Returns the differences."""
    import ctypes
    import importlib.util

    spec = importlib.util.spec_from_file_location("_promshm_bindings_checked", bindings_path)
    mod = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(mod)
    problems: List[str] = []
    functions = getattr(mod, "FUNCTIONS")
    described = {f["name"] for f in api["functions"]}
    for name in sorted(set(functions) - described):
        problems.append(f"{name}: in the bindings, not in the API description")
    for f in api["functions"]:
        decl = functions.get(f["name"])
        if decl is None:
            problems.append(f"{f['name']}: in the API description, not in the bindings")
            continue
        _restype, argtypes, proto = decl
        params = ", ".join(_decl(p["type"], p["name"]) for p in f["params"]) or "void"
        want = f"{_decl(f['returns']['type'], f['name'])}({params})"
        if _norm(proto) != _norm(want):
            problems.append(f"{f['name']}: bindings say {proto!r}, the description {want!r}")
        if len(argtypes) != len(f["params"]):
            problems.append(f"{f['name']}: {len(argtypes)} ctypes arguments, {len(f['params'])} parameters")
    for st in api["structs"]:
        cls = getattr(mod, st["name"], None)
        if cls is None:
            problems.append(f"struct {st['name']}: not in the bindings")
            continue
        if ctypes.sizeof(cls) != st["size"]:
            problems.append(f"struct {st['name']}: ctypes size {ctypes.sizeof(cls)}, described {st['size']}")
        for fld in st["fields"]:
            got = getattr(cls, fld["name"], None)
            if got is None or got.offset != fld["offset"]:
                problems.append(f"{st['name']}.{fld['name']}: offset {getattr(got, 'offset', None)}, described {fld['offset']}")
    constants = [(c["name"], c["value"]) for c in api["constants"]]
    constants += [(m["name"], m["value"]) for e in api["enums"] for m in e["members"]]
    for name, value in constants:
        if getattr(mod, name, None) != value:
            problems.append(f"{name}: bindings {getattr(mod, name, None)!r}, described {value!r}")
    return problems


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--header", type=Path, default=DEFAULT_HEADER)
    ap.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    ap.add_argument("--check", action="store_true", help="fail if the output is stale")
    ap.add_argument("--check-api", type=Path, nargs="?", const=DEFAULT_API, metavar="JSON",
                    help="also check the output against the API description (default docs/promshm-api.json)")
    args = ap.parse_args(argv)
    if args.check_api:
        import json

        problems = check_api(json.loads(args.check_api.read_text(encoding="utf-8")), args.output)
        for p in problems:
            print(f"gen_bindings: {p}", file=sys.stderr)
        if problems:
            return 1
        print(f"gen_bindings: {args.output} matches {args.check_api}")
    new = generate(args.header.read_text(encoding="utf-8"))
    old = args.output.read_text(encoding="utf-8") if args.output.exists() else ""
    if args.check:
        if old != new:
            sys.stdout.writelines(
                difflib.unified_diff(old.splitlines(True), new.splitlines(True), str(args.output), "regenerated")
            )
            print(f"gen_bindings: {args.output} is stale; run {Path(__file__).name}", file=sys.stderr)
            return 1
        print(f"gen_bindings: {args.output} is up to date")
        return 0
    if old != new:
        args.output.write_text(new, encoding="utf-8")
        print(f"gen_bindings: wrote {args.output}")
    else:
        print(f"gen_bindings: {args.output} unchanged")
    return 0


if __name__ == "__main__":
    sys.exit(main())

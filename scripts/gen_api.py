#!/usr/bin/env python3
"""The second half of scripts/gen-header: from cbindgen's header, make

- ``include/promshm.h``: cbindgen's header with every integer ``#define``
  constant also declared as an enum member (``enum { PROMSHM_X = 1 };``
  before ``#define PROMSHM_X 1``), so ``gcc -E -P`` of it keeps every
  constant while ``#if PROMSHM_VERSION_NUMBER >= ...`` still works;
- ``include/promshm_ffi.h``: the same declarations as FFI parsers take them
  (PHP ``FFI::cdef``, cffi, LuaJIT ``ffi.cdef``, koffi): no preprocessor
  directive, no comment, the conditionals evaluated as a C11 compiler would,
  nothing from libc headers, the ``uint32_t`` typedefs kept;
- ``docs/promshm-api.json``: a machine-readable description: every constant,
  enum, typedef, struct (with its LP64 layout) and function, each parameter
  with its type, direction (in/out/inout), nullability and what the caller
  owns afterwards. Directions follow from the C types; nullability from the
  doc comments ("may be NULL", "if `x` is not NULL") and the rules below;
  what they cannot tell is in ANNOTATIONS, checked against the header so
  that no entry names a function or parameter that does not exist.

    scripts/gen_api.py RAW_HEADER OUT_DIR     write OUT_DIR/{promshm.h,promshm_ffi.h,promshm-api.json}
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Dict, List, Optional, Tuple

# The conditionals of cbindgen's header, as a C11 compiler sees them.
CONDITIONS = {
    "#ifndef PROMSHM_H": True,
    "#ifdef __cplusplus": False,
    "#ifndef __cplusplus": True,
    "#if defined(__cplusplus) || __STDC_VERSION__ >= 202311L": False,
    "#if __STDC_VERSION__ >= 202311L": False,
}

# Sizes on LP64 Linux (x86_64, aarch64), for the struct layouts.
SIZES = {"uint8_t": 1, "uint32_t": 4, "int": 4, "uint64_t": 8, "size_t": 8, "double": 8, "pointer": 8}

# What the doc comments and the C types cannot tell.
# returns: what the caller gets from a pointer return value.
# params: per parameter, "nullable" and/or "direction" and/or "owns".
ANNOTATIONS: Dict[str, dict] = {
    "promshm_result_message": {"returns": "static"},
    "promshm_version": {"returns": "static"},
    "promshm_metric_type_suffix": {"returns": "static"},
    "promshm_default_buckets": {"returns": "static"},
    "promshm_format_content_type": {"returns": "static"},
    "promshm_family_name": {"returns": "borrowed from family"},
    "promshm_error_detail": {"returns": "borrowed from err", "params": {"err": {"nullable": True, "direction": "in"}}},
    "promshm_error_code": {"params": {"err": {"nullable": True, "direction": "in"}}},
    "promshm_error_new": {"returns": "owned: promshm_error_free"},
    "promshm_error_free": {"params": {"err": {"nullable": True, "direction": "in", "owns": "consumed"}}},
    "promshm_flusher_stop": {"params": {"flusher": {"nullable": True, "direction": "in", "owns": "consumed"}}},
    "promshm_render_free": {"params": {"text": {"nullable": True, "direction": "in", "owns": "consumed"}}},
    "promshm_last_error": {"params": {"buf": {"nullable": "when len is 0"}}},
    "promshm_area_render": {"params": {"buf": {"nullable": "when len is 0"}}},
    "promshm_registry_render": {"params": {"buf": {"nullable": "when len is 0"}}},
    "promshm_area_render_e": {"params": {"buf": {"nullable": "when len is 0"}}},
    "promshm_registry_render_e": {"params": {"buf": {"nullable": "when len is 0"}}},
    "promshm_area_workers": {"params": {"out": {"nullable": "when cap is 0"}}},
    "promshm_area_workers_e": {"params": {"out": {"nullable": "when cap is 0"}}},
    "promshm_registry_render_alloc": {"params": {"out_len": {"nullable": True}}},
    # Its flag is a C bool: the error-object form is the uint32_t one.
    "promshm_family_remove": {"error_object": "promshm_family_remove_u32"},
    "promshm_format_from_accept": {"params": {"accept": {"nullable": True}}},
    "promshm_format_from_accept_any": {"params": {"accept": {"nullable": True}}},
    "promshm_area_create": {"params": {"options": {"nullable": True}}},
    "promshm_area_anonymous": {"params": {"options": {"nullable": True}}},
    "promshm_area_open_with": {"params": {"options": {"nullable": True}}},
    "promshm_registry_new": {"params": {"prefix": {"nullable": True}}},
}
# The _e variants share their function's annotations (plus `err`).
for _name in list(ANNOTATIONS):
    ANNOTATIONS.setdefault(_name + "_e", ANNOTATIONS[_name])

# Functions that release a handle type, for "owned: ..." of outputs.
RELEASE = {
    "promshm_area": "promshm_area_free",
    "promshm_registry": "promshm_registry_free",
    "promshm_family": "promshm_family_free",
    "promshm_series": "promshm_series_free",
    "promshm_flusher": "promshm_flusher_stop",
    "promshm_error": "promshm_error_free",
    "char": "promshm_render_free",
}


class GenError(Exception):
    """The header holds something this generator does not understand."""


def constants_as_enums(header: str) -> str:
    """`#define PROMSHM_X 1` -> `enum { PROMSHM_X = 1 };` then the #define."""
    out = []
    for line in header.splitlines():
        m = re.match(r"#define (PROMSHM_\w+) (-?\d+)$", line)
        if m:
            out.append(f"enum {{ {m.group(1)} = {m.group(2)} }};")
        out.append(line)
    return "\n".join(out) + "\n"


# The header's static inline functions (cbindgen.toml's trailer): C only;
# FFI parsers take no function bodies, so promshm_ffi.h and the JSON leave
# them out.
INLINE_SECTION = re.compile(
    r"/\* ---- inline functions \(not for FFI parsers\) ---- \*/.*?/\* ---- end of inline functions ---- \*/",
    flags=re.S,
)


def inline_inside_guard(header: str) -> str:
    """Move the inline section (after the guard's #endif, where cbindgen puts
    its trailer) to the end of the declarations, inside the guard."""
    m = INLINE_SECTION.search(header)
    if not m:
        return header
    rest = header[: m.start()].rstrip() + "\n" + header[m.end():]
    close = '#ifdef __cplusplus\n}  // extern "C"'
    if close not in rest:
        raise GenError("no closing extern \"C\" block to put the inline functions before")
    return rest.replace(close, m.group(0) + "\n\n" + close, 1)


def ffi_header(header: str, version: str) -> str:
    """Evaluate the conditionals, drop comments and every directive."""
    text = re.sub(r"/\*.*?\*/", "", header, flags=re.S)
    text = re.sub(r"//[^\n]*", "", text)
    out: List[str] = []
    stack: List[Tuple[bool, bool]] = []
    active = True
    for raw in text.splitlines():
        line = raw.strip()
        if not line.startswith("#"):
            if active and line:
                out.append(raw.rstrip())
            elif active and out and out[-1] != "":
                out.append("")
            continue
        key = re.sub(r"\s+", " ", line)
        if key.startswith(("#if ", "#ifdef ", "#ifndef ")):
            if key not in CONDITIONS:
                raise GenError(f"unknown preprocessor condition: {line}")
            stack.append((CONDITIONS[key], active))
            active = active and CONDITIONS[key]
        elif key == "#else":
            taken, parent = stack[-1]
            stack[-1] = (not taken, parent)
            active = parent and not taken
        elif key == "#endif":
            _, active = stack.pop()
        elif key.startswith(("#include ", "#define ")):
            continue
        else:
            raise GenError(f"unknown preprocessor line: {line}")
    if stack:
        raise GenError("unterminated #if")
    # One blank line between top-level declarations, none inside braces.
    lines: List[str] = []
    depth = 0
    for line in "\n".join(out).replace("\n {", " {").splitlines():
        if not line.strip():
            continue
        lines.append(line)
        depth += line.count("{") + line.count("(") - line.count("}") - line.count(")")
        if depth == 0 and line.rstrip().endswith(";"):
            lines.append("")
    body = "\n".join(lines).strip() + "\n"
    return (
        f"/* promshm_ffi.h: the C API of promshm {version} for FFI header parsers (PHP FFI::cdef, cffi,"
        " LuaJIT ffi.cdef, koffi): no preprocessor directives, every constant an enum member."
        " Generated by scripts/gen-header from include/promshm.h (which has the documentation). Do not edit. */\n\n"
        + body
    )


# ---- the JSON description ----------------------------------------------------


def _docs(header: str) -> Dict[str, str]:
    """The doc comment before each declaration, by declared name."""
    docs: Dict[str, str] = {}
    for m in re.finditer(r"/\*\*(.*?)\*/\s*\n(?=([^\n]*(?:\n[^\n]*)?))", header, flags=re.S):
        doc = " ".join(re.sub(r"^\s*\*\s?", "", l).strip() for l in m.group(1).splitlines()).strip()
        decl = m.group(2)
        name = None
        for pat in (
            r"\b(promshm_\w+)\s*\(",  # function
            r"#define (PROMSHM_\w+)",
            r"enum \{ (PROMSHM_\w+)",
            r"enum (promshm_\w+)",
            r"typedef .*?\(\*(promshm_\w+)\)",
            r"typedef [\w ]+ (promshm_\w+);",
            r"typedef struct (promshm_\w+) promshm_\w+;",
            r"^\s*(PROMSHM_\w+) =",
            r"^\s*[\w ]+?\**\s*(\w+);",  # struct field
        ):
            mm = re.search(pat, decl)
            if mm:
                name = mm.group(1)
                break
        if decl.startswith("typedef struct {"):
            mm = re.match(r"typedef struct \{.*?\} (promshm_\w+);", header[m.start(2):], flags=re.S)
            name = mm.group(1) if mm else None
        if name and name not in docs:
            docs[name] = doc
        elif name:
            docs.setdefault(f"{name}#{len(docs)}", doc)
    return docs


def _field_docs(header: str, struct: str) -> Dict[str, str]:
    """The doc comment of each field of `typedef struct { ... } struct;`."""
    m = re.search(r"typedef struct \{((?:(?!typedef struct).)*?)\} " + struct + ";", header, flags=re.S)
    out: Dict[str, str] = {}
    if m:
        for f in re.finditer(r"/\*\*(.*?)\*/\s*([^;]*?)(\w+);", m.group(1), flags=re.S):
            out[f.group(3)] = " ".join(re.sub(r"^\s*\*\s?", "", l).strip() for l in f.group(1).splitlines()).strip()
    return out


def _norm(ctype: str) -> str:
    ctype = re.sub(r"\s+", " ", ctype.replace("*", " * ")).strip()
    ctype = re.sub(r"\*\s+(?=\*)", "*", ctype)
    return re.sub(r"\*(?=\w)", "* ", ctype)


def _split(decl: str) -> Tuple[str, str]:
    m = re.match(r"^(.*?)([A-Za-z_]\w*)$", decl.strip(), flags=re.S)
    if not m:
        raise GenError(f"cannot split declaration {decl!r}")
    return _norm(m.group(1)), m.group(2)


def _size(ctype: str, aliases: Dict[str, str]) -> int:
    if "*" in ctype:
        return SIZES["pointer"]
    base = ctype.replace("const ", "").strip()
    base = aliases.get(base, base)
    if base not in SIZES:
        raise GenError(f"no size for {ctype!r}")
    return SIZES[base]


def _direction(ctype: str, name: str) -> str:
    if "*" not in ctype:
        return "in"
    if ctype.count("*") >= 2 and not ctype.endswith("const *"):
        # `T **out`: the function writes a pointer; `const char *const *` is an input array.
        return "out"
    if ctype.startswith("const ") or name == "userdata":
        return "in"
    if ctype.startswith("promshm_error"):
        return "in"  # a handle: the object it points to is filled by the call
    if ctype.startswith(("promshm_area_stats", "promshm_worker_info")):
        return "inout"  # the caller sets `size`, the call fills the rest
    return "out"


def _nullable(name: str, doc: str, ctype: str, params: List[Tuple[str, str]]) -> object:
    if "*" not in ctype:
        return None
    if name == "err":
        return True  # an error object (promshm_error_new()) or NULL
    q = re.escape(name)
    if re.search(rf"`\*{q}`[^.]*?either may be NULL", doc):
        return True
    if re.search(rf"`{q}`(?:[^.;]*?)may be NULL|if `{q}` is not NULL|`{q}` \(if `{q}` is not NULL\)|`\*{q}` if (?:`{q}`|that|it) is not NULL|`{q}` may be NULL|\*`{q}` if", doc):
        counts = [p for _, p in params if p in (f"n_{name}", "n")]
        if re.search(rf"`{q}` may be NULL when `(\w+)` is 0", doc):
            return "when " + re.search(rf"`{q}` may be NULL when `(\w+)` is 0", doc).group(1) + " is 0"
        return True
    # Arrays with a count: NULL is allowed when the count is 0 (docs/C-API.md).
    pnames = [p for _, p in params]
    for count in (f"n_{name}", "n" if name == "quantiles" else None):
        if count and count in pnames:
            return f"when {count} is 0"
    return False


def _owns(ctype: str, direction: str) -> Optional[str]:
    if direction != "out" or ctype.count("*") < 2:
        return None
    base = ctype.replace("const ", "").replace("*", "").strip()
    if base in RELEASE:
        return f"owned: {RELEASE[base]}"
    raise GenError(f"no release function known for an output of type {ctype!r}")


def describe(ffi_h: str, header: str, version: str) -> dict:
    docs = _docs(header)
    body = re.sub(r"/\*.*?\*/", "", ffi_h, flags=re.S)
    api: dict = {
        "generator": "scripts/gen-header (scripts/gen_api.py); do not edit",
        "version": version,
        "abi": "LP64 Linux (x86_64, aarch64): sizes and offsets below",
        "header": "include/promshm_ffi.h",
        "constants": [],
        "enums": [],
        "typedefs": [],
        "opaque": [],
        "structs": [],
        "callbacks": [],
        "functions": [],
    }
    for m in re.finditer(r"enum \{ (PROMSHM_\w+) = (-?\d+) \};", body):
        api["constants"].append({"name": m.group(1), "value": int(m.group(2)), "doc": docs.get(m.group(1), "")})
    for m in re.finditer(r"enum (promshm_\w+) \{(.*?)\};", body, flags=re.S):
        members = []
        for item in m.group(2).split(","):
            item = item.strip()
            if item:
                n, v = [x.strip() for x in item.split("=")]
                members.append({"name": n, "value": int(v), "doc": docs.get(n, "")})
        api["enums"].append({"name": m.group(1), "type": "uint32_t", "doc": docs.get(m.group(1), ""), "members": members})
    for m in re.finditer(r'#define (PROMSHM_\w+) "([^"]*)"', header):
        api["constants"].append({"name": m.group(1), "value": m.group(2), "doc": docs.get(m.group(1), ""),
                                 "note": "a string: not in promshm_ffi.h (call promshm_version())"})
    aliases: Dict[str, str] = {}
    for m in re.finditer(r"typedef (\w+) (promshm_\w+);", body):
        aliases[m.group(2)] = m.group(1)
        api["typedefs"].append({"name": m.group(2), "type": m.group(1), "doc": docs.get(m.group(2), "")})
    for m in re.finditer(r"typedef struct (promshm_\w+) promshm_\w+;", body):
        api["opaque"].append({"name": m.group(1), "doc": docs.get(m.group(1), "")})
    for m in re.finditer(r"typedef struct \{(.*?)\} (promshm_\w+);", body, flags=re.S):
        fields, off, align = [], 0, 1
        fdocs = _field_docs(header, m.group(2))
        for decl in m.group(1).split(";"):
            if not decl.strip():
                continue
            ctype, fname = _split(decl)
            size = _size(ctype, aliases)
            off = (off + size - 1) // size * size
            fields.append({"name": fname, "type": ctype, "offset": off, "size": size, "doc": fdocs.get(fname, "")})
            off += size
            align = max(align, size)
        total = (off + align - 1) // align * align
        api["structs"].append({
            "name": m.group(2),
            "doc": docs.get(m.group(2), ""),
            "size": total,
            "extensible": bool(fields) and fields[0]["name"] == "size",
            "fields": fields,
        })
    for m in re.finditer(r"typedef (\w[\w ]*?) \(\*(promshm_\w+)\)\((.*?)\);", body, flags=re.S):
        params = [dict(zip(("type", "name"), _split(p))) for p in m.group(3).split(",")]
        api["callbacks"].append({"name": m.group(2), "returns": m.group(1), "params": params, "doc": docs.get(m.group(2), "")})
    seen = set()
    for m in re.finditer(r"^([\w][\w \*]*?)\b(promshm_\w+)\((.*?)\);", body, flags=re.S | re.M):
        ret, name, args = _norm(m.group(1)), m.group(2), m.group(3).strip()
        if ret.startswith("typedef"):
            continue
        doc = docs.get(name)
        if doc is None:
            raise GenError(f"{name}: no doc comment")
        ann = ANNOTATIONS.get(name, {})
        raw = [] if args in ("", "void") else [_split(a) for a in args.split(",")]
        unknown = set(ann.get("params", {})) - {p for _, p in raw}
        if unknown:
            raise GenError(f"ANNOTATIONS[{name!r}] names no such parameter: {sorted(unknown)}")
        params = []
        for ctype, pname in raw:
            a = ann.get("params", {}).get(pname, {})
            direction = a.get("direction", _direction(ctype, pname))
            p = {"name": pname, "type": ctype, "direction": direction}
            nullable = a.get("nullable", _nullable(pname, doc, ctype, raw))
            if nullable is not None:
                p["nullable"] = nullable
            owns = a.get("owns", _owns(ctype, direction))
            if owns:
                p["owns"] = owns
            params.append(p)
        returns: dict = {"type": ret}
        if "*" in ret:
            if "returns" in ann:
                returns["owns"] = ann["returns"]
            elif ret.startswith("const promshm_") and ret.replace("const ", "").replace("*", "").strip() in RELEASE:
                base = ret.replace("const ", "").replace("*", "").strip()
                returns["owns"] = f"owned: {RELEASE[base]} (NULL for NULL)"
            else:
                raise GenError(f"{name}: what does the caller own of its {ret!r} return? Add it to ANNOTATIONS")
        fn = {
            "name": name,
            "doc": doc,
            "returns": returns,
            "fallible": ret == "promshm_result",
            "params": params,
        }
        api["functions"].append(fn)
        seen.add(name)
    by_name = {f["name"]: f for f in api["functions"]}
    for fn in api["functions"]:
        base = by_name.get(fn["name"][:-2]) if fn["name"].endswith("_e") else None
        if base and [p["name"] for p in base["params"]] + ["err"] == [p["name"] for p in fn["params"]]:
            fn["variant_of"] = base["name"]
            fn["params"] = [dict(p) for p in base["params"]] + [fn["params"][-1]]
    stale = {n for n in ANNOTATIONS if n not in seen and not (n.endswith("_e") and n[:-2] in ANNOTATIONS)}
    if stale:
        raise GenError(f"ANNOTATIONS name functions the header lacks: {sorted(stale)}")
    for fn in api["functions"]:
        if fn["fallible"]:
            variant = fn["name"] + "_e"
            has_err = bool(fn["params"]) and fn["params"][-1]["name"] == "err"
            fn["error_object"] = (
                "err" if has_err else ANNOTATIONS.get(fn["name"], {}).get("error_object", variant if variant in seen else None)
            )
    missing = [f["name"] for f in api["functions"] if f["fallible"] and not f["error_object"] and f["name"] != "promshm_last_error"]
    if missing:
        raise GenError(
            f"fallible functions without an error-object form: {missing}; add `<name>_e => <name>(...);` "
            "to the table in src/ffi/variants.rs (or an `err` parameter)"
        )
    return api


def main(argv: List[str]) -> int:
    if len(argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    raw, out = Path(argv[1]), Path(argv[2])
    try:
        header = inline_inside_guard(constants_as_enums(raw.read_text()))
    except GenError as e:
        print(f"gen_api.py: {e}", file=sys.stderr)
        return 1
    m = re.search(r'#define PROMSHM_VERSION_STRING "([^"]+)"', header)
    version = m.group(1) if m else "?"
    declarations = INLINE_SECTION.sub("", header)
    ffi = ffi_header(declarations, version)
    try:
        api = describe(ffi, declarations, version)
    except GenError as e:
        print(f"gen_api.py: {e}", file=sys.stderr)
        return 1
    (out / "promshm.h").write_text(header)
    (out / "promshm_ffi.h").write_text(ffi)
    (out / "promshm-api.json").write_text(json.dumps(api, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

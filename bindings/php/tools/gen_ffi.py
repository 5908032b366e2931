#!/usr/bin/env python3
"""Generate the PHP FFI declarations of promshm from ``include/promshm.h``.

    python3 bindings/php/tools/gen_ffi.py           rewrite the generated files
    python3 bindings/php/tools/gen_ffi.py --check   exit 1 (with a diff) if they are stale

Outputs (both committed, both marked "generated"):

- ``src/Native/promshm.ffi.h``: the header as PHP's FFI parser accepts it:
  comments removed, preprocessor conditionals evaluated as a C11 compiler
  would (``__cplusplus`` undefined, ``__STDC_VERSION__`` 201112L), every
  other preprocessor line dropped (``#include``, ``extern "C"``), and the
  integer ``#define`` constants turned into one anonymous ``enum`` so that
  ``$ffi->PROMSHM_FORMAT_PROMETHEUS`` works too; then ``getenv``,
  ``setenv`` and ``getauxval`` of the C library (the per-process handle
  cache).
- ``src/Native/C.php``: the same constants (integer and string ``#define``\\ s,
  every enumerator) as PHP class constants of ``Promshm\\Native\\C``.

The ``*_INIT`` initialiser macros are not constants (they are C braces) and
are left out; the PHP code sets ``size`` itself.  Any preprocessor
conditional this script does not know, or a ``#define`` of another shape,
fails loudly, so a header change cannot slip through unnoticed.
"""

from __future__ import annotations

import argparse
import difflib
import re
import sys
from pathlib import Path
from typing import Dict, List, Tuple

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent.parent
HEADER = ROOT / "include" / "promshm.h"
OUT_H = HERE.parent / "src" / "Native" / "promshm.ffi.h"
OUT_PHP = HERE.parent / "src" / "Native" / "C.php"

# Conditions of #if/#ifdef/#ifndef lines, as a C11 compiler sees them.
CONDITIONS = {
    "#ifndef PROMSHM_H": True,
    "#ifdef __cplusplus": False,
    "#ifndef __cplusplus": True,
    "#if defined(__cplusplus) || __STDC_VERSION__ >= 202311L": False,
    "#if __STDC_VERSION__ >= 202311L": False,
}


# Two C library functions the PHP side uses for its per-process handle cache
# (src/Native/ProcessCache.php); libpromshm links the C library, so FFI finds
# them through the library's handle.
LIBC = [
    "/* From the C library: the per-process handle cache of bindings/php (src/Native/ProcessCache.php). */",
    "const char *getenv(const char *name);",
    "int setenv(const char *name, const char *value, int overwrite);",
    "unsigned long getauxval(unsigned long type);",
]


class GenError(Exception):
    """The header holds something this generator does not understand."""


def strip_comments(text: str) -> str:
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    return re.sub(r"//[^\n]*", "", text)


def preprocess(text: str) -> Tuple[List[str], List[Tuple[str, str]]]:
    """Evaluate conditionals; return the kept C lines and the #defines."""
    out: List[str] = []
    defines: List[Tuple[str, str]] = []
    stack: List[Tuple[bool, bool]] = []  # (this branch taken, parent active)
    active = True
    for raw in text.splitlines():
        line = raw.strip()
        if not line.startswith("#"):
            # `enum { PROMSHM_X = 1 };` precedes each `#define PROMSHM_X 1`
            # (so that `gcc -E` keeps the constants); the #defines below make
            # one enum of them all.
            if re.fullmatch(r"enum \{ PROMSHM_\w+ = -?\d+ \};", line):
                continue
            if active and line:
                out.append(raw.rstrip())
            continue
        key = re.sub(r"\s+", " ", line)
        if key.startswith(("#if ", "#ifdef ", "#ifndef ")):
            if key not in CONDITIONS:
                raise GenError(f"unknown preprocessor condition: {line}")
            stack.append((CONDITIONS[key], active))
            active = active and CONDITIONS[key]
        elif key == "#else":
            if not stack:
                raise GenError("#else without #if")
            taken, parent = stack[-1]
            stack[-1] = (not taken, parent)
            active = parent and not taken
        elif key == "#endif":
            if not stack:
                raise GenError("#endif without #if")
            _, active = stack.pop()
        elif key.startswith("#include "):
            continue
        elif key.startswith("#define "):
            if not active:
                continue
            m = re.match(r"#define (\w+)(?: (.*))?$", key)
            if not m:
                raise GenError(f"unparsed #define: {line}")
            name, value = m.group(1), (m.group(2) or "").strip()
            if value == "" and name == "PROMSHM_H":
                continue
            if name.endswith("_INIT") and value.startswith("{"):
                continue
            defines.append((name, value))
        else:
            raise GenError(f"unknown preprocessor line: {line}")
    if stack:
        raise GenError("unterminated #if")
    return out, defines


def parse_defines(defines: List[Tuple[str, str]]) -> Tuple[List[Tuple[str, int]], List[Tuple[str, str]]]:
    ints: List[Tuple[str, int]] = []
    strings: List[Tuple[str, str]] = []
    for name, value in defines:
        if re.fullmatch(r"-?\d+", value):
            ints.append((name, int(value)))
        elif re.fullmatch(r'"[^"\\]*"', value):
            strings.append((name, value[1:-1]))
        else:
            raise GenError(f"#define {name} {value}: neither an integer nor a plain string")
    return ints, strings


def enumerators(c_lines: List[str]) -> List[Tuple[str, int]]:
    body = "\n".join(c_lines)
    found: List[Tuple[str, int]] = []
    for block in re.findall(r"enum\s+\w*\s*\{(.*?)\}", body, flags=re.S):
        for item in block.split(","):
            item = item.strip()
            if not item:
                continue
            m = re.fullmatch(r"(\w+)\s*=\s*(-?\d+)", item)
            if not m:
                raise GenError(f"enumerator without an explicit value: {item}")
            found.append((m.group(1), int(m.group(2))))
    return found


# The header's static inline functions (between these markers, written by
# cbindgen.toml's trailer) are C only: FFI declarations leave them out.
INLINE_SECTION = re.compile(
    r"/\* ---- inline functions \(not for FFI parsers\) ---- \*/.*?/\* ---- end of inline functions ---- \*/",
    flags=re.S,
)


def generate(header_text: str) -> Tuple[str, str]:
    header_text = INLINE_SECTION.sub("", header_text)
    c_lines, defines = preprocess(strip_comments(header_text))
    ints, strings = parse_defines(defines)
    enums = enumerators(c_lines)
    # Collapse blank runs and the extern "C" leftovers (there are none after
    # preprocessing: the #ifdef __cplusplus blocks are dropped).
    c_text = "\n".join(c_lines)
    if 'extern "C"' in c_text:
        raise GenError('extern "C" outside an #ifdef __cplusplus block')
    h = ["/* Generated by bindings/php/tools/gen_ffi.py from include/promshm.h. Do not edit. */", ""]
    h.append("enum {")
    for name, value in ints:
        h.append(f"    {name} = {value},")
    h.append("};")
    h.append("")
    h.append(c_text)
    h.append("")
    h.extend(LIBC)
    h_text = "\n".join(h).rstrip() + "\n"

    php = [
        "<?php",
        "",
        "// Generated by bindings/php/tools/gen_ffi.py from include/promshm.h. Do not edit.",
        "",
        "declare(strict_types=1);",
        "",
        "namespace Promshm\\Native;",
        "",
        "/** The constants of include/promshm.h (#define constants and enumerators). */",
        "final class C",
        "{",
    ]
    seen: Dict[str, bool] = {}
    for name, value in ints + enums:
        if name in seen:
            raise GenError(f"constant {name} defined twice")
        seen[name] = True
        php.append(f"    public const {name} = {value};")
    for name, value in strings:
        php.append(f"    public const {name} = '{value}';")
    php.append("}")
    return h_text, "\n".join(php) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="fail if the committed files are stale")
    ap.add_argument("--header", type=Path, default=HEADER)
    args = ap.parse_args()
    try:
        h_text, php_text = generate(args.header.read_text())
    except GenError as e:
        print(f"gen_ffi: {e}", file=sys.stderr)
        return 2
    stale = False
    for path, text in ((OUT_H, h_text), (OUT_PHP, php_text)):
        old = path.read_text() if path.exists() else ""
        if old == text:
            continue
        if args.check:
            stale = True
            rel = path.relative_to(ROOT)
            sys.stdout.writelines(difflib.unified_diff(old.splitlines(True), text.splitlines(True), f"a/{rel}", f"b/{rel}"))
        else:
            path.write_text(text)
            print(f"wrote {path.relative_to(ROOT)}")
    if stale:
        print("gen_ffi: PHP FFI declarations are stale; run python3 bindings/php/tools/gen_ffi.py", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

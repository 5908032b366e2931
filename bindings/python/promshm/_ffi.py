"""Loading ``libpromshm.so`` and calling it.

The library is found, in order, at:

1. ``$PROMSHM_LIBRARY`` (a path to an already built library);
2. the copy bundled in this package by ``pip install`` (which runs cargo);
3. in a source checkout only: ``target/release`` then ``target/debug`` of the
   repository this package sits in.

Declarations come from :mod:`promshm._bindings`, generated from
``include/promshm.h``. Every function is bound twice: through ``CDLL`` (the
GIL is released during the call; used for anything that may take the area
lock, allocate, render or do I/O) and, for the update hot path only, through
``PyDLL`` (the GIL stays held: these calls take nanoseconds and never block,
and keeping the GIL saves a release/re-acquire per call).
"""

from __future__ import annotations

import ctypes
import os
import sys
from ctypes import byref, c_char_p, c_size_t, create_string_buffer
from pathlib import Path
from typing import Any, Iterable, List, NoReturn, Sequence, Tuple

from . import _bindings as B
from .errors import InvalidArgumentError, LibraryNotFoundError, error_class

__all__ = ["lib", "fast", "library_path", "check", "raise_for", "last_error", "encode"]

if sys.platform == "darwin":
    LIBRARY_NAME = "libpromshm.dylib"
elif sys.platform == "win32":  # pragma: no cover - promshm is POSIX-only
    LIBRARY_NAME = "promshm.dll"
else:
    LIBRARY_NAME = "libpromshm.so"

# Functions called on the hot path with the GIL held (see module docstring).
HOT_FUNCTIONS = (
    "promshm_counter_inc",
    "promshm_counter_add",
    "promshm_gauge_set",
    "promshm_gauge_inc",
    "promshm_gauge_dec",
    "promshm_gauge_add",
    "promshm_gauge_sub",
    "promshm_gauge_set_to_current_time",
    "promshm_histogram_observe",
    "promshm_summary_observe",
)


def _candidates() -> List[Path]:
    here = Path(__file__).resolve().parent
    out = [here / LIBRARY_NAME]
    # A source checkout: bindings/python/promshm/_ffi.py -> repository root.
    root = here.parent.parent.parent
    if (root / "Cargo.toml").is_file():
        out += [root / "target" / "release" / LIBRARY_NAME, root / "target" / "debug" / LIBRARY_NAME]
    return out


def _find_library() -> Path:
    env = os.environ.get("PROMSHM_LIBRARY")
    if env:
        p = Path(env)
        if not p.is_file():
            raise LibraryNotFoundError(f"PROMSHM_LIBRARY={env!r} is not a file")
        return p
    tried = _candidates()
    for p in tried:
        if p.is_file():
            return p
    raise LibraryNotFoundError(
        "libpromshm not found (tried: "
        + ", ".join(str(p) for p in tried)
        + "); reinstall the package (pip install ./bindings/python builds it with cargo) "
        "or set PROMSHM_LIBRARY to the path of a built libpromshm"
    )


def _load() -> Tuple[ctypes.CDLL, ctypes.PyDLL, Path]:
    path = _find_library()
    try:
        cdll = ctypes.CDLL(str(path))
        pydll = ctypes.PyDLL(str(path))
    except OSError as e:
        raise LibraryNotFoundError(f"cannot load {path}: {e}") from e
    missing = []
    for name, (restype, argtypes, _proto) in B.FUNCTIONS.items():
        for dll in (cdll, pydll):
            try:
                f = getattr(dll, name)
            except AttributeError:
                missing.append(name)
                break
            f.restype = restype
            f.argtypes = argtypes
    if missing:
        raise LibraryNotFoundError(
            f"{path} lacks {', '.join(sorted(set(missing)))}: it is older than include/promshm.h; "
            "rebuild it (cargo build --release --lib) or reinstall the package"
        )
    # The header's and the library's versions must agree (no ABI stability before 1.0).
    have = cdll.promshm_version_number()
    want = B.PROMSHM_VERSION_NUMBER
    if have // 1000 != want // 1000:
        raise LibraryNotFoundError(
            f"{path} is promshm {cdll.promshm_version().decode()}, these bindings are for "
            f"{B.PROMSHM_VERSION_STRING}: use a matching library"
        )
    return cdll, pydll, path


lib, _pylib, library_path = _load()


class _Fast:
    """The hot-path functions, bound through ``PyDLL`` (GIL held)."""

    def __init__(self, dll: ctypes.PyDLL) -> None:
        for name in HOT_FUNCTIONS:
            setattr(self, name[len("promshm_") :], getattr(dll, name))


fast: Any = _Fast(_pylib)


def last_error() -> str:
    """The detail of the last failure on this thread (``promshm_last_error``)."""
    size = 512
    while True:
        buf = create_string_buffer(size)
        n = c_size_t(0)
        if lib.promshm_last_error(buf, size, byref(n)) != 0:
            return ""
        if n.value < size:
            return buf.value.decode("utf-8", "replace")
        size = n.value + 1


def raise_for(rc: int, context: str = "") -> NoReturn:
    """Raise the exception for the non-zero result code ``rc``."""
    msg = lib.promshm_result_message(rc)
    text = msg.decode("utf-8", "replace") if msg else f"promshm error {rc}"
    detail = last_error()
    if context:
        detail = f"{context}: {detail}" if detail else context
    raise error_class(rc)(text, rc, detail)


def check(rc: int, context: str = "") -> None:
    """Raise for a non-zero result code."""
    if rc:
        raise_for(rc, context)


def encode(s: Any, what: str = "string") -> bytes:
    """UTF-8 bytes for a C string argument.

    Non-str values are converted with ``str()`` (as prometheus_client does for
    label values). Text that is not valid Unicode (lone surrogates) is passed
    on as invalid UTF-8 so the library reports ``NOT_UTF8``; an embedded NUL,
    which a C string cannot carry, raises :class:`InvalidArgumentError`.
    """
    if not isinstance(s, str):
        if isinstance(s, bytes):
            b = s
        else:
            s = str(s)
            b = s.encode("utf-8", "surrogatepass")
    else:
        try:
            b = s.encode("utf-8")
        except UnicodeEncodeError:
            b = s.encode("utf-8", "surrogatepass")
    if b"\0" in b:
        raise InvalidArgumentError("invalid argument", 114, f"{what} {s!r} contains a NUL character")
    return b


def str_array(values: Sequence[bytes]) -> Any:
    """A ``const char *const *`` array for already encoded strings (None when empty)."""
    if not values:
        return None
    return (c_char_p * len(values))(*values)


def label_array(pairs: Iterable[Tuple[bytes, bytes]]) -> Tuple[Any, int]:
    """A ``promshm_label`` array and its length."""
    pairs = list(pairs)
    if not pairs:
        return None, 0
    arr = (B.promshm_label * len(pairs))()
    for i, (k, v) in enumerate(pairs):
        arr[i].name = k
        arr[i].value = v
    return arr, len(pairs)


def version() -> str:
    """The loaded library's version string."""
    return lib.promshm_version().decode()

"""Exceptions raised by promshm.

Every error of the C API arrives as a ``promshm_result`` code; each block of
codes (1xx bad arguments, 2xx I/O, 3xx the shared area, 4xx the registry, 9xx
internal) has its own exception class, all derived from :class:`PromshmError`,
and each class also derives from the built-in exception a Python programmer
would expect (``ValueError`` for bad arguments, ``OSError`` for I/O), so code
written for ``prometheus_client`` (``except ValueError``) keeps working.

=====================  ====================================================
C result code          Python exception
=====================  ====================================================
100-116 (arguments)    :class:`InvalidArgumentError` (``ValueError``);
                       ``LABEL_COUNT`` / ``UNKNOWN_LABEL``:
                       :class:`LabelError`; ``WRONG_TYPE``:
                       :class:`WrongTypeError` (also ``TypeError``)
200-203 (I/O)          :class:`PromshmIOError` (``OSError``);
                       ``NOT_FOUND``: :class:`AreaNotFoundError`
                       (``FileNotFoundError``); ``PERMISSION_DENIED``:
                       :class:`AreaPermissionError` (``PermissionError``)
300-305 (area)         :class:`AreaError`; ``AREA_FULL`` /
                       ``WORKERS_FULL``: :class:`AreaFullError`;
                       ``INCOMPATIBLE_AREA`` / ``CORRUPT_AREA``:
                       :class:`IncompatibleAreaError`; ``READ_ONLY``:
                       :class:`ReadOnlyAreaError`
400 (registry)         :class:`ShapeMismatchError` (``ValueError``)
900 (internal)         :class:`InternalError`
=====================  ====================================================
"""

from __future__ import annotations

from typing import Dict, Optional, Type

__all__ = [
    "PromshmError",
    "InvalidArgumentError",
    "LabelError",
    "WrongTypeError",
    "UnobservableMetricError",
    "PromshmIOError",
    "AreaNotFoundError",
    "AreaPermissionError",
    "AreaError",
    "AreaFullError",
    "IncompatibleAreaError",
    "ReadOnlyAreaError",
    "RegistryError",
    "ShapeMismatchError",
    "InternalError",
    "LibraryNotFoundError",
    "error_class",
]


class PromshmError(Exception):
    """Base class of every promshm error.

    ``code`` is the C API's ``promshm_result`` code (0 for errors raised by
    the Python layer itself), ``message`` the code's text and ``detail`` the
    library's explanation of this failure (e.g. which name was invalid).
    """

    code: int = 0

    def __init__(self, message: str, code: Optional[int] = None, detail: str = "") -> None:
        text = f"{message}: {detail}" if detail else message
        super().__init__(text)
        if code is not None:
            self.code = code
        self.message = message
        self.detail = detail

    def __str__(self) -> str:  # OSError subclasses would print "[Errno ...]" otherwise
        return self.args[0] if self.args else ""


class InvalidArgumentError(PromshmError, ValueError):
    """Bad input: an invalid metric or label name, a reserved label, a
    negative counter increment, invalid buckets, non-UTF-8 text, ... (1xx)."""


class LabelError(InvalidArgumentError):
    """Wrong label values: too many or too few, or an unknown label name."""


class WrongTypeError(InvalidArgumentError, TypeError):
    """An operation of another metric type (e.g. ``observe`` on a counter)."""


class UnobservableMetricError(InvalidArgumentError):
    """An update on a metric that still needs label values (call ``labels()``).

    The name of pytheus' ``UnobservableMetricException``."""


class PromshmIOError(PromshmError, OSError):
    """An operating-system error on the area file or an output file (2xx)."""


class AreaNotFoundError(PromshmIOError, FileNotFoundError):
    """The area file (or a directory on its path) does not exist."""


class AreaPermissionError(PromshmIOError, PermissionError):
    """The operating system denied access to the area file."""


class AreaError(PromshmError):
    """A problem with the shared area itself (3xx)."""


class AreaFullError(AreaError):
    """No room left in the area for a new family or series (or no free
    worker slot). Existing series keep working; configure more ``pages``."""


class IncompatibleAreaError(AreaError):
    """The file is not a promshm area, has an unreadable layout, or is damaged."""


class ReadOnlyAreaError(AreaError):
    """The area was opened read-only and the operation writes to it."""


class RegistryError(PromshmError):
    """A registry error (4xx)."""


class ShapeMismatchError(RegistryError, ValueError):
    """A family of this name exists (in this or another process) with another
    type, labels, unit, buckets, quantiles, states or gauge mode."""


class InternalError(PromshmError):
    """promshm hit a bug (a caught panic). The process is unharmed."""


class LibraryNotFoundError(PromshmError, ImportError):
    """``libpromshm.so`` could not be found or loaded."""


_BY_CODE: Dict[int, Type[PromshmError]] = {
    106: LabelError,  # LABEL_COUNT
    107: LabelError,  # UNKNOWN_LABEL
    116: WrongTypeError,  # WRONG_TYPE
    202: AreaNotFoundError,  # NOT_FOUND
    203: AreaPermissionError,  # PERMISSION_DENIED
    300: AreaFullError,  # AREA_FULL
    301: AreaFullError,  # WORKERS_FULL
    302: IncompatibleAreaError,  # INCOMPATIBLE_AREA
    303: IncompatibleAreaError,  # CORRUPT_AREA
    304: ReadOnlyAreaError,  # READ_ONLY
    400: ShapeMismatchError,  # SHAPE_MISMATCH
}

_BY_BLOCK: Dict[int, Type[PromshmError]] = {
    1: InvalidArgumentError,
    2: PromshmIOError,
    3: AreaError,
    4: RegistryError,
    9: InternalError,
}


def error_class(code: int) -> Type[PromshmError]:
    """The exception class for a ``promshm_result`` code."""
    cls = _BY_CODE.get(code)
    if cls is None:
        cls = _BY_BLOCK.get(code // 100, PromshmError)
    return cls

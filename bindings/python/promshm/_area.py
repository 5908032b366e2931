"""Areas, the zero-configuration shared area, flushing and process life cycle.

Zero configuration
------------------
The first time a metric of the default registry is created, promshm needs the
*shared area*, the memory-mapped file every process of the application
updates. It is chosen as follows:

1. ``promshm.configure(path=...)`` or ``$PROMSHM_AREA`` name the file
   explicitly (created if missing, opened otherwise).
2. Otherwise promshm finds the *root* of the application: the topmost process
   of the chain "this process, its parent, its grandparent, ..." that runs the
   same program (same executable and command line, as a pre-fork server's
   workers do; a ``multiprocessing`` spawn/forkserver child; a gunicorn or
   uWSGI process title). Under gunicorn, every worker finds the master; under
   uWSGI, ``uwsgi.masterpid()``; a plain script finds itself. The file is
   ``promshm-<uid>-<boot>-<root pid>-<root start time>.area``, created
   ``0600``, in a directory private to the user: ``$PROMSHM_DIR`` or
   ``$XDG_RUNTIME_DIR`` if the user owns it and nobody else may write it,
   else a ``promshm-<uid>`` directory (mode ``0700``, owner checked) in it,
   in ``/dev/shm``, in the temporary directory or in ``~/.cache``; one taken
   by another user is skipped. Another local user can thus neither read,
   plant nor block the file (and the library refuses an area file that is
   not a regular file of this user). Every process of the application
   computes the same name, so they share one area even if the root never
   imported promshm (gunicorn without ``--preload``).
3. The path is then put in ``os.environ['PROMSHM_AREA']``, so children that
   are forked, spawned (``multiprocessing``) or exec'd later inherit it.

A file named this way is removed when its root process exits (if that process
used promshm) or by the next process that creates such a file after the root
is gone. A file named explicitly is never removed.

Flushing
--------
Counter and histogram updates go to a per-thread buffer and reach the area on a
flush: at the end of each request (the WSGI/ASGI helpers), on a timer (a
library thread started lazily when the first buffered metric is created;
``configure(flush_interval=0)`` or ``PROMSHM_FLUSH_INTERVAL=0`` turns it off),
before a render in this process, when a thread exits and at process exit.
Processes started by ``multiprocessing`` (fork, spawn, forkserver) — whose
pools are often ended with ``terminate()``, which runs no exit handler — write
every update straight into the area instead (eager mode), as does every process
after ``configure(eager=True)`` or with ``PROMSHM_EAGER=1``.
"""

from __future__ import annotations

import atexit
import ctypes
import errno
import os
import re
import stat
import tempfile
import threading
import warnings
import weakref
from ctypes import byref, c_size_t, c_uint32, c_void_p
from pathlib import Path
from typing import Any, Dict, List, Optional, Union

from . import _bindings as B
from . import _ffi
from ._ffi import check, encode, lib
from .errors import InvalidArgumentError, PromshmError

__all__ = [
    "Area",
    "SHARED",
    "configure",
    "shared_area",
    "flush",
    "start_flusher",
    "stop_flusher",
    "area_path",
    "PathLike",
]

PathLike = Union[str, "os.PathLike[str]"]

FORMATS = {
    "prometheus": B.PROMSHM_FORMAT_PROMETHEUS,
    "text": B.PROMSHM_FORMAT_PROMETHEUS,
    "openmetrics": B.PROMSHM_FORMAT_OPENMETRICS,
    # Binary (length-delimited io.prometheus.client.MetricFamily messages).
    "protobuf": B.PROMSHM_FORMAT_PROTOBUF,
}


def _format(fmt: Union[str, int]) -> int:
    if isinstance(fmt, int):
        return fmt
    try:
        return FORMATS[fmt]
    except KeyError:
        raise InvalidArgumentError("invalid argument", 114, f"unknown format {fmt!r} (prometheus, openmetrics or protobuf)") from None


class _SharedSentinel:
    """The zero-configuration shared area (see :func:`shared_area`)."""

    _instance: Optional["_SharedSentinel"] = None

    def __new__(cls) -> "_SharedSentinel":
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "promshm.SHARED"

    def __reduce__(self) -> str:
        return "SHARED"


#: Pass as ``area=`` to put a registry on the shared area of the application.
SHARED = _SharedSentinel()


class Area:
    """A promshm shared area mapped into this process.

    ``Area(path)`` creates the file (``0600``) or opens it if it already holds
    an area; ``Area.anonymous()`` makes an anonymous shared mapping that
    forked children inherit; ``Area.open(path, read_only=True)`` maps an
    existing area for reading only (an exporter).

    ``pages`` (4 KiB each, default 4096 = 16 MiB) and ``max_workers`` (default
    64) apply when the area is created; an existing area keeps its own.
    """

    __slots__ = ("_h", "path", "read_only", "__weakref__")

    def __init__(
        self,
        path: Optional[PathLike] = None,
        *,
        pages: int = 0,
        max_workers: int = 0,
        eager: bool = False,
        _handle: Optional[c_void_p] = None,
        _read_only: bool = False,
    ) -> None:
        self._h: Optional[c_void_p] = None
        self.path: Optional[str] = None if path is None else os.fspath(path)
        self.read_only = _read_only
        if _handle is not None:
            self._h = _handle
            return
        if self.path is None:
            raise InvalidArgumentError("invalid argument", 114, "Area() needs a path; use Area.anonymous() for an anonymous area")
        opts = _options(pages, max_workers, eager)
        h = c_void_p()
        check(lib.promshm_area_create(encode(self.path, "area path"), byref(opts), byref(h)), f"area {self.path}")
        self._h = h

    @classmethod
    def anonymous(cls, *, pages: int = 0, max_workers: int = 0, eager: bool = False) -> "Area":
        """An anonymous shared area, shared with the children this process forks."""
        opts = _options(pages, max_workers, eager)
        h = c_void_p()
        check(lib.promshm_area_anonymous(byref(opts), byref(h)), "anonymous area")
        return cls(None, _handle=h)

    @classmethod
    def open(cls, path: PathLike, *, read_only: bool = False) -> "Area":
        """Open an existing area file (read-only: render and inspect only)."""
        p = os.fspath(path)
        mode = B.PROMSHM_OPEN_MODE_READ_ONLY if read_only else B.PROMSHM_OPEN_MODE_READ_WRITE
        h = c_void_p()
        check(lib.promshm_area_open(encode(p, "area path"), mode, byref(h)), f"area {p}")
        return cls(p, _handle=h, _read_only=read_only)

    @property
    def handle(self) -> c_void_p:
        """The ``const promshm_area *`` (borrowed; valid while this object lives)."""
        if self._h is None:
            raise PromshmError("area is closed")
        return self._h

    def attach(self) -> int:
        """Attach this process to a worker slot now; returns the slot index."""
        slot = c_uint32()
        check(lib.promshm_area_attach(self.handle, byref(slot)))
        return slot.value

    def reap(self) -> int:
        """Free the slots of dead workers (renders do it too); how many."""
        n = c_uint32()
        check(lib.promshm_area_reap(self.handle, byref(n)))
        return n.value

    def stats(self) -> Dict[str, int]:
        """Usage and self-metric counters of the area."""
        st = B.promshm_area_stats(size=ctypes.sizeof(B.promshm_area_stats))
        check(lib.promshm_area_get_stats(self.handle, byref(st)))
        return {f[0]: getattr(st, f[0]) for f in B.promshm_area_stats._fields_ if f[0] != "size"}

    def workers(self) -> List[Dict[str, Any]]:
        """The worker table: one dict per slot in use."""
        count = c_size_t()
        while True:
            rc = lib.promshm_area_workers(self.handle, None, 0, byref(count))
            if rc not in (0, B.PROMSHM_RESULT_BUFFER_TOO_SMALL):
                _ffi.raise_for(rc)
            cap = count.value + 4
            arr = (B.promshm_worker_info * cap)()
            arr[0].size = ctypes.sizeof(B.promshm_worker_info)
            rc = lib.promshm_area_workers(self.handle, arr, cap, byref(count))
            if rc == B.PROMSHM_RESULT_BUFFER_TOO_SMALL:
                continue
            check(rc)
            return [
                {f[0]: getattr(arr[i], f[0]) for f in B.promshm_worker_info._fields_ if f[0] != "size"}
                for i in range(count.value)
            ]

    def render(self, format: Union[str, int] = "prometheus") -> bytes:
        """Every family of the area (and the ``promshm_*`` self-metrics) as text."""
        return _render(lib.promshm_area_render, self.handle, _format(format))

    def render_to_file(self, path: PathLike, format: Union[str, int] = "prometheus") -> None:
        """Render into ``path``, replaced atomically (node_exporter textfile collector)."""
        check(lib.promshm_area_render_to_file(self.handle, _format(format), encode(os.fspath(path), "path")))

    def close(self) -> None:
        """Release this handle (metrics made from the area keep the mapping alive)."""
        h, self._h = self._h, None
        if h is not None:
            lib.promshm_area_free(h)

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # interpreter shutdown
            pass

    def __repr__(self) -> str:
        kind = self.path or "anonymous"
        return f"<promshm.Area {kind}{' read-only' if self.read_only else ''}>"


def _options(pages: int, max_workers: int, eager: bool) -> B.promshm_area_options:
    for what, v in (("pages", pages), ("max_workers", max_workers)):
        if not isinstance(v, int) or v < 0 or v >= 2**32:
            raise InvalidArgumentError("invalid argument", 114, f"{what} must be a non-negative integer, got {v!r}")
    return B.promshm_area_options(
        size=ctypes.sizeof(B.promshm_area_options), pages=pages, max_workers=max_workers, eager=int(bool(eager))
    )


_last_size = [16384]


_buffer_types: Dict[int, Any] = {}


def _buffer_type(size: int) -> Any:
    """The ``c_char * size`` type, made once: ``create_string_buffer`` makes a
    new array type per call, a reference cycle that leaves garbage for the
    collector on every render (which ``GCCollector``'s counts would show)."""
    t = _buffer_types.get(size)
    if t is None:
        t = _buffer_types[size] = ctypes.c_char * size
    return t


def _render(func: Any, handle: c_void_p, fmt: int) -> bytes:
    """Call a ``*_render(handle, format, buf, len, &out_len)`` function into a bytes object."""
    size = _last_size[0]
    n = c_size_t()
    for _ in range(8):
        size = 1 << max(size - 1, 1).bit_length()  # a power of two: few buffer types
        buf = _buffer_type(size)()
        rc = func(handle, fmt, buf, size, byref(n))
        if rc == 0:
            _last_size[0] = max(16384, n.value + n.value // 4 + 1024)
            return buf.raw[: n.value]
        if rc != B.PROMSHM_RESULT_BUFFER_TOO_SMALL:
            _ffi.raise_for(rc)
        size = n.value + n.value // 4 + 4096
    _ffi.raise_for(B.PROMSHM_RESULT_BUFFER_TOO_SMALL, "the exposition kept growing")


# --------------------------------------------------------------------------
# The zero-configuration shared area.


class _Config:
    def __init__(self) -> None:
        self.path: Optional[str] = None
        self.pages = 0
        self.max_workers = 0
        self.flush_interval = 1.0
        self.eager = False
        env = os.environ
        if env.get("PROMSHM_PAGES"):
            self.pages = _env_int("PROMSHM_PAGES")
        if env.get("PROMSHM_MAX_WORKERS"):
            self.max_workers = _env_int("PROMSHM_MAX_WORKERS")
        if env.get("PROMSHM_FLUSH_INTERVAL"):
            try:
                self.flush_interval = float(env["PROMSHM_FLUSH_INTERVAL"])
            except ValueError:
                raise InvalidArgumentError(
                    "invalid argument", 114, f"PROMSHM_FLUSH_INTERVAL={env['PROMSHM_FLUSH_INTERVAL']!r} is not a number"
                ) from None
        self.eager = env.get("PROMSHM_EAGER", "").lower() in ("1", "true", "yes", "on")


def _env_int(name: str) -> int:
    try:
        return int(os.environ[name])
    except ValueError:
        raise InvalidArgumentError("invalid argument", 114, f"{name}={os.environ[name]!r} is not an integer") from None


class _State:
    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.config = _Config()
        self.area: Optional[Area] = None
        self.owner_pid: Optional[int] = None  # pid that unlinks the file at exit
        self.flusher: Optional[c_void_p] = None
        self.flusher_pid: Optional[int] = None
        self.mp_child = False  # a multiprocessing child: eager updates
        self.want_flusher = False  # a buffered family exists in this process
        self.stopped_pid: Optional[int] = None  # stop_flusher() was called in this pid


_state = _State()
# Every live metric family object (for re-binding after fork; see _after_mp_fork).
_families: "weakref.WeakSet[Any]" = weakref.WeakSet()
# Every live registry object (its lock is renewed after fork).
_registries: "weakref.WeakSet[Any]" = weakref.WeakSet()


def configure(
    path: Optional[PathLike] = None,
    *,
    pages: Optional[int] = None,
    max_workers: Optional[int] = None,
    flush_interval: Optional[float] = None,
    eager: Optional[bool] = None,
) -> None:
    """Configure the shared area and flushing of this process.

    ``path``, ``pages`` and ``max_workers`` choose the shared area and must be
    set before the first metric of the default registry (or any registry on
    :data:`SHARED`) is created; ``$PROMSHM_AREA``, ``$PROMSHM_PAGES`` and
    ``$PROMSHM_MAX_WORKERS`` do the same from the environment. ``path`` is
    exported in ``os.environ['PROMSHM_AREA']`` for child processes.

    ``flush_interval`` (seconds; ``0`` or ``None`` keeps the current value,
    default 1, ``$PROMSHM_FLUSH_INTERVAL``) is the period of the background
    flusher; ``0.0`` turns it off (then flush at request end with the
    WSGI/ASGI helpers or :func:`flush`).

    ``eager=True`` (``$PROMSHM_EAGER=1``) makes counter and histogram updates
    of families created afterwards write straight into the area: instantly
    visible, nothing to flush, a few nanoseconds more per update.
    """
    with _state.lock:
        c = _state.config
        if path is not None or pages is not None or max_workers is not None:
            if _state.area is not None:
                new = None if path is None else os.fspath(path)
                if (new is None or new == _state.area.path) and pages is None and max_workers is None:
                    pass
                else:
                    raise PromshmError(
                        f"the shared area is already in use ({_state.area.path}); call "
                        "promshm.configure() before creating metrics, or set PROMSHM_AREA"
                    )
            if path is not None:
                c.path = os.fspath(path)
            if pages is not None:
                c.pages = pages
            if max_workers is not None:
                c.max_workers = max_workers
        if flush_interval is not None:
            if flush_interval < 0:
                raise InvalidArgumentError("invalid argument", 114, "flush_interval must be >= 0")
            c.flush_interval = float(flush_interval)
            if c.flush_interval == 0:
                stop_flusher()
            elif _state.flusher is not None:
                stop_flusher()
                start_flusher()
        if eager is not None:
            c.eager = bool(eager)


def area_path() -> Optional[str]:
    """The path of the shared area if it is a file and in use, else None."""
    a = _state.area
    return a.path if a is not None else None


def shared_area() -> Area:
    """The shared area of this application, created or opened on first use."""
    a = _state.area
    if a is not None:
        return a
    with _state.lock:
        if _state.area is None:
            _state.area = _open_shared()
        return _state.area


def _open_shared() -> Area:
    c = _state.config
    path = c.path or os.environ.get("PROMSHM_AREA") or None
    owner = False
    if path is None:
        path, root = _default_path()
        owner = root == os.getpid()
        _sweep(Path(path).parent)
    area = Area(path, pages=c.pages, max_workers=c.max_workers)
    os.environ["PROMSHM_AREA"] = path
    if owner:
        _state.owner_pid = os.getpid()
    return area


def _open_dir(path: str) -> int:
    """A descriptor of the directory ``path`` itself (never through a symbolic link)."""
    return os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)


def _dir_refusal(fd: int, private: bool) -> Optional[str]:
    """Why the opened directory may not hold our areas, or None.

    It must be ours (effective uid) and writable by nobody else; a
    ``private`` one (made by us) must be ``0700`` (it is fixed if it is ours).
    """
    st = os.fstat(fd)
    if not stat.S_ISDIR(st.st_mode):
        return "it is not a directory"
    if st.st_uid != os.geteuid():
        return f"it is owned by uid {st.st_uid}, not by this process's uid {os.geteuid()}"
    if private and st.st_mode & 0o077:
        os.fchmod(fd, 0o700)
    elif st.st_mode & 0o022:
        return f"others may write it (mode {stat.S_IMODE(st.st_mode):04o})"
    return None


def _check_dir(path: str, private: bool) -> Optional[str]:
    try:
        fd = _open_dir(path)
    except OSError as e:
        if e.errno in (errno.ELOOP, errno.ENOTDIR) and os.path.islink(path):
            return "it is a symbolic link"
        return e.strerror or str(e)
    try:
        return _dir_refusal(fd, private)
    except OSError as e:
        return e.strerror or str(e)
    finally:
        os.close(fd)


def _private_dir(base: str) -> "tuple[Optional[str], str]":
    """``<base>/promshm-<uid>``, made ``0700`` if missing, if it is ours."""
    d = os.path.join(base, f"promshm-{os.geteuid()}")
    try:
        os.mkdir(d, 0o700)
    except FileExistsError:
        pass
    except OSError as e:
        return None, f"{d}: {e.strerror or e}"
    why = _check_dir(d, private=True)
    return (d, "") if why is None else (None, f"{d}: {why}")


def _runtime_dir() -> Path:
    """The directory of zero-config area files: private to this user.

    ``$PROMSHM_DIR`` or ``$XDG_RUNTIME_DIR`` as they are if this user owns
    them and nobody else may write them; otherwise (``/dev/shm``, the
    temporary directory, a shared ``$PROMSHM_DIR``) a ``promshm-<uid>``
    directory inside, ``0700`` and owned by this user, so that another local
    user can neither read, plant nor block the areas. A candidate taken by
    another user is skipped with a warning. Every process of the user walks
    the same candidates, so they all find the same directory.
    """
    refused: List[str] = []
    home = os.path.expanduser("~")
    for cand, direct in (
        (os.environ.get("PROMSHM_DIR"), True),
        (os.environ.get("XDG_RUNTIME_DIR"), True),
        ("/dev/shm", False),
        (tempfile.gettempdir(), False),
        (os.path.join(home, ".cache") if home != "~" else None, False),
    ):
        if not cand or not os.path.isdir(cand) or not os.access(cand, os.W_OK | os.X_OK):
            continue
        d = cand if direct and _check_dir(cand, private=False) is None else None
        if d is None:
            d, why = _private_dir(cand)
        if d is None:
            refused.append(why)
            continue
        if refused:
            warnings.warn(
                f"promshm: not using {'; '.join(refused)}; zero-config areas go to {d}",
                RuntimeWarning,
                stacklevel=3,
            )
        return Path(d)
    raise PromshmError(
        "no private directory for the zero-config area: "
        + ("; ".join(refused) or "no writable candidate")
        + " (set PROMSHM_DIR to a directory of yours, or PROMSHM_AREA to a file)"
    )


def _boot_id() -> str:
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            return f.read().strip().replace("-", "")[:8]
    except OSError:
        return "0"


_NAME_RE = re.compile(r"^promshm-(\d+)-([0-9a-f]+)-(\d+)-(\d+)\.area$")


def _default_path() -> "tuple[str, int]":
    root = _root_pid()
    start = _start_time(root) or 0
    name = f"promshm-{os.geteuid()}-{_boot_id()}-{root}-{start}.area"
    return str(_runtime_dir() / name), root


def _sweep(directory: Path) -> None:
    """Remove zero-config area files of this user whose root process is gone."""
    uid = str(os.geteuid())
    boot = _boot_id()
    try:
        names = os.listdir(directory)
    except OSError:
        return
    for name in names:
        m = _NAME_RE.match(name)
        if not m or m.group(1) != uid:
            continue
        pid, start = int(m.group(3)), int(m.group(4))
        if m.group(2) == boot and _start_time(pid) == start:
            continue  # its root is alive
        try:
            os.unlink(directory / name)
        except OSError:
            pass


# --- process tree --------------------------------------------------------


def _stat(pid: int) -> Optional[List[str]]:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read().decode("utf-8", "replace")
    except OSError:
        return None
    # comm may contain spaces and parentheses: split after the last ')'.
    rest = data[data.rfind(")") + 2 :].split()
    return rest  # rest[0] is field 3 (state)


def _start_time(pid: int) -> Optional[int]:
    st = _stat(pid)
    if st is None or len(st) < 20:
        return None
    return int(st[19])  # field 22: starttime


def _ppid(pid: int) -> int:
    st = _stat(pid)
    if st is None or len(st) < 2:
        return 0
    return int(st[1])  # field 4: ppid


def _cmdline(pid: int) -> Optional[bytes]:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read()
    except OSError:
        return None


def _exe(pid: int) -> Optional[str]:
    try:
        return os.readlink(f"/proc/{pid}/exe")
    except OSError:
        return None


_MP_MARKERS = (b"--multiprocessing-fork", b"multiprocessing.forkserver", b"multiprocessing.spawn")
_TITLES = (b"gunicorn:", b"uWSGI", b"uwsgi", b"celery", b"[celeryd")


def _same_program(child: int, parent: int) -> bool:
    """Whether ``child`` is a worker of ``parent`` (same program, forked or spawned)."""
    ce, pe = _exe(child), _exe(parent)
    if ce is None or pe is None or ce != pe:
        return False
    cc, pc = _cmdline(child), _cmdline(parent)
    if cc is None or pc is None:
        return False
    if cc == pc:
        return True
    if any(m in cc for m in _MP_MARKERS) or any(m in pc for m in _MP_MARKERS[1:]):
        return True
    return any(cc.startswith(t) and pc.startswith(t) for t in _TITLES)


def _root_pid() -> int:
    """The root process of this application (see the module docstring)."""
    me = os.getpid()
    if not os.path.isdir(f"/proc/{me}"):  # no procfs: the parent if we are a multiprocessing child
        return _mp_parent_pid() or me
    try:
        import uwsgi  # type: ignore[import-not-found]

        mpid = int(uwsgi.masterpid())
        if mpid > 0:
            return mpid
    except Exception:
        pass
    pid = me
    mp_parent = _mp_parent_pid()
    for _ in range(64):
        ppid = _ppid(pid)
        if ppid <= 0:  # (pid 1 may be the master itself, e.g. gunicorn as a container's init)
            break
        if (pid == me and ppid == mp_parent) or _same_program(pid, ppid):
            pid = ppid
        else:
            break
    return pid


def _mp_parent_pid() -> Optional[int]:
    import sys

    mp = sys.modules.get("multiprocessing")
    if mp is None:
        return None
    try:
        parent = mp.parent_process()
        if parent is not None:
            return parent.pid
        if getattr(mp.current_process(), "_inheriting", False):
            return os.getppid()
    except Exception:
        pass
    return None


# --------------------------------------------------------------------------
# Update mode, flushing.


def update_mode() -> int:
    """The update mode for counters and histograms registered now in this process."""
    if _state.config.eager or _state.mp_child:
        return B.PROMSHM_UPDATE_MODE_EAGER
    if _mp_parent_pid() is not None:
        _state.mp_child = True
        return B.PROMSHM_UPDATE_MODE_EAGER
    return B.PROMSHM_UPDATE_MODE_BUFFERED


def flush() -> None:
    """Push this process's buffered updates (every thread's) into the areas.

    Call it at the end of a request or task when not using the WSGI/ASGI
    helpers (which do it); cheap when nothing changed. Also called
    ``transfer()`` (instrumentor's name).
    """
    check(lib.promshm_flush())


def start_flusher(interval: Optional[float] = None) -> bool:
    """Start the library's background flusher in this process (idempotent).

    Returns whether a flusher is running. Started automatically when the
    first buffered metric is created, unless the interval is 0.
    """
    with _state.lock:
        iv = _state.config.flush_interval if interval is None else float(interval)
        if iv <= 0:
            return False
        if _state.flusher is not None and _state.flusher_pid == os.getpid():
            return True
        h = c_void_p()
        check(lib.promshm_flusher_start(max(1, int(iv * 1000)), byref(h)))
        _state.flusher = h
        _state.flusher_pid = os.getpid()
        _state.stopped_pid = None
        return True


def stop_flusher() -> None:
    """Stop this process's background flusher (it flushes one last time).

    It stays stopped in this process (new metrics do not restart it) until
    :func:`start_flusher`; processes forked afterwards start their own."""
    with _state.lock:
        h, pid = _state.flusher, _state.flusher_pid
        _state.flusher = None
        _state.flusher_pid = None
        _state.stopped_pid = os.getpid()
        if h is not None and pid == os.getpid():
            lib.promshm_flusher_stop(h)


def _need_flusher() -> None:
    """Called when a buffered family is created or a new series of one is
    resolved (slow paths only, never on an update): start this process's
    timer if it has none — also in a process forked without Python's fork
    hooks (a C-level fork), where the pid tells."""
    _state.want_flusher = True
    pid = os.getpid()
    if _state.flusher_pid != pid and _state.stopped_pid != pid and _state.config.flush_interval > 0:
        start_flusher()


def _request_end() -> None:
    """End of a request (the WSGI/ASGI helpers): flush, and make sure this
    process has its flusher even if it was forked without Python's fork
    hooks (uWSGI without ``py-call-osafterfork``)."""
    _flush_quietly()
    if _state.want_flusher and not _state.mp_child:
        try:
            _need_flusher()
        except Exception:
            pass


def _renew_locks() -> None:
    """Replace every lock of the package in a forked child.

    A lock another thread of the parent held at fork time (across a call
    that releases the GIL) stays held forever in the child, whose copy of
    that thread does not exist: the child would hang on first use."""
    _state.lock = threading.RLock()
    for fam in list(_families):
        fam._lock = threading.Lock()
    for reg in list(_registries):
        reg._lock = threading.RLock()


def _after_fork_child() -> None:
    """``os.register_at_fork`` child handler (os.fork, multiprocessing,
    billiard/Celery, gunicorn, daemons).

    The parent's flusher thread did not survive fork(); its handle belongs
    to the parent's memory image: forget it (never stop, join or signal it)
    and start this child's own, whenever a buffered family exists and the
    interval is not 0 — whether or not the parent's flusher was running
    (a parent may flush at request end and have stopped its flusher; the
    child may never end a request). A child that ends requests flushes at
    their end too; a ``multiprocessing`` child switches to eager updates
    (see :func:`_after_mp_fork`)."""
    _state.flusher = None
    _state.flusher_pid = None
    _renew_locks()
    for fam in list(_families):
        try:
            fam._forked()  # a per-process gauge's series: this pid's
        except Exception:
            pass
    if _state.want_flusher and not _state.mp_child:
        try:
            start_flusher()
        except Exception:
            pass


def _after_mp_fork(_obj: Any = None) -> None:
    """In a process started by multiprocessing: switch to eager updates.

    Pools are commonly ended with ``terminate()`` (``with Pool() as p``), which
    kills the workers with SIGTERM and runs no exit handler, so buffered
    updates would be lost. Families inherited from the parent are re-bound
    eagerly (same series, new handles); families created later are eager.
    """
    _state.mp_child = True
    # The flusher inherited from the parent was forgotten by _after_fork_child
    # (never stopped, joined or notified: its thread does not exist here).
    # The one that handler started for this child is left running: stopping a
    # thread just after fork is where a child can hang, and with eager
    # updates it has nothing to do.
    for fam in list(_families):
        try:
            fam._rebind()
        except Exception:
            pass
    try:
        from multiprocessing import util

        util.Finalize(None, _flush_quietly, exitpriority=100)
    except Exception:
        pass


def stop_flusher_quietly() -> None:
    try:
        stop_flusher()
    except Exception:
        pass


def _flush_quietly() -> None:
    try:
        lib.promshm_flush()
    except Exception:
        pass


class _AfterForkAnchor:
    """A long-lived object for multiprocessing.util.register_after_fork."""


_anchor = _AfterForkAnchor()


def _install_hooks() -> None:
    if hasattr(os, "register_at_fork"):
        os.register_at_fork(after_in_child=_after_fork_child)
    try:
        from multiprocessing import util

        util.register_after_fork(_anchor, _after_mp_fork)
    except Exception:
        pass
    atexit.register(_at_exit)


def _at_exit() -> None:
    _flush_quietly()
    stop_flusher_quietly()
    owner = _state.owner_pid
    a = _state.area
    if owner is not None and owner == os.getpid() and a is not None and a.path:
        try:
            os.unlink(a.path)
        except OSError:
            pass


_install_hooks()

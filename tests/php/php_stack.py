"""nginx + php-fpm + `promshm serve` on 127.0.0.1, for tests/php and the benchmark.

`Stack` renders examples/php/{php-fpm.conf,nginx.conf} into a fresh temp dir
(pid files, sockets, logs, the area file), starts php-fpm8.2 and nginx in the
foreground as processes of their own (no system service), opens the area
with one request, then starts `promshm serve` on it. `stop()` ends them all,
by process group, bounded in time. `drive()` sends many concurrent requests
(asyncio, raw HTTP/1.0) while scraping /metrics, and `scrape()` reads it.
"""

from __future__ import annotations

import asyncio
import os
import pwd
import grp
import resource
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "php"
PHP_FPM = shutil.which("php-fpm8.2") or shutil.which("php-fpm") or "/usr/sbin/php-fpm8.2"
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
PROMSHM = Path(os.environ.get("PROMSHM_CLI", REPO / "target" / "release" / "promshm"))
LIBRARY = Path(os.environ.get("PROMSHM_LIBRARY", REPO / "target" / "release" / "libpromshm.so"))
PACKAGE = REPO / "bindings" / "php"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def raise_fd_limit() -> None:
    """Lift the soft open-files limit to the hard one (thousands of sockets)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def wait_for(what: str, check, timeout: float = 15.0, proc: subprocess.Popen | None = None):
    """Poll `check()` until it returns a true value; fail after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{what}: process exited with {proc.returncode}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(0.05)


def http_get(url: str, timeout: float = 10.0) -> tuple[int, str]:
    """GET `url`: (status, body)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(errors="replace")


@dataclass
class Stack:
    """One php-fpm pool, its nginx and its `promshm serve` (unless `serve` is
    false). `app` is the directory of the index.php nginx runs."""

    children: int = 4
    max_requests: int = 0
    ffi: str = "preload"
    app: Path = EXAMPLE / "app"
    serve: bool = True
    dir: Path = field(init=False)
    port: int = field(init=False)
    metrics_port: int = field(init=False)
    procs: dict = field(default_factory=dict, init=False)

    def __post_init__(self):
        self.dir = Path(tempfile.mkdtemp(prefix="promshm-php-"))
        os.chmod(self.dir, 0o755)
        self.port = free_port()
        self.metrics_port = free_port()
        if os.geteuid() == 0:
            self.user, self.group = "nobody", grp.getgrgid(pwd.getpwnam("nobody").pw_gid).gr_name
        else:
            self.user = pwd.getpwuid(os.geteuid()).pw_name
            self.group = grp.getgrgid(os.getegid()).gr_name
        self.area = self.dir / "area" / "app.promshm"
        self.state = self.dir / "state"

    # -- configuration ----------------------------------------------------
    def render(self, name: str) -> Path:
        """examples/php/NAME with its placeholders filled in, written to the temp dir."""
        values = {
            "DIR": str(self.dir),
            "APP": str(self.app),
            "PORT": str(self.port),
            "METRICS_PORT": str(self.metrics_port),
            "CHILDREN": str(self.children),
            "MAX_REQUESTS": str(self.max_requests),
            "USER": self.user,
            "GROUP": self.group,
            "LIBRARY": str(LIBRARY),
        }
        text = (EXAMPLE / name).read_text()
        for key, value in values.items():
            text = text.replace(f"@{key}@", value)
        assert "@" not in "".join(l for l in text.splitlines() if not l.lstrip().startswith((";", "#"))), text
        out = self.dir / name
        out.write_text(text)
        return out

    def php_ini_args(self) -> list[str]:
        """php-fpm -d options for the FFI mode: "preload" is php-fpm's default
        ffi.enable=preload, with the package's opcache.preload script and the
        ffi.preload header its tools/scope-header.php writes (what a root
        master with opcache.preload_user needs); "cdef" is ffi.enable=true."""
        if self.ffi == "cdef":
            return ["-d", "ffi.enable=true"]
        assert self.ffi == "preload", self.ffi
        header = self.dir / "promshm-scope.h"
        with open(header, "wb") as out:
            subprocess.run(["php8.2", str(PACKAGE / "tools" / "scope-header.php"), str(LIBRARY)],
                           stdout=out, check=True, timeout=30)
        args = ["-d", "ffi.enable=preload", "-d", f"ffi.preload={header}",
                "-d", "opcache.enable=1", "-d", f"opcache.preload={PACKAGE / 'preload.php'}"]
        if os.geteuid() == 0:
            args += ["-d", f"opcache.preload_user={self.user}"]
        return args

    # -- processes --------------------------------------------------------
    def _spawn(self, name: str, argv: list[str]) -> subprocess.Popen:
        log = open(self.dir / f"{name}.out", "wb")
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True, cwd=self.dir)
        self.procs[name] = proc
        return proc

    def start(self) -> "Stack":
        uid = pwd.getpwnam(self.user).pw_uid
        gid = grp.getgrnam(self.group).gr_gid
        for sub in ("area", "state", "nginx-tmp"):
            (self.dir / sub).mkdir()
            os.chown(self.dir / sub, uid, gid)
        fpm_conf = self.render("php-fpm.conf")
        nginx_conf = self.render("nginx.conf")
        try:
            fpm = self._spawn("php-fpm", [PHP_FPM, "-F", "-y", str(fpm_conf), *self.php_ini_args()])
            wait_for("php-fpm socket", lambda: (self.dir / "php-fpm.sock").exists(), proc=fpm)
            wait_for(f"{self.children} php-fpm children", lambda: len(self.child_pids()) == self.children, proc=fpm)
            ngx = self._spawn("nginx", [NGINX, "-p", str(self.dir), "-c", str(nginx_conf),
                                        "-e", str(self.dir / "nginx-error.log")])
            wait_for("nginx port", lambda: self._port_open(self.port), proc=ngx)
            if self.serve:
                status, body = http_get(self.url("/?op=warm"))
                if status != 200:
                    raise RuntimeError(f"warm-up request: {status} {body!r}\n{self.logs()}")
                wait_for("area file", self.area.exists)
                serve_args = [str(PROMSHM), "serve", "--listen", f"127.0.0.1:{self.metrics_port}"]
                if os.geteuid() == 0 and self.user != "root":
                    serve_args += ["--allow-owner", self.user]
                srv = self._spawn("serve", serve_args + [str(self.area)])
                wait_for("promshm serve port", lambda: self._port_open(self.metrics_port), proc=srv)
        except BaseException:
            self.stop()
            raise
        return self

    @staticmethod
    def _port_open(port: int) -> bool:
        with socket.socket() as s:
            s.settimeout(0.5)
            return s.connect_ex(("127.0.0.1", port)) == 0

    def master_pid(self) -> int:
        return self.procs["php-fpm"].pid

    def child_pids(self) -> list[int]:
        """The php-fpm master's children now."""
        master = self.procs["php-fpm"].pid
        pids = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                stat = (Path("/proc") / entry / "stat").read_text()
            except OSError:
                continue
            fields = stat.rsplit(")", 1)[1].split()
            if int(fields[1]) == master and fields[0] != "Z":
                pids.append(int(entry))
        return sorted(pids)

    def stop(self) -> None:
        """TERM every process group, then KILL what is left after 10 s."""
        for proc in self.procs.values():
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        deadline = time.monotonic() + 10
        for proc in self.procs.values():
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                proc.wait(timeout=5)

    def cleanup(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)

    def logs(self) -> str:
        """The servers' logs, for failure messages."""
        out = []
        for name in ("php-fpm.out", "php-fpm.log", "nginx.out", "nginx-error.log", "serve.out"):
            path = self.dir / name
            if path.exists():
                out.append(f"--- {name}\n{path.read_text(errors='replace')[-4000:]}")
        return "\n".join(out)

    # -- HTTP -------------------------------------------------------------
    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.metrics_port}/metrics"

    def scrape(self, timeout: float = 10.0) -> str:
        status, body = http_get(self.metrics_url(), timeout=timeout)
        if status != 200:
            raise RuntimeError(f"scrape: HTTP {status}: {body!r}")
        return body


async def _get(port: int, path: str, timeout: float, on_sent=None) -> tuple[int, str]:
    """One HTTP/1.0 GET on a fresh connection: (status, body); status 0 on
    error. `on_sent()` is called just before the request is written."""
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), timeout)
        try:
            if on_sent is not None:
                on_sent()
            writer.write(f"GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n".encode())
            await writer.drain()
            data = await asyncio.wait_for(reader.read(), timeout)
        finally:
            writer.close()
    except (OSError, asyncio.TimeoutError):
        return 0, ""
    head, _, body = data.partition(b"\r\n\r\n")
    try:
        status = int(head.split(b" ", 2)[1])
    except (IndexError, ValueError):
        return 0, ""
    return status, body.decode(errors="replace")


@dataclass
class Scrape:
    """A scrape taken while requests ran: the page, and the number of 200
    responses received before it was asked for and of requests sent before
    its answer came."""

    page: str
    ok_before: int
    sent_before_end: int


@dataclass
class Run:
    """What `drive` saw: per request (index, status, body), and the scrapes."""

    results: list
    scrapes: list


def drive(stack: Stack, paths: list[str], scrape_every: float = 0.02, timeout: float = 120.0,
          during=None) -> Run:
    """Send every path at once (one connection each) through nginx while
    scraping `promshm serve` every `scrape_every` s (in a thread: the event
    loop is busy with the requests). `during(stack, counts)` (optional) runs
    alongside in a thread of its own, with the live counters."""
    raise_fd_limit()
    counts = {"sent": 0, "ok": 0, "done": 0}

    async def one(i: int, path: str):
        status, body = await _get(stack.port, path, timeout, on_sent=lambda: counts.__setitem__("sent", counts["sent"] + 1))
        counts["done"] += 1
        if status == 200:
            counts["ok"] += 1
        return i, status, body

    def scraper(stop: threading.Event, scrapes: list, errors: list):
        # A thread of its own: the event loop is busy with the requests.
        while not stop.is_set():
            ok_before = counts["ok"]
            try:
                page = stack.scrape(timeout=10.0)
            except Exception as e:  # reported by drive's caller
                errors.append(e)
                return
            scrapes.append(Scrape(page, ok_before, counts["sent"]))
            stop.wait(scrape_every)

    async def main():
        stop = threading.Event()
        scrapes: list = []
        errors: list = []
        scraping = threading.Thread(target=scraper, args=(stop, scrapes, errors), daemon=True)
        scraping.start()
        try:
            side = threading.Thread(target=during, args=(stack, counts), daemon=True) if during else None
            if side is not None:
                side.start()
            results = await asyncio.gather(*(one(i, p) for i, p in enumerate(paths)))
            if side is not None:
                side.join(60)
                assert not side.is_alive(), "drive: `during` did not end"
        finally:
            stop.set()
            scraping.join(30)
        if errors:
            raise AssertionError(f"a scrape during the run failed: {errors[0]}")
        return Run(sorted(results), scrapes)

    return asyncio.run(asyncio.wait_for(main(), timeout + 60))

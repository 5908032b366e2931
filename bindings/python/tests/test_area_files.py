"""Area files another local user could plant, read or block (issue 9 item 8),
and files that are not regular (item 10), through the Python package and
the C API it calls.

The two-user test needs root: it runs the victim and the attacker as two
real, unprivileged uids.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path
from typing import Dict, List

import pytest

import promshm
from conftest import child_env

VICTIM = 65534  # nobody
ATTACKER = 65533
TIMEOUT = 60

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to act as two users")


def _as(uid: int) -> Dict[str, int]:
    return {"user": uid, "group": uid, "extra_groups": []}


def _interpreter_for(uid: int) -> str:
    """A Python the unprivileged uid can run (the test's may live under /root)."""
    for exe in (sys.executable, "/usr/bin/python3", shutil.which("python3") or ""):
        if not exe:
            continue
        try:
            r = subprocess.run([exe, "-c", "pass"], capture_output=True, timeout=TIMEOUT, **_as(uid))
        except OSError:
            continue
        if r.returncode == 0:
            return exe
    pytest.skip(f"no Python interpreter that uid {uid} may run")


def _user_env(top: str, **extra: str) -> Dict[str, str]:
    """An environment with the package and library copied where other uids can read them."""
    pkg = os.path.join(top, "pkg")
    if not os.path.isdir(pkg):
        shutil.copytree(Path(promshm.__file__).parent, os.path.join(pkg, "promshm"))
        shutil.copy(promshm.library_path, os.path.join(top, "libpromshm.so"))
        os.chmod(os.path.join(top, "libpromshm.so"), 0o755)
        os.chmod(pkg, 0o755)
        for root, dirs, files in os.walk(pkg):
            for n in dirs:
                os.chmod(os.path.join(root, n), 0o755)
            for n in files:
                os.chmod(os.path.join(root, n), 0o644)
    env = child_env(**extra)
    env["PYTHONPATH"] = pkg
    env["PROMSHM_LIBRARY"] = os.path.join(top, "libpromshm.so")
    return env


def _run_as(uid: int, code: str, env: Dict[str, str], *args: str) -> str:
    out = subprocess.run(
        [_interpreter_for(uid), "-c", textwrap.dedent(code), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        **_as(uid),
    )
    assert out.returncode == 0, out.stderr
    return out.stdout


def _start_time(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as f:
        data = f.read()
    return int(data[data.rfind(")") + 2 :].split()[19])


VICTIM_SCRIPT = """
import sys
sys.stdin.readline()  # until the attacker is done
import promshm
promshm.Counter("victim_secret_requests", "Secret.", ["customer"]).labels("acme-bank").inc(42)
promshm.flush()
print(promshm.area_path(), flush=True)
sys.stdout.write(promshm.generate_latest().decode())
sys.stdout.write("@@end\\n")
sys.stdout.flush()
sys.stdin.readline()  # stay alive, keeping the area, until told
"""

PLANT_SCRIPT = """
import os, sys
import promshm
for path in sys.argv[1:]:
    promshm.Area(path, pages=8).close()
    os.chmod(path, 0o666)
"""

PROBE_SCRIPT = """
import os, sys
d, f = sys.argv[1], sys.argv[2]
for what, op in (
    ("list", lambda: os.listdir(d)),
    ("read", lambda: open(f, "rb").read(1)),
    ("plant", lambda: open(os.path.join(d, "planted.area"), "xb").close()),
    ("remove", lambda: os.unlink(f)),
):
    try:
        op()
        print(what, "ALLOWED")
    except OSError as e:
        print(what, "denied", e.errno)
"""


@needs_root
def test_another_user_can_neither_plant_read_nor_block_the_zero_config_area() -> None:
    top = tempfile.mkdtemp(prefix="promshm-users-", dir="/tmp")
    shm = os.path.join(top, "shm")  # a sticky, world-writable directory, like /dev/shm
    dev_shm_dir = f"/dev/shm/promshm-{VICTIM}"
    had_dev_shm_dir = os.path.lexists(dev_shm_dir)
    victim = None
    try:
        os.chmod(top, 0o755)
        os.mkdir(shm)
        os.chmod(shm, 0o1777)
        env = _user_env(top, PROMSHM_DIR=shm, HOME="/nonexistent")
        env.pop("XDG_RUNTIME_DIR", None)
        env.pop("PROMSHM_AREA", None)
        victim = subprocess.Popen(
            [_interpreter_for(VICTIM), "-c", VICTIM_SCRIPT],
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            **_as(VICTIM),
        )
        # The attacker computes the victim's zero-config file name from /proc,
        # plants a valid 0666 area there (old layout: straight in the shared
        # directory) and takes the victim's private directory name.
        name = (
            f"promshm-{VICTIM}-{promshm._area._boot_id()}-{victim.pid}-{_start_time(victim.pid)}.area"
        )
        blocked = os.path.join(shm, f"promshm-{VICTIM}")
        planted = [os.path.join(shm, name), os.path.join(blocked, name)]
        _run_as(ATTACKER, f"import os; os.mkdir({blocked!r}); os.chmod({blocked!r}, 0o777)", env)
        _run_as(ATTACKER, PLANT_SCRIPT, env, *planted)
        before = {p: Path(p).read_bytes() for p in planted}

        assert victim.stdin is not None and victim.stdout is not None
        victim.stdin.write("go\n")
        victim.stdin.flush()
        lines: List[str] = []
        while True:
            line = victim.stdout.readline()
            assert line, f"the victim died: {victim.stderr.read() if victim.stderr else ''}"
            if line == "@@end\n":
                break
            lines.append(line)
        area = lines[0].strip()
        assert "victim_secret_requests_total{customer=\"acme-bank\"} 42\n" in "".join(lines[1:])

        # The victim's area is neither planted file, and lies in a 0700 directory of its own.
        assert area not in planted and not area.startswith(blocked + "/")
        d = os.path.dirname(area)
        st = os.lstat(d)
        assert stat.S_ISDIR(st.st_mode) and st.st_uid == VICTIM, (d, st)
        assert stat.S_IMODE(st.st_mode) == 0o700, oct(st.st_mode)
        fst = os.lstat(area)
        assert fst.st_uid == VICTIM and stat.S_IMODE(fst.st_mode) == 0o600
        # Nothing of the victim went into the attacker's files.
        for p in planted:
            assert Path(p).read_bytes() == before[p]
            assert b"acme-bank" not in Path(p).read_bytes()
        # The attacker can't list, read, plant into or remove from the victim's directory.
        probe = _run_as(ATTACKER, PROBE_SCRIPT, env, d, area).splitlines()
        assert len(probe) == 4 and all("denied" in line for line in probe), probe
    finally:
        if victim is not None:
            try:
                victim.communicate("stop\n", timeout=TIMEOUT)
            except Exception:
                victim.kill()
                victim.wait()
        shutil.rmtree(top, ignore_errors=True)
        if not had_dev_shm_dir:
            shutil.rmtree(dev_shm_dir, ignore_errors=True)


ZERO_CONFIG = """
import os, stat, promshm
promshm.Counter("zc", "Zero config.").inc()
path = promshm.area_path()
d = os.path.dirname(path)
st = os.lstat(d)
print(path)
print(st.st_uid, oct(stat.S_IMODE(st.st_mode)))
"""


def test_zero_config_area_in_a_shared_directory_goes_to_a_private_subdirectory(tmp_path: Path) -> None:
    shared = tmp_path / "shm"
    shared.mkdir()
    shared.chmod(0o1777)
    env = child_env(PROMSHM_DIR=str(shared))
    out = subprocess.run(
        [sys.executable, "-c", ZERO_CONFIG], env=env, capture_output=True, text=True, timeout=TIMEOUT
    )
    assert out.returncode == 0, out.stderr
    path, owner = out.stdout.splitlines()
    assert Path(path).parent == shared / f"promshm-{os.geteuid()}", path
    assert owner == f"{os.geteuid()} 0o700"


def test_zero_config_refuses_a_symlinked_private_directory(tmp_path: Path) -> None:
    shared = tmp_path / "shm"
    shared.mkdir()
    shared.chmod(0o1777)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir(mode=0o700)
    (shared / f"promshm-{os.geteuid()}").symlink_to(elsewhere)
    xdg = tmp_path / "xdg"  # the next candidate: private to this user
    xdg.mkdir(mode=0o700)
    env = child_env(PROMSHM_DIR=str(shared), XDG_RUNTIME_DIR=str(xdg))
    out = subprocess.run(
        [sys.executable, "-c", ZERO_CONFIG], env=env, capture_output=True, text=True, timeout=TIMEOUT
    )
    assert out.returncode == 0, out.stderr
    path = out.stdout.splitlines()[0]
    assert Path(path).parent == xdg, path
    assert "symbolic link" in out.stderr, out.stderr
    assert not list(elsewhere.iterdir())


NOT_REGULAR = """
import sys, promshm
from promshm.errors import PromshmIOError
for how in ("create", "open", "open-ro"):
    try:
        if how == "create":
            promshm.Area(sys.argv[1])
        else:
            promshm.Area.open(sys.argv[1], read_only=how == "open-ro")
        print(how, "ACCEPTED")
    except PromshmIOError as e:
        print(how, e.code, e)
"""


@pytest.mark.parametrize("kind", ["fifo", "directory", "symlink"])
def test_files_that_are_not_regular_are_refused_promptly(tmp_path: Path, kind: str) -> None:
    path = tmp_path / f"{kind}.area"
    if kind == "fifo":
        os.mkfifo(path, 0o600)
    elif kind == "directory":
        path.mkdir()
    else:
        os.mkfifo(tmp_path / "target", 0o600)
        path.symlink_to(tmp_path / "target")
    out = subprocess.run(
        [sys.executable, "-c", NOT_REGULAR, str(path)],
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=10,  # a blocking open fails the test instead of hanging it
    )
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert len(lines) == 3, out.stdout
    word = {"fifo": "FIFO", "directory": "directory", "symlink": "symbolic link"}[kind]
    for line in lines:
        assert f" {promshm._bindings.PROMSHM_RESULT_UNSAFE_FILE} " in line, line
        assert str(path) in line and word in line, line

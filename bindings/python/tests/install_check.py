"""Check an installed promshm package, run with a venv's python from outside
the source tree (test_packaging.py for the wheel, scripts/test.sh for the
sdist): the package and its bundled libpromshm.so come from that venv, and 4
forked processes × 1,000 increments read back as exactly 4000.

Exits non-zero with a message on any difference; prints the total on success.
"""

import os
import re
import sys
from pathlib import Path

import promshm


def main() -> int:
    pkg = Path(promshm.__file__).resolve().parent
    prefix = Path(sys.prefix).resolve()
    if prefix not in pkg.parents:
        return _fail(f"promshm imported from {pkg}, not from the venv {prefix}")
    if Path(promshm.library_path).resolve() != pkg / "libpromshm.so":
        return _fail(f"library {promshm.library_path} is not the one bundled in {pkg}")
    counter = promshm.Counter("install_check_jobs", "Jobs done by the install check.")
    pids = []
    for _ in range(4):
        pid = os.fork()
        if pid == 0:
            for _ in range(1000):
                counter.inc()
            promshm.flush()
            os._exit(0)
        pids.append(pid)
    for pid in pids:
        _, status = os.waitpid(pid, 0)
        if status != 0:
            return _fail(f"child {pid} exited with status {status}")
    text = promshm.generate_latest().decode()
    m = re.search(r"^install_check_jobs_total (\S+)$", text, re.M)
    if not m or float(m[1]) != 4000:
        return _fail(f"expected install_check_jobs_total 4000, got:\n{text}")
    print(f"install check: {pkg}: install_check_jobs_total {m[1]}")
    return 0


def _fail(msg: str) -> int:
    print(f"install check failed: {msg}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())

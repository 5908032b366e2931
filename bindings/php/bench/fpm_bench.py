"""php-fpm benchmark: CPU per request of a pool whose request counts itself
and observes a value through PromPHP's API, with promshm vs APCu vs no store
vs no metrics code at all (fpm-app/index.php, ?store=).

    python3 bindings/php/bench/fpm_bench.py            # 3 rounds of 5 s per store
    python3 bindings/php/bench/fpm_bench.py --quick    # smoke run
    python3 bindings/php/bench/fpm_bench.py --cdef     # ffi.enable=true instead of preload

One nginx + php-fpm (pm = static, 2 children, ffi.enable=preload as in
production, opcache on) from examples/php's configs (tests/php/php_stack.py).
wrk (1 thread, 8 connections) loads it; "CPU per request" is the user +
system time of the pool's children (/proc/PID/stat) over the requests wrk
completed, which other load on the shared machine disturbs less than req/s.
Rounds interleave the stores; the figure is the median over rounds.
"""

from __future__ import annotations

import os
import re
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[2] / "tests" / "php"))
from php_stack import Stack, http_get  # noqa: E402

STORES = ["bare", "nothing", "apcu", "promshm"]
TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])
    return total / TICK


def main() -> None:
    quick = "--quick" in sys.argv
    rounds, seconds = (1, 1) if quick else (3, 5)
    ffi = "cdef" if "--cdef" in sys.argv else "preload"
    stack = Stack(children=2, app=HERE / "fpm-app", serve=False, ffi=ffi)
    stack.start()
    try:
        for store in STORES:
            status, body = http_get(stack.url(f"/?store={store}"))
            assert status == 200, (store, status, body, stack.logs())
        results: dict[str, list[tuple[float, float]]] = {s: [] for s in STORES}
        for _ in range(rounds):
            for store in STORES:
                pids = stack.child_pids()
                before = cpu_seconds(pids)
                out = subprocess.run(["wrk", "-t1", "-c8", f"-d{seconds}s", stack.url(f"/?store={store}")],
                                     capture_output=True, text=True, timeout=seconds + 30).stdout
                after = cpu_seconds(pids)
                assert stack.child_pids() == pids, "a child was replaced during the run"
                done = int(re.search(r"(\d+) requests in", out).group(1))
                errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
                assert errors is None, out
                results[store].append((done / seconds, (after - before) / done * 1e6))
        print(f"php-fpm, 2 children, FFI {ffi}, wrk -t1 -c8, {rounds} x {seconds} s per store (median)\n")
        print("| request does | req/s | CPU per request (pool's children) |")
        print("| --- | ---: | ---: |")
        names = {"bare": "nothing (no metrics code)", "nothing": "PromPHP API, no store",
                 "apcu": "PromPHP API, APCu store", "promshm": "PromPHP API, promshm"}
        for store in STORES:
            rps = statistics.median(r for r, _ in results[store])
            cpu = statistics.median(c for _, c in results[store])
            print(f"| {names[store]} | {rps:,.0f} | {cpu:.1f} µs |")
    finally:
        stack.stop()
        stack.cleanup()


if __name__ == "__main__":
    main()

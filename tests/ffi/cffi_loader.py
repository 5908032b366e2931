"""promshm through cffi in ABI mode, from include/promshm_ffi.h as it is.

    python3 cffi_loader.py LIBRARY HEADER AREA_FILE OUT_FILE N

Creates the area file, registers a labelled counter and histogram with the
_simple calls and an error object, forks: parent and child each make N
increments and N observations; the parent waits, renders with
promshm_area_render_alloc, checks the exact totals, writes the text to
OUT_FILE, frees everything, and prints `cffi ok ... ns_per_inc=X`.
"""

import os
import sys
import time

import cffi

lib_path, header, area_file, out_file, n = sys.argv[1:6]
n = int(n)
ffi = cffi.FFI()
ffi.cdef(open(header).read())
lib = ffi.dlopen(lib_path)
err = lib.promshm_error_new()


def check(rc, what):
    if rc != lib.PROMSHM_RESULT_OK:
        detail = ffi.string(lib.promshm_error_detail(err)).decode()
        sys.exit(f"cffi: {what} failed: {rc} {detail}")


area = ffi.new("const promshm_area **")
check(lib.promshm_area_create_e(area_file.encode(), ffi.NULL, area, err), "area_create")
reg = ffi.new("const promshm_registry **")
check(lib.promshm_registry_new_e(area[0], ffi.NULL, ffi.NULL, 0, reg, err), "registry_new")
lang = ffi.new("char[]", b"lang")
label_names = ffi.new("const char *[]", [lang])
counter = ffi.new("const promshm_family **")
check(lib.promshm_registry_counter_simple(reg[0], b"ffi_requests", b"Requests.", label_names, 1, counter, err), "counter")
buckets = ffi.new("double[]", [0.1, 1.0])
hist = ffi.new("const promshm_family **")
check(lib.promshm_registry_histogram_simple(reg[0], b"ffi_latency", b"Latency.", label_names, 1, buckets, 2, hist, err), "histogram")


def series(family, value):
    v = ffi.new("char[]", value.encode())
    values = ffi.new("const char *[]", [v])
    out = ffi.new("const promshm_series **")
    check(lib.promshm_family_labels_e(family, values, 1, out, err), "labels")
    return out[0]


c = series(counter[0], "cffi")
h = series(hist[0], "cffi")
pid = os.fork()
for _ in range(n):
    lib.promshm_counter_inc(c)
    lib.promshm_histogram_observe(h, 0.5)
check(lib.promshm_flush_e(err), "flush")
if pid == 0:
    os._exit(0)
_, status = os.waitpid(pid, 0)
if status != 0:
    sys.exit(f"cffi: child exited with {status}")

bench = series(counter[0], "cffi-bench")
inc = lib.promshm_counter_inc
t0 = time.perf_counter_ns()
for _ in range(n):
    inc(bench)
ns = (time.perf_counter_ns() - t0) / n

text = ffi.new("char **")
length = ffi.new("size_t *")
check(lib.promshm_area_render_alloc(area[0], lib.PROMSHM_FORMAT_PROMETHEUS, text, length, err), "render_alloc")
page = ffi.unpack(text[0], length[0]).decode()
lib.promshm_render_free(text[0])
for line in (f'ffi_requests_total{{lang="cffi"}} {2 * n}', f'ffi_latency_count{{lang="cffi"}} {2 * n}'):
    if line not in page.splitlines():
        sys.exit(f"cffi: {line!r} not in the page:\n{page}")
open(out_file, "w").write(page)
for s in (c, h, bench):
    lib.promshm_series_free(s)
lib.promshm_family_free(counter[0])
lib.promshm_family_free(hist[0])
lib.promshm_registry_free(reg[0])
lib.promshm_area_free(area[0])
lib.promshm_error_free(err)
print(f"cffi ok counter={2 * n} ns_per_inc={ns:.1f}")

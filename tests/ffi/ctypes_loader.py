"""promshm through ctypes, declared from docs/promshm-api.json alone.

    python3 ctypes_loader.py LIBRARY API_JSON AREA_FILE OUT_FILE N

As cffi_loader.py; prints `ctypes ok ... ns_per_inc=X`.
"""

import ctypes
import json
import os
import sys
import time

lib_path, api_path, area_file, out_file, n = sys.argv[1:6]
n = int(n)
api = json.load(open(api_path))
aliases = {t["name"]: t["type"] for t in api["typedefs"]}
callbacks = {c["name"] for c in api["callbacks"]}
SCALARS = {"uint8_t": ctypes.c_uint8, "uint32_t": ctypes.c_uint32, "uint64_t": ctypes.c_uint64,
           "size_t": ctypes.c_size_t, "int": ctypes.c_int, "double": ctypes.c_double, "bool": ctypes.c_bool, "void": None}


def ctype(t, returned=False):
    if t == "const char *":
        return ctypes.c_char_p
    if "*" in t or t in callbacks:
        return ctypes.c_void_p
    return SCALARS[aliases.get(t, t)]


lib = ctypes.CDLL(lib_path)
for f in api["functions"]:
    fn = getattr(lib, f["name"])
    fn.argtypes = [ctype(p["type"]) for p in f["params"]]
    fn.restype = ctype(f["returns"]["type"], returned=True)
C = {c["name"]: c["value"] for c in api["constants"]}
C.update({m["name"]: m["value"] for e in api["enums"] for m in e["members"]})
err = lib.promshm_error_new()


def check(rc, what):
    if rc != C["PROMSHM_RESULT_OK"]:
        sys.exit(f"ctypes: {what} failed: {rc} {lib.promshm_error_detail(err).decode()}")


def out():
    return ctypes.c_void_p()


def strings(*values):
    return (ctypes.c_char_p * len(values))(*[v.encode() for v in values])


area = out()
check(lib.promshm_area_create_e(area_file.encode(), None, ctypes.byref(area), err), "area_create")
reg = out()
check(lib.promshm_registry_new_e(area, None, None, 0, ctypes.byref(reg), err), "registry_new")
labels = strings("lang")
counter = out()
check(lib.promshm_registry_counter_simple(reg, b"ffi_requests", b"Requests.", labels, 1, ctypes.byref(counter), err), "counter")
buckets = (ctypes.c_double * 2)(0.1, 1.0)
hist = out()
check(lib.promshm_registry_histogram_simple(reg, b"ffi_latency", b"Latency.", labels, 1, buckets, 2, ctypes.byref(hist), err), "histogram")


def series(family, value):
    s = out()
    check(lib.promshm_family_labels_e(family, strings(value), 1, ctypes.byref(s), err), "labels")
    return s


c = series(counter, "ctypes")
h = series(hist, "ctypes")
pid = os.fork()
for _ in range(n):
    lib.promshm_counter_inc(c)
    lib.promshm_histogram_observe(h, 0.5)
check(lib.promshm_flush_e(err), "flush")
if pid == 0:
    os._exit(0)
_, status = os.waitpid(pid, 0)
if status != 0:
    sys.exit(f"ctypes: child exited with {status}")

bench = series(counter, "ctypes-bench")
inc = lib.promshm_counter_inc
t0 = time.perf_counter_ns()
for _ in range(n):
    inc(bench)
ns = (time.perf_counter_ns() - t0) / n

text = ctypes.c_void_p()
length = ctypes.c_size_t()
check(lib.promshm_area_render_alloc(area, C["PROMSHM_FORMAT_PROMETHEUS"], ctypes.byref(text), ctypes.byref(length), err), "render_alloc")
page = ctypes.string_at(text, length.value).decode()
lib.promshm_render_free(text)
for line in (f'ffi_requests_total{{lang="ctypes"}} {2 * n}', f'ffi_latency_count{{lang="ctypes"}} {2 * n}'):
    if line not in page.splitlines():
        sys.exit(f"ctypes: {line!r} not in the page:\n{page}")
open(out_file, "w").write(page)
for s in (c, h, bench):
    lib.promshm_series_free(s)
lib.promshm_family_free(counter)
lib.promshm_family_free(hist)
lib.promshm_registry_free(reg)
lib.promshm_area_free(area)
lib.promshm_error_free(err)
print(f"ctypes ok counter={2 * n} ns_per_inc={ns:.1f}")

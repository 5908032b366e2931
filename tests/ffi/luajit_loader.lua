-- promshm through LuaJIT's FFI, from include/promshm_ffi.h as it is.
--   luajit luajit_loader.lua LIBRARY HEADER AREA_FILE OUT_FILE N
-- As cffi_loader.py: create the area, register with the _simple calls and
-- an error object, fork (fork/waitpid/_exit declared from libc here, not in
-- the header), N increments and observations in each process, render_alloc,
-- exact totals, free; prints `luajit ok ... ns_per_inc=X`.
local ffi = require("ffi")
local lib_path, header, area_file, out_file, n = arg[1], arg[2], arg[3], arg[4], tonumber(arg[5])
local f = assert(io.open(header))
ffi.cdef(f:read("*a"))
f:close()
ffi.cdef [[
int fork(void);
int waitpid(int pid, int *status, int options);
void _exit(int status);
]]
local lib = ffi.load(lib_path)
local err = lib.promshm_error_new()

local function check(rc, what)
  if rc ~= lib.PROMSHM_RESULT_OK then
    io.stderr:write("luajit: ", what, " failed: ", tonumber(rc), " ", ffi.string(lib.promshm_error_detail(err)), "\n")
    os.exit(1)
  end
end

local area = ffi.new("const promshm_area *[1]")
check(lib.promshm_area_create_e(area_file, nil, area, err), "area_create")
local reg = ffi.new("const promshm_registry *[1]")
check(lib.promshm_registry_new_e(area[0], nil, nil, 0, reg, err), "registry_new")
local label_names = ffi.new("const char *[1]", { "lang" })
local counter = ffi.new("const promshm_family *[1]")
check(lib.promshm_registry_counter_simple(reg[0], "ffi_requests", "Requests.", label_names, 1, counter, err), "counter")
local buckets = ffi.new("double[2]", { 0.1, 1.0 })
local hist = ffi.new("const promshm_family *[1]")
check(lib.promshm_registry_histogram_simple(reg[0], "ffi_latency", "Latency.", label_names, 1, buckets, 2, hist, err), "histogram")

local function series(family, value)
  local values = ffi.new("const char *[1]", { value })
  local out = ffi.new("const promshm_series *[1]")
  check(lib.promshm_family_labels_e(family, values, 1, out, err), "labels")
  return out[0]
end

local c = series(counter[0], "luajit")
local h = series(hist[0], "luajit")
local pid = ffi.C.fork()
for _ = 1, n do
  lib.promshm_counter_inc(c)
  lib.promshm_histogram_observe(h, 0.5)
end
check(lib.promshm_flush_e(err), "flush")
if pid == 0 then ffi.C._exit(0) end
local status = ffi.new("int[1]")
if ffi.C.waitpid(pid, status, 0) ~= pid or status[0] ~= 0 then
  io.stderr:write("luajit: child failed\n")
  os.exit(1)
end

local bench = series(counter[0], "luajit-bench")
local t0 = os.clock()
for _ = 1, n do lib.promshm_counter_inc(bench) end
local ns = (os.clock() - t0) * 1e9 / n

local text = ffi.new("char *[1]")
local len = ffi.new("size_t[1]")
check(lib.promshm_area_render_alloc(area[0], lib.PROMSHM_FORMAT_PROMETHEUS, text, len, err), "render_alloc")
local page = ffi.string(text[0], len[0])
lib.promshm_render_free(text[0])
for _, want in ipairs({ 'ffi_requests_total{lang="luajit"} ' .. 2 * n, 'ffi_latency_count{lang="luajit"} ' .. 2 * n }) do
  if not ("\n" .. page):find("\n" .. want .. "\n", 1, true) then
    io.stderr:write("luajit: ", want, " not in the page:\n", page)
    os.exit(1)
  end
end
local o = assert(io.open(out_file, "w"))
o:write(page)
o:close()
for _, s in ipairs({ c, h, bench }) do lib.promshm_series_free(s) end
lib.promshm_family_free(counter[0])
lib.promshm_family_free(hist[0])
lib.promshm_registry_free(reg[0])
lib.promshm_area_free(area[0])
lib.promshm_error_free(err)
print(string.format("luajit ok counter=%d ns_per_inc=%.1f", 2 * n, ns))

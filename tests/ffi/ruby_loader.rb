# promshm through Ruby's ffi gem, declared from docs/promshm-api.json alone
# (attach_function per function, types from the description).
#   ruby ruby_loader.rb LIBRARY API_JSON AREA_FILE OUT_FILE N
# As cffi_loader.py (Process.fork for the second process); prints
# `ruby ok ... ns_per_inc=X`.
require 'ffi'
require 'json'

lib_path, api_path, area_file, out_file, n = ARGV
n = Integer(n)
API = JSON.parse(File.read(api_path))

module Promshm
  extend FFI::Library
end
Promshm.ffi_lib lib_path

ALIASES = API['typedefs'].to_h { |t| [t['name'], t['type']] }
SCALARS = { 'uint8_t' => :uint8, 'uint32_t' => :uint32, 'uint64_t' => :uint64, 'size_t' => :size_t,
            'int' => :int, 'double' => :double, 'bool' => :bool, 'void' => :void }.freeze

def ffi_type(ctype, returned: false)
  return (returned ? :string : :pointer) if ctype == 'const char *'
  return :pointer if ctype.include?('*')
  base = ALIASES.fetch(ctype, ctype)
  return :pointer if API['callbacks'].any? { |c| c['name'] == ctype }
  SCALARS.fetch(base) { raise "no Ruby FFI type for #{ctype}" }
end

API['functions'].each do |f|
  Promshm.attach_function f['name'].to_sym, f['params'].map { |p| ffi_type(p['type']) }, ffi_type(f['returns']['type'], returned: true)
end
C = {}
API['constants'].each { |c| C[c['name']] = c['value'] }
API['enums'].each { |e| e['members'].each { |m| C[m['name']] = m['value'] } }

ERR = Promshm.promshm_error_new
def check(rc, what)
  return if rc == C['PROMSHM_RESULT_OK']
  abort "ruby: #{what} failed: #{rc} #{Promshm.promshm_error_detail(ERR)}"
end

def out_ptr = FFI::MemoryPointer.new(:pointer)

def cstrings(list)
  strs = list.map { |s| FFI::MemoryPointer.from_string(s) }
  arr = FFI::MemoryPointer.new(:pointer, list.size)
  arr.write_array_of_pointer(strs)
  [arr, strs]
end

area = out_ptr
check(Promshm.promshm_area_create_e(FFI::MemoryPointer.from_string(area_file), nil, area, ERR), 'area_create')
area = area.read_pointer
reg = out_ptr
check(Promshm.promshm_registry_new_e(area, nil, nil, 0, reg, ERR), 'registry_new')
reg = reg.read_pointer
labels, keep = cstrings(['lang'])
counter = out_ptr
check(Promshm.promshm_registry_counter_simple(reg, FFI::MemoryPointer.from_string('ffi_requests'),
                                              FFI::MemoryPointer.from_string('Requests.'), labels, 1, counter, ERR), 'counter')
counter = counter.read_pointer
buckets = FFI::MemoryPointer.new(:double, 2).write_array_of_double([0.1, 1.0])
hist = out_ptr
check(Promshm.promshm_registry_histogram_simple(reg, FFI::MemoryPointer.from_string('ffi_latency'),
                                                FFI::MemoryPointer.from_string('Latency.'), labels, 1, buckets, 2, hist, ERR), 'histogram')
hist = hist.read_pointer

def series(family, value)
  values, _keep = cstrings([value])
  out = out_ptr
  check(Promshm.promshm_family_labels_e(family, values, 1, out, ERR), 'labels')
  out.read_pointer
end

c = series(counter, 'ruby')
h = series(hist, 'ruby')
pid = Process.fork
n.times do
  Promshm.promshm_counter_inc(c)
  Promshm.promshm_histogram_observe(h, 0.5)
end
check(Promshm.promshm_flush_e(ERR), 'flush')
exit!(0) if pid.nil?
Process.wait(pid)
abort "ruby: child failed (#{$?.inspect})" unless $?.success?

bench = series(counter, 'ruby-bench')
t0 = Process.clock_gettime(Process::CLOCK_MONOTONIC, :nanosecond)
n.times { Promshm.promshm_counter_inc(bench) }
ns = (Process.clock_gettime(Process::CLOCK_MONOTONIC, :nanosecond) - t0).to_f / n

text = out_ptr
len = FFI::MemoryPointer.new(:size_t)
check(Promshm.promshm_area_render_alloc(area, C['PROMSHM_FORMAT_PROMETHEUS'], text, len, ERR), 'render_alloc')
text = text.read_pointer
page = text.read_string(len.read(:size_t))
Promshm.promshm_render_free(text)
lines = page.split("\n")
["ffi_requests_total{lang=\"ruby\"} #{2 * n}", "ffi_latency_count{lang=\"ruby\"} #{2 * n}"].each do |want|
  abort "ruby: #{want} not in the page:\n#{page}" unless lines.include?(want)
end
File.write(out_file, page)
[c, h, bench].each { |s| Promshm.promshm_series_free(s) }
Promshm.promshm_family_free(counter)
Promshm.promshm_family_free(hist)
Promshm.promshm_registry_free(reg)
Promshm.promshm_area_free(area)
Promshm.promshm_error_free(ERR)
keep.clear
puts format('ruby ok counter=%d ns_per_inc=%.1f', 2 * n, ns)

// promshm through Node's koffi, declared from docs/promshm-api.json alone
// (types, struct layouts, directions): no C header is read.
//   node koffi_loader.js LIBRARY API_JSON AREA_FILE OUT_FILE N [child]
// Node cannot fork: the second process is this script again (`child`),
// which opens the area file. Otherwise as cffi_loader.py; prints
// `koffi ok ... ns_per_inc=X`.
'use strict';
const fs = require('fs');
const { spawn } = require('child_process');
const koffi = require('koffi');

const [libPath, apiPath, areaFile, outFile, nArg, role] = process.argv.slice(2);
const n = Number(nArg);
const api = JSON.parse(fs.readFileSync(apiPath, 'utf8'));

// Declare everything the description lists.
for (const t of api.opaque) koffi.opaque(t.name);
for (const t of api.typedefs) koffi.alias(t.name, t.type);
for (const s of api.structs) {
  const fields = {};
  for (const f of s.fields) fields[f.name] = f.type;
  const st = koffi.struct(s.name, fields);
  if (koffi.sizeof(st) !== s.size) throw new Error(`${s.name}: koffi says ${koffi.sizeof(st)} bytes, the description ${s.size}`);
}
for (const cb of api.callbacks) {
  koffi.proto(`${cb.returns} ${cb.name}(${cb.params.map((p) => `${p.type} ${p.name}`).join(', ')})`);
}
const callbacks = new Set(api.callbacks.map((cb) => cb.name));
const C = {};
for (const c of api.constants) C[c.name] = c.value;
for (const e of api.enums) for (const m of e.members) C[m.name] = m.value;
const lib = koffi.load(libPath);
const fn = {};
for (const f of api.functions) {
  const params = f.params.map((p) => {
    // An owned `char **` is kept as a raw pointer, to free it.
    // A C function-pointer typedef is a pointer to a koffi prototype.
    let type = p.owns && p.type === 'char **' ? 'void **' : p.type;
    if (callbacks.has(type)) type += ' *';
    const dir = p.direction === 'out' && type.includes('*') && !type.startsWith('char *') ? '_Out_ ' : p.direction === 'inout' ? '_Inout_ ' : '';
    return `${dir}${type} ${p.name}`;
  });
  const ret = f.returns.type.replace(/^const char \*$/, 'const char *');
  fn[f.name] = lib.func(`${ret} ${f.name}(${params.join(', ')})`);
}

const err = fn.promshm_error_new();
function check(rc, what) {
  if (rc !== C.PROMSHM_RESULT_OK) throw new Error(`koffi: ${what} failed: ${rc} ${fn.promshm_error_detail(err)}`);
}

const area = [null];
if (role === 'child') check(fn.promshm_area_open_e(areaFile, C.PROMSHM_OPEN_MODE_READ_WRITE, area, err), 'area_open');
else check(fn.promshm_area_create_e(areaFile, null, area, err), 'area_create');
const reg = [null];
check(fn.promshm_registry_new_e(area[0], null, null, 0, reg, err), 'registry_new');
const counter = [null];
check(fn.promshm_registry_counter_simple(reg[0], 'ffi_requests', 'Requests.', ['lang'], 1, counter, err), 'counter');
const hist = [null];
check(fn.promshm_registry_histogram_simple(reg[0], 'ffi_latency', 'Latency.', ['lang'], 1, [0.1, 1.0], 2, hist, err), 'histogram');
function series(family, value) {
  const out = [null];
  check(fn.promshm_family_labels_e(family, [value], 1, out, err), 'labels');
  return out[0];
}
const c = series(counter[0], 'koffi');
const h = series(hist[0], 'koffi');

function work() {
  for (let i = 0; i < n; i++) {
    fn.promshm_counter_inc(c);
    fn.promshm_histogram_observe(h, 0.5);
  }
  check(fn.promshm_flush_e(err), 'flush');
}

function finish() {
  const bench = series(counter[0], 'koffi-bench');
  const inc = fn.promshm_counter_inc;
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < n; i++) inc(bench);
  const ns = Number(process.hrtime.bigint() - t0) / n;
  const text = [null];
  const len = [0];
  check(fn.promshm_area_render_alloc(area[0], C.PROMSHM_FORMAT_PROMETHEUS, text, len, err), 'render_alloc');
  const page = koffi.decode(text[0], 'char', Number(len[0]));
  fn.promshm_render_free(text[0]);
  const lines = page.split('\n');
  for (const want of [`ffi_requests_total{lang="koffi"} ${2 * n}`, `ffi_latency_count{lang="koffi"} ${2 * n}`]) {
    if (!lines.includes(want)) throw new Error(`koffi: ${want} not in the page:\n${page}`);
  }
  fs.writeFileSync(outFile, page);
  for (const s of [bench]) fn.promshm_series_free(s);
  release();
  console.log(`koffi ok counter=${2 * n} ns_per_inc=${ns.toFixed(1)}`);
}

function release() {
  fn.promshm_series_free(c);
  fn.promshm_series_free(h);
  fn.promshm_family_free(counter[0]);
  fn.promshm_family_free(hist[0]);
  fn.promshm_registry_free(reg[0]);
  fn.promshm_area_free(area[0]);
  fn.promshm_error_free(err);
}

if (role === 'child') {
  work();
  release();
} else {
  const child = spawn(process.execPath, [__filename, libPath, apiPath, areaFile, outFile, nArg, 'child'], { stdio: 'inherit' });
  work();
  child.on('exit', (code) => {
    if (code !== 0) throw new Error(`koffi: child exited with ${code}`);
    finish();
  });
}

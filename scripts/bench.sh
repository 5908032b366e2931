#!/usr/bin/env bash
# promshm's benchmarks and its peers', in one run on one machine, and the
# table of docs/PERFORMANCE.md (issue 13's "How it is measured"):
#
#   benches/core.rs (cargo bench)  promshm in Rust, with the `prometheus` and
#                                  `prometheus-client` crates in the same process
#   scripts/bench-c.sh             the C API (.so and .a), prometheus-cpp, and the C
#                                  floors (plain add; relaxed fetch_add on a MAP_SHARED page)
#   bindings/python/bench/bench.py the Python binding, prometheus_client single-process
#                                  and multiprocess (hot path, scrape of 10,000 series x 8 workers)
#   benches/ruby/bench_mmap.rb     Ruby prometheus-client-mmap (hot path, the same scrape)
#   valgrind --tool=callgrind      instructions per call of the C hot paths (stable on a
#                                  shared, noisy machine, unlike the times)
#
#   scripts/bench.sh            full run (about 5 min here); rewrites the part of
#                               docs/PERFORMANCE.md between its markers
#   scripts/bench.sh --quick    smoke run (CI): tiny counts, checks that every part runs
#                               and that the table is produced; writes the table to
#                               target/bench/table.md only, asserts no timing
#
# Raw figures go to target/bench/. Peers are installed by scripts/setup.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD"
quick=0
[ "${1:-}" = "--quick" ] && quick=1
out="$root/target/bench"
rm -rf "$out"
mkdir -p "$out"
step() { echo "bench: $*" >&2; }

if [ "$quick" = 1 ]; then
  iters=200000 repeats=1 cg_iters=2000 rb_series=1000 rb_iters=20000 py_args=(--quick) core_args=(--test)
else
  iters=50000000 repeats=5 cg_iters=100000 rb_series=10000 rb_iters=300000 py_args=() core_args=()
fi

cargo build --quiet --release --lib
uptime >"$out/load-before.txt"

step "benches/core.rs (cargo bench${core_args[*]:+ -- ${core_args[*]}})"
PROMSHM_BENCH_OUT="$out/core.txt" cargo bench --quiet --bench core -- "${core_args[@]}" >"$out/core.log" 2>&1 \
  || { tail -30 "$out/core.log" >&2; exit 1; }

step "scripts/bench-c.sh (C API, prometheus-cpp, C floors)"
BENCH_ITERATIONS="$iters" BENCH_REPEATS="$repeats" bash scripts/bench-c.sh >"$out/c.log" 2>&1 \
  || { cat "$out/c.log" >&2; exit 1; }
cp target/bench-c/shared.txt target/bench-c/static.txt target/bench-c/promcpp.txt "$out/"

step "bindings/python/bench/bench.py (promshm, prometheus_client)"
# The bench measures the C fast path (and ctypes, by PROMSHM_NO_SPEEDUPS=1): build it.
bash scripts/build-speedups.sh
PROMSHM_LIBRARY="$root/target/release/libpromshm.so" PYTHONPATH="$root/bindings/python" \
  python3 bindings/python/bench/bench.py "${py_args[@]}" --json "$out/python.json" >"$out/python.log" 2>&1 \
  || { cat "$out/python.log" >&2; exit 1; }

step "benches/ruby/bench_mmap.rb (prometheus-client-mmap)"
ruby benches/ruby/bench_mmap.rb "$rb_series" 8 "$rb_iters" >"$out/ruby.txt" 2>"$out/ruby.log" \
  || { cat "$out/ruby.log" >&2; exit 1; }

step "callgrind: instructions per call ($cg_iters calls each)"
# op, the function whose calls are counted (benches/c/bench_hot.c)
cg_ops="plain_add:bench_plain_add fetch_add_shared:bench_fetch_add_shared counter_inc:bench_counter_inc
counter_inc_eager:bench_counter_inc histogram_observe:bench_histogram_observe labels_inc:bench_labels_inc
labels_by_values_inc:bench_labels_by_values_inc
local_counter_inc:bench_local_counter_inc local_histogram_observe:bench_local_histogram_observe"
: >"$out/callgrind.txt"
for kind in shared static; do
  for pair in $cg_ops; do
    op="${pair%%:*}" fn="${pair#*:}"
    f="$out/callgrind.$kind.$op.out"
    BENCH_ONLY="$op" BENCH_ITERATIONS="$cg_iters" valgrind --tool=callgrind --collect-atstart=no \
      --toggle-collect="$fn" --callgrind-out-file="$f" "target/bench-c/bench_hot_$kind" 2>>"$out/callgrind.log" \
      || { tail -20 "$out/callgrind.log" >&2; exit 1; }
    ir="$(awk '$1 == "summary:" || $1 == "totals:" { print $2; exit }' "$f")"
    echo "$kind $op $(awk -v a="$ir" -v n="$cg_iters" 'BEGIN { printf "%.1f", a / n }')" >>"$out/callgrind.txt"
  done
done
uptime >"$out/load-after.txt"

step "table"
python3 scripts/bench_table.py "$out" $([ "$quick" = 1 ] && echo --quick) \
  $([ "$quick" = 0 ] && echo --write docs/PERFORMANCE.md)

#!/usr/bin/env bash
# The C API hot path against prometheus-cpp, measured in one run:
#
#   benches/c/bench_hot.c          promshm_counter_inc / promshm_histogram_observe
#                                  from a C loop, linked against libpromshm.so
#                                  and against libpromshm.a
#   benches/cpp/bench_promcpp.cpp  prometheus-cpp Counter::Increment /
#                                  Histogram::Observe, same loop, labels, buckets
#                                  and values (Debian's prometheus-cpp-dev)
#
# Prints ns/op for each and the ratios. Both are built with the same compiler
# and -O2, and run one after the other on the same CPU (taskset, if present).
#
#   BENCH_ITERATIONS (default 50000000) calls per run, BENCH_REPEATS (default 5)
#   runs, best kept.
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD"

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
if [ ! -e /usr/include/prometheus/counter.h ]; then
  echo "bench-c: apt-get install prometheus-cpp-dev" >&2
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends \
    prometheus-cpp-dev >/dev/null
fi

cargo build --quiet --release --lib
out="$root/target/bench-c"
mkdir -p "$out/lib"
# The loader looks for the SONAME (libpromshm.so.0.MINOR): link it to the build.
soname="$(objdump -p target/release/libpromshm.so | awk '$1 == "SONAME" { print $2 }')"
ln -sfn "$root/target/release/libpromshm.so" "$out/lib/$soname"

CC="${CC:-cc}"
CXX="${CXX:-c++}"
cflags=(-O2 -g -std=c11 -Wall -Wextra -Werror -Iinclude)
"$CC" "${cflags[@]}" benches/c/bench_hot.c -Ltarget/release -lpromshm \
  -Wl,-rpath,"$out/lib" -o "$out/bench_hot_shared"
"$CC" "${cflags[@]}" benches/c/bench_hot.c target/release/libpromshm.a \
  -lgcc_s -lutil -lrt -lpthread -lm -ldl -lc -o "$out/bench_hot_static"
# shellcheck disable=SC2046
"$CXX" -O2 -g -std=c++17 -Wall -Wextra -Werror benches/cpp/bench_promcpp.cpp \
  $(pkg-config --cflags --libs prometheus-cpp-core) -o "$out/bench_promcpp"

pin=()
if command -v taskset >/dev/null; then pin=(taskset -c 0); fi
echo "bench-c: $(${CC} --version | head -1); $(nproc) CPUs; ${BENCH_ITERATIONS:-50000000} calls x ${BENCH_REPEATS:-5} runs, best" >&2
"${pin[@]}" "$out/bench_hot_shared" >"$out/shared.txt"
"${pin[@]}" "$out/bench_hot_static" >"$out/static.txt"
"${pin[@]}" "$out/bench_promcpp" >"$out/promcpp.txt"

val() { awk -v k="$2" '$1 == k { print $2 }' "$out/$1.txt"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1fx", a / b }'; }

printf '\n%-34s %11s %11s %14s %9s %9s\n' "operation (ns/op)" "promshm .so" "promshm .a" "prometheus-cpp" "cpp/.so" "cpp/.a"
row() { # label, promshm op, prometheus-cpp op
  local s a p
  s="$(val shared "$2")"; a="$(val static "$2")"; p="$(val promcpp "$3")"
  printf '%-34s %11s %11s %14s %9s %9s\n' "$1" "$s" "$a" "$p" "$(ratio "$p" "$s")" "$(ratio "$p" "$a")"
}
row "counter inc (buffered)" counter_inc counter_inc
row "histogram observe (buffered)" histogram_observe histogram_observe
row "local histogram observe (inline)" local_histogram_observe histogram_observe
row "counter inc (eager, into the area)" counter_inc_eager counter_inc
printf '%-34s %11s %11s %14s %9s %9s\n' "plain add (volatile double, floor)" "$(val shared plain_add)" "$(val static plain_add)" "-" "-" "-"
printf '%-34s %11s %11s %14s %9s %9s\n' "local counter inc (static inline)" "$(val shared local_counter_inc)" "$(val static local_counter_inc)" "-" \
  "$(ratio "$(val shared local_counter_inc)" "$(val shared plain_add)")" "$(ratio "$(val static local_counter_inc)" "$(val static plain_add)")"
echo "(local counter row: its time over the plain add's in the last two columns; target <= 2x)"
echo "(cpp/x: prometheus-cpp's time over promshm's; above 1 means promshm is faster)"

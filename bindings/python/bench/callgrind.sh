#!/usr/bin/env bash
# Instructions per call of the Python hot path, C fast path vs ctypes
# (PROMSHM_NO_SPEEDUPS=1), counted by valgrind's callgrind: the count of a
# loop of 110,000 calls minus that of 10,000, divided by 100,000, minus the
# same for an empty loop (`pass`). Stable on a noisy machine, unlike time.
#
#   PROMSHM_LIBRARY=$PWD/target/release/libpromshm.so PYTHONPATH=$PWD/bindings/python \
#       bash bindings/python/bench/callgrind.sh
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
py=$(python3 -c 'import sys; print(sys.executable)')   # the interpreter itself, not a shim
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# No flusher thread (its wake-ups would be counted); an area of its own.
export PROMSHM_FLUSH_INTERVAL=0 PROMSHM_AREA="$tmp/area"
count() {
  valgrind --tool=callgrind --callgrind-out-file=/dev/null "$py" "$here/callgrind_loop.py" "$1" "$2" 2>&1 |
    awk '/Collected/ {print $4}'
}
per_call() { local a b; a=$(count "$1" 10000); b=$(count "$1" 110000); echo $(((b - a) / 100000)); }
echo "| operation | C fast path (instructions) | ctypes (instructions) |"
echo "| --- | ---: | ---: |"
declare -A base
for mode in 0 1; do base[$mode]=$(PROMSHM_NO_SPEEDUPS=$mode per_call pass); done
echo "| empty loop (\`pass\`, not subtracted) | ${base[0]} | ${base[1]} |"
for what in inc labels labelsonly observe; do
  row="| $what |"
  for mode in 0 1; do row="$row $(( $(PROMSHM_NO_SPEEDUPS=$mode per_call "$what") - base[$mode] )) |"; done
  echo "$row"
done

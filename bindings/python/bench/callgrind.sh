#!/usr/bin/env bash
# Instructions per call of the Python hot path, C fast path vs ctypes
# (PROMSHM_NO_SPEEDUPS=1) vs prometheus_client single-process, counted by valgrind's callgrind: the count of a
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
# count SETTING WHAT N: instructions of the whole run, SETTING (VAR=value) in its environment.
count() {
  env "$1" valgrind --tool=callgrind --callgrind-out-file=/dev/null "$py" "$here/callgrind_loop.py" "$2" "$3" 2>&1 |
    awk '/Collected/ {print $4}'
}
# per_call SETTING WHAT: instructions per call.
per_call() { local a b; a=$(count "$1" "$2" 10000); b=$(count "$1" "$2" 110000); echo $(((b - a) / 100000)); }
# Columns: promshm with the C fast path, promshm through ctypes, prometheus_client.
modes=("PROMSHM_NO_SPEEDUPS=0" "PROMSHM_NO_SPEEDUPS=1" "PEER=1")
echo "| operation | promshm, C fast path | promshm, ctypes | prometheus_client single-process | C fast path / prometheus_client |"
echo "| --- | ---: | ---: | ---: | ---: |"
base=()
for i in 0 1 2; do base[i]=$(per_call "${modes[i]}" pass); done
echo "| empty loop (\`pass\`, not subtracted) | ${base[0]} | ${base[1]} | ${base[2]} | |"
for what in inc labels labelsonly observe; do
  got=()
  for i in 0 1 2; do got[i]=$(($(per_call "${modes[i]}" "$what") - base[i])); done
  echo "| $what | ${got[0]} | ${got[1]} | ${got[2]} | $(awk "BEGIN {printf \"%.3f\", ${got[0]} / ${got[2]}}") |"
done

#!/usr/bin/env bash
# The promshm uWSGI plugin's cost per request, on loopback.
#
#   bash bindings/uwsgi/bench/run.sh [SECONDS_PER_RUN] [ROUNDS]
#
# 1. hook_cost: the promshm calls the after-request hook makes, timed in a
#    loop outside uWSGI (ns per request).
# 2. wrk against uWSGI (master + 2 workers, --http-socket, a trivial WSGI
#    app), in alternating rounds:
#      bare     no plugin
#      plugin   the plugin with its defaults (request metrics + app flush)
#      app      the plugin, and the app increments a promshm counter
#    Each run is bounded (wrk -d), every uWSGI is stopped (trap).
# Prints, per configuration, requests/s and the CPU time the uWSGI processes
# used per request (from /proc, so other load on the machine matters less
# than for requests/s), medians of the rounds.
set -euo pipefail
cd "$(dirname "$0")/../../.."
ROOT=$PWD
SECS=${1:-5}
ROUNDS=${2:-3}
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
PLUGIN=$TARGET/uwsgi/promshm_plugin.so
BENCH=$ROOT/bindings/uwsgi/bench
WORK=$(mktemp -d)
PIDS=()

cleanup() {
  for p in "${PIDS[@]:-}"; do
    [ -n "$p" ] || continue
    kill -INT "$p" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -KILL -- "-$p" 2>/dev/null || true
  done
  rm -rf "$WORK"
}
trap cleanup EXIT

command -v wrk >/dev/null || { echo "wrk not found (apt-get install wrk; scripts/setup.sh does)" >&2; exit 1; }
make -s -C bindings/uwsgi >/dev/null

echo "== hook body, outside uWSGI"
cc -O2 -I"$ROOT/include" -o "$WORK/hook_cost" "$BENCH/hook_cost.c" "$TARGET/release/libpromshm.a" \
  -lgcc_s -lutil -lrt -lpthread -lm -ldl -lc
"$WORK/hook_cost"

port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }

# start CONFIG -> sets PORT and MASTER
start() {
  local cfg=$1
  PORT=$(port)
  local args=(--plugins python3 --master --processes 2 --http-socket "127.0.0.1:$PORT"
    --wsgi-file "$BENCH/trivial_app.py" --disable-logging --die-on-term)
  case $cfg in
    bare) ;;
    plugin) args+=(--plugin "$PLUGIN") ;;
    app) args+=(--plugin "$PLUGIN" --callable application_metrics) ;;
  esac
  env -u PROMSHM_AREA PYTHONPATH="$ROOT/bindings/python" PROMSHM_LIBRARY="$TARGET/release/libpromshm.so" \
    setsid uwsgi "${args[@]}" >"$WORK/$cfg.log" 2>&1 &
  MASTER=$!
  PIDS+=("$MASTER")
  for _ in $(seq 100); do
    curl -s -m 1 -o /dev/null "http://127.0.0.1:$PORT/" && return 0
    sleep 0.1
  done
  echo "uWSGI ($cfg) did not start:" >&2; tail -20 "$WORK/$cfg.log" >&2; exit 1
}

stop() {
  kill -INT "$MASTER" 2>/dev/null || true
  for _ in $(seq 100); do kill -0 "$MASTER" 2>/dev/null || break; sleep 0.1; done
  kill -KILL -- "-$MASTER" 2>/dev/null || true
  wait "$MASTER" 2>/dev/null || true
}

# CPU time (clock ticks) used so far by the processes of a process group.
group_ticks() {
  awk -v g="$1" '{ sub(/^.*\) /, ""); if ($3 == g) t += $12 + $13 } END { print t + 0 }' /proc/[0-9]*/stat 2>/dev/null
}

declare -A RPS CPU
CONFIGS=(bare plugin app)
HZ=$(getconf CLK_TCK)
echo
echo "== wrk -t1 -c16 -d${SECS}s, uWSGI master + 2 workers, $ROUNDS rounds ($(nproc) cores, order rotated)"
for round in $(seq "$ROUNDS"); do
  for k in 0 1 2; do
    cfg=${CONFIGS[$(((round + k) % 3))]}
    start "$cfg"
    wrk -t1 -c16 -d1s "http://127.0.0.1:$PORT/" >/dev/null 2>&1 || true # warm up
    t0=$(group_ticks "$MASTER")
    out=$(timeout $((SECS + 30)) wrk -t1 -c16 -d"${SECS}s" "http://127.0.0.1:$PORT/")
    t1=$(group_ticks "$MASTER")
    stop
    rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
    n=$(echo "$out" | awk '/requests in/ {print $1}')
    cpu=$(awk -v d=$((t1 - t0)) -v hz="$HZ" -v n="$n" 'BEGIN { printf "%.2f", d / hz / n * 1e6 }')
    printf "round %d  %-6s  %9.0f req/s  %6.2f us CPU per request (uWSGI processes)\n" "$round" "$cfg" "$rps" "$cpu"
    RPS[$cfg]="${RPS[$cfg]:-} $rps"
    CPU[$cfg]="${CPU[$cfg]:-} $cpu"
  done
done

median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
echo
echo "median of $ROUNDS rounds:"
bare_rps=$(echo "${RPS[bare]}" | median)
bare_cpu=$(echo "${CPU[bare]}" | median)
for cfg in "${CONFIGS[@]}"; do
  r=$(echo "${RPS[$cfg]}" | median)
  c=$(echo "${CPU[$cfg]}" | median)
  awk -v cfg="$cfg" -v r="$r" -v br="$bare_rps" -v c="$c" -v bc="$bare_cpu" 'BEGIN {
    printf "%-7s %8.0f req/s (%+5.1f%%)   %6.2f us CPU/request (%+5.2f us vs bare)\n", cfg, r, (r / br - 1) * 100, c, c - bc }'
done

#!/usr/bin/env bash
# The main demo: the C pre-fork HTTP server of examples/c with 4 workers on a
# free loopback port; a few hundred requests; its /metrics, which every
# worker updates through one shared area; then SIGTERM.
#
#   ./scripts/demo.sh                  the C server, /metrics in text 0.0.4
#   ./scripts/demo.sh --openmetrics    ... scraped with an OpenMetrics Accept header
#   ./scripts/demo.sh --rust [ARGS]    the Rust demo instead (examples/demo.rs;
#                                      e.g. --rust --openmetrics)
set -euo pipefail
cd "$(dirname "$0")/.."

rust=0
accept="text/plain;version=0.0.4"
args=()
for a in "$@"; do
  case "$a" in
    --rust) rust=1 ;;
    --) ;;
    --openmetrics) accept="application/openmetrics-text;version=1.0.0"; args+=("$a") ;;
    *) args+=("$a") ;;
  esac
done

bash scripts/setup.sh

if [ "$rust" = 1 ]; then
  exec cargo run --quiet --release --example demo -- ${args[@]+"${args[@]}"}
fi

say() { printf 'demo: %s\n' "$*" >&2; }

say "building libpromshm (cargo build --release) and examples/c/server"
cargo build --quiet --release --lib
make -s -C examples/c >/dev/null

out="$(mktemp)"
trap 'rm -f "$out"; if [ -n "${pid:-}" ]; then kill -TERM "$pid" 2>/dev/null || true; fi' EXIT
examples/c/server -p 0 -w 4 >"$out" &
pid=$!
port=""
for _ in $(seq 100); do
  port="$(sed -n 's|^listening on http://127.0.0.1:\([0-9]*\)/.*|\1|p' "$out")"
  [ -n "$port" ] && break
  kill -0 "$pid" 2>/dev/null || { say "the server did not start"; exit 1; }
  sleep 0.1
done
[ -n "$port" ] || { say "the server did not say which port it listens on"; exit 1; }
sleep 0.2  # let the workers print their slots
base="http://127.0.0.1:$port"
say "server pid $pid listening on $base/ with 4 workers"

# 300 requests, 8 at a time: 200 x /, 50 x /slow (10-50 ms each), 50 x /nope.
curl_opts=(-s)
if curl --help all 2>/dev/null | grep -q -- '--parallel'; then
  curl_opts=(--no-progress-meter --parallel --parallel-max 8)
fi
codes="$(curl "${curl_opts[@]}" -w '%{http_code}\n' \
  -o /dev/null "$base/?i=[1-200]" \
  -o /dev/null "$base/slow?i=[1-50]" \
  -o /dev/null "$base/nope?i=[1-50]")"
say "sent $(printf '%s\n' "$codes" | grep -c .) requests; statuses: $(printf '%s\n' "$codes" | sort | uniq -c | awk '{printf "%s x %s  ", $1, $2}')"

say "GET $base/metrics (Accept: $accept)"
echo
curl -sS -H "Accept: $accept" "$base/metrics"
echo

kill -TERM "$pid"
status=0
wait "$pid" || status=$?
pid=""
say "server stopped (exit status $status)"
exit "$status"

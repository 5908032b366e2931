#!/usr/bin/env bash
# The PHP benchmark (bench.php): promshm vs APCu vs nothing through PromPHP's
# API. Builds the library and the CLI, runs PHP's CLI with FFI and APCu
# enabled and a fresh area file, then times `promshm serve`'s scrape of
# that area (the 10,000-series counter and the rest). `--quick`: a smoke run
# (CI), numbers mean nothing.
set -euo pipefail
cd "$(dirname "$0")/../../.."
cargo build --release --quiet -p promshm -p promshm-cli
dir=$(mktemp -d)
serve_pid=
cleanup() { [ -n "$serve_pid" ] && kill "$serve_pid" 2>/dev/null; wait 2>/dev/null; rm -rf "$dir"; }
trap cleanup EXIT
PROMSHM_LIBRARY="$PWD/target/release/libpromshm.so" PROMSHM_AREA="$dir/bench.promshm" \
  timeout 600 php8.2 -d ffi.enable=true -d apc.enable_cli=1 -d apc.shm_size=256M -d memory_limit=1G \
  bindings/php/bench/bench.php "$@"

# The same area scraped by promshm serve (the php-fpm layout's /metrics).
timeout 60 target/release/promshm serve --listen 127.0.0.1:0 "$dir/bench.promshm" 2>"$dir/serve.err" &
serve_pid=$!
url=
for _ in $(seq 100); do
  url=$(grep -o 'http://[0-9.:]*/metrics' "$dir/serve.err" || true)
  [ -n "$url" ] && break
  sleep 0.05
done
[ -n "$url" ] || { cat "$dir/serve.err" >&2; exit 1; }
runs=5; [ "${1:-}" = --quick ] && runs=1
times=()
for _ in $(seq "$runs"); do
  times+=("$(curl -fsS -o "$dir/page" -w '%{time_total}' "$url")")
done
series=$(grep -c '^bench_wide_total{' "$dir/page")
median=$(printf '%s\n' "${times[@]}" | sort -n | sed -n "$(( (runs + 1) / 2 ))p")
printf '\npromshm serve, the same area: %s lines, %s series of bench_wide_total; scrape (curl time_total) median of %s: %.1f ms\n' \
  "$(wc -l < "$dir/page")" "$series" "$runs" "$(echo "$median * 1000" | bc -l 2>/dev/null || python3 -c "print($median*1000)")"

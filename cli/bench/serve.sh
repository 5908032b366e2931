#!/usr/bin/env bash
# Scrapes per second of `promshm serve` for 10,000 and 100,000 series, with
# wrk on loopback (bounded: a few seconds per run), and the server's memory
# (VmRSS after, VmHWM = peak).
#
#   cli/bench/serve.sh                 # default: 5 s per run
#   DURATION=10s cli/bench/serve.sh
#   SIZES=100000 SERVE_ARGS="--max-renders 1" cli/bench/serve.sh
#
# Needs wrk (apt-get install wrk) and curl. Prints a Markdown table.
set -euo pipefail
cd "$(dirname "$0")/../.."

DURATION=${DURATION:-5s}
CONNECTIONS=${CONNECTIONS:-4}
SIZES=${SIZES:-"10000 100000"}
read -r -a serve_args <<<"${SERVE_ARGS:-}"

for tool in wrk curl; do
  if ! command -v "$tool" >/dev/null; then
    echo "serve.sh: $tool is not installed (apt-get install $tool)" >&2
    exit 1
  fi
done

cargo build -q --release -p promshm-cli --bins --examples
target_dir=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
promshm="$target_dir/release/promshm"
make_area="$target_dir/release/examples/bench_area"

work=$(mktemp -d)
serve_pid=
cleanup() {
  if [ -n "$serve_pid" ]; then kill "$serve_pid" 2>/dev/null || true; wait "$serve_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

kib() { awk -v f="$1:" '$1 == f { print $2 }' "/proc/$2/status"; }

echo "| series | format | response bytes | one scrape (ms) | scrapes/s | p99 latency | VmRSS after (MiB) | VmHWM peak (MiB) |"
echo "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |"
for n in $SIZES; do
  area="$work/bench-$n.promshm"
  "$make_area" "$area" "$n" 2>/dev/null
  for variant in text openmetrics gzip; do
    case $variant in
      text) hdr=() ;;
      openmetrics) hdr=(-H "Accept: application/openmetrics-text;version=1.0.0") ;;
      gzip) hdr=(-H "Accept-Encoding: gzip") ;;
    esac
    port_file="$work/serve.err"
    "$promshm" serve "$area" --listen 127.0.0.1:0 --no-self-metrics "${serve_args[@]}" 2>"$port_file" &
    serve_pid=$!
    for _ in $(seq 100); do grep -q 'serving' "$port_file" 2>/dev/null && break; sleep 0.05; done
    addr=$(sed -n 's|.*://\([^/]*\)/metrics.*|\1|p' "$port_file" | head -1)
    url="http://$addr/metrics"
    # One cold scrape: size and latency.
    read -r bytes secs < <(curl -s -o /dev/null -w '%{size_download} %{time_total}\n' "${hdr[@]}" "$url")
    one_ms=$(awk -v s="$secs" 'BEGIN { printf "%.1f", s * 1000 }')
    out=$(wrk -t1 -c"$CONNECTIONS" -d"$DURATION" --latency "${hdr[@]}" "$url")
    rps=$(awk '/Requests\/sec/ { printf "%.0f", $2 }' <<<"$out")
    p99=$(awk '$1 == "99%" { print $2 }' <<<"$out")
    rss=$(kib VmRSS "$serve_pid"); hwm=$(kib VmHWM "$serve_pid")
    kill "$serve_pid"; wait "$serve_pid" 2>/dev/null || true; serve_pid=
    printf '| %s | %s | %s | %s | %s | %s | %s | %s |\n' \
      "$n" "$variant" "$bytes" "$one_ms" "$rps" "$p99" \
      "$(awk -v k="$rss" 'BEGIN { printf "%.1f", k / 1024 }')" "$(awk -v k="$hwm" 'BEGIN { printf "%.1f", k / 1024 }')"
  done
done
echo
echo "wrk -t1 -c$CONNECTIONS -d$DURATION on loopback; $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'))."

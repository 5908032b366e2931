#!/usr/bin/env bash
# The PHP benchmark (bench.php): promshm vs APCu vs nothing through PromPHP's
# API. Builds the library, then runs PHP's CLI with FFI and APCu enabled and
# a fresh area file. `--quick`: a smoke run (CI), numbers mean nothing.
set -euo pipefail
cd "$(dirname "$0")/../../.."
cargo build --release --lib --quiet
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
PROMSHM_LIBRARY="$PWD/target/release/libpromshm.so" PROMSHM_AREA="$dir/bench.promshm" \
  timeout 600 php8.2 -d ffi.enable=true -d apc.enable_cli=1 -d apc.shm_size=256M -d memory_limit=1G \
  bindings/php/bench/bench.php "$@"

#!/usr/bin/env bash
# Every test: formatting, lints, docs, the header drift check; the Rust
# unit, multi-process, corruption and output-oracle tests (promtool,
# prometheus_client's parsers); the C/C++ tests plain, under ASan and under
# Valgrind; the CLI against real Prometheus and Pushgateway servers; the
# Python binding (built library and pip-installed); the uWSGI plugin.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh

step() { printf '\n==== %s\n' "$*"; }

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings

step "cargo doc (library, warnings are errors)"
RUSTDOCFLAGS="-D warnings" cargo doc --no-deps -p promshm --quiet

step "C header up to date (scripts/gen-header --check)"
bash scripts/gen-header --check

step "cargo test"
cargo test --workspace --all-targets 2>&1 | tee target/cargo-test.log
cargo test --doc

# The C and C++ programs of tests/c_api.rs (C tests, C++ wrapper tests, the
# examples) again, under the sanitizers: any error or leak fails the run.
step "C API under AddressSanitizer + LeakSanitizer"
ASAN_OPTIONS=detect_leaks=1 \
  PROMSHM_C_TEST_FLAGS="-fsanitize=address -fno-omit-frame-pointer" \
  cargo test --test c_api

step "C API under Valgrind memcheck"
PROMSHM_C_TEST_VALGRIND=1 cargo test --test c_api

step "Python binding (pytest, built library via PROMSHM_LIBRARY)"
cargo build --release --lib
python3 bindings/python/tools/gen_bindings.py --check
PROMSHM_LIBRARY="$PWD/target/release/libpromshm.so" PYTHONPATH="$PWD/bindings/python" \
  python3 -m pytest -p no:cacheprovider -q bindings/python/tests

step "Python binding (pytest, pip install ./bindings/python into a venv)"
venv=target/python-venv
rm -rf "$venv"
python3 -m venv --system-site-packages "$venv"
"$venv/bin/python" -m pip install -q ./bindings/python
rm -rf bindings/python/build bindings/python/promshm.egg-info
(cd "$(mktemp -d)" && env -u PROMSHM_LIBRARY -u PYTHONPATH PROMSHM_EXPECT_INSTALLED=1 \
  "$OLDPWD/$venv/bin/python" -m pytest -p no:cacheprovider -q "$OLDPWD/bindings/python/tests")

step "uWSGI plugin (make -C bindings/uwsgi, then pytest tests/uwsgi against a real uWSGI)"
make -C bindings/uwsgi
timeout 900 python3 -m pytest -p no:cacheprovider -q -rA tests/uwsgi

step "PHP binding (FFI declarations drift check, PHPUnit against the built library)"
cargo build --release --lib
python3 bindings/php/tools/gen_ffi.py --check
PROMSHM_LIBRARY="$PWD/target/release/libpromshm.so" timeout 600 php -d ffi.enable=1 "$(command -v phpunit)" -c bindings/php

step "PHP end to end (tests/php: nginx + php-fpm + promshm serve) and the PHP benchmark's smoke run"
cargo build --release -p promshm -p promshm-cli
timeout 900 python3 -m pytest -p no:cacheprovider -q -rA tests/php
bash bindings/php/bench/bench.sh --quick
timeout 300 python3 bindings/php/bench/fpm_bench.py --quick

step "all tests passed"

#!/usr/bin/env bash
# Every test: formatting, lints, Rust unit/integration/multi-process tests,
# and the output oracles (promtool, prometheus_client's parsers).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh

step() { printf '\n==== %s\n' "$*"; }

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy"
cargo clippy --all-targets -- -D warnings

step "cargo test"
cargo test --all-targets 2>&1 | tee target/cargo-test.log
cargo test --doc

step "all tests passed"

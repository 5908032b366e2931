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
cargo clippy --workspace --all-targets -- -D warnings

step "C header up to date (scripts/gen-header --check)"
bash scripts/gen-header --check

step "cargo test"
cargo test --workspace --all-targets 2>&1 | tee target/cargo-test.log
cargo test --doc

step "all tests passed"

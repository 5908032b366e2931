#!/usr/bin/env bash
# The main job: 4 forked workers update one shared area; the parent renders it.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cargo run --quiet --release --example demo -- "$@"

#!/usr/bin/env bash
# Builds the Python binding's optional C fast path (promshm._speedups) in place,
# next to bindings/python/promshm/, so that `PYTHONPATH=bindings/python` imports
# it. Used by scripts/test.sh and scripts/bench.sh; the temporary files go to
# target/python-speedups.
set -euo pipefail
cd "$(dirname "$0")/../bindings/python"
python3 setup.py -q build_ext --inplace --build-temp ../../target/python-speedups \
  --build-lib ../../target/python-speedups/lib

#!/usr/bin/env bash
# Serve the example with gunicorn (4 workers) on http://127.0.0.1:8000.
#   curl -s localhost:8000/order?item=apple\&qty=2; curl -s localhost:8000/metrics
# Uses an installed promshm package if there is one; otherwise builds the
# library from this repository and uses the binding's sources.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
if ! python3 -c 'import promshm' 2>/dev/null; then
  (cd "$root" && cargo build --release --lib)
  export PYTHONPATH="$root/bindings/python${PYTHONPATH:+:$PYTHONPATH}"
  export PROMSHM_LIBRARY="$root/target/release/libpromshm.so"
fi
python3 -c 'import gunicorn' 2>/dev/null || python3 -m pip install -q gunicorn
cd "$here"
exec python3 -m gunicorn -c gunicorn.conf.py "$@"

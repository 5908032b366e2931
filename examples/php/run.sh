#!/usr/bin/env bash
# The PHP example: nginx + php-fpm (pm = static, 4 children) + promshm serve,
# all on 127.0.0.1, in the foreground, with every pid file, socket, log and
# the shared area in one temp dir. Ctrl-C (or SIGTERM) stops all three.
#
#   bash examples/php/run.sh              # app on :8080, /metrics on :8080 and :9464
#   PORT=8081 METRICS_PORT=9465 CHILDREN=8 bash examples/php/run.sh
#
#   curl 'http://127.0.0.1:8080/?route=home&v=0.25'
#   curl http://127.0.0.1:8080/metrics    # nginx -> promshm serve, never php-fpm
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
PORT=${PORT:-8080} METRICS_PORT=${METRICS_PORT:-9464} CHILDREN=${CHILDREN:-4} MAX_REQUESTS=${MAX_REQUESTS:-0}
php_fpm=$(command -v php-fpm8.2 || command -v php-fpm || echo /usr/sbin/php-fpm8.2)
nginx=$(command -v nginx || echo /usr/sbin/nginx)

(cd "$repo" && cargo build --release --quiet -p promshm -p promshm-cli)

dir=$(mktemp -d /tmp/promshm-php-example.XXXXXX)
chmod 755 "$dir"
if [ "$(id -u)" = 0 ]; then user=nobody; group=$(id -gn nobody); else user=$(id -un); group=$(id -gn); fi
mkdir "$dir/area" "$dir/state" "$dir/nginx-tmp"
chown "$user:$group" "$dir/area" "$dir/state" "$dir/nginx-tmp"
for f in php-fpm.conf nginx.conf; do
  sed -e "s|@DIR@|$dir|g" -e "s|@APP@|$here/app|g" -e "s|@PORT@|$PORT|g" \
      -e "s|@METRICS_PORT@|$METRICS_PORT|g" -e "s|@CHILDREN@|$CHILDREN|g" \
      -e "s|@MAX_REQUESTS@|$MAX_REQUESTS|g" -e "s|@USER@|$user|g" -e "s|@GROUP@|$group|g" \
      -e "s|@LIBRARY@|$repo/target/release/libpromshm.so|g" "$here/$f" > "$dir/$f"
done

pids=()
stop() {
  trap - EXIT INT TERM
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$dir"
}
trap stop EXIT INT TERM

# php-fpm's default ffi.enable=preload: the package's opcache.preload script,
# and the FFI scope from the header its tools/scope-header.php writes
# (ffi.preload; needed as opcache.preload_user is set when the master is root).
# FFI=cdef bash run.sh: ffi.enable=true instead (FFI declared at run time).
php_args=(-d ffi.enable=true)
if [ "${FFI:-preload}" = preload ]; then
  php8.2 "$repo/bindings/php/tools/scope-header.php" "$repo/target/release/libpromshm.so" > "$dir/promshm-scope.h"
  php_args=(-d ffi.enable=preload -d "ffi.preload=$dir/promshm-scope.h"
            -d opcache.enable=1 -d "opcache.preload=$repo/bindings/php/preload.php")
  [ "$(id -u)" = 0 ] && php_args+=(-d "opcache.preload_user=$user")
fi
"$php_fpm" -F -y "$dir/php-fpm.conf" "${php_args[@]}" &
pids+=($!)
"$nginx" -p "$dir" -c "$dir/nginx.conf" -e "$dir/nginx-error.log" &
pids+=($!)

# The first request opens (creates) the pool's area; serve reads it.
for _ in $(seq 100); do
  curl -fsS -o /dev/null "http://127.0.0.1:$PORT/?op=warm" 2>/dev/null && break
  sleep 0.1
done
[ -e "$dir/area/app.promshm" ] || { echo "run.sh: the area was not created; see $dir/*.log" >&2; cat "$dir"/*.log >&2; exit 1; }
allow=(); [ "$user" != "$(id -un)" ] && allow=(--allow-owner "$user")
"$repo/target/release/promshm" serve --listen "127.0.0.1:$METRICS_PORT" "${allow[@]}" "$dir/area/app.promshm" &
pids+=($!)

echo "app:     http://127.0.0.1:$PORT/?route=home&v=0.25"
echo "metrics: http://127.0.0.1:$PORT/metrics (nginx -> promshm serve) and http://127.0.0.1:$METRICS_PORT/metrics"
echo "logs:    $dir"
wait -n "${pids[@]}"

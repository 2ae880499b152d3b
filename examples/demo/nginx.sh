#!/usr/bin/env bash
# Runs the demo under nginx (lua-nginx-module, LuaJIT build of the module) on 127.0.0.1:PORT in
# the foreground, from a config generated into a temp dir; Ctrl-C (or SIGTERM) stops nginx and
# removes the dir. Needs `make both` (build/luajit/honeymoon_session.so).
#   examples/demo/nginx.sh [PORT]        (default: $PORT, else 3001)
# The first line printed names the address and nginx's master pid.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
port=${1:-${PORT:-3001}}
[ -f "$root/build/luajit/honeymoon_session.so" ] || { echo "nginx.sh: run 'make both' first" >&2; exit 1; }
if ! command -v nginx >/dev/null || [ ! -f /usr/lib/nginx/modules/ngx_http_lua_module.so ]; then
  # libnginx-mod-http-lua needs OpenResty's LuaJIT (luajit2), which replaces Debian's luajit.
  echo "nginx.sh: needs nginx and libnginx-mod-http-lua (with luajit2, not luajit): scripts/setup.sh" >&2
  exit 1
fi

prefix=$(mktemp -d "${TMPDIR:-/tmp}/hs-demo-nginx.XXXXXX")
pid=""
cleanup() {
  if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
  rm -rf "$prefix"
}
trap cleanup EXIT
trap 'exit 143' TERM
trap 'exit 130' INT

mkdir -p "$prefix/tmp"
user_line=""
if [ "$(id -u)" -eq 0 ]; then
  # Workers drop to nobody; they need the temp dirs (and read access to the checkout).
  user_line="user nobody nogroup;"
  chmod 755 "$prefix"; chown nobody:nogroup "$prefix/tmp"
fi
sed -e "s|@PREFIX@|$prefix|g" -e "s|@ROOT@|$root|g" -e "s|@PORT@|$port|g" -e "s|@USER@|$user_line|g" \
  "$root/examples/demo/nginx.conf.in" >"$prefix/nginx.conf"

nginx -p "$prefix" -c "$prefix/nginx.conf" -g 'daemon off;' &
pid=$!
for _ in $(seq 100); do
  [ -s "$prefix/nginx.pid" ] && break
  kill -0 "$pid" 2>/dev/null || { wait "$pid" || true; pid=""; echo "nginx.sh: nginx did not start" >&2; exit 1; }
  sleep 0.05
done
echo "honeymoon_session demo (nginx $(nginx -v 2>&1 | sed 's|.*/||'), LuaJIT): http://127.0.0.1:$port/ (master pid $pid)"
wait "$pid"

#!/usr/bin/env bash
# Runs the demo under nginx (lua-nginx-module, LuaJIT build of the module) on 127.0.0.1:PORT in
# the foreground, from a config generated into a temp dir; Ctrl-C (or SIGTERM) stops nginx and
# removes the dir. Needs `make both` (build/luajit/honeymoon_session.so).
#   examples/demo/nginx.sh [PORT]        (default: $PORT, else 3001)
# nginx's workers run as the user who runs this script, root included, so a checkout in a
# private directory (/root, a `mktemp -d` dir) works; as root, DEMO_NGINX_USER=nobody (say) runs
# them as another user, who must be able to read the checkout.
# DEMO_NGINX_WORKERS sets worker_processes (default auto: one per CPU); sessions are in a
# lua_shared_dict every worker shares. DEMO_NGINX_INCLUDE names a file of nginx directives
# included in the server block (the tests add their own locations that way).
# The script sends a first request (GET /counter-plain, no session) before it announces
# anything: if that fails it prints nginx's first error and the cause, stops nginx and exits 1.
# The first line printed on success names the address and nginx's master pid.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
port=${1:-${PORT:-3001}}
so=$root/build/luajit/honeymoon_session.so
[ -f "$so" ] || { echo "nginx.sh: no $so: run 'make both' first" >&2; exit 1; }
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

# Who the workers run as. nginx started by an ordinary user ignores `user` and its workers stay
# that user. Started by root, nginx would drop them to nobody, who cannot enter a private
# directory holding the checkout and the .so; so root's workers stay root (nginx permits it, and
# the demo listens on the loopback only).
mkdir -p "$prefix/tmp"
user_line="" worker_user=$(id -un)
if [ "$(id -u)" -eq 0 ]; then
  worker_user=${DEMO_NGINX_USER:-root}
  worker_group=$(id -gn "$worker_user") || { echo "nginx.sh: DEMO_NGINX_USER: no user $worker_user" >&2; exit 1; }
  user_line="user $worker_user $worker_group;"
  if [ "$worker_user" != root ]; then
    # Another user's workers need the temp dirs (the prefix itself stays unlistable).
    chmod 711 "$prefix"; chown "$worker_user:$worker_group" "$prefix/tmp"
  fi
fi
workers=${DEMO_NGINX_WORKERS:-auto}
case $workers in auto|[1-9]|[1-9][0-9]) ;; *) echo "nginx.sh: DEMO_NGINX_WORKERS must be auto or 1..99, got '$workers'" >&2; exit 1 ;; esac
include_line=""
if [ -n "${DEMO_NGINX_INCLUDE:-}" ]; then
  [ -r "$DEMO_NGINX_INCLUDE" ] || { echo "nginx.sh: DEMO_NGINX_INCLUDE: cannot read $DEMO_NGINX_INCLUDE" >&2; exit 1; }
  include_line="include $(cd "$(dirname "$DEMO_NGINX_INCLUDE")" && pwd)/$(basename "$DEMO_NGINX_INCLUDE");"
fi
sed -e "s|@PREFIX@|$prefix|g" -e "s|@ROOT@|$root|g" -e "s|@PORT@|$port|g" -e "s|@USER@|$user_line|g" \
  -e "s|@WORKERS@|$workers|g" -e "s|@INCLUDE@|$include_line|g" \
  "$root/examples/demo/nginx.conf.in" >"$prefix/nginx.conf"

# The first [emerg]/[alert]/[crit]/[error] line of nginx's log file, without its timestamp.
first_error() {
  grep -m1 -E '\[(emerg|alert|crit|error)\]' "$prefix/error.log" 2>/dev/null |
    sed 's/^[0-9/]* [0-9:]* //' || true
}

# test(1) run as user $1: the workers' view of the files when they are not this script's user.
as_worker() {
  local user=$1; shift
  if [ "$user" = "$(id -un)" ]; then test "$@"
  else setpriv --reuid="$user" --regid="$(id -g "$user")" --init-groups test "$@"; fi
}

# The first path the workers (user $1) cannot get through on the way to each file given: a
# directory they cannot enter, or the file they cannot read. Prints nothing if all are readable.
unreadable() {
  local user=$1 file d dirs
  shift
  for file; do
    dirs=() d=$(dirname "$file")
    while [ "$d" != / ]; do dirs=("$d" "${dirs[@]}"); d=$(dirname "$d"); done
    for d in "${dirs[@]}"; do as_worker "$user" -x "$d" || { echo "$d"; return; }; done
    as_worker "$user" -r "$file" || { echo "$file"; return; }
  done
}

# -e stderr: an ordinary user cannot open nginx's compiled-in /var/log/nginx/error.log.
nginx -e stderr -p "$prefix" -c "$prefix/nginx.conf" -g 'daemon off;' &
pid=$!
for _ in $(seq 100); do
  [ -s "$prefix/nginx.pid" ] && break
  kill -0 "$pid" 2>/dev/null || { wait "$pid" || true; pid=""; echo "nginx.sh: nginx did not start (its error is above)" >&2; exit 1; }
  sleep 0.05
done
[ -s "$prefix/nginx.pid" ] || { echo "nginx.sh: nginx wrote no pid file within 5 s" >&2; exit 1; }

# The first request loads the app and the module in a worker (examples/demo/openresty.lua). If
# the worker cannot, stop here with the cause rather than serve a 500 for every request. The
# socket is bound once the pid file exists; 000 means no answer yet (the worker is starting).
url="http://127.0.0.1:$port/"
code=000
for _ in $(seq 50); do
  code=$(curl -sS -o /dev/null -w '%{http_code}' --max-time 5 "${url}counter-plain" 2>/dev/null) || true
  [ "$code" = 000 ] || break
  kill -0 "$pid" 2>/dev/null || break
  sleep 0.1
done
if [ "$code" != 200 ]; then
  if [ "$code" = 000 ]; then what="got no answer"; else what="got HTTP $code"; fi
  echo "nginx.sh: the first request (GET ${url}counter-plain) $what; stopping nginx." >&2
  err=$(first_error)
  [ -z "$err" ] || echo "nginx.sh: nginx's first error: $err" >&2
  blocked=$(unreadable "$worker_user" "$so" "$root/examples/demo/openresty.lua" \
    "$root/examples/demo/routes.lua" "$root/lua/honeymoon_session/adapters/openresty.lua")
  if [ -n "$blocked" ]; then
    echo "nginx.sh: nginx's workers run as $worker_user, who cannot read $blocked" \
      "($(stat -c '%A, owner %U' "$blocked"))." >&2
    # A directory must be enterable (x), a file readable (r); u+ if the workers own it, else o+.
    bit=r who=o
    [ ! -d "$blocked" ] || bit=x
    [ "$(stat -c %U "$blocked")" != "$worker_user" ] || who=u
    fix="chmod $who+$bit $blocked, or put the checkout in a directory $worker_user can read"
    # Only root can pick another user for the workers (DEMO_NGINX_USER).
    [ "$worker_user" = "$(id -un)" ] || fix="unset DEMO_NGINX_USER (the workers then run as $(id -un)), $fix"
    echo "nginx.sh: fix: $fix." >&2
  else
    echo "nginx.sh: the workers ($worker_user) can read the checkout ($root) and the module; see the error above." >&2
  fi
  exit 1
fi

echo "honeymoon_session demo (nginx $(nginx -v 2>&1 | sed 's|.*/||'), LuaJIT, worker_processes $workers): $url (master pid $pid)"
wait "$pid"

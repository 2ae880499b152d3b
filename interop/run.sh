#!/usr/bin/env bash
# Interop test: a throwaway redis-server, the Express app (interop/node) and the Lua app
# (interop/lua/routes.lua) on free loopback ports, then `node --test` on interop/test.mjs and
# the cookie differential interop/cookies.test.mjs (TAP output ending in "# pass N" / "# fail N"). Exits with the test status; everything it started
# is stopped on exit. Needs: redis-server, redis-cli, node >= 20, curl, the module built (make
# both), and `npm ci --prefix interop/node` run once. INTEROP_LUA picks the Lua side:
#   luajit (default)  lua-http on LuaJIT (interop/lua/app.lua), the native blocking hs.RedisStore
#   lua5.4            the same on Lua 5.4
#   openresty         nginx + lua-nginx-module (interop/lua/openresty.lua from nginx.conf.in),
#                     the OpenResty adapter over the cosocket RedisStore (stores.redis, "ngx");
#                     INTEROP_NGINX_WORKERS workers (default 2), every request on a new connection
#                     so one client's requests reach both. Needs nginx and libnginx-mod-http-lua.
set -u
cd "$(dirname "$0")/.."
root=$PWD

if [ ! -d interop/node/node_modules ]; then
  echo "interop: interop/node/node_modules is missing; install it with: npm ci --prefix interop/node" >&2
  exit 1
fi
lua_bin=${INTEROP_LUA:-luajit}
case "$lua_bin" in
  luajit) flavour=luajit ;;
  lua5.4) flavour=lua54 ;;
  openresty) flavour=luajit ;;
  *) echo "interop: INTEROP_LUA must be luajit, lua5.4 or openresty, got $lua_bin" >&2; exit 1 ;;
esac
if [ "$lua_bin" = openresty ]; then
  nginx_workers=${INTEROP_NGINX_WORKERS:-2}
  case $nginx_workers in [1-9]) ;; *) echo "interop: INTEROP_NGINX_WORKERS must be 1..9, got '$nginx_workers'" >&2; exit 1 ;; esac
  if ! command -v nginx >/dev/null || [ ! -f /usr/lib/nginx/modules/ngx_http_lua_module.so ]; then
    echo "interop: INTEROP_LUA=openresty needs nginx and libnginx-mod-http-lua (scripts/setup.sh)" >&2
    exit 1
  fi
  lua_bin=nginx
fi
for bin in redis-server redis-cli node curl "$lua_bin"; do
  command -v "$bin" >/dev/null || { echo "interop: $bin not found (apt-get install redis-server nodejs curl luajit lua5.4 lua-http)" >&2; exit 1; }
done
if [ ! -f "build/$flavour/honeymoon_session.so" ]; then
  echo "interop: build/$flavour/honeymoon_session.so is missing; run: make both" >&2
  exit 1
fi

source scripts/lib/servers.sh # free_port, keep_artifacts
tmp=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null; done
  for pid in "${pids[@]}"; do
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null
  done
  # Under scripts/test.sh: artifacts/interop-<lua>/ keeps the three servers' logs.
  keep_artifacts "interop-$lua_bin" "$tmp"/*.log "$tmp/nginx/nginx.conf" "$tmp/nginx/access.log"
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Three distinct free ports on 127.0.0.1, below the ephemeral range (scripts/lib/servers.sh): port 0's
# picks could be taken by an outgoing connection before the servers bind them.
read -r redis_port node_port lua_port < <(free_port 3)

dump_logs() {
  for f in redis node lua; do
    echo "--- $f log"; tail -n 30 "$tmp/$f.log" 2>/dev/null
  done
}

# wait_for NAME PID CMD...: up to 10 s for CMD to succeed while PID lives.
wait_for() {
  local name=$1 pid=$2; shift 2
  for _ in $(seq 100); do
    "$@" >/dev/null 2>&1 && return 0
    kill -0 "$pid" 2>/dev/null || { echo "interop: $name exited during startup" >&2; dump_logs; exit 1; }
    sleep 0.1
  done
  echo "interop: $name did not come up within 10 s" >&2; dump_logs; exit 1
}

redis-server --bind 127.0.0.1 --port "$redis_port" --dir "$tmp" --save '' --appendonly no \
  --daemonize no --logfile "$tmp/redis.log" &
pids+=($!)
wait_for redis-server "${pids[-1]}" redis-cli -h 127.0.0.1 -p "$redis_port" ping
redis_url="redis://127.0.0.1:$redis_port"

PORT=$node_port REDIS_URL=$redis_url node interop/node/app.mjs >"$tmp/node.log" 2>&1 &
pids+=($!)
if [ "$lua_bin" = nginx ]; then
  # Config generated into the temp dir; nginx in the foreground (daemon off), so its master is
  # this script's child and is stopped by its PID like the others. As root, the workers stay
  # root (nginx would drop them to nobody, who may not read the checkout); otherwise they run
  # as the invoking user. nginx's error log is the Lua log.
  mkdir -p "$tmp/nginx/tmp"
  user_line=""; [ "$(id -u)" -ne 0 ] || user_line="user root root;"
  sed -e "s|@PREFIX@|$tmp/nginx|g" -e "s|@ROOT@|$root|g" -e "s|@PORT@|$lua_port|g" \
    -e "s|@LOG@|$tmp/lua.log|g" -e "s|@WORKERS@|$nginx_workers|g" -e "s|@USER@|$user_line|g" \
    interop/lua/nginx.conf.in >"$tmp/nginx/nginx.conf"
  REDIS_URL=$redis_url nginx -e "$tmp/lua.log" -p "$tmp/nginx" -c "$tmp/nginx/nginx.conf" \
    -g 'daemon off;' >>"$tmp/lua.log" 2>&1 &
else
  PORT=$lua_port REDIS_URL=$redis_url HS_CPATH="$root/build/$flavour/?.so" "$lua_bin" interop/lua/app.lua \
    >"$tmp/lua.log" 2>&1 &
fi
pids+=($!)
wait_for "node app" "${pids[1]}" curl -sf -o /dev/null "http://127.0.0.1:$node_port/show"
wait_for "lua app" "${pids[2]}" curl -sf -o /dev/null "http://127.0.0.1:$lua_port/show"

# The cookie differential (interop/cookies.test.mjs: no servers) runs with the lua-http
# interpreter's module; under nginx it would repeat the LuaJIT run, so it is left out there.
suites=(interop/test.mjs)
[ "$lua_bin" = nginx ] || suites+=(interop/cookies.test.mjs)
NODE_URL="http://127.0.0.1:$node_port" LUA_URL="http://127.0.0.1:$lua_port" REDIS_PORT=$redis_port \
  COOKIES_LUA=$lua_bin HS_CPATH="$root/build/$flavour/?.so" \
  timeout 120 node --test --test-reporter=tap "${suites[@]}"
status=$?
if [ "$lua_bin" = nginx ]; then
  # Which workers served the suite (pid: requests), from the access log.
  echo "interop: nginx workers (pid: requests): $(awk '{ n[$1]++ } END { for (p in n) printf "%s%s: %d", (s++ ? ", " : ""), p, n[p] }' "$tmp/nginx/access.log" 2>/dev/null)"
  # A Lua error nginx logged fails the run even if every test passed.
  errors=$(grep -E '\[(error|alert|crit|emerg)\]|runtime error' "$tmp/lua.log" | head -3 || true)
  if [ -n "$errors" ]; then echo "interop: nginx logged errors:" >&2; echo "$errors" >&2; [ "$status" -ne 0 ] || status=1; fi
fi
[ "$status" -ne 0 ] && dump_logs
exit "$status"

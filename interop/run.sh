#!/usr/bin/env bash
# Interop test: a throwaway redis-server, the Express app (interop/node) and the LuaJIT app
# (interop/lua/app.lua) on free loopback ports, then `node --test` on interop/test.mjs (TAP
# output ending in "# pass N" / "# fail N"). Exits with the test status; everything it started
# is stopped on exit. Needs: redis-server, redis-cli, node >= 20, luajit, lua-http, the module
# built (make both), and `npm ci --prefix interop/node` run once. INTEROP_LUA=lua5.4 runs the Lua
# app on Lua 5.4 instead of LuaJIT.
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
  *) echo "interop: INTEROP_LUA must be luajit or lua5.4, got $lua_bin" >&2; exit 1 ;;
esac
for bin in redis-server redis-cli node curl "$lua_bin"; do
  command -v "$bin" >/dev/null || { echo "interop: $bin not found (apt-get install redis-server nodejs curl luajit lua5.4 lua-http)" >&2; exit 1; }
done
if [ ! -f "build/$flavour/honeymoon_session.so" ]; then
  echo "interop: build/$flavour/honeymoon_session.so is missing; run: make both" >&2
  exit 1
fi

tmp=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null; done
  for pid in "${pids[@]}"; do
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null
  done
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Three distinct free ports on 127.0.0.1 (held open together while picking, so they differ).
read -r redis_port node_port lua_port < <(node -e '
  const net = require("net");
  const servers = [0, 1, 2].map(() => net.createServer());
  let n = 0;
  for (const s of servers) s.listen(0, "127.0.0.1", () => {
    if (++n === servers.length) {
      console.log(servers.map((x) => x.address().port).join(" "));
      for (const x of servers) x.close();
    }
  });')

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
PORT=$lua_port REDIS_URL=$redis_url HS_CPATH="$root/build/$flavour/?.so" "$lua_bin" interop/lua/app.lua \
  >"$tmp/lua.log" 2>&1 &
pids+=($!)
wait_for "node app" "${pids[1]}" curl -sf -o /dev/null "http://127.0.0.1:$node_port/show"
wait_for "lua app" "${pids[2]}" curl -sf -o /dev/null "http://127.0.0.1:$lua_port/show"

NODE_URL="http://127.0.0.1:$node_port" LUA_URL="http://127.0.0.1:$lua_port" REDIS_PORT=$redis_port \
  timeout 120 node --test --test-reporter=tap interop/test.mjs
status=$?
[ "$status" -ne 0 ] && dump_logs
exit "$status"

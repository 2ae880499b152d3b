# Sourced by scripts/e2e.sh and scripts/load.sh: start the demo on lua-http and under nginx on
# free loopback ports, and stop them again. Needs `make both`. Not a script of its own.
#   start_lua_http [lua5.4|luajit]  -> sets LUA_HTTP_URL, LUA_HTTP_PID (the interpreter's pid)
#   start_nginx                     -> sets NGINX_URL, NGINX_PID (the wrapper), NGINX_WORKER_PID
#   stop_servers                    -> stops whatever was started (call it from an EXIT trap)
#   build_module                    -> make both, quietly (its log only on failure)
# Logs go to $DEMO_LOGS (a temp dir made here), printed by show_server_logs.

DEMO_ROOT=${DEMO_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
DEMO_LOGS=$(mktemp -d "${TMPDIR:-/tmp}/hs-demo-logs.XXXXXX")
LUA_HTTP_PID="" NGINX_PID="" NGINX_WORKER_PID="" LUA_HTTP_URL="" NGINX_URL=""

build_module() {
  local log
  log=$(mktemp)
  if ! make -s -C "$DEMO_ROOT" both >"$log" 2>&1; then tail -30 "$log" >&2; rm -f "$log"; return 1; fi
  rm -f "$log"
}

# A port nothing listens on now (bound to port 0 and released; the caller retries on a race).
free_port() {
  lua5.4 -e 'local s = assert(require("cqueues.socket").listen({ host = "127.0.0.1", port = 0 }))
             assert(s:listen()); local _, _, port = s:localname(); print(port); s:close()'
}

# Waits until $1 answers GET /counter-plain (a route without sessions), up to 10 s.
wait_http() {
  local url=$1 pid=$2
  for _ in $(seq 100); do
    kill -0 "$pid" 2>/dev/null || return 1
    curl -fsS -o /dev/null --max-time 2 "${url}counter-plain" 2>/dev/null && return 0
    sleep 0.1
  done
  return 1
}

start_lua_http() {
  local lua=${1:-lua5.4} port
  for _ in 1 2 3; do
    port=$(free_port)
    PORT=$port "$lua" "$DEMO_ROOT/examples/demo/app.lua" >"$DEMO_LOGS/lua-http.out" 2>"$DEMO_LOGS/lua-http.err" &
    LUA_HTTP_PID=$!
    LUA_HTTP_URL="http://127.0.0.1:$port/"
    wait_http "$LUA_HTTP_URL" "$LUA_HTTP_PID" && return 0
    kill "$LUA_HTTP_PID" 2>/dev/null; wait "$LUA_HTTP_PID" 2>/dev/null; LUA_HTTP_PID=""
  done
  echo "servers: the lua-http demo did not start:" >&2; cat "$DEMO_LOGS/lua-http.err" >&2
  return 1
}

start_nginx() {
  local port
  for _ in 1 2 3; do
    port=$(free_port)
    bash "$DEMO_ROOT/examples/demo/nginx.sh" "$port" >"$DEMO_LOGS/nginx.out" 2>"$DEMO_LOGS/nginx.err" &
    NGINX_PID=$!
    NGINX_URL="http://127.0.0.1:$port/"
    if wait_http "$NGINX_URL" "$NGINX_PID"; then
      # nginx.sh prints "... (master pid N)"; the one worker is the master's child.
      local master="" _
      for _ in $(seq 50); do
        master=$(sed -n 's/.*(master pid \([0-9]*\)).*/\1/p' "$DEMO_LOGS/nginx.out")
        [ -n "$master" ] && NGINX_WORKER_PID=$(awk '{ print $1 }' "/proc/$master/task/$master/children" 2>/dev/null)
        [ -n "$NGINX_WORKER_PID" ] && return 0
        sleep 0.1
      done
      echo "servers: nginx answers, but its worker was not found" >&2
      return 0
    fi
    kill "$NGINX_PID" 2>/dev/null; wait "$NGINX_PID" 2>/dev/null; NGINX_PID=""
  done
  echo "servers: the nginx demo did not start:" >&2; cat "$DEMO_LOGS/nginx.err" >&2
  return 1
}

stop_servers() {
  local pid
  for pid in $LUA_HTTP_PID $NGINX_PID; do
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  LUA_HTTP_PID="" NGINX_PID=""
  rm -rf "$DEMO_LOGS"
}

show_server_logs() {
  local f
  for f in "$DEMO_LOGS"/*.err; do
    [ -s "$f" ] || continue
    echo "--- $(basename "$f") (last 20 lines)"; tail -n 20 "$f"
  done
}

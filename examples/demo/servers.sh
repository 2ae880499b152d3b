# Sourced by scripts/e2e.sh and scripts/load.sh: start the demo on lua-http and under nginx on
# free loopback ports, and stop them again. Needs `make both`. Not a script of its own.
#   start_lua_http [lua5.4|luajit]  -> sets LUA_HTTP_URL, LUA_HTTP_PID (the interpreter's pid)
#   start_nginx                     -> sets NGINX_URL, NGINX_PID (the wrapper), NGINX_MASTER_PID,
#                                      NGINX_WORKER_PIDS (all workers, space-separated) and
#                                      NGINX_WORKER_PID (the first); DEMO_NGINX_WORKERS workers
#                                      (default 2 here, so tests see two on any machine)
#   stop_servers                    -> stops whatever was started (call it from an EXIT trap)
#   build_module                    -> make both, quietly (its log only on failure)
# A start_* that gets an error for its server's first request returns 1 at once, with the first
# error from the server's log (retrying on another port only when the port was taken).
# Logs go to $DEMO_LOGS (a temp dir made here), printed by show_server_logs.

DEMO_ROOT=${DEMO_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
DEMO_LOGS=$(mktemp -d "${TMPDIR:-/tmp}/hs-demo-logs.XXXXXX")
LUA_HTTP_PID="" NGINX_PID="" NGINX_MASTER_PID="" NGINX_WORKER_PID="" NGINX_WORKER_PIDS="" LUA_HTTP_URL="" NGINX_URL=""

build_module() {
  local log
  log=$(mktemp)
  if ! make -s -C "$DEMO_ROOT" both >"$log" 2>&1; then tail -30 "$log" >&2; rm -f "$log"; return 1; fi
  rm -f "$log"
}

# free_port (below the ephemeral range, so no outgoing connection takes it before the server
# binds; the callers still retry on a race) and keep_artifacts.
source "$DEMO_ROOT/scripts/lib/servers.sh"

# Waits until $1 answers GET /counter-plain (a route without sessions), up to 10 s. Returns 0 on a
# 2xx; 1 if process $2 exits or nothing answers in time; 2 at once if the server answers with an
# error: it is up but cannot serve the app (say, its workers cannot read the module), and
# neither waiting nor another port would help.
wait_http() {
  local url=$1 pid=$2 code
  for _ in $(seq 100); do
    code=$(curl -sS -o /dev/null -w '%{http_code}' --max-time 2 "${url}counter-plain" 2>/dev/null) || true
    case $code in 2??) return 0 ;; 000) ;; *) return 2 ;; esac
    kill -0 "$pid" 2>/dev/null || return 1
    sleep 0.1
  done
  return 1
}

# Whether a server log says its port was taken (between free_port and bind): worth another port.
port_taken() { grep -qi 'address already in use' "$1" 2>/dev/null; }

# The first error in a server log: nginx.sh's own diagnosis when it gave one (it quotes nginx's
# first error and names what the workers cannot read), else the first line that reads as an
# error, else the log's last lines.
first_error() {
  local log=$1
  if grep -q '^nginx.sh: ' "$log" 2>/dev/null; then grep '^nginx.sh: ' "$log"; return; fi
  grep -m1 -iE '\[(emerg|alert|crit|error)\]|error|fail|not found' "$log" 2>/dev/null || tail -n 5 "$log" 2>/dev/null
}

# A server that cannot answer its first request: say so with its first error; no retries.
server_failed() {
  echo "servers: the $1 demo cannot answer its first request (GET /counter-plain); its first error:" >&2
  first_error "$2" | sed 's/^/  /' >&2
  return 1
}

start_lua_http() {
  local lua=${1:-lua5.4} port rc
  for _ in 1 2 3; do
    port=$(free_port)
    # HOST explicitly: app.lua reads it from the environment, and a caller's HOST=0.0.0.0
    # would expose this test server beyond the loopback.
    HOST=127.0.0.1 PORT=$port "$lua" "$DEMO_ROOT/examples/demo/app.lua" >"$DEMO_LOGS/lua-http.out" 2>"$DEMO_LOGS/lua-http.err" &
    LUA_HTTP_PID=$!
    LUA_HTTP_URL="http://127.0.0.1:$port/"
    wait_http "$LUA_HTTP_URL" "$LUA_HTTP_PID"; rc=$?
    [ "$rc" -eq 0 ] && return 0
    kill "$LUA_HTTP_PID" 2>/dev/null; wait "$LUA_HTTP_PID" 2>/dev/null; LUA_HTTP_PID=""
    [ "$rc" -eq 1 ] && port_taken "$DEMO_LOGS/lua-http.err" && continue
    server_failed lua-http "$DEMO_LOGS/lua-http.err"; return 1
  done
  echo "servers: the lua-http demo did not start (3 ports taken):" >&2; cat "$DEMO_LOGS/lua-http.err" >&2
  return 1
}

start_nginx() {
  local port rc workers=${DEMO_NGINX_WORKERS:-2}
  for _ in 1 2 3; do
    port=$(free_port)
    DEMO_NGINX_WORKERS=$workers bash "$DEMO_ROOT/examples/demo/nginx.sh" "$port" \
      >"$DEMO_LOGS/nginx.out" 2>"$DEMO_LOGS/nginx.err" &
    NGINX_PID=$!
    NGINX_URL="http://127.0.0.1:$port/"
    wait_http "$NGINX_URL" "$NGINX_PID"; rc=$?
    if [ "$rc" -eq 0 ]; then
      # nginx.sh prints "... (master pid N)"; the workers are the master's children.
      local master="" _ want=$workers
      [ "$want" = auto ] && want=$(nproc)
      for _ in $(seq 50); do
        master=$(sed -n 's/.*(master pid \([0-9]*\)).*/\1/p' "$DEMO_LOGS/nginx.out")
        if [ -n "$master" ]; then
          NGINX_MASTER_PID=$master
          NGINX_WORKER_PIDS=$(xargs 2>/dev/null <"/proc/$master/task/$master/children")
          NGINX_WORKER_PID=${NGINX_WORKER_PIDS%% *}
          [ "$(wc -w <<<"$NGINX_WORKER_PIDS")" -eq "$want" ] && return 0
        fi
        sleep 0.1
      done
      echo "servers: nginx answers, but its $want worker(s) were not found (found: ${NGINX_WORKER_PIDS:-none})" >&2
      return 0
    fi
    if [ "$rc" -eq 2 ]; then
      # nginx.sh sends the same first request and then stops with the cause: up to 5 s for that.
      for _ in $(seq 50); do kill -0 "$NGINX_PID" 2>/dev/null || break; sleep 0.1; done
    fi
    kill "$NGINX_PID" 2>/dev/null; wait "$NGINX_PID" 2>/dev/null; NGINX_PID=""
    [ "$rc" -eq 1 ] && port_taken "$DEMO_LOGS/nginx.err" && continue
    server_failed nginx "$DEMO_LOGS/nginx.err"; return 1
  done
  echo "servers: the nginx demo did not start (3 ports taken):" >&2; cat "$DEMO_LOGS/nginx.err" >&2
  return 1
}

stop_servers() {
  local pid
  for pid in $LUA_HTTP_PID $NGINX_PID; do
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  LUA_HTTP_PID="" NGINX_PID=""
  # Under scripts/test.sh the servers' logs are kept: artifacts/servers-<script>/.
  keep_artifacts "servers-$(basename "$0" .sh)" "$DEMO_LOGS"/*
  rm -rf "$DEMO_LOGS"
}

show_server_logs() {
  local f
  for f in "$DEMO_LOGS"/*.err; do
    [ -s "$f" ] || continue
    echo "--- $(basename "$f") (last 20 lines)"; tail -n 20 "$f"
  done
}

# Sourced by the checks that start throwaway servers (scripts/*_check.sh, interop/run.sh,
# examples/demo/servers.sh): free ports, kept logs, Redis,
# a delaying proxy in front of it, and the head of an nginx config. Loopback only. Callers stop
# what they started by the PIDs these set. Not a script of its own.
#   free_port [N]                      -> N (default 1) distinct loopback ports free now
#   keep_artifacts NAME PATH...        -> copies logs into $HS_ARTIFACTS/NAME when HS_ARTIFACTS
#                                         is set (scripts/test.sh sets it to artifacts/)
#   wait_file FILE                     -> waits (10 s at most) until FILE has content
#   start_redis DIR                    -> sets REDIS_PORT, REDIS_PID (or returns 1, log in DIR)
#   start_slow_proxy DIR PORT SECONDS  -> sets PROXY_PORT, PROXY_PID: each reply from PORT held
#   start_delay_proxy DIR PORT MICROS  -> the same, built from scripts/lib/delay_proxy.c: for
#                                         load, where the Lua proxy's own CPU would count
#   nginx_conf_head DIR WORKERS        -> prints nginx.conf up to inside `http {` (temp paths,
#                                         the module's Lua paths); the caller adds the rest

HS_ROOT=${HS_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
REDIS_PORT="" REDIS_PID="" PROXY_PORT="" PROXY_PID=""

# Ports come from below the kernel's ephemeral range (net.ipv4.ip_local_port_range, 32768 and up
# by default), from 20000 up (clear of the ports browsers refuse to load, like 10080, which
# failed the e2e run that drew it), at random, each checked by binding it. A port from the ephemeral
# range, as port 0 hands out, can be taken between the check and the server's own bind by any
# outgoing connection on the machine (the load tests open thousands), which failed a server's
# start now and then; below the range only an explicit bind can take it. When the range leaves
# no room below it, port 0 is used. The ports of one call are held together while picking, so
# they differ. Needs lua5.4 with cqueues (scripts/setup.sh).
free_port() {
  lua5.4 - "${1:-1}" <<'LUA'
local socket = require("cqueues.socket")
local want = tonumber(arg[1]) or 1
local low = 32768
local range = io.open("/proc/sys/net/ipv4/ip_local_port_range")
if range then
  low = tonumber((range:read("*l") or ""):match("^%s*(%d+)")) or low
  range:close()
end
local seed = 0
local urandom = io.open("/dev/urandom", "rb")
if urandom then
  for c in urandom:read(6):gmatch(".") do seed = seed * 256 + c:byte() end
  urandom:close()
end
math.randomseed(seed + os.time())
local lo, hi = 20000, low - 1
local held, ports = {}, {}
for _ = 1, 500 do
  if #ports == want then break end
  local s = socket.listen({ host = "127.0.0.1", port = hi - lo >= 1000 and math.random(lo, hi) or 0 })
  if pcall(s.listen, s) then -- raises when the port is taken
    local _, _, port = s:localname()
    held[#held + 1], ports[#ports + 1] = s, port
  else
    s:close()
  end
end
for _, s in ipairs(held) do s:close() end
if #ports < want then
  io.stderr:write("free_port: found only ", #ports, " of ", want, " free ports\n")
  os.exit(1)
end
print(table.concat(ports, " "))
LUA
}

# Copies PATH... (files or directories; missing ones are skipped) into $HS_ARTIFACTS/NAME, so a
# failed run's server logs outlive the temp dirs their scripts remove. A no-op without
# HS_ARTIFACTS; never fails.
keep_artifacts() {
  local name=$1 path
  shift
  [ -n "${HS_ARTIFACTS:-}" ] || return 0
  mkdir -p "$HS_ARTIFACTS/$name" 2>/dev/null || return 0
  for path; do
    [ -e "$path" ] && cp -r "$path" "$HS_ARTIFACTS/$name/" 2>/dev/null
  done
  return 0
}

wait_file() { for _ in $(seq 200); do [ -s "$1" ] && return 0; sleep 0.05; done; return 1; }

# A probed port can be taken before redis binds it (other checks run servers too): then another
# port is tried. A loaded machine may need seconds to start it (10 s at most per port). It runs
# in the background, not daemonized, so its pid is known at once: a try that fails kills what it
# started (by pid, waiting until it exited) before the next port, so no late server is left.
start_redis() {
  local dir=$1 pid
  for _ in 1 2 3; do
    REDIS_PORT=$(free_port) || return 1
    # ::1 too where the machine has IPv6 loopback ("-": skipped where it has not).
    redis-server --port "$REDIS_PORT" --bind 127.0.0.1 -::1 --save '' --appendonly no \
      --dir "$dir" --logfile "$dir/redis.log" </dev/null >/dev/null 2>&1 &
    pid=$!
    for _ in $(seq 200); do
      kill -0 "$pid" 2>/dev/null || break # it could not bind (or start)
      # The PONG must come from this server, not another one holding the port.
      if redis-cli -p "$REDIS_PORT" INFO server 2>/dev/null | tr -d '\r' | grep -qx "process_id:$pid"; then
        REDIS_PID=$pid
        return 0
      fi
      sleep 0.05
    done
    kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null
  done
  return 1
}

# spec/support/slow_proxy.lua in its own cqueues process (Lua 5.4).
start_slow_proxy() {
  local dir=$1 upstream=$2 delay=$3
  rm -f "$dir/proxy.port"
  lua5.4 -e "
    package.path = '$HS_ROOT/?.lua;' .. package.path
    local cqueues = require('cqueues')
    local cq = cqueues.new()
    local port = require('spec.support.slow_proxy').start(cq, $upstream, $delay)
    local f = assert(io.open('$dir/proxy.port', 'w')); f:write(port); f:close()
    assert(cq:loop())" >"$dir/proxy.log" 2>&1 &
  PROXY_PID=$!
  wait_file "$dir/proxy.port" || return 1
  PROXY_PORT=$(cat "$dir/proxy.port")
}

# scripts/lib/delay_proxy.c, compiled into DIR.
start_delay_proxy() {
  local dir=$1 upstream=$2 micros=$3
  rm -f "$dir/proxy.port"
  gcc -O2 -o "$dir/delay_proxy" "$HS_ROOT/scripts/lib/delay_proxy.c" >"$dir/proxy.log" 2>&1 || return 1
  "$dir/delay_proxy" "$dir/proxy.port" "$upstream" "$micros" >>"$dir/proxy.log" 2>&1 &
  PROXY_PID=$!
  wait_file "$dir/proxy.port" || return 1
  PROXY_PORT=$(cat "$dir/proxy.port")
}

# Root's workers would run as nobody, who may not read a checkout in a private directory
# (/root): they run as the invoking user.
nginx_conf_head() {
  local dir=$1 workers=$2 user_line=""
  [ "$(id -u)" -ne 0 ] || user_line="user root $(id -gn);"
  mkdir -p "$dir/tmp"
  cat <<EOF
load_module /usr/lib/nginx/modules/ndk_http_module.so;
load_module /usr/lib/nginx/modules/ngx_http_lua_module.so;
$user_line
worker_processes $workers;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events { worker_connections 1024; }
http {
    access_log off;
    default_type text/plain;
    client_body_temp_path $dir/tmp/body;
    proxy_temp_path $dir/tmp/proxy;
    fastcgi_temp_path $dir/tmp/fastcgi;
    uwsgi_temp_path $dir/tmp/uwsgi;
    scgi_temp_path $dir/tmp/scgi;
    lua_package_path "$HS_ROOT/?.lua;$HS_ROOT/lua/?.lua;;";
    lua_package_cpath "$HS_ROOT/build/luajit/?.so;;";
EOF
}

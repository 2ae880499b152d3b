# Sourced by the checks that start throwaway servers (scripts/*_check.sh): free ports, Redis,
# a delaying proxy in front of it, and the head of an nginx config. Loopback only. Callers stop
# what they started by the PIDs these set. Not a script of its own.
#   free_port                          -> prints a loopback port nobody listens on now
#   wait_file FILE                     -> waits (10 s at most) until FILE has content
#   start_redis DIR                    -> sets REDIS_PORT, REDIS_PID (or returns 1, log in DIR)
#   start_slow_proxy DIR PORT SECONDS  -> sets PROXY_PORT, PROXY_PID: each reply from PORT held
#   nginx_conf_head DIR WORKERS        -> prints nginx.conf up to inside `http {` (temp paths,
#                                         the module's Lua paths); the caller adds the rest

HS_ROOT=${HS_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
REDIS_PORT="" REDIS_PID="" PROXY_PORT="" PROXY_PID=""

free_port() {
  local p
  for _ in $(seq 50); do
    p=$((20000 + RANDOM % 25000))
    (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "$p"; return; }
  done
  return 1
}

wait_file() { for _ in $(seq 200); do [ -s "$1" ] && return 0; sleep 0.05; done; return 1; }

# A probed port can be taken before redis binds it (other checks run servers too): then another
# port is tried. A loaded machine may need seconds to start it.
start_redis() {
  local dir=$1
  for _ in 1 2 3; do
    REDIS_PORT=$(free_port) || return 1
    rm -f "$dir/redis.pid"
    redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no --daemonize yes \
      --dir "$dir" --pidfile "$dir/redis.pid" --logfile "$dir/redis.log"
    if wait_file "$dir/redis.pid" && redis-cli -p "$REDIS_PORT" PING 2>/dev/null | grep -q PONG; then
      REDIS_PID=$(cat "$dir/redis.pid")
      return 0
    fi
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

#!/usr/bin/env bash
# Stores never block an event loop (issue 7), as a pass/fail check on behaviour: Redis sits
# behind a loopback proxy that holds each reply 2 ms, and the session route (/counter: read, +1,
# save; two round trips) is served by one nginx worker (the event-loop RedisStore over
# cosockets), then by one lua-http process (the same store over cqueues). For each server:
#   - throughput at 32 connections is at least 10x the throughput at 1 connection (a blocking
#     store serves the same rate at any concurrency);
#   - a route without a session keeps its median latency under 10 ms while the session route
#     is loaded (a blocking store makes it wait for the session requests queued before it:
#     p50 35-44 ms here; the issue measured 38 ms before the redesign).
# The figures are printed (they are reported, not asserted beyond those two rules), with the
# share of each measured window that the hypervisor stole from this VM.
# Where two or more CPUs are allowed, the server under test runs on the last of them, and the
# load (wrk, one thread), the proxy (scripts/lib/delay_proxy.c) and Redis on the others: their
# CPU then does not come out of the server's. On one CPU nothing is pinned. The background
# load is paced (8 connections, each waiting 5 ms between requests), so it leaves a
# non-blocking server most of its CPU, and the probe measures the event loop rather than a
# saturated CPU. The rule is on p50, not the p99 the issue named:
# p99 and p90 follow the hypervisor's steal, not the server (idle machine: p99 under 1 ms; with
# 43% of the window stolen a non-blocking server measured p90 7.5 ms and p99 18.5 ms), while a
# blocking store fails at every percentile (p50 44 ms, p90 57 ms). p90 and p99 are printed.
# NB_BLOCKING=1 serves nginx's route with the native blocking RedisStore: the check then fails,
# as it must (that is how it was checked to be able to fail). Loopback
# only; wrk runs are bounded (3-5 s); every server is stopped by PID.
# Prints "nonblocking: N passed, N failed"; exits 1 on a failure.
set -u
cd "$(dirname "$0")/.."
root=$PWD
source scripts/lib/servers.sh
dir=$(mktemp -d "${TMPDIR:-/tmp}/hs-nonblocking.XXXXXX")
redis_pid="" proxy_pid="" nginx_pid="" luahttp_pid=""
passed=0 failed=0

cleanup() {
  for pid in $luahttp_pid $nginx_pid $proxy_pid $redis_pid; do kill "$pid" 2>/dev/null; done
  for pid in $luahttp_pid $nginx_pid $proxy_pid $redis_pid; do
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null
  done
  keep_artifacts nonblocking "$dir"/*.log "$dir"/*.txt "$dir"/*.conf
  rm -rf "$dir"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

ok() { echo "ok: $*"; passed=$((passed + 1)); }
bad() { echo "FAILED: $*"; failed=$((failed + 1)); }
finish() { echo "nonblocking: $passed passed, $failed failed"; [ "$failed" -eq 0 ]; exit; }

for bin in redis-server redis-cli nginx wrk curl gcc taskset lua5.4 luajit; do
  command -v "$bin" >/dev/null || { bad "$bin is missing (scripts/setup.sh)"; finish; }
done
[ -f build/luajit/honeymoon_session.so ] && [ -f build/lua54/honeymoon_session.so ] ||
  { bad "the module is not built (make both)"; finish; }

# The CPUs this process may use ("0-1", "0,2-3"), one per line.
allowed_cpus() {
  sed -n 's/^Cpus_allowed_list:[[:space:]]*//p' /proc/self/status | tr ',' '\n' |
    awk -F- '{ for (c = $1; c <= ($2 == "" ? $1 : $2); c++) print c }'
}
cpus=$(allowed_cpus)
server_on="" load_on="" load_cpus=""
if [ "$(echo "$cpus" | wc -l)" -ge 2 ]; then
  load_cpus=$(echo "$cpus" | head -n -1 | paste -sd, -)
  server_on="taskset -c $(echo "$cpus" | tail -1)" load_on="taskset -c $load_cpus"
fi
echo "# server on: ${server_on:-any CPU}; load, proxy and Redis on: ${load_on:-any CPU}"

# "total steal" ticks of all CPUs so far (/proc/stat: user to steal; guest time is already in
# user), and the stolen share between two.
cpu_ticks() { awk '$1 == "cpu" { t = 0; for (i = 2; i <= 9; i++) t += $i; print t, $9 }' /proc/stat; }
stolen() { # before after
  awk -v a="$1" -v b="$2" 'BEGIN { split(a, x, " "); split(b, y, " ");
    t = y[1] - x[1]; printf "%d%%", (t > 0 ? 100 * (y[2] - x[2]) / t : 0) }'
}

# Redis, and the slow path: every reply from it held 2 ms.
start_redis "$dir" || { bad "redis-server did not start: $(tail -3 "$dir/redis.log" 2>/dev/null)"; finish; }
redis_pid=$REDIS_PID
start_delay_proxy "$dir" "$REDIS_PORT" 2000
proxy_pid=$PROXY_PID
[ -n "$PROXY_PORT" ] || { bad "the delaying proxy did not start: $(tail -3 "$dir/proxy.log")"; finish; }
if [ -n "$load_cpus" ]; then
  taskset -apc "$load_cpus" "$redis_pid" >/dev/null && taskset -apc "$load_cpus" "$proxy_pid" >/dev/null ||
    { bad "could not pin Redis and the proxy to CPU $load_cpus"; finish; }
fi
redis_url="redis://127.0.0.1:$PROXY_PORT"

# wrk's requests carry one of 64 sessions' cookies in turn (made through /new), so concurrent
# requests mostly write different sessions, as different browsers would.
make_script() { # base url -> $dir/cookies.lua
  local base=$1 urls=() i
  for i in $(seq 64); do urls+=("${base}new"); done
  curl -s --max-time 30 -D - -o /dev/null "${urls[@]}" |
    sed -n 's/^[Ss]et-[Cc]ookie: \([^;]*\).*/\1/p' >"$dir/cookies.txt"
  {
    echo "local cookies = {"
    sed 's/.*/  "&",/' "$dir/cookies.txt"
    echo "}"
    echo "local i = 0"
    echo 'request = function()'
    echo '  i = i % #cookies + 1'
    echo '  return wrk.format("GET", "/counter", { Cookie = cookies[i] })'
    echo 'end'
  } >"$dir/cookies.lua"
  { cat "$dir/cookies.lua"; echo "$PACE"; } >"$dir/paced.lua"
  [ "$(wc -l <"$dir/cookies.txt")" -eq 64 ]
}

# wrk's pause between one connection's requests (ms), for the background load and the probe.
PACE='function delay() return 5 end'

rps() { sed -n 's/^Requests\/sec: *\([0-9.]*\).*/\1/p' "$1"; }
errors() { grep -E "Non-2xx|Socket errors" "$1" | tr -s ' ' | paste -sd ' ' -; }
# A percentile of wrk's latency ("50", "90", "99") in ms (it prints us, ms or s).
pct_ms() {
  awk -v p="$1%" '$1 == p { v = $2; u = v; sub(/[0-9.]+/, "", u); sub(/[a-z]+$/, "", v);
       print (u == "us" ? v / 1000 : (u == "s" ? v * 1000 : v)) }' "$2"
}

check_server() { # name, base url
  local name=$1 base=$2
  if ! make_script "$base"; then bad "$name: could not make 64 sessions through /new"; return; fi
  local t0 t1 t2
  t0=$(cpu_ticks)
  $load_on wrk -t1 -c1 -d3s -s "$dir/cookies.lua" "$base" >"$dir/$name-1.txt" 2>&1
  t1=$(cpu_ticks)
  $load_on wrk -t1 -c32 -d3s -s "$dir/cookies.lua" "$base" >"$dir/$name-32.txt" 2>&1
  t2=$(cpu_ticks)
  local one thirty_two
  one=$(rps "$dir/$name-1.txt") thirty_two=$(rps "$dir/$name-32.txt")
  echo "# $name /counter, Redis 2 ms away: ${one:-?} req/s at 1 connection (stolen: $(stolen "$t0" "$t1")), ${thirty_two:-?} req/s at 32 (stolen: $(stolen "$t1" "$t2")) $(errors "$dir/$name-32.txt")"
  if [ -n "$one" ] && [ -n "$thirty_two" ] && awk -v a="$one" -v b="$thirty_two" 'BEGIN { exit !(b >= 10 * a) }'; then
    ok "$name: 32 connections serve $(awk -v a="$one" -v b="$thirty_two" 'BEGIN { printf "%.1f", b / a }')x the requests of one (at least 10x)"
  else
    bad "$name: 32 connections serve less than 10x one connection's requests ($one vs $thirty_two req/s)"
  fi
  [ -z "$(errors "$dir/$name-32.txt")" ] && ok "$name: no errors under load" ||
    bad "$name: $(errors "$dir/$name-32.txt")"

  # The plain route's latency while 8 paced connections load the session route: a non-blocking
  # server spends a fraction of a millisecond of CPU on each session request and the probe
  # waits for little, where a blocking store holds the loop for every round trip of every
  # queued session request (2 x 2 ms each, and they queue: p50 35-44 ms).
  $load_on wrk -t1 -c8 -d5s -s "$dir/paced.lua" "$base" >"$dir/$name-bg.txt" 2>&1 &
  local bg=$!
  sleep 1
  # A light probe (one request per 5 ms per connection): its latency is the event loop's, not
  # the queue a second flood would build in a single-threaded server.
  echo "$PACE" >"$dir/probe.lua"
  t0=$(cpu_ticks)
  $load_on wrk -t1 -c2 -d3s --latency -s "$dir/probe.lua" "${base}plain" >"$dir/$name-plain.txt" 2>&1
  t1=$(cpu_ticks)
  wait "$bg"
  local p50 p90 p99
  p50=$(pct_ms 50 "$dir/$name-plain.txt") p90=$(pct_ms 90 "$dir/$name-plain.txt")
  p99=$(pct_ms 99 "$dir/$name-plain.txt")
  echo "# $name /plain while /counter is loaded: p50 ${p50:-?} ms, p90 ${p90:-?} ms, p99 ${p99:-?} ms, $(rps "$dir/$name-plain.txt") req/s; /counter meanwhile $(rps "$dir/$name-bg.txt") req/s (stolen: $(stolen "$t0" "$t1"))"
  if [ -n "$p50" ] && awk -v p="$p50" 'BEGIN { exit !(p < 10) }'; then
    ok "$name: a route without a session keeps p50 under 10 ms ($p50 ms) while the session route is loaded"
  else
    bad "$name: the plain route's p50 is ${p50:-unknown} ms under load (limit 10 ms)"
  fi
}

# nginx, one worker.
port=$(free_port)
{
  nginx_conf_head "$dir" 1
  cat <<EOF
    server {
        listen 127.0.0.1:$port;
        location = /plain { content_by_lua_block { ngx.say("plain") } }
        location / { content_by_lua_block { require("scripts.nonblocking.openresty").handle() } }
    }
}
env NB_REDIS_URL;
env NB_BLOCKING;
EOF
} >"$dir/nginx.conf"
NB_REDIS_URL=$redis_url $server_on nginx -p "$dir" -c "$dir/nginx.conf" -e "$dir/error.log" -g 'daemon off;' &
nginx_pid=$!
for _ in $(seq 100); do curl -fs -o /dev/null --max-time 1 "http://127.0.0.1:$port/plain" && break; sleep 0.1; done
if curl -fs -o /dev/null --max-time 2 "http://127.0.0.1:$port/new"; then
  check_server nginx "http://127.0.0.1:$port/"
else
  bad "nginx did not serve the session route: $(grep -m1 -E 'error|emerg' "$dir/error.log")"
fi
grep -q "runtime error" "$dir/error.log" && bad "nginx logged: $(grep -m1 'runtime error' "$dir/error.log")"
kill "$nginx_pid" 2>/dev/null; wait "$nginx_pid" 2>/dev/null; nginx_pid=""

# lua-http, one process (LuaJIT, cqueues): the interpreter with the most CPU headroom, as the
# 32-connection rate is bound by the server's CPU (under Lua 5.4, a CI run on 2026-11-30, before
# the server had a CPU of its own, measured 9.9x).
lport=$(free_port)
$server_on luajit scripts/nonblocking/lua_http_server.lua "$root" "$lport" "$redis_url" "$dir/lua-http.port" \
  >"$dir/lua-http.log" 2>&1 &
luahttp_pid=$!
if wait_file "$dir/lua-http.port" && curl -fs -o /dev/null --max-time 2 "http://127.0.0.1:$lport/new"; then
  check_server lua-http "http://127.0.0.1:$lport/"
else
  bad "lua-http did not serve the session route: $(tail -3 "$dir/lua-http.log")"
fi
finish

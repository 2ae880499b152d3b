#!/usr/bin/env bash
# Load test of the demo with wrk: GET /counter (reads and writes the session on every request)
# and GET /counter-plain (the same work, served without loading a session), on lua-http
# (Lua 5.4; LOAD_LUA=luajit for LuaJIT) and under nginx (LuaJIT), each for SECONDS (default 20)
# with 2 threads and 32 connections, after a short warm-up.
#   scripts/load.sh [SECONDS]          (CI: scripts/load.sh 5)
# 32 sessions are created first and wrk sends their cookies in turn, so the session count must
# stay 32. Fails on any socket error, any non-2xx/3xx answer, a changed session count, or server
# memory that grows: VmRSS is sampled at 25/50/75/100% of the /counter run and the 100% sample
# must be within 10% of the 50% one (RSS_GROWTH_PCT). Prints requests/s with and without sessions.
set -uo pipefail
cd "$(dirname "$0")/.."

SECONDS_PER_RUN=${1:-20}
THREADS=2 CONNECTIONS=32 SESSIONS=32
GROWTH_PCT=${RSS_GROWTH_PCT:-10}
WARMUP=$(( SECONDS_PER_RUN / 5 )); [ "$WARMUP" -ge 1 ] || WARMUP=1
case "$SECONDS_PER_RUN" in ''|*[!0-9]*) echo "usage: scripts/load.sh [SECONDS]" >&2; exit 2;; esac
[ "$SECONDS_PER_RUN" -ge 2 ] && [ "$SECONDS_PER_RUN" -le 600 ] || { echo "load: SECONDS must be 2..600" >&2; exit 2; }
command -v wrk >/dev/null || { echo "load: wrk is missing (scripts/setup.sh)" >&2; exit 1; }
if ! make -s both >/tmp/hs-load-build.log 2>&1; then tail -30 /tmp/hs-load-build.log >&2; exit 1; fi

source examples/demo/servers.sh
trap 'stop_servers' EXIT
trap 'exit 143' TERM
trap 'exit 130' INT

failures=0
fail() { echo "load: FAIL: $*"; failures=$((failures + 1)); }
rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; }
field() { sed -n "s/.*[ ]$1=\([^ ]*\).*/\1/p" <<<"$2"; }

# wrk for $2 seconds against $1 path $3 with the cookies; prints the RESULT line.
run_wrk() {
  local base=$1 secs=$2 path=$3
  timeout $((secs + 30)) wrk -t"$THREADS" -c"$CONNECTIONS" -d"${secs}s" --latency \
    -s examples/demo/wrk.lua "${base%/}" -- "$path" "${cookies[@]}" | grep '^RESULT'
}

# Checks one RESULT line; echoes requests/s.
check_result() {
  local server=$1 path=$2 line=$3 k
  [ -n "$line" ] || { fail "$server $path: wrk printed no result"; echo 0; return; }
  for k in connect read write timeout; do
    [ "$(field "$k" "$line")" = 0 ] || fail "$server $path: $(field "$k" "$line") socket $k errors"
  done
  [ "$(field status "$line")" = 0 ] || fail "$server $path: $(field status "$line") non-2xx/3xx responses"
  field rps "$line"
}

# load_server NAME URL PID: the three runs against one server.
declare -A RPS P99
load_server() {
  local server=$1 base=$2 pid=$3 i line before after
  cookies=()
  for i in $(seq "$SESSIONS"); do
    cookies+=("$(curl -fsS -D - -o /dev/null "${base}counter" | tr -d '\r' |
      sed -n 's/^[Ss]et-[Cc]ookie: \([^;]*\).*/\1/p')")
  done
  before=$(curl -fsS "${base}stats" | sed 's/[^0-9]//g')
  [ "$before" = "$SESSIONS" ] || fail "$server: $before sessions after creating $SESSIONS"

  run_wrk "$base" "$WARMUP" /counter >/dev/null
  # The measured run, with VmRSS sampled at 25/50/75% while it runs and 100% when it ends.
  local out; out=$(mktemp)
  run_wrk "$base" "$SECONDS_PER_RUN" /counter >"$out" &
  local wrk_pid=$! samples=() q
  for q in 1 2 3; do
    sleep "$(awk -v s="$SECONDS_PER_RUN" 'BEGIN { print s / 4 }')"
    samples+=("$(rss_kb "$pid")")
  done
  wait "$wrk_pid"
  samples+=("$(rss_kb "$pid")")
  line=$(cat "$out"); rm -f "$out"
  RPS[$server,s]=$(check_result "$server" /counter "$line"); P99[$server,s]=$(field p99_ms "$line")
  after=$(curl -fsS "${base}stats" | sed 's/[^0-9]//g')
  [ "$after" = "$SESSIONS" ] || fail "$server: $after sessions after the run, expected $SESSIONS"
  local mid=${samples[1]} last=${samples[3]}
  echo "$server: VmRSS kB at 25/50/75/100%: ${samples[*]} (sessions: $before before, $after after)"
  if [ "$mid" -le 0 ] || [ "$last" -gt $(( mid + mid * GROWTH_PCT / 100 )) ]; then
    fail "$server: RSS grew from $mid kB (50%) to $last kB (100%), more than ${GROWTH_PCT}%"
  fi

  run_wrk "$base" "$WARMUP" /counter-plain >/dev/null
  line=$(run_wrk "$base" "$SECONDS_PER_RUN" /counter-plain)
  RPS[$server,p]=$(check_result "$server" /counter-plain "$line"); P99[$server,p]=$(field p99_ms "$line")
}

echo "load: ${SECONDS_PER_RUN}s per run, $THREADS threads, $CONNECTIONS connections, $SESSIONS sessions;" \
  "$(nproc) CPUs, $(sed -n 's/^model name[^:]*: //p' /proc/cpuinfo | head -1)"
start_lua_http "${LOAD_LUA:-lua5.4}" || exit 1
start_nginx || exit 1
[ -n "$NGINX_WORKER_PID" ] || { echo "load: no nginx worker found" >&2; exit 1; }
# One server at a time is loaded; the other idles.
load_server "lua-http(${LOAD_LUA:-lua5.4})" "$LUA_HTTP_URL" "$LUA_HTTP_PID"
load_server "nginx(luajit)" "$NGINX_URL" "$NGINX_WORKER_PID"

printf '\n%-18s %14s %12s %7s %16s %18s\n' server "req/s session" "req/s plain" ratio "session us/req" "p99 ms sess/plain"
for server in "lua-http(${LOAD_LUA:-lua5.4})" "nginx(luajit)"; do
  s=${RPS[$server,s]:-0} p=${RPS[$server,p]:-0}
  printf '%-18s %14s %12s %7s %16s %18s\n' "$server" "$s" "$p" \
    "$(awk -v s="$s" -v p="$p" 'BEGIN { if (p > 0) printf "%.2f", s / p; else print "-" }')" \
    "$(awk -v s="$s" -v p="$p" 'BEGIN { if (s > 0 && p > 0) printf "%.1f", 1e6 / s - 1e6 / p; else print "-" }')" \
    "${P99[$server,s]:-?}/${P99[$server,p]:-?}"
done
echo "load: $failures failures"
[ "$failures" -eq 0 ]

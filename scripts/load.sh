#!/usr/bin/env bash
# Load test of the demo with wrk: GET /counter (reads and writes the session on every request)
# and GET /counter-plain (the same work, served without loading a session), on lua-http
# (Lua 5.4; LOAD_LUA=luajit for LuaJIT) and under nginx (LuaJIT, 2 workers sharing their
# sessions in a lua_shared_dict), each for SECONDS (default 20) with 2 threads and 32
# connections, after a short warm-up. One server is loaded at a time.
#   scripts/load.sh [SECONDS]          (CI: scripts/load.sh 5)
# 32 sessions are created first and wrk sends their cookies in turn, so the session count must
# stay 32: lua-http counts its MemoryStore, nginx the shared dict every worker writes to (the
# sessions were created on both workers and are served by both). Checks, per server: no socket
# errors and no non-2xx/3xx answer in either run, the session count before and after, and flat
# memory: VmRSS of each process that holds sessions or serves them (the lua-http interpreter;
# each nginx worker) is sampled at 25/50/75/100% of the /counter run and the 100% sample must be
# within 10% (RSS_GROWTH_PCT) of the 50% one. For nginx also: every worker served the /counter
# run (each worker's CPU time over the run, from /proc/PID/stat, is at least 10% of theirs
# together), so the sessions were read and written from both.
# Prints requests/s with and without sessions; the last line is "load: N passed, N failed".
set -uo pipefail
cd "$(dirname "$0")/.."

SECONDS_PER_RUN=${1:-20}
THREADS=2 CONNECTIONS=32 SESSIONS=32
GROWTH_PCT=${RSS_GROWTH_PCT:-10}
LUA=${LOAD_LUA:-lua5.4}
case "$SECONDS_PER_RUN" in ''|*[!0-9]*) echo "usage: scripts/load.sh [SECONDS]" >&2; exit 2;; esac
[ "$SECONDS_PER_RUN" -ge 2 ] && [ "$SECONDS_PER_RUN" -le 600 ] || { echo "load: SECONDS must be 2..600" >&2; exit 2; }
WARMUP=$(( SECONDS_PER_RUN / 5 )); [ "$WARMUP" -ge 1 ] || WARMUP=1
command -v wrk >/dev/null || { echo "load: wrk is missing (scripts/setup.sh)" >&2; exit 1; }
source examples/demo/servers.sh
build_module || exit 1
trap 'stop_servers' EXIT
trap 'exit 143' TERM
trap 'exit 130' INT

passed=0 failed=0
# check DESCRIPTION COMMAND...: runs the test command, counts and reports it.
check() {
  local what=$1; shift
  if "$@"; then passed=$((passed + 1)); else failed=$((failed + 1)); echo "load: FAIL: $what"; fi
}
rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status" 2>/dev/null; }
# CPU time (user + system) of process $1 so far, in clock ticks (fields 14 and 15 of its stat,
# counted after the ")" that ends its name).
cpu_ticks() { sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | awk '{ print $12 + $13 }'; }
sessions_of() { curl -fsS --max-time 5 "${1}stats" | sed -n 's/.*"sessions":\([0-9]*\).*/\1/p'; }
field() { sed -n "s/.*[ ]$1=\([^ ]*\).*/\1/p" <<<"$2"; }
is() { [ "$1" = "$2" ]; }

# wrk for $2 seconds against base $1, path $3, with the cookies; prints its RESULT line.
run_wrk() {
  local base=$1 secs=$2 path=$3
  timeout $((secs + 30)) wrk -t"$THREADS" -c"$CONNECTIONS" -d"${secs}s" --latency \
    -s examples/demo/wrk.lua "${base%/}" -- "$path" "${cookies[@]}" | grep '^RESULT'
}

# check_run SERVER PATH RESULT-LINE: the two error checks of one measured run.
check_run() {
  local server=$1 path=$2 line=$3 k errors=0
  if [ -z "$line" ]; then errors="?"; else
    for k in connect read write timeout; do errors=$(( errors + $(field "$k" "$line") )); done
  fi
  echo "$server $path: $(field rps "$line") req/s, p50 $(field p50_ms "$line") ms, p99 $(field p99_ms "$line") ms," \
    "socket errors $errors, non-2xx/3xx $(field status "$line")"
  check "$server $path: no socket errors (${line:-wrk printed no result})" is "$errors" 0
  check "$server $path: no non-2xx/3xx responses" is "$(field status "$line")" 0
}

declare -A RPS P99
# load_server NAME URL PID...: the two measured runs against one server; the PIDs are the
# processes whose memory is watched (the lua-http interpreter; the nginx workers).
load_server() {
  local server=$1 base=$2 i line before after out wrk_pid q p
  shift 2
  local pids=("$@")
  declare -A samples=() cpu0=() cpu1=()
  cookies=()
  for i in $(seq "$SESSIONS"); do
    cookies+=("$(curl -fsS --max-time 5 -D - -o /dev/null "${base}counter" | tr -d '\r' |
      sed -n 's/^[Ss]et-[Cc]ookie: \([^;]*\).*/\1/p')")
  done
  before=$(sessions_of "$base")
  check "$server: $SESSIONS sessions before the run (found $before)" is "$before" "$SESSIONS"

  run_wrk "$base" "$WARMUP" /counter >/dev/null
  # The measured run, VmRSS sampled at 25/50/75% while it runs and at 100% when it ends.
  out=$(mktemp)
  for p in "${pids[@]}"; do cpu0[$p]=$(cpu_ticks "$p"); done
  run_wrk "$base" "$SECONDS_PER_RUN" /counter >"$out" &
  wrk_pid=$!
  for q in 1 2 3; do
    sleep "$(awk -v s="$SECONDS_PER_RUN" 'BEGIN { print s / 4 }')"
    for p in "${pids[@]}"; do samples[$p]+="$(rss_kb "$p") "; done
  done
  wait "$wrk_pid"
  for p in "${pids[@]}"; do samples[$p]+="$(rss_kb "$p")"; cpu1[$p]=$(cpu_ticks "$p"); done
  line=$(cat "$out"); rm -f "$out"
  RPS[$server,s]=$(field rps "$line") P99[$server,s]=$(field p99_ms "$line")
  check_run "$server" /counter "$line"
  after=$(sessions_of "$base")
  check "$server: still $SESSIONS sessions after the run (found $after)" is "$after" "$SESSIONS"

  local mid last per_req s who d total=0
  for p in "${pids[@]}"; do
    read -r -a s <<<"${samples[$p]}"
    mid=${s[1]:-0} last=${s[3]:-0}
    who=$server; [ "${#pids[@]}" -eq 1 ] || who="$server worker $p"
    per_req=$(awk -v a="$mid" -v b="$last" -v n="$(field requests "$line")" \
      'BEGIN { if (n > 0) printf "%.2f", (b - a) * 1024 / (n / 2); else print "?" }')
    echo "$who: VmRSS kB at 25/50/75/100%: ${s[*]} ($per_req bytes per request of the run from 50% to 100%)"
    check "$who: RSS at 100% ($last kB) within ${GROWTH_PCT}% of RSS at 50% ($mid kB)" \
      test "$mid" -gt 0 -a "$last" -le $(( mid + mid * GROWTH_PCT / 100 ))
    total=$(( total + ${cpu1[$p]:-0} - ${cpu0[$p]:-0} ))
  done
  if [ "${#pids[@]}" -gt 1 ]; then
    local shares="" low=""
    for p in "${pids[@]}"; do
      d=$(( ${cpu1[$p]:-0} - ${cpu0[$p]:-0} ))
      shares+="$p $d, "
      [ $(( d * 10 )) -ge "$total" ] && [ "$total" -gt 0 ] || low+="$p "
    done
    echo "$server: worker CPU ticks over the /counter run: ${shares%, } (of $total)"
    check "$server: every worker served the /counter run (each at least 10% of the workers' CPU time; low: ${low:-none})" \
      is "$low" ""
  fi

  run_wrk "$base" "$WARMUP" /counter-plain >/dev/null
  line=$(run_wrk "$base" "$SECONDS_PER_RUN" /counter-plain)
  RPS[$server,p]=$(field rps "$line") P99[$server,p]=$(field p99_ms "$line")
  check_run "$server" /counter-plain "$line"
}

echo "load: ${SECONDS_PER_RUN}s per run, $THREADS threads, $CONNECTIONS connections, $SESSIONS sessions;" \
  "$(nproc) CPUs ($(sed -n 's/^model name[^:]*: //p' /proc/cpuinfo | head -1)), load average $(cut -d' ' -f1-3 /proc/loadavg)"
# A server that cannot start or answer its first request is one failure, not a run of them.
start_lua_http "$LUA" && start_nginx || { echo "load: 0 passed, 1 failed"; exit 1; }
read -r -a nginx_workers <<<"$NGINX_WORKER_PIDS"
[ "${#nginx_workers[@]}" -eq 2 ] || { echo "load: nginx should run 2 workers, found: ${NGINX_WORKER_PIDS:-none}" >&2; echo "load: 0 passed, 1 failed"; exit 1; }
load_server "lua-http($LUA)" "$LUA_HTTP_URL" "$LUA_HTTP_PID"
load_server "nginx(2 workers)" "$NGINX_URL" "${nginx_workers[@]}"

printf '\n%-18s %14s %12s %7s %16s %18s\n' server "req/s session" "req/s plain" ratio "session us/req" "p99 ms sess/plain"
for server in "lua-http($LUA)" "nginx(2 workers)"; do
  s=${RPS[$server,s]:-0} p=${RPS[$server,p]:-0}
  printf '%-18s %14s %12s %7s %16s %18s\n' "$server" "${s:-0}" "${p:-0}" \
    "$(awk -v s="$s" -v p="$p" 'BEGIN { if (p > 0) printf "%.2f", s / p; else print "-" }')" \
    "$(awk -v s="$s" -v p="$p" 'BEGIN { if (s > 0 && p > 0) printf "%.1f", 1e6 / s - 1e6 / p; else print "-" }')" \
    "${P99[$server,s]:-?}/${P99[$server,p]:-?}"
done
[ "$failed" -eq 0 ] || show_server_logs
echo "load: $passed passed, $failed failed"
[ "$failed" -eq 0 ]

#!/usr/bin/env bash
# The nginx demo's session cost per request measured inside one worker, without a load
# generator: steadier than bench/nginx_cost.sh, for comparing two versions of the code;
# nginx_cost.sh stays the figure of issue 7's target (worker CPU under wrk, two workers).
# Starts nginx with one worker through examples/demo/servers.sh (stopped by its pid at exit),
# makes one session, and has the worker run /counter (load, +1, save: a merge into the shared
# dict, and a Set-Cookie) and /counter-plain (the same work without a session) as subrequests
# (bench/nginx_subrequests.lua), timed with the worker's CPU clock. Subrequests cost more than
# requests, the same for both routes: the difference is what a session costs, without wrk and
# the kernel sharing the two cores. Each round runs both routes, BATCHES requests of 500
# subrequests each, alternating. Figures only, nothing is asserted.
#   bench/nginx_subrequests.sh [BATCHES] [ROUNDS]   (defaults 10 and 15)
set -uo pipefail
cd "$(dirname "$0")/.."
BATCHES=${1:-10} ROUNDS=${2:-15} PER=500
case "$BATCHES$ROUNDS" in ''|*[!0-9]*) echo "usage: bench/nginx_subrequests.sh [BATCHES] [ROUNDS]" >&2; exit 2 ;; esac
[ "$BATCHES" -ge 1 ] && [ "$BATCHES" -le 100 ] && [ "$ROUNDS" -ge 3 ] && [ "$ROUNDS" -le 50 ] ||
  { echo "nginx_subrequests: BATCHES must be 1..100 and ROUNDS 3..50" >&2; exit 2; }

source examples/demo/servers.sh
build_module || exit 1
include=$(mktemp "${TMPDIR:-/tmp}/hs-bench-subrequests.XXXXXX")
trap 'stop_servers; rm -f "$include"' EXIT
trap 'exit 143' TERM
trap 'exit 130' INT
cat >"$include" <<'CONF'
location = /bench-subrequests {
    content_by_lua_block { require("bench.nginx_subrequests").run() }
}
CONF
chmod 644 "$include"
DEMO_NGINX_WORKERS=1 DEMO_NGINX_INCLUDE="$include" start_nginx || exit 1
base=${NGINX_URL%/}
cookie=$(curl -fsS --max-time 5 -D - -o /dev/null "$base/counter" | tr -d '\r' |
  sed -n 's/^[Ss]et-[Cc]ookie: \([^;]*\).*/\1/p')
[ -n "$cookie" ] || { echo "nginx_subrequests: GET /counter set no cookie" >&2; exit 1; }

# One round of one route: the mean over BATCHES requests of PER subrequests each.
batch() { # route -> µs per subrequest
  local route=$1 total=0 us
  for _ in $(seq "$BATCHES"); do
    us=$(curl -fsS --max-time 60 -H "Cookie: $cookie" "$base/bench-subrequests?route=$route&n=$PER") ||
      { echo "nginx_subrequests: a batch of $route failed" >&2; exit 1; }
    total=$(awk -v t="$total" -v u="$us" 'BEGIN { print t + u }')
  done
  awk -v t="$total" -v b="$BATCHES" 'BEGIN { printf "%.4f", t / b }'
}

echo "nginx_subrequests: nginx $(nginx -v 2>&1 | sed 's|.*/||') with 1 worker ($NGINX_WORKER_PID), SharedDictStore;" \
  "$ROUNDS rounds of $((BATCHES * PER)) subrequests per route, alternating"
echo "machine: $(nproc) CPUs ($(sed -n 's/^model name[^:]*: //p' /proc/cpuinfo | head -1)), load average $(cut -d' ' -f1-3 /proc/loadavg)"
batch /counter >/dev/null # warm up: JIT traces, the dict's slabs
plain=() sess=() diff=()
for _ in $(seq "$ROUNDS"); do
  p=$(batch /counter-plain) || exit 1
  s=$(batch /counter) || exit 1
  plain+=("$p") sess+=("$s") diff+=("$(awk -v s="$s" -v p="$p" 'BEGIN { printf "%.4f", s - p }')")
done
# median (first quartile - third quartile) of a list
stats() { tr ' ' '\n' | sort -g | awk '{ v[NR] = $1 } END {
  q = int((NR + 3) / 4); m = int((NR + 1) / 2); t = int((3 * NR + 3) / 4)
  printf "%6.2f  (%.2f - %.2f)", v[m], v[q], v[t] }'; }
echo "worker CPU per subrequest (us): median (first - third quartile) over the rounds"
printf '  %-28s %s\n' "/counter-plain (no session)" "$(stats <<<"${plain[*]}")"
printf '  %-28s %s\n' "/counter (read, +1, save)" "$(stats <<<"${sess[*]}")"
printf '  %-28s %s\n' "session cost (difference)" "$(stats <<<"${diff[*]}")"

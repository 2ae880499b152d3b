#!/usr/bin/env bash
# The nginx demo's session cost per request measured inside one worker, without a load
# generator (bench/nginx_subrequests.lua): steadier than bench/nginx_cost.sh, for comparing two
# versions of the code; nginx_cost.sh stays the figure of issue 7's target (worker CPU under
# wrk, two workers). Starts nginx with one worker through examples/demo/servers.sh (stopped by
# its pid at exit), makes one session, and has the worker run the routes as subrequests.
#   bench/nginx_subrequests.sh [BATCH] [ROUNDS]   (defaults 5000 and 15)
set -uo pipefail
cd "$(dirname "$0")/.."
BATCH=${1:-5000} ROUNDS=${2:-15}
case "$BATCH$ROUNDS" in ''|*[!0-9]*) echo "usage: bench/nginx_subrequests.sh [BATCH] [ROUNDS]" >&2; exit 2 ;; esac
[ "$BATCH" -ge 100 ] && [ "$BATCH" -le 50000 ] && [ "$ROUNDS" -ge 3 ] && [ "$ROUNDS" -le 50 ] ||
  { echo "nginx_subrequests: BATCH must be 100..50000 and ROUNDS 3..50" >&2; exit 2; }

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
echo "machine: $(nproc) CPUs ($(sed -n 's/^model name[^:]*: //p' /proc/cpuinfo | head -1)), load average $(cut -d' ' -f1-3 /proc/loadavg)"
# Bounded: 2 x BATCH x ROUNDS subrequests of about 10 us each, well inside the time limit.
curl -fsS --max-time 300 -H "Cookie: $cookie" "$base/bench-subrequests?n=$BATCH&r=$ROUNDS"

#!/usr/bin/env bash
# Worker CPU per request under nginx: the demo (examples/demo, the OpenResty adapter with its
# default SharedDictStore on `lua_shared_dict sessions`) with `worker_processes 2`, loaded with
# wrk on GET /counter (loads the session, reads, +1, saves: a merge into the shared dict, and a
# Set-Cookie, since the demo is rolling) and on GET /counter-plain (the same handler work,
# served without loading a session). For each run it reads both workers' CPU time (utime +
# stime, /proc/PID/stat) before and after and divides by the requests wrk completed:
#   µs of worker CPU per request = Δ(CPU ticks of both workers) / CLK_TCK * 1e6 / requests
# and prints it per route and the difference (what a session costs the workers per request).
# Figures only, nothing is asserted: the machine's other load moves them.
#   bench/nginx_cost.sh [SECONDS] [ROUNDS]     (defaults 5 and 3: each round runs both routes)
# wrk: 2 threads, 32 connections, 32 sessions whose cookies are sent in turn (as scripts/load.sh).
# Starts nginx through examples/demo/servers.sh (nginx.sh, stopped by its pid at exit).
set -uo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-5} ROUNDS=${2:-3}
THREADS=2 CONNECTIONS=32 SESSIONS=32
case "$SECS$ROUNDS" in ''|*[!0-9]*) echo "usage: bench/nginx_cost.sh [SECONDS] [ROUNDS]" >&2; exit 2 ;; esac
[ "$SECS" -ge 1 ] && [ "$SECS" -le 60 ] && [ "$ROUNDS" -ge 1 ] && [ "$ROUNDS" -le 10 ] ||
  { echo "nginx_cost: SECONDS must be 1..60 and ROUNDS 1..10" >&2; exit 2; }
command -v wrk >/dev/null || { echo "nginx_cost: wrk is missing (scripts/setup.sh)" >&2; exit 1; }
HZ=$(getconf CLK_TCK)

source examples/demo/servers.sh
build_module || exit 1
trap 'stop_servers' EXIT
trap 'exit 143' TERM
trap 'exit 130' INT
DEMO_NGINX_WORKERS=2 start_nginx || exit 1
read -r -a workers <<<"$NGINX_WORKER_PIDS"
[ "${#workers[@]}" -eq 2 ] || { echo "nginx_cost: expected 2 workers, found: ${NGINX_WORKER_PIDS:-none}" >&2; exit 1; }
base=${NGINX_URL%/}

# CPU time of process $1 so far, in ticks (fields 14 and 15, counted after the name's ")").
cpu_ticks() { sed 's/.*) //' "/proc/$1/stat" | awk '{ print $12 + $13 }'; }
workers_ticks() { local t=0 p; for p in "${workers[@]}"; do t=$(( t + $(cpu_ticks "$p") )); done; echo "$t"; }
field() { sed -n "s/.*[ ]$1=\([^ ]*\).*/\1/p" <<<"$2"; }

cookies=()
for _ in $(seq "$SESSIONS"); do
  cookies+=("$(curl -fsS --max-time 5 -D - -o /dev/null "$base/counter" | tr -d '\r' |
    sed -n 's/^[Ss]et-[Cc]ookie: \([^;]*\).*/\1/p')")
done

wrk_run() { # seconds path -> the RESULT line
  timeout $(( $1 + 30 )) wrk -t"$THREADS" -c"$CONNECTIONS" -d"$1s" -s examples/demo/wrk.lua "$base" -- "$2" "${cookies[@]}" |
    grep '^RESULT'
}

declare -A US
# measure PATH ROUND: one run; prints its line and keeps µs/request in US[PATH,ROUND].
measure() {
  local path=$1 round=$2 t0 t1 line n us
  t0=$(workers_ticks)
  line=$(wrk_run "$SECS" "$path")
  t1=$(workers_ticks)
  n=$(field requests "$line")
  [ -n "$n" ] && [ "$n" -gt 0 ] || { echo "nginx_cost: wrk printed no result for $path" >&2; exit 1; }
  local errors=$(( $(field connect "$line") + $(field read "$line") + $(field write "$line") + $(field timeout "$line") + $(field status "$line") ))
  us=$(awk -v d=$(( t1 - t0 )) -v hz="$HZ" -v n="$n" 'BEGIN { printf "%.2f", d / hz * 1e6 / n }')
  US[$path,$round]=$us
  printf '  round %d %-15s %8d requests %9.0f req/s  %5d worker ticks  %6s us CPU/request%s\n' \
    "$round" "$path" "$n" "$(field rps "$line")" $(( t1 - t0 )) "$us" \
    "$([ "$errors" -eq 0 ] || echo "  ($errors errors or non-2xx/3xx)")"
}

echo "nginx_cost: nginx $(nginx -v 2>&1 | sed 's|.*/||') with 2 workers (${workers[*]}), SharedDictStore;" \
  "wrk $THREADS threads, $CONNECTIONS connections, ${SECS}s per run, $ROUNDS rounds; CLK_TCK $HZ"
echo "machine: $(nproc) CPUs ($(sed -n 's/^model name[^:]*: //p' /proc/cpuinfo | head -1)), load average $(cut -d' ' -f1-3 /proc/loadavg)"
wrk_run 1 /counter >/dev/null
wrk_run 1 /counter-plain >/dev/null
for r in $(seq "$ROUNDS"); do
  measure /counter-plain "$r"
  measure /counter "$r"
done

median() { tr ' ' '\n' | sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else printf "%.2f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
plain=() sess=() diff=()
for r in $(seq "$ROUNDS"); do
  plain+=("${US[/counter-plain,$r]}") sess+=("${US[/counter,$r]}")
  diff+=("$(awk -v a="${US[/counter,$r]}" -v b="${US[/counter-plain,$r]}" 'BEGIN { printf "%.2f", a - b }')")
done
echo
printf 'worker CPU per request (us), median of %d rounds [each round]:\n' "$ROUNDS"
printf '  %-28s %6s  [%s]\n' "/counter-plain (no session)" "$(median <<<"${plain[*]}")" "${plain[*]}"
printf '  %-28s %6s  [%s]\n' "/counter (read, +1, save)" "$(median <<<"${sess[*]}")" "${sess[*]}"
printf '  %-28s %6s  [%s]\n' "session cost (difference)" "$(median <<<"${diff[*]}")" "${diff[*]}"
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"

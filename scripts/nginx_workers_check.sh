#!/usr/bin/env bash
# Sessions across nginx workers, through the real path: the demo (examples/demo/nginx.sh, its
# nginx.conf.in and openresty.lua, the OpenResty adapter over the store the demo makes, the
# SharedDictStore on `lua_shared_dict sessions`) with `worker_processes 2` on a free 127.0.0.1
# port, plus a few test routes (spec/nginx/workers.lua) included in its server block. Checks:
#   1. one logged-in client: LOGGED_IN_REQUESTS (default 1,000) requests for the dashboard, each
#      on a new connection (Connection: close), are all served logged in as Alice, and both
#      workers served some (X-Worker-Pid, nginx's $pid);
#   2. concurrent writes: WRITES (default 200) parallel requests over both workers, each loading
#      the logged-in session, waiting 10 ms and setting a key of its own through the adapter;
#      afterwards every key is in the session, written by both workers, and the login survives;
#   3. errors that escape a handler are logged with their message (not "runtime error: unknown
#      reason"): a plain Lua error, and the module's own error at commit.
# nginx.sh runs nginx in the foreground and stops it (by its master pid) when stop_servers kills
# nginx.sh by its pid. Needs `make both` (it runs it, quietly) and curl.
# Ends with "nginx-workers: N passed, M failed"; exits non-zero on any failure.
#   scripts/nginx_workers_check.sh [LOGGED_IN_REQUESTS] [WRITES]
set -uo pipefail
cd "$(dirname "$0")/.."
requests=${1:-1000}
writes=${2:-200}
case "$requests$writes" in *[!0-9]*) echo "usage: scripts/nginx_workers_check.sh [REQUESTS] [WRITES]" >&2; exit 2 ;; esac

passed=0 failed=0
ok() { echo "ok $*"; passed=$((passed + 1)); }
not_ok() { echo "not ok $*"; failed=$((failed + 1)); }
finish() { echo "nginx-workers: $passed passed, $failed failed"; [ "$failed" -eq 0 ]; exit; }

source examples/demo/servers.sh
tmp=$(mktemp -d "${TMPDIR:-/tmp}/hs-workers.XXXXXX")
trap 'stop_servers; rm -rf "$tmp"' EXIT
trap 'exit 143' TERM
trap 'exit 130' INT
build_module || { not_ok "make both"; finish; }

cat >"$tmp/tests.conf" <<'EOF'
location = /t/write { content_by_lua_block { require("spec.nginx.workers").write() } }
location = /t/read { content_by_lua_block { require("spec.nginx.workers").read() } }
location = /t/error { content_by_lua_block { require("spec.nginx.workers").error() } }
location = /t/error-commit { content_by_lua_block { require("spec.nginx.workers").error_commit() } }
location = /t/exec { content_by_lua_block { require("spec.nginx.workers").exec() } }
location = /t/exec-target { content_by_lua_block { require("spec.nginx.workers").exec_target() } }
EOF
export DEMO_NGINX_INCLUDE=$tmp/tests.conf DEMO_NGINX_WORKERS=2
start_nginx || { not_ok "the nginx demo started"; finish; }
read -r -a workers <<<"$NGINX_WORKER_PIDS"
if [ "${#workers[@]}" -ne 2 ]; then not_ok "nginx runs 2 workers (found: ${NGINX_WORKER_PIDS:-none})"; finish; fi
echo "# nginx demo on $NGINX_URL: master $NGINX_MASTER_PID, workers ${workers[*]}"
url=${NGINX_URL%/}
log=$DEMO_LOGS/nginx.err # nginx's error log (nginx.sh: error_log stderr)

# Per-worker tally of "PID" lines on stdin: "PID1 n1, PID2 n2".
tally() { sort | uniq -c | awk '{ printf "%s%s %s", (NR > 1 ? ", " : ""), $2, $1 }'; }
# Whether every worker pid appears in the "PID" lines of $1.
all_workers_in() {
  local w
  for w in "${workers[@]}"; do grep -qx "$w" <<<"$1" || return 1; done
}

# 1. One logged-in client.
jar=$tmp/cookies
out=$(curl -sS --max-time 5 -c "$jar" -b "$jar" -o /dev/null -w '%{http_code} %{redirect_url}' \
  --data 'email=alice%40example.com&password=wonderland' "$url/login") || out="curl failed"
cookie=$(awk '$6 == "app.sid" { print $6 "=" $7 }' "$jar")
if [ "$out" = "303 $url/dashboard" ] && [ -n "$cookie" ]; then ok "logged in as alice (POST /login: 303 to /dashboard, cookie app.sid)"
else not_ok "POST /login answered '$out', cookie '${cookie:-none}'"; finish; fi

mkdir -p "$tmp/pages"
# Each request on a new connection, so the kernel (reuseport) picks the worker afresh.
codes=$(curl -sS --no-progress-meter --max-time 120 --parallel --parallel-immediate --parallel-max 4 -H 'Connection: close' -H "Cookie: $cookie" \
  -o "$tmp/pages/#1" -w '%{http_code} %header{x-worker-pid}\n' "$url/dashboard?r=[1-$requests]" 2>"$tmp/curl.err")
served=$(grep -c '^200 ' <<<"$codes")
logged_in=$(grep -l 'Signed in as <strong id="username">Alice</strong>' "$tmp/pages"/* 2>/dev/null | wc -l)
pids=$(awk '{ print $2 }' <<<"$codes")
echo "# dashboard requests per worker: $(tally <<<"$pids")"
if [ "$served" -eq "$requests" ] && [ "$logged_in" -eq "$requests" ]; then
  ok "$requests dashboard requests of one logged-in client are all served logged in as Alice"
else
  not_ok "$served of $requests dashboard requests answered 200, $logged_in logged in as Alice;" \
    "other answers: $(grep -v '^200 ' <<<"$codes" | awk '{ print $1 }' | sort | uniq -c | xargs) $(head -c 300 "$tmp/curl.err")"
fi
all_workers_in "$pids" && ok "both workers served them" || not_ok "served by: $(tally <<<"$pids"), not by both workers"

# 2. Concurrent writes of different keys from both workers, through the adapter.
out=$(curl -sS --no-progress-meter --max-time 120 --parallel --parallel-immediate --parallel-max 32 -H 'Connection: close' \
  -H "Cookie: $cookie" "$url/t/write?key=k[1-$writes]" 2>"$tmp/curl.err")
answered=$(grep -c '^wrote k[0-9]* [0-9]*$' <<<"$out")
wpids=$(awk '/^wrote / { print $3 }' <<<"$out")
echo "# writes per worker: $(tally <<<"$wpids")"
[ "$answered" -eq "$writes" ] && ok "$writes parallel writes of one key each answered" ||
  not_ok "$answered of $writes writes answered: $(grep -v '^wrote ' <<<"$out" | head -3) $(head -c 300 "$tmp/curl.err")"
all_workers_in "$wpids" && ok "the writes ran on both workers" || not_ok "writes ran on: $(tally <<<"$wpids"), not on both workers"
data=$(curl -sS --max-time 5 -H "Cookie: $cookie" "$url/t/read")
missing=0 wrong=0
for i in $(seq "$writes"); do
  value=$(grep -o "\"k$i\":[0-9]*" <<<"$data" | cut -d: -f2)
  if [ -z "$value" ]; then missing=$((missing + 1))
  else
    # The value is the pid of the worker that wrote it.
    grep -q "^wrote k$i $value\$" <<<"$out" || wrong=$((wrong + 1))
  fi
done
[ "$missing" -eq 0 ] && [ "$wrong" -eq 0 ] && ok "all $writes keys written concurrently are in the session, each with its writer's pid" ||
  not_ok "after the writes: $missing of $writes keys missing, $wrong with another value (session: $(head -c 300 <<<"$data"))"
grep -q '"userId":1' <<<"$data" && grep -q '"username":"Alice"' <<<"$data" &&
  ok "the login (userId, username) survived the concurrent writes" || not_ok "login lost: $(head -c 300 <<<"$data")"
page=$(curl -sS --max-time 5 -H "Cookie: $cookie" "$url/dashboard")
grep -q 'Signed in as <strong id="username">Alice</strong>' <<<"$page" && ok "the dashboard is still logged in" ||
  not_ok "the dashboard after the writes is not logged in"

# 3. Errors escaping a handler are logged with their message.
# finish, then ngx.exec to a location that starts the session again: one session, with both
# writes, for a client that had none (the target used to start a second new session, whose
# cookie came last and replaced the first's, so the first write was lost).
xjar=$tmp/exec-cookies
out=$(curl -sS --max-time 5 -c "$xjar" "$url/t/exec")
later=$(curl -sS --max-time 5 -b "$xjar" "$url/t/read")
[[ $out == *'"before":1'* && $out == *'"after":1'* && $later == *'"before":1'* && $later == *'"after":1'* ]] &&
  ok "a session finished before ngx.exec is the one the target location starts" ||
  not_ok "after finish and ngx.exec: the target saw ${out:0:200}, the cookie the client kept holds ${later:0:200}"

code=$(curl -sS --max-time 5 -o /dev/null -w '%{http_code}' "$url/t/error")
code2=$(curl -sS --max-time 5 -o /dev/null -w '%{http_code}' -H "Cookie: $cookie" "$url/t/error-commit")
[ "$code" = 500 ] && [ "$code2" = 500 ] && ok "escaped errors answer 500" || not_ok "escaped errors answered $code and $code2, not 500"
sleep 0.2 # the log line is written by the worker, the response may arrive first
line=$(grep -m1 'a handler failed on purpose' "$log")
[ -n "$line" ] && ok "a handler's error is logged with its message: ${line#*\] }" ||
  not_ok "no log line with the handler's message; the log says: $(grep -m1 'runtime error' "$log")"
line=$(grep -m1 'honeymoon_session: session value callback.f is a function' "$log")
[ -n "$line" ] && ok "the module's error at commit is logged with its message: ${line#*\] }" ||
  not_ok "no log line with the module's message; the log says: $(grep -m1 -A2 'error-commit\|runtime error' "$log" | tail -3)"
n=$(grep -c 'unknown reason' "$log")
[ "$n" -eq 0 ] && ok "no 'unknown reason' in nginx's log" || not_ok "nginx logged 'unknown reason' $n time(s)"

# Nothing else went wrong: the only errors in the log are the two provoked above.
others=$(grep -E '\[(alert|crit|error)\]' "$log" | grep -v -e 'a handler failed on purpose' -e 'session value callback.f is a function' | head -3)
[ -z "$others" ] && ok "no other errors in nginx's log" || not_ok "nginx logged: $others"
finish

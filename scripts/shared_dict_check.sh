#!/usr/bin/env bash
# Checks the SharedDictStore (lua/honeymoon_session/stores/shared_dict.lua) inside nginx with two
# workers sharing `lua_shared_dict sessions 10m`, on a free 127.0.0.1 port:
#   1. the store contract, case by case (spec/nginx/shared_dict.lua: GET /contract);
#   2. the store in init_by_lua (no request, no ngx.sleep) and a contended merge in set_by_lua;
#   3. the eviction warning in nginx's log;
#   4. across workers: one session stored, then read by requests spread over both workers;
#   5. concurrency: many parallel requests hitting both workers, each merging its own keys into
#      one session; afterwards every key is there.
# Starts nginx in the foreground (its pid is the master's) and stops it by that pid; removes its
# temp dir. Needs `make both` (build/luajit/honeymoon_session.so) and curl.
# Ends with "shared-dict: N passed, M failed"; exits non-zero on any failure.
#   scripts/shared_dict_check.sh [REQUESTS]   (parallel merge requests, default 200)
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
source "$root/scripts/lib/servers.sh"
requests=${1:-200}
merges=10 # merges per request
so=$root/build/luajit/honeymoon_session.so
[ -f "$so" ] || { echo "shared_dict_check: no $so: run 'make both' first" >&2; exit 1; }
if ! command -v nginx >/dev/null || [ ! -f /usr/lib/nginx/modules/ngx_http_lua_module.so ]; then
  echo "shared_dict_check: needs nginx and libnginx-mod-http-lua: scripts/setup.sh" >&2
  exit 1
fi

prefix=$(mktemp -d "${TMPDIR:-/tmp}/hs-shdict.XXXXXX")
pid=""
cleanup() {
  if [ -n "$pid" ]; then kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; fi
  keep_artifacts shared-dict "$prefix/error.log" "$prefix/nginx.conf"
  rm -rf "$prefix"
}
trap cleanup EXIT
trap 'exit 143' TERM
trap 'exit 130' INT

passed=0 failed=0
ok() { echo "ok $*"; passed=$((passed + 1)); }
not_ok() { echo "not ok $*"; failed=$((failed + 1)); }
finish() { echo "shared-dict: $passed passed, $failed failed"; [ "$failed" -eq 0 ]; exit; }

# A port nothing holds now, below the ephemeral range (scripts/lib/servers.sh; nginx may still lose a
# race for it, and then says so in its log).
read -r port port2 <<<"$(free_port 2)"

{
  nginx_conf_head "$prefix" 2
  cat <<EOF
    lua_shared_dict sessions 10m;
    lua_shared_dict other 1m;
    lua_shared_dict tiny 64k;
    init_by_lua_block { require("spec.nginx.shared_dict").init() }
    server {
        # reuseport: the kernel spreads connections over both workers; no keepalive, so every
        # request is a new connection and both workers get a share of them.
        listen 127.0.0.1:$port reuseport;
        keepalive_timeout 0;
        location = /contract { content_by_lua_block { require("spec.nginx.shared_dict").contract() } }
        location = /init { content_by_lua_block { ngx.say(ngx.shared.sessions:get("init-result")) } }
        location = /set-phase {
            set_by_lua_block \$result { return require("spec.nginx.shared_dict").set_phase() }
            return 200 "\$result\n";
        }
        location = /setup { content_by_lua_block { require("spec.nginx.shared_dict").setup() } }
        location = /merge { content_by_lua_block { require("spec.nginx.shared_dict").merge() } }
        location = /get { content_by_lua_block { require("spec.nginx.shared_dict").get() } }
        location = /bench { content_by_lua_block { require("spec.nginx.shared_dict").bench() } }
        location = /check { content_by_lua_block { require("spec.nginx.shared_dict").check() } }
    }
    # A server whose requests all end in its server_rewrite phase (a phase where ngx.sleep works).
    server {
        listen 127.0.0.1:$port2;
        server_rewrite_by_lua_block { require("spec.nginx.shared_dict").server_rewrite_phase() }
    }
}
EOF
} >"$prefix/nginx.conf"

nginx -e "$prefix/error.log" -p "$prefix" -c "$prefix/nginx.conf" -g 'daemon off;' &
pid=$!
url="http://127.0.0.1:$port"
up=""
for _ in $(seq 100); do
  curl -sf -o /dev/null --max-time 2 "$url/init" && { up=1; break; }
  kill -0 "$pid" 2>/dev/null || break
  sleep 0.05
done
if [ -z "$up" ]; then
  not_ok "nginx started on $url: $(grep -m1 -E '\[(emerg|alert|crit|error)\]' "$prefix/error.log")"
  finish
fi
echo "# nginx (master pid $pid, 2 workers) on $url"

# 1. The contract.
out=$(curl -sS --max-time 30 "$url/contract") || out="not ok GET /contract: no answer"
while IFS= read -r line; do
  case $line in "ok "*) ok "${line#ok }" ;; "not ok "*) not_ok "${line#not ok }" ;; *) not_ok "unexpected: $line" ;; esac
done <<<"$out"

# 2. Outside a yieldable phase.
r=$(curl -sS --max-time 5 "$url/init")
[ "$r" = ok ] && ok "init_by_lua: set, merge, get, clear without a request" || not_ok "init_by_lua: $r"
r=$(curl -sS --max-time 5 "$url/set-phase")
[ "$r" = ok ] && ok "set_by_lua: a contended merge spins at most 10 ms and fails plainly" || not_ok "set_by_lua: $r"
r=$(curl -sS --max-time 5 "http://127.0.0.1:$port2/")
[ "$r" = ok ] && ok "server_rewrite_by_lua: a contended merge waits (ngx.sleep) for the lock" || not_ok "server_rewrite_by_lua: $r"

# 3. The contract's eviction case must have left its warning (once, not once per set).
n=$(grep -c 'lua_shared_dict tiny is full: storing a session evicted the least recently used entries' "$prefix/error.log")
[ "$n" -ge 1 ] && [ "$n" -le 2 ] && ok "eviction logged as a warning ($n line(s))" || not_ok "eviction warning: $n lines in error.log"

# 4. One session, read by requests over both workers.
id="cross$$"
curl -sSf --max-time 5 -o /dev/null "$url/setup?id=$id" || not_ok "GET /setup"
out=$(curl -sS --no-progress-meter --max-time 30 --parallel --parallel-immediate --parallel-max 16 "$url/get?id=$id&r=[1-200]")
hits=$(grep -c '^hit ' <<<"$out") workers=$(awk '{ print $2 }' <<<"$out" | sort -u | wc -l)
[ "$hits" -eq 200 ] && ok "200 reads of one session all hit" || not_ok "reads: $hits of 200 hit"
[ "$workers" -eq 2 ] && ok "reads served by both workers" || not_ok "reads served by $workers worker(s), not 2"

# 5. Concurrent merges of different keys into one session, from both workers.
id="conc$$"
curl -sSf --max-time 5 -o /dev/null "$url/setup?id=$id" || not_ok "GET /setup"
out=$(curl -sS --no-progress-meter --max-time 60 --parallel --parallel-immediate --parallel-max 32 "$url/merge?id=$id&n=$merges&key=k[1-$requests]")
merged=$(grep -c '^merged ' <<<"$out") workers=$(awk '/^merged / { print $2 }' <<<"$out" | sort -u | wc -l)
[ "$merged" -eq "$requests" ] && ok "$requests parallel requests x $merges merges answered" ||
  not_ok "$merged of $requests merge requests answered: $(grep -v '^merged ' <<<"$out" | head -3)"
[ "$workers" -eq 2 ] && ok "merges ran on both workers" || not_ok "merges ran on $workers worker(s), not 2"
keys=$(seq -s, -f 'k%g' 1 "$requests")
r=$(curl -sS --max-time 10 "$url/check?id=$id&n=$merges&keys=$keys")
[ "$r" = ok ] && ok "all $((requests * merges)) keys merged concurrently are in the session" || not_ok "after the merges: $r"

# Figures, not asserted.
echo "# store calls in one worker: $(curl -sS --max-time 60 "$url/bench")"

errors=$(grep -E '\[(alert|crit|error)\]' "$prefix/error.log" | head -3)
[ -z "$errors" ] && ok "no errors in nginx's log" || not_ok "nginx logged errors: $errors"
finish

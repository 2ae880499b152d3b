#!/usr/bin/env bash
# The Lua RedisStore's ngx backend (cosockets, keepalive pool) in content_by_lua handlers of
# nginx with 2 workers, against a throwaway redis-server. Loopback only; both servers are
# started here and stopped by their PIDs on exit; every request is bounded (curl -m 5) and the
# whole check by CHECK_SECONDS (default 60). Needs `make both` (build/luajit).
# Checks: both workers serve and see one another's writes; session() through the OpenResty
# adapter over this store counts a browser's 20 visits across both workers; 40 concurrent writes of different
# keys to one session from both workers all survive; connections are pooled (few connections
# for many requests); with Redis behind a proxy that holds each reply 0.5 s, 8 concurrent
# requests overlap instead of queueing and a route without Redis still answers at once (the
# workers yield; a blocking store would take >= 2 s and stall that route); a store failure is a
# plain message naming store, method and address, also in a phase without cosockets
# (header_filter_by_lua), where it says where to call the store instead.
# Ends with "redis_nginx_check: N passed, N failed, N skipped" (scripts/test.sh counts each
# check, and a skip as a skip); exits 1 on a failure.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
source "$root/scripts/lib/servers.sh"
[ -f "$root/build/luajit/honeymoon_session.so" ] || { echo "redis_nginx_check: run 'make both' first" >&2; exit 1; }
command -v nginx >/dev/null && [ -f /usr/lib/nginx/modules/ngx_http_lua_module.so ] ||
  { echo "redis_nginx_check: needs nginx and libnginx-mod-http-lua (scripts/setup.sh)" >&2; exit 1; }

dir=$(mktemp -d "${TMPDIR:-/tmp}/hs-redis-nginx.XXXXXX")
redis_pid="" nginx_pid="" proxy_pid=""
cleanup() {
  for pid in $nginx_pid $proxy_pid $redis_pid; do
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
  done
  keep_artifacts redis-nginx "$dir"/*.log "$dir"/*.conf
  rm -rf "$dir"
}
trap cleanup EXIT
trap 'exit 143' TERM
trap 'exit 130' INT
# Bounded: a watchdog ends this script (and so its servers, through the EXIT trap). Stopped at
# exit, it stops its sleep by pid: a sleep left holding our stdout would keep a caller that
# reads it (scripts/test.sh's counted) waiting the full CHECK_SECONDS.
(
  trap 'kill "$sleeper" 2>/dev/null; exit 0' TERM
  sleep "${CHECK_SECONDS:-60}" >/dev/null 2>&1 & sleeper=$!
  wait "$sleeper" || exit 0
  echo "redis_nginx_check: gave up after ${CHECK_SECONDS:-60} s" >&2; kill -TERM $$ 2>/dev/null
) &
watchdog=$!
trap 'kill $watchdog 2>/dev/null || true; cleanup' EXIT

start_redis "$dir" || { echo "redis_nginx_check: redis-server did not start:"; tail -5 "$dir/redis.log" 2>/dev/null
  echo "redis_nginx_check: 0 passed, 1 failed, 0 skipped"; exit 1; }
redis_pid=$REDIS_PID redis_port=$REDIS_PORT

# Redis behind a slow path: each reply held 0.5 s.
start_slow_proxy "$dir" "$redis_port" 0.5 || true
proxy_pid=$PROXY_PID proxy_port=$PROXY_PORT

port=$(free_port)
{
  nginx_conf_head "$dir" 2
  cat <<EOF
    init_by_lua_block {
        local Redis = require("honeymoon_session.stores.redis")
        R = require("honeymoon_session")._redis
        store = Redis.new({ url = "redis://127.0.0.1:$redis_port/1", pool = { size = 8 } })
        down = Redis.new({ url = "redis://127.0.0.1:1", socket = "ngx" })
        v6 = Redis.new({ url = "redis://[::1]:$redis_port/1" })
        slow = Redis.new({ url = "redis://127.0.0.1:$proxy_port", commandTimeout = 5000 })
        LIFE = { ttl = 600, path = "/", httpOnly = true, secure = false, sameSite = "Lax" }
        adapter = require("honeymoon_session.adapters.openresty").new({ secret = "check", store = store })
        -- Runs f; a failure answers 500 with the error's type and message.
        function guarded(f)
            local ok, err = pcall(f)
            if not ok then
                ngx.status = 500
                ngx.say(type(err), ": ", tostring(err))
            end
        end
    }
    server {
        listen 127.0.0.1:$port reuseport;
        location /write { content_by_lua_block { guarded(function()
            local id, k, v = ngx.var.arg_id, ngx.var.arg_k, ngx.var.arg_v
            local record, version = store:get(id)
            if not record then
                store:set(id, R.record({ [k] = v }), 600, LIFE)
                return ngx.say("set ", ngx.worker.pid())
            end
            local data = R.data(record)
            data[k] = v
            local written = store:merge(id, R.patch(record, R.record(data)), 600, version, LIFE)
            ngx.say(written and "merged " or "gone ", ngx.worker.pid())
        end) } }
        location /read { content_by_lua_block { guarded(function()
            local record = store:get(ngx.var.arg_id)
            local keys = {}
            for k, v in pairs(record and R.data(record) or {}) do keys[#keys + 1] = k .. "=" .. v end
            table.sort(keys)
            ngx.say(#keys, " ", table.concat(keys, ","), " ", ngx.worker.pid())
        end) } }
        location /hits { content_by_lua_block { guarded(function()
            local session = adapter:start()
            session.hits = (session.hits or 0) + 1
            adapter:finish(session)
            ngx.say(session.hits, " ", ngx.worker.pid())
        end) } }
        location /slow { content_by_lua_block { guarded(function()
            ngx.say(slow:exists("x") and "yes" or "no")
        end) } }
        location /plain { content_by_lua_block { ngx.say("plain") } }
        location /down { content_by_lua_block { guarded(function() down:exists("x") end) } }
        location /v6 { content_by_lua_block { guarded(function() ngx.say(v6:exists("s1")) end) } }
        # A phase where nginx allows no cosocket: the store's message, in a response header.
        location /filter {
            content_by_lua_block { ngx.say("body") }
            header_filter_by_lua_block {
                local ok, err = pcall(store.exists, store, "s1")
                ngx.header["X-Store"] = ok and "no error" or tostring(err)
            }
        }
    }
}
EOF
} >"$dir/nginx.conf"
nginx -e "$dir/stderr.log" -p "$dir" -c "$dir/nginx.conf" >/dev/null 2>&1 ||
  { echo "redis_nginx_check: nginx did not start:" >&2; cat "$dir/stderr.log" "$dir/error.log" >&2 2>/dev/null
    echo "redis_nginx_check: 0 passed, 1 failed, 0 skipped"; exit 1; }
for _ in $(seq 100); do [ -s "$dir/nginx.pid" ] && break; sleep 0.05; done
nginx_pid=$(cat "$dir/nginx.pid")
url="http://127.0.0.1:$port"
for _ in $(seq 100); do
  code=$(curl -s -m 5 -o /dev/null -w '%{http_code}' "$url/read?id=warmup" 2>/dev/null) || true
  [ "$code" = 200 ] && break; sleep 0.05
done

passed=0 failed=0 skipped=0
check() { # title, condition (evaluated), detail
  if eval "$2"; then echo "ok: $1"; passed=$((passed + 1)); else echo "FAILED: $1 ($3)"; failed=$((failed + 1)); fi
}
req() { curl -s -m 5 "$url$1"; }

before=$(redis-cli -p "$redis_port" INFO stats | tr -d '\r' | sed -n 's/^total_connections_received://p')
out=$(req "/write?id=s1&k=base&v=1")
check "a first write sets the session" '[[ $out == set* ]]' "$out"

# Many requests spread over both workers: each reads what the others wrote.
pids=$(for i in $(seq 60); do req "/read?id=s1"; done | tee "$dir/reads" | awk '{print $NF}' | sort -u | wc -l)
check "both workers served reads" '[ "$pids" -eq 2 ]' "$pids distinct worker pids"
bad=$(grep -vc '^1 base=1 ' "$dir/reads" || true)
check "every read saw the session the first write made" '[ "$bad" -eq 0 ]' "$(head -3 "$dir/reads")"

# 40 concurrent writes of different keys to one session, from both workers: all survive.
seq 1 40 | xargs -P 8 -I{} curl -s -m 5 "$url/write?id=s1&k=k{}&v={}" >"$dir/writes"
merged=$(grep -c '^merged ' "$dir/writes" || true)
check "40 concurrent merges all written" '[ "$merged" -eq 40 ]' "$(sort "$dir/writes" | uniq -c | head -5)"
out=$(req "/read?id=s1")
check "all 41 keys survive" '[[ $out == 41\ * ]]' "${out:0:200}"
stored=$(redis-cli -p "$redis_port" -n 1 GET sess:s1)
check "stored in connect-redis's form in db 1" '[[ $stored == *\"k40\":\"40\"* && $stored == *\"cookie\":\{* ]]' "${stored:0:200}"

after=$(redis-cli -p "$redis_port" INFO stats | tr -d '\r' | sed -n 's/^total_connections_received://p')
conns=$((after - before - 1))
check "connections pooled: $conns for 102 requests (at most 2 workers x 8)" '[ "$conns" -le 16 ]' "$conns connections"

# Through the engine: the OpenResty adapter over this store, one browser's cookie, 20 visits.
for _ in $(seq 20); do curl -s -m 5 -b "$dir/jar" -c "$dir/jar" "$url/hits"; done >"$dir/hits"
last=$(tail -1 "$dir/hits" | cut -d' ' -f1)
workers=$(awk '{print $2}' "$dir/hits" | sort -u | wc -l)
check "session() over it (OpenResty adapter): 20 visits count to 20 across both workers" \
  '[ "$last" = 20 ] && [ "$workers" -eq 2 ]' "last $last, $workers workers"

# The slow path: 8 requests at once (each one GET, its reply held 0.5 s), and meanwhile a
# route without Redis. Yielding workers answer the 8 in about 0.5 s; blocking ones would
# take 4 rounds of 0.5 s on 2 workers, and /plain would wait behind them.
curl -s -m 10 -Z --parallel-immediate --parallel-max 8 -o /dev/null -w '%{http_code} %{time_total}\n' "$url/slow?n=[1-8]" \
  >"$dir/slow" 2>/dev/null &
slow_pid=$!
sleep 0.2
plain=$(curl -s -m 10 -o /dev/null -w '%{http_code} %{time_total}' "$url/plain")
wait "$slow_pid" || true
ok200=$(grep -c '^200 ' "$dir/slow" || true)
longest=$(awk 'BEGIN { m = 0 } { if ($2 > m) m = $2 } END { print m }' "$dir/slow")
check "8 concurrent requests through the slow path overlap (longest ${longest} s, 8 in a row: >= 2 s)" \
  '[ "$ok200" -eq 8 ] && awk "BEGIN { exit !($longest < 1.5) }"' "$(tr '\n' ' ' <"$dir/slow")"
check "a route without Redis answers meanwhile (${plain#* } s)" \
  '[[ $plain == 200\ * ]] && awk "BEGIN { exit !(${plain#* } < 0.45) }"' "$plain"

out=$(curl -s -m 5 -w ' %{http_code}' "$url/down")
check "a closed port answers a plain message naming store, method and address" \
  '[[ $out == "string: honeymoon_session: RedisStore:exists failed: connection refused (redis at 127.0.0.1:1/0)"*500 ]]' "$out"

# header_filter_by_lua (as log_by_lua, set_by_lua, init_by_lua) has no cosockets: nginx raises
# "API disabled in the context of header_filter_by_lua*" with the position of our call.
out=$(curl -s -m 5 -o /dev/null -D - "$url/filter" | tr -d '\r' | sed -n 's/^X-Store: //p')
check "a phase without cosockets: a message in our shape that names the phase and where to call the store" \
  '[[ $out == "honeymoon_session: RedisStore:exists failed: nginx allows no cosocket in header_filter_by_lua*; "*"access_by_lua"*"(redis at 127.0.0.1:$redis_port/1)" && $out != *.lua:* ]]' "$out"

# An IPv6 address in the url (brackets stripped by the url parser, put back for the cosocket).
if redis-cli -h ::1 -p "$redis_port" PING 2>/dev/null | grep -q PONG; then
  out=$(req "/v6")
  check "a url with an IPv6 address ([::1]) connects" '[ "$out" = true ]' "$out"
else
  echo "skip: a url with an IPv6 address ([::1]): this machine has no IPv6 loopback"; skipped=$((skipped + 1))
fi

errors=$(grep -E '\[(alert|crit|emerg)\]|runtime error' "$dir/error.log" | head -3 || true)
check "nginx logged no Lua runtime error" '[ -z "$errors" ]' "$errors"

echo "redis_nginx_check: $passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]

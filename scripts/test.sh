#!/usr/bin/env bash
# Every test the project has (make test), or with --fast the quick tier (make check): lint, cargo
# test (vendored Lua), busted under Lua 5.1, 5.2, 5.3, 5.4 and LuaJIT; then interop, e2e, load,
# nginx, and the luarocks install check on every interpreter. Ends with one line
# "tests: N passed, N failed, N skipped" (a busted pending is a skip, never a pass); exits
# non-zero on failure.
set -u
cd "$(dirname "$0")/.."
passed=0 failed=0 skipped=0
log=$(mktemp -d)
trap 'rm -rf "$log"' EXIT

add() { passed=$((passed + $1)); failed=$((failed + $2)); }

check() { # title, command...: one pass or one failure
  local title=$1; shift
  if "$@" >"$log/check" 2>&1; then echo "$title: ok"; add 1 0; else echo "$title: FAILED"; tail -30 "$log/check"; add 0 1; fi
}
echo "== lint"
check "cargo fmt --check" cargo fmt --check
check "cargo clippy -D warnings (lua54)" cargo clippy --locked --features lua54,vendored --all-targets -- -D warnings
# The fast tier (make check: under a minute) lints and tests Lua 5.4 and LuaJIT; make test adds
# Lua 5.1, 5.2 and 5.3.
fast=false; [ "${1:-}" = "--fast" ] && fast=true
flavours="lua51 lua52 lua53 luajit" interpreters="lua5.1 lua5.2 lua5.3 lua5.4 luajit"
$fast && flavours="luajit" interpreters="lua5.4 luajit"
for flavour in $flavours; do
  check "cargo clippy -D warnings ($flavour module)" cargo clippy --locked --features "$flavour,module" -- -D warnings
done

echo "== cargo test (vendored Lua 5.4)"
cargo test --locked --features lua54,vendored 2>&1 | tee "$log/cargo" | grep -E "^test result|FAILED|panicked"
rc=${PIPESTATUS[0]}
read -r p f < <(awk '/^test result/ { p += $4; f += $6 } END { print p+0, f+0 }' "$log/cargo")
[ "$rc" -ne 0 ] && [ "$f" -eq 0 ] && f=1 # a build failure counts
add "$p" "$f"

echo "== build for $interpreters"
target=flavours; $fast && target=both
if ! make -s "$target" >"$log/build" 2>&1; then
  tail -30 "$log/build"; add 0 1
  echo "tests: $passed passed, $failed failed, $skipped skipped"; exit 1
fi

for lua in $interpreters; do
  echo "== busted --lua=$lua"
  busted --lua="$lua" -o utfTerminal 2>&1 | tee "$log/busted-$lua" | tail -n 40
  rc=${PIPESTATUS[0]}
  # "N successes / N failures / N errors / N pending"; a pending test is a skip, not a pass.
  read -r p f s < <(sed 's/\x1b\[[0-9;]*m//g' "$log/busted-$lua" |
    awk '/successes? \/ .* failures? \/ .* errors? \/ .* pending/ { print $1, $4 + $7, $10 }' | tail -1)
  p=${p:-0} f=${f:-0} s=${s:-0}
  [ "$rc" -ne 0 ] && [ "$f" -eq 0 ] && f=1
  add "$p" "$f"; skipped=$((skipped + s))
done

# make check: the fast tier stops here.
if $fast; then
  echo "tests: $passed passed, $failed failed, $skipped skipped"
  [ "$failed" -eq 0 ]; exit
fi

# node --test's TAP output ends with "# pass N" and "# fail N".
node_suite() { # title, log name, command...
  local title=$1 name=$2; shift 2
  echo "== $title"
  "$@" 2>&1 | tee "$log/$name" | grep -E "^(not )?ok |^# (pass|fail|todo) "
  local rc=${PIPESTATUS[0]} p f
  read -r p f < <(awk '/^# pass / { p = $3 } /^# fail / { f = $3 } END { print p+0, f+0 }' "$log/$name")
  if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; tail -30 "$log/$name"; fi
  add "$p" "$f"
}
node_suite "interop: express-session <-> honeymoon_session through Redis (LuaJIT)" interop bash interop/run.sh
node_suite "interop on Lua 5.4" interop54 env INTEROP_LUA=lua5.4 bash interop/run.sh
node_suite "interop on OpenResty: nginx (2 workers), cosocket RedisStore" interop-nginx env INTEROP_LUA=openresty bash interop/run.sh
node_suite "browser e2e: the demo on lua-http and nginx (chromium)" e2e bash scripts/e2e.sh

echo "== load: wrk, 5 s per run, lua-http and nginx"
out=$(bash scripts/load.sh 5 2>&1); rc=$?
echo "$out" | tail -12
read -r p f < <(sed -n 's/^load: \([0-9]*\) passed, \([0-9]*\) failed$/\1 \2/p' <<<"$out")
p=${p:-0} f=${f:-0}
[ "$rc" -ne 0 ] && [ "$f" -eq 0 ] && f=1
add "$p" "$f"

echo "== SharedDictStore inside nginx, two workers"
out=$(bash scripts/shared_dict_check.sh 2>&1); rc=$?
grep -E '^(not ok|#)' <<<"$out"; tail -1 <<<"$out"
read -r p f < <(sed -n 's/^shared-dict: \([0-9]*\) passed, \([0-9]*\) failed$/\1 \2/p' <<<"$out")
p=${p:-0} f=${f:-0}
[ "$rc" -ne 0 ] && [ "$f" -eq 0 ] && f=1
add "$p" "$f"

echo "== sessions across nginx workers: the demo with 2 workers and the shared-dict store"
out=$(bash scripts/nginx_workers_check.sh 2>&1); rc=$?
grep -E '^(not ok|#)' <<<"$out"; tail -1 <<<"$out"
read -r p f < <(sed -n 's/^nginx-workers: \([0-9]*\) passed, \([0-9]*\) failed$/\1 \2/p' <<<"$out")
p=${p:-0} f=${f:-0}
[ "$rc" -ne 0 ] && [ "$f" -eq 0 ] && f=1
add "$p" "$f"

echo "== nginx demo from a clone in a private (mode 700) directory"
check "private_dir_check: clone into mktemp -d, nginx demo, curl login" bash scripts/private_dir_check.sh

echo "== the Lua RedisStore's ngx backend under nginx (2 workers)"
check "redis_nginx_check: cosockets, pooled, concurrent merges from both workers" bash scripts/redis_nginx_check.sh

echo "== stores never block an event loop: Redis 2 ms away, one nginx worker, one lua-http process"
out=$(bash scripts/nonblocking_check.sh 2>&1); rc=$?
grep -E '^(ok|FAILED|#)' <<<"$out"
read -r p f < <(sed -n 's/^nonblocking: \([0-9]*\) passed, \([0-9]*\) failed$/\1 \2/p' <<<"$out")
p=${p:-0} f=${f:-0}
[ "$rc" -ne 0 ] && [ "$f" -eq 0 ] && f=1
add "$p" "$f"

echo "== luarocks install --server=dist on every interpreter, from throwaway trees"
if make -s dist >"$log/dist" 2>&1; then
  out=$(bash scripts/install_check.sh 2>&1); rc=$?; echo "$out"
  p=$(grep -c '^install [^ ]*: ok' <<<"$out") f=$(grep -c '^install [^ ]*: FAILED' <<<"$out")
  [ "$rc" -ne 0 ] && [ "$f" -eq 0 ] && f=1
  add "$p" "$f"
else
  echo "make dist: FAILED"; tail -20 "$log/dist"; add 0 1
fi

echo "tests: $passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]

#!/usr/bin/env bash
# Every test the project has (make test), or with --fast the quick tier (make check): lint, cargo
# test (vendored Lua 5.4; make test adds the unit tests on 5.1, 5.2, 5.3 and LuaJIT), busted
# under Lua 5.1, 5.2, 5.3, 5.4 and LuaJIT; then interop, e2e, load, nginx, and the luarocks
# install check on every interpreter. Ends with one line
# "tests: N passed, N failed, N skipped" (a busted pending is a skip, never a pass); exits
# non-zero on failure.
# Every failing test is named in this output (busted's and node's TAP "not ok" lines with their
# messages, each check's FAILED line). Everything a run leaves is kept under artifacts/ (not in
# git; emptied at the start of each run): logs/ holds each step's full output, servers-*/ and
# the other directories the servers' logs and configs (HS_ARTIFACTS, see
# scripts/lib/servers.sh), e2e/ the browser's screenshots; the last lines name the directory
# when anything failed.
set -u
cd "$(dirname "$0")/.."
passed=0 failed=0 skipped=0
export HS_ARTIFACTS=$PWD/artifacts
rm -rf "$HS_ARTIFACTS"
log=$HS_ARTIFACTS/logs
mkdir -p "$log"

add() { passed=$((passed + $1)); failed=$((failed + $2)); }

finish() {
  [ "$failed" -eq 0 ] || echo "artifacts of this run (each step's log, server logs, screenshots): $HS_ARTIFACTS"
  echo "tests: $passed passed, $failed failed, $skipped skipped"
  [ "$failed" -eq 0 ]; exit
}

check() { # title, command...: one pass or one failure; the output goes to logs/<title>.log
  local title=$1 file; shift
  file=$log/$(tr -c 'A-Za-z0-9_.\n-' '-' <<<"$title" | cut -c1-60).log
  if "$@" >"$file" 2>&1; then echo "$title: ok"; add 1 0; else echo "$title: FAILED"; tail -30 "$file"; add 0 1; fi
}

# busted's TAP: every "not ok" line with its message lines, and the pending ones ("# SKIP").
# Sets p, f and s (passed, failed, pending).
busted_results() { # log file
  awk '/^not ok / { print; n = 0; failing = 1; next }
       /^ok [0-9]+ - # SKIP/ { print "pending: " $0; failing = 0; next }
       /^ok / { failing = 0; next }
       failing && /^#/ && n++ < 12 { print "    " $0 }' "$1"
  read -r p f s < <(awk '/^ok [0-9]+ - # SKIP/ { s++; next } /^ok / { p++ } /^not ok / { f++ }
                         END { print p+0, f+0, s+0 }' "$1")
}

# node --test's TAP: every test's ok/not ok line, nested ones too (node indents subtests, so the
# steps of a describe), and for a failure its location and error and the stack's first frame
# (where it threw), not the rest of the stack.
node_results() { # log file
  awk '/^ *(not )?ok / { print; failing = ($0 ~ /^ *not ok /); block = 0; next }
       failing && /^ *---$/ { block = 1; n = 0; next }
       block && /^ *\.\.\.$/ { block = 0; failing = 0; next }
       block == 1 && /^ *stack: / { block = 2; print; next }
       block == 2 { print; block = 3; next }
       block == 1 && !/^ *duration_ms: / && n++ < 20 { print }' "$1"
}
echo "== lint"
check "cargo fmt --check" cargo fmt --check
check "cargo clippy -D warnings (lua54)" cargo clippy --locked --features lua54,vendored --all-targets -- -D warnings
# The crate without its redis feature (no native RedisStore) builds clean too.
check "cargo clippy -D warnings (lua54, no redis)" cargo clippy --locked --no-default-features --features lua54,vendored --all-targets -- -D warnings
# One direction of flow between the modules of src/: no import circles.
check "module import circles" bash scripts/module_cycles.sh
# The module's build stamp names every build setting, so none leaves a stale module.
check "build stamp settings" bash scripts/build_stamp_check.sh
# The fast tier (make check: under a minute) lints and tests Lua 5.4 and LuaJIT; make test adds
# Lua 5.1, 5.2 and 5.3.
fast=false; [ "${1:-}" = "--fast" ] && fast=true
flavours="lua51 lua52 lua53 luajit" interpreters="lua5.1 lua5.2 lua5.3 lua5.4 luajit"
$fast && flavours="luajit" interpreters="lua5.4 luajit"
for flavour in $flavours; do
  check "cargo clippy -D warnings ($flavour module)" cargo clippy --locked --features "$flavour,module" -- -D warnings
done

echo "== cargo test (vendored Lua 5.4)"
cargo test --locked --features lua54,vendored 2>&1 | tee "$log/cargo-test.log" | grep -E "^test result|FAILED|panicked"
rc=${PIPESTATUS[0]}
read -r p f < <(awk '/^test result/ { p += $4; f += $6 } END { print p+0, f+0 }' "$log/cargo-test.log")
if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; tail -30 "$log/cargo-test.log"; fi # a build failure counts
add "$p" "$f"

# The unit tests again on the other flavours (make test only): what they pin about numbers and
# errors differs where Lua has no integer subtype.
if ! $fast; then
  for flavour in lua51 lua52 lua53 luajit; do
    echo "== cargo test --lib (vendored $flavour)"
    cargo test --locked --features "$flavour,vendored" --lib 2>&1 | tee "$log/cargo-test-$flavour.log" | grep -E "^test result|FAILED|panicked"
    rc=${PIPESTATUS[0]}
    read -r p f < <(awk '/^test result/ { p += $4; f += $6 } END { print p+0, f+0 }' "$log/cargo-test-$flavour.log")
    if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; tail -30 "$log/cargo-test-$flavour.log"; fi
    add "$p" "$f"
  done
fi

echo "== build for $interpreters"
target=flavours; $fast && target=both
if ! make -s "$target" >"$log/build.log" 2>&1; then
  tail -30 "$log/build.log"; add 0 1
  finish
fi

# make check runs the two interpreters side by side: most of a busted run waits on servers
# (redis-server, nginx, timeouts), so together they take about as long as one. The specs' servers
# take random loopback ports and retry when one is taken. make test runs them one at a time.
declare -A busted_rc=()
if $fast; then
  for lua in $interpreters; do
    busted --lua="$lua" -o TAP >"$log/busted-$lua.log" 2>&1 &
    busted_rc[$lua]=$!
  done
  for lua in $interpreters; do wait "${busted_rc[$lua]}"; busted_rc[$lua]=$?; done
fi
for lua in $interpreters; do
  echo "== busted --lua=$lua"
  if $fast; then
    rc=${busted_rc[$lua]}
  else
    busted --lua="$lua" -o TAP >"$log/busted-$lua.log" 2>&1
    rc=$?
  fi
  # A pending test is a skip, not a pass.
  busted_results "$log/busted-$lua.log"
  echo "busted --lua=$lua: $p passed, $f failed, $s pending"
  # A run that died before its plan line (a spec file that does not load, a crash) counts.
  if { [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; } || ! grep -q '^1\.\.[0-9]' "$log/busted-$lua.log"; then
    f=$((f > 0 ? f : 1)); tail -20 "$log/busted-$lua.log"
  fi
  add "$p" "$f"; skipped=$((skipped + s))
done

# make check: the fast tier stops here.
if $fast; then finish; fi

# node --test's TAP output ends with "# pass N", "# fail N", "# cancelled N", "# skipped N" and
# "# todo N" (a test cut off by a timeout is cancelled, not failed: it counts as a failure here;
# node leaves skipped and todo tests out of "# pass", and they count as skipped here).
node_suite() { # title, log name, command...
  local title=$1 name=$2; shift 2
  echo "== $title"
  "$@" >"$log/$name.log" 2>&1
  local rc=$? p f s
  node_results "$log/$name.log"
  grep -E "^# (pass|fail|cancelled|skipped|todo) " "$log/$name.log"
  read -r p f s < <(awk '/^# pass / { p = $3 } /^# fail / { f += $3 } /^# cancelled / { f += $3 }
                         /^# skipped / { s += $3 } /^# todo / { s += $3 }
                         END { print p+0, f+0, s+0 }' "$log/$name.log")
  if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; tail -30 "$log/$name.log"; fi
  add "$p" "$f"; skipped=$((skipped + s))
}
# A check script whose last line is "PREFIX: N passed, N failed" or "PREFIX: N passed, N failed,
# N skipped": its whole output goes to $log/NAME.log, the lines matching SHOW to the console, its
# totals to ours (a skip is never a pass; a non-zero exit without a counted failure counts as one).
counted() { # name, prefix, lines to show (ERE), command...
  local name=$1 prefix=$2 show=$3 out rc p f s; shift 3
  out=$("$@" 2>&1); rc=$?
  echo "$out" >"$log/$name.log"
  grep -E "$show" <<<"$out"
  read -r p f s < <(sed -n "s/^$prefix: \([0-9]*\) passed, \([0-9]*\) failed\(, \([0-9]*\) skipped\)\{0,1\}\$/\1 \2 \4/p" <<<"$out" | tail -1)
  p=${p:-0} f=${f:-0} s=${s:-0}
  [ "$rc" -ne 0 ] && [ "$f" -eq 0 ] && f=1
  add "$p" "$f"; skipped=$((skipped + s))
}

node_suite "interop: express-session <-> honeymoon_session through Redis (LuaJIT)" interop bash interop/run.sh
node_suite "interop on Lua 5.4" interop54 env INTEROP_LUA=lua5.4 bash interop/run.sh
node_suite "interop on OpenResty: nginx (2 workers), cosocket RedisStore" interop-nginx env INTEROP_LUA=openresty bash interop/run.sh
node_suite "browser e2e: the demo on lua-http and nginx (chromium)" e2e bash scripts/e2e.sh

echo "== load: wrk, 5 s per run, lua-http and nginx"
counted load load '^(load: |server |lua-http|nginx)' bash scripts/load.sh 5

echo "== SharedDictStore inside nginx, two workers"
counted shared-dict shared-dict '^(not ok|#|shared-dict: )' bash scripts/shared_dict_check.sh

echo "== sessions across nginx workers: the demo with 2 workers and the shared-dict store"
counted nginx-workers nginx-workers '^(not ok|#|nginx-workers: )' bash scripts/nginx_workers_check.sh

echo "== nginx demo from a clone in a private (mode 700) directory"
check "private_dir_check: clone into mktemp -d, nginx demo, curl login" bash scripts/private_dir_check.sh

echo "== the Lua RedisStore's ngx backend under nginx (2 workers)"
counted redis-nginx redis_nginx_check '^(ok|FAILED|skip|redis_nginx_check: )' bash scripts/redis_nginx_check.sh

echo "== stores never block an event loop: Redis 2 ms away, one nginx worker, one lua-http process"
counted nonblocking nonblocking '^(ok|FAILED|#|nonblocking: )' bash scripts/nonblocking_check.sh

echo "== luarocks install --server=dist on every interpreter, from throwaway trees"
if make -s dist >"$log/dist.log" 2>&1; then
  out=$(bash scripts/install_check.sh 2>&1); rc=$?; echo "$out"; echo "$out" >"$log/install.log"
  p=$(grep -c '^install [^ ]*: ok' <<<"$out") f=$(grep -c '^install [^ ]*: FAILED' <<<"$out")
  [ "$rc" -ne 0 ] && [ "$f" -eq 0 ] && f=1
  add "$p" "$f"
else
  echo "make dist: FAILED"; tail -20 "$log/dist.log"; add 0 1
fi

finish

#!/usr/bin/env bash
# Regression check for issue 11: the nginx demo works from a checkout inside a private directory
# (mode 700, like /root or a `mktemp -d` dir), where nginx run as root used to drop its workers
# to nobody, who could not read the module, so every request failed.
#   1. clones this repository's committed HEAD into a fresh `mktemp -d` dir (mode 700);
#   2. starts the demo from the clone with its examples/demo/servers.sh (start_nginx runs the
#      clone's nginx.sh on a free 127.0.0.1 port), logs in with curl (POST /login, cookie jar)
#      and checks the dashboard is served logged in;
#   3. makes the checkout unreadable to the workers (as root: DEMO_NGINX_USER=nobody, the old
#      behaviour; otherwise: chmod 000 the clone's .so) and checks that nginx.sh stops at
#      start-up, quickly, naming what the workers cannot read, and that start_nginx gives up at
#      once with that error instead of retrying;
# then stops nginx by its pid (nginx.sh's, whose exit trap stops nginx's master by its pid) and
# removes the directory.
# The module is not built in the clone (cargo would take minutes): build/luajit/honeymoon_session.so
# is copied from this checkout, so run `make both` first. The clone's scripts and Lua files are
# the committed ones; the .so comes from this working tree.
# Prints one line per step; exits non-zero at the first failure.
set -euo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
so=$src/build/luajit/honeymoon_session.so
[ -f "$so" ] || { echo "private_dir_check: $so is missing: run 'make both' first" >&2; exit 1; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/hs-private.XXXXXX")
clone=$tmp/honeymoon-session
cleanup() {
  # stop_servers (the clone's servers.sh) kills nginx.sh by pid if it still runs, and removes
  # its log dir.
  if declare -F stop_servers >/dev/null; then stop_servers; fi
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 143' TERM
trap 'exit 130' INT

fail() { echo "private_dir_check: FAIL: $*" >&2; exit 1; }
ok() { echo "private_dir_check: ok: $*"; }

mode=$(stat -c %a "$tmp")
[ "$mode" = 700 ] || fail "mktemp -d made $tmp with mode $mode, not 700"
# An ordinary user may check a checkout that root owns: git refuses to read another user's
# repository unless the global config lists it (safe.directory is ignored given with -c).
if [ -O "$src/.git" ]; then git clone -q "$src" "$clone"
else
  printf '[safe]\n\tdirectory = %s\n\tdirectory = %s/.git\n' "$src" "$src" >"$tmp/gitconfig"
  GIT_CONFIG_GLOBAL=$tmp/gitconfig git clone -q "$src" "$clone"
fi
mkdir -p "$clone/build/luajit"
cp "$so" "$clone/build/luajit/"
ok "cloned $(git -C "$clone" rev-parse --short HEAD) into $clone (private dir, mode 700) with the module built here"

# The happy path: as whoever runs this (root's workers stay root), the demo serves from the clone.
DEMO_ROOT=$clone
# shellcheck source=/dev/null
source "$clone/examples/demo/servers.sh"
start_nginx || fail "the nginx demo did not start from $clone"
ok "nginx demo from the clone on $NGINX_URL (nginx.sh pid $NGINX_PID, worker pid $NGINX_WORKER_PID)"

jar=$tmp/cookies page=$tmp/page
out=$(curl -sS --max-time 5 -c "$jar" -b "$jar" -L --max-redirs 3 -o "$page" -w '%{http_code} %{url_effective}' \
  --data 'email=alice%40example.com&password=wonderland' "${NGINX_URL}login") || fail "POST /login: curl failed"
[ "$out" = "200 ${NGINX_URL}dashboard" ] || fail "POST /login ended at '$out', not '200 ${NGINX_URL}dashboard'"
grep -q 'Welcome back!' "$page" || fail "the dashboard after login has no welcome flash"
out=$(curl -sS --max-time 5 -b "$jar" -o "$page" -w '%{http_code}' "${NGINX_URL}dashboard") || fail "GET /dashboard: curl failed"
[ "$out" = 200 ] || fail "GET /dashboard with the session cookie: HTTP $out"
grep -q 'Signed in as <strong id="username">Alice</strong>' "$page" || fail "GET /dashboard is not logged in as Alice"
out=$(curl -sS --max-time 5 -o /dev/null -w '%{http_code}' "${NGINX_URL}dashboard") || fail "GET /dashboard: curl failed"
[ "$out" = 303 ] || fail "GET /dashboard without a cookie: HTTP $out, not a 303 to /login"
ok "logged in as alice with curl; the dashboard is served logged in (and without the cookie redirects)"
kill "$NGINX_PID"; wait "$NGINX_PID" || true; NGINX_PID="" # nginx.sh's exit trap stops nginx

# Where it cannot work: workers that cannot read the checkout must stop the demo at start-up.
if [ "$(id -u)" -eq 0 ]; then
  export DEMO_NGINX_USER=nobody; expect=$tmp
else
  # An ordinary user's workers run as that user: take the module away from them.
  chmod 000 "$clone/build/luajit/honeymoon_session.so"; expect=$clone/build/luajit/honeymoon_session.so
fi
port=$(free_port)
start=$SECONDS
rc=0; timeout 20 bash "$clone/examples/demo/nginx.sh" "$port" >"$tmp/out" 2>"$tmp/err" || rc=$?
[ "$rc" -ne 0 ] || fail "nginx.sh served although its workers cannot read $expect"
[ "$rc" -ne 124 ] || fail "nginx.sh did not stop within 20 s although its workers cannot read $expect"
[ ! -s "$tmp/out" ] || fail "nginx.sh announced the demo although its workers cannot read $expect"
grep -q "^nginx.sh: .* cannot read $expect " "$tmp/err" || { cat "$tmp/err"; fail "nginx.sh did not name $expect"; }
grep -q '^nginx.sh: fix: ' "$tmp/err" || { cat "$tmp/err"; fail "nginx.sh did not say how to fix it"; }
ok "nginx.sh stops at start-up in $((SECONDS - start)) s (exit $rc): $(grep -m1 ' cannot read ' "$tmp/err")"

start=$SECONDS
rc=0; start_nginx 2>"$tmp/err" || rc=$?
[ "$rc" -ne 0 ] || fail "start_nginx succeeded although the workers cannot read $expect"
[ $((SECONDS - start)) -le 10 ] || fail "start_nginx took $((SECONDS - start)) s to give up (retries?)"
grep -q 'cannot answer its first request' "$tmp/err" && grep -q "cannot read $expect " "$tmp/err" ||
  { cat "$tmp/err"; fail "start_nginx did not show the first error"; }
ok "start_nginx gives up at once with the first error ($((SECONDS - start)) s)"
echo "private_dir_check: passed"

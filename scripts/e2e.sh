#!/usr/bin/env bash
# Browser end-to-end tests: the demo (examples/demo) on lua-http (Lua 5.4; E2E_LUA=luajit for
# LuaJIT) and under nginx (2 workers sharing sessions in a lua_shared_dict), each on a free
# loopback port, driven through Debian's chromium by
# playwright-core (e2e/demo.test.mjs, node's test runner, TAP output ending "# pass N" /
# "# fail N"). Installs nothing: scripts/setup.sh installs the packages and `npm ci` in e2e/.
# Builds the module (make both) first. Screenshots go to e2e/artifacts/. Exits non-zero on failure.
set -uo pipefail
cd "$(dirname "$0")/.."

[ -d e2e/node_modules/playwright-core ] || { echo "e2e: run scripts/setup.sh first (npm ci --prefix e2e)" >&2; exit 1; }
[ -x "${CHROMIUM:-/usr/bin/chromium}" ] || { echo "e2e: chromium is missing (scripts/setup.sh)" >&2; exit 1; }
source examples/demo/servers.sh
build_module || exit 1
trap 'stop_servers' EXIT
trap 'exit 143' TERM
trap 'exit 130' INT

start_lua_http "${E2E_LUA:-lua5.4}" || exit 1
start_nginx || exit 1
echo "e2e: lua-http on $LUA_HTTP_URL, nginx on $NGINX_URL"

rm -rf e2e/artifacts
E2E_SERVERS="lua-http=$LUA_HTTP_URL,nginx=$NGINX_URL" \
  timeout 300 node --test --test-reporter=tap e2e/demo.test.mjs
rc=$?
[ "$rc" -eq 0 ] || show_server_logs
exit "$rc"

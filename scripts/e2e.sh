#!/usr/bin/env bash
# Browser end-to-end tests: the demo (examples/demo) on lua-http (Lua 5.4; E2E_LUA=luajit for
# LuaJIT) and under nginx (2 workers sharing sessions in a lua_shared_dict), each on a free
# loopback port, driven through Debian's chromium by
# playwright-core (e2e/demo.test.mjs, node's test runner, TAP output ending "# pass N" /
# "# fail N"). Installs nothing: scripts/setup.sh installs the packages and `npm ci` in e2e/.
# Builds the module (make both) first. Screenshots (the dashboard's, and the page and HTML of any
# failing step) go to e2e/artifacts/, or under scripts/test.sh to artifacts/e2e/ beside the
# servers' logs (artifacts/servers-e2e/). Exits non-zero on failure.
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

E2E_ARTIFACTS=${HS_ARTIFACTS:+$HS_ARTIFACTS/e2e}
export E2E_ARTIFACTS=${E2E_ARTIFACTS:-$PWD/e2e/artifacts}
rm -rf "$E2E_ARTIFACTS"
E2E_SERVERS="lua-http=$LUA_HTTP_URL,nginx=$NGINX_URL" \
  timeout 300 node --test --test-reporter=tap e2e/demo.test.mjs
rc=$?
if [ "$rc" -ne 0 ]; then
  show_server_logs
  echo "e2e: screenshots and pages of the failing steps: $E2E_ARTIFACTS"
fi
exit "$rc"

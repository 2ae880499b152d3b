#!/usr/bin/env bash
# Installs what building and testing need on Debian 12 (run as root, or with sudo available).
set -euo pipefail
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
# luajit2 (OpenResty's LuaJIT, also /usr/bin/luajit) rather than Debian's luajit: nginx's Lua
# module depends on it and the two conflict.
# Every interpreter the module supports, with its headers (luarocks checks them), for busted and
# the install check: Lua 5.1, 5.2, 5.3, 5.4 and LuaJIT.
packages=(lua5.1 liblua5.1-dev lua5.2 liblua5.2-dev lua5.3 liblua5.3-dev lua5.4 liblua5.4-dev
          luajit2 libluajit2-5.1-dev lua-busted luarocks zip unzip git lua-cjson lua-sql-sqlite3
          redis-server lua-http nginx libnginx-mod-http-lua chromium wrk curl openssl pkg-config gcc make)
missing=()
for p in "${packages[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
command -v cargo >/dev/null || { echo "setup: cargo is needed (https://rustup.rs)" >&2; exit 1; }
command -v npm >/dev/null || { echo "setup: Node 20 with npm is needed for the interop tests" >&2; exit 1; }
# Node packages, exactly as locked: the interop suite's Express app, the browser tests' driver.
npm ci --prefix interop/node --no-audit --no-fund --loglevel=error
npm ci --prefix e2e --no-audit --no-fund --loglevel=error

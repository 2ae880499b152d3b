#!/usr/bin/env bash
# `luarocks make` into a fresh tree for Lua 5.4 and for LuaJIT, then require from that tree.
# Prints one line per interpreter: "install <lua>: ok" or "install <lua>: FAILED".
set -u
cd "$(dirname "$0")/.."
root=$(pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cat > "$work/luajit-config.lua" <<'CFG'
lua_interpreter = "luajit"
variables = { LUA_DIR = "/usr", LUA_BINDIR = "/usr/bin", LUA_INCDIR = "/usr/include/luajit-2.1", LUA = "/usr/bin/luajit" }
CFG
status=0
check() { # name, lua binary, luarocks args...
  local name=$1 lua=$2; shift 2
  local tree="$work/tree-$name"
  if luarocks "$@" --tree "$tree" make rockspec/honeymoon-session-scm-1.rockspec >"$work/$name.log" 2>&1 &&
     (cd "$work" && eval "$(luarocks "$@" --tree "$tree" path)" && "$lua" "$root/scripts/install_check.lua"); then
    echo "install $name: ok"
  else
    echo "install $name: FAILED"; tail -20 "$work/$name.log"; status=1
  fi
}
check lua5.4 lua5.4 --lua-version 5.4
LUAROCKS_CONFIG="$work/luajit-config.lua" check luajit luajit --lua-version 5.1
exit $status

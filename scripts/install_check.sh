#!/usr/bin/env bash
# The install check (make install-check, part of make test): for Lua 5.1, 5.2, 5.3, 5.4 and
# LuaJIT, each into a throwaway tree, what a user does:
#   luarocks --lua-version V install --server=dist honeymoon-session
# (LuaJIT configured the README's way), then scripts/install_check.lua with only that tree on the
# module paths: require("honeymoon_session") from the tree, require of every module luarocks
# lists for the rock, and the README's Quick start serving a request. A sixth install is Lua 5.4
# under unversioned paths (bin/lua, include/lua.h, as a source build installs it) with --lua-dir.
# Needs dist/ (make dist). Prints one line per install, "install <name>: ok" or ": FAILED";
# exits non-zero if any failed. INSTALL_ONLY="lua5.4 luajit" limits the installs.
#
# The installs share one cargo target dir (target/install-check, kept between runs like any
# cargo cache) so the dependencies compile once; each install still builds this crate from the
# src.rock's sources in luarocks's own temp dir.
set -u
cd "$(dirname "$0")/.."
root=$PWD
[ -f dist/manifest ] || { echo "install check: dist/manifest is missing; run: make dist" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export CARGO_TARGET_DIR=${INSTALL_CHECK_TARGET_DIR:-$root/target/install-check}
export SESSION_SECRET=install-check-secret # the Quick start reads it
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)

# LuaJIT as the README tells a user to configure it (Debian's luarocks runs lua5.1 for 5.1).
cat >"$work/luajit-config.lua" <<'CFG'
lua_interpreter = "luajit"
variables = { LUA = "/usr/bin/luajit", LUA_INCDIR = "/usr/include/luajit-2.1" }
CFG
# Lua 5.4 under unversioned paths: bin/lua and include/lua.h.
mkdir -p "$work/lua54/bin" "$work/lua54/include"
ln -s "$(command -v lua5.4)" "$work/lua54/bin/lua"
cp /usr/include/lua5.4/*.h "$work/lua54/include/"

status=0
check() { # name, interpreter command, luarocks options...
  local name=$1 lua=$2; shift 2
  if [ -n "${INSTALL_ONLY:-}" ] && [[ " $INSTALL_ONLY " != *" $name "* ]]; then return; fi
  local tree="$work/tree-$name" log="$work/$name.log" modules out
  if ! luarocks "$@" --tree "$tree" install --server="$root/dist" honeymoon-session >"$log" 2>&1; then
    echo "install $name: FAILED (luarocks install)"; tail -25 "$log"; status=1; return
  fi
  modules=$(luarocks "$@" --tree "$tree" show --modules honeymoon-session 2>>"$log")
  if out=$(cd "$work" && eval "$(luarocks "$@" --tree "$tree" path)" &&
           "$lua" "$root/scripts/install_check.lua" "$tree" "$root" $modules 2>&1) &&
     grep -q "^install check ok: honeymoon_session $version " <<<"$out"; then
    local features
    features=$(grep -o -- '--features [a-z0-9]*,module' "$log" | head -1)
    echo "install $name: ok (cargo $features; $out)"
  else
    echo "install $name: FAILED"; echo "$out" | tail -20; status=1
  fi
}

check lua5.1 lua5.1 --lua-version 5.1
check lua5.2 lua5.2 --lua-version 5.2
check lua5.3 lua5.3 --lua-version 5.3
check lua5.4 lua5.4 --lua-version 5.4
LUAROCKS_CONFIG="$work/luajit-config.lua" check luajit luajit --lua-version 5.1
check lua5.4-unversioned "$work/lua54/bin/lua" --lua-version 5.4 --lua-dir "$work/lua54"
exit $status

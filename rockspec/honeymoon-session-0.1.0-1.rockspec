rockspec_format = "3.0"
package = "honeymoon-session"
version = "0.1.0-1"

-- `make dist` builds the src.rock from a git archive of the working tree
-- (honeymoon-session-0.1.0.tar.gz, packed beside this file by scripts/dist.sh), so the url is
-- a local file name: luarocks finds the tarball inside the src.rock and never goes to the
-- network. `luarocks make` in a checkout fetches no source at all. A public release would
-- point the url at its published tarball instead.
source = {
   url = "honeymoon-session-0.1.0.tar.gz",
   dir = "honeymoon-session-0.1.0",
}

description = {
   summary = "Server-side sessions for the HoneyMoon web framework, as a native module",
   detailed = [[
Express-style session middleware (signed cookies readable by Node's express-session,
MemoryStore, RedisStore shared with Node apps, custom Lua stores, flash messages)
implemented in Rust with mlua. Builds for the interpreter luarocks is configured for:
Lua 5.1, 5.2, 5.3, 5.4 or LuaJIT. Building needs cargo (Rust 1.88 or newer).]],
   license = "MIT",
   labels = { "web", "session", "cookie", "middleware" },
}

dependencies = {
   "lua >= 5.1, < 5.5",
}

-- The `make` build type, built into luarocks: the Makefile's `build` runs cargo for the flavour
-- that the interpreter $(LUA) reports; `install` copies the module, the adapters and stores,
-- the LuaLS stubs (every types/*.lua, to library/ in the rock's own dir) and docs/*.md (to
-- doc/docs/, beside the README.md, CHANGELOG.md and LICENSE that luarocks itself copies into
-- doc/). The README's Install says how this relates to the `rust-mlua` build type.
build = {
   type = "make",
   build_variables = {
      LUA = "$(LUA)",
      LIB_EXTENSION = "$(LIB_EXTENSION)",
      CFLAGS = "$(CFLAGS)",
   },
   install_variables = {
      LUA = "$(LUA)",
      LIB_EXTENSION = "$(LIB_EXTENSION)",
      INST_PREFIX = "$(PREFIX)",
      INST_LIBDIR = "$(LIBDIR)",
      INST_LUADIR = "$(LUADIR)",
   },
}

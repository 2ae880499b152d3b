package = "honeymoon-session"
version = "scm-1"

source = {
   url = "git+https://example.invalid/honeymoon-session.git", -- luarocks make builds this checkout
}

description = {
   summary = "Server-side sessions for the HoneyMoon web framework, as a native module",
   detailed = [[
Express-style session middleware (signed cookies readable by Node's express-session,
MemoryStore, custom Lua stores, flash messages) implemented in Rust with mlua.
Builds for Lua 5.4 or LuaJIT, whichever interpreter luarocks is configured for; needs cargo.]],
   license = "MIT",
}

dependencies = {
   "lua >= 5.1",
}

build = {
   type = "make",
   build_variables = {
      LUA = "$(LUA)",
      LUA_INCDIR = "$(LUA_INCDIR)",
   },
   install_variables = {
      LUA = "$(LUA)",
      LUA_INCDIR = "$(LUA_INCDIR)",
      INST_LIBDIR = "$(LIBDIR)",
      INST_LUADIR = "$(LUADIR)",
   },
}

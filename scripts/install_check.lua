-- Run from outside the checkout, with only a luarocks tree on the paths: the installed module
-- must load and carry a session from one request to the next.
local hs = require("honeymoon_session")
local core = hs.core({ secret = "install-check" })
local s = core:load(nil, false)
s.user = "alice"
local line = core:commit(s)[1]
assert(line and line:match("^honeymoon%.sid=s%%3A"), "no session cookie: " .. tostring(line))
local again = core:load(line:match("^([^;]*)"), false)
assert(again.user == "alice", "session not restored")
-- The installed Lua files load from the tree (the Lua RedisStore needs no server to load).
assert(type(require("honeymoon_session.stores.redis").new) == "function", "stores.redis did not load")
print("install check ok: " .. hs.version .. " on " .. (rawget(_G, "jit") and jit.version or _VERSION))

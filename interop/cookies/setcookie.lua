-- The Lua side of the Set-Cookie comparison (interop/cookies.test.mjs): reads a JSON list of
-- configurations (the file named by the first argument), and for each makes a session through
-- honeymoon_session's core and commits it; prints one JSON object a line:
--   { i, id, line, t0, t1 }   the Set-Cookie line of a new session and the clock (ms) around it,
--   { i, id, clearing }       with `destroy`: the line that clears the cookie of a stored session.
-- A configuration is { opts = <hs.core options>, https = bool, maxAgeMs = per-session maxAge,
-- destroy = bool }.
-- Run as: HS_CPATH=build/luajit/?.so luajit interop/cookies/setcookie.lua configs.json
package.cpath = (os.getenv("HS_CPATH") or "./build/luajit/?.so") .. ";" .. package.cpath
local hs = require("honeymoon_session")

local path = assert(arg[1], "usage: setcookie.lua CONFIGS_FILE")
local f = assert(io.open(path, "rb"))
local configs = hs.json.decode(f:read("*a"))
f:close()

-- The clock in ms, from os.time (whole seconds): the window a line's Expires must fall in.
local function now_ms() return os.time() * 1000 end

for i, c in ipairs(configs) do
    local opts = c.opts
    opts.store = hs.MemoryStore()
    local core = hs.core(opts)
    local t0 = now_ms()
    local s, id = core:load(nil, c.https)
    s.n = 1
    if c.maxAgeMs then s.cookie.maxAge = c.maxAgeMs end
    local line = core:commit(s)[1]
    local t1 = now_ms() + 999
    print(hs.json.encode({ i = i, id = id, line = line, t0 = t0, t1 = t1 }))
    if c.destroy then
        local cookie = line:match("^([^;]*)")
        local again = core:load(cookie, c.https)
        again:destroy()
        print(hs.json.encode({ i = i, id = id, clearing = core:commit(again)[1] }))
    end
end

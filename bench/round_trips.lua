-- Redis round trips per request for RedisStore: read-only, write, rolling read, regenerate.
-- Counted from MONITOR (commands run inside the merge script are not round trips).
-- Usage: lua5.4 bench/round_trips.lua   (starts its own redis-server on a loopback port)
local flavour = rawget(_G, "jit") and "luajit" or "lua54"
package.cpath = "./build/" .. flavour .. "/?.so;" .. package.cpath
package.path = "./bench/?.lua;./?.lua;" .. package.path

local hs = require("honeymoon_session")
local App = require("app") -- bench/app.lua
local RedisServer = require("scripts.lib.redis_server")

-- A throwaway redis-server on a free loopback port (the specs' own, scripts/lib).
local server = RedisServer.start()
local port = server.port

-- A logged-in browser: the session cookie it holds, updated from each response.
local function site(rolling)
    local app = App.new()
    app:use(hs.session({ secret = "bench", rolling = rolling, store = hs.RedisStore({ url = "redis://127.0.0.1:" .. port }) }))
    app:get("/login", function(req, res) req.session.userId = 7; res:text("ok") end)
    app:get("/read", function(req, res) res:text(tostring(req.session.userId)) end)
    app:get("/write", function(req, res) req.session.hits = (req.session.hits or 0) + 1; res:text("ok") end)
    app:get("/regenerate", function(req, res) req.session:regenerate(true); res:text("ok") end)
    local cookie
    local function get(path)
        local res = app:handle({ method = "GET", url = path, headers = { Cookie = cookie } })
        assert(not app.last_error, app.last_error)
        local line = res.headers["Set-Cookie"]
        if type(line) == "table" then line = line[#line] end
        if line then cookie = line:match("^([^;]*)") end
        return res
    end
    get("/login")
    get("/write") -- loads the merge script once
    if rolling then get("/read") end -- and the touch script
    return get
end

print(("%-28s %6s  %s"):format("request", "trips", "commands"))
for _, row in ipairs({ { "read-only", "/read" }, { "write", "/write" }, { "rolling read", "/read", true },
    { "regenerate", "/regenerate" } }) do
    local get = site(row[3])
    local cmds = server:client_commands(function() get(row[2]) end)
    print(("%-28s %6d  %s"):format(row[1], #cmds, table.concat(cmds, " ")))
end
server:close()

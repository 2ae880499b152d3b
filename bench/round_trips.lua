-- Redis round trips per request for RedisStore: read-only, write, rolling read, regenerate.
-- Counted from MONITOR (commands run inside the merge script are not round trips).
-- Usage: lua5.4 bench/round_trips.lua   (starts its own redis-server on loopback)
local flavour = rawget(_G, "jit") and "luajit" or "lua54"
package.cpath = "./build/" .. flavour .. "/?.so;" .. package.cpath
package.path = "./?.lua;" .. package.path

local hs = require("honeymoon_session")
local App = require("spec.support.app")
local Client = require("spec.support.client")
local RedisServer = require("spec.support.redis_server")

local server = RedisServer.start()
local function site(rolling)
    local app = App.new()
    app:use(hs.session({ secret = "bench", rolling = rolling, store = hs.RedisStore({ url = server.url }) }))
    app:get("/login", function(req, res) req.session.userId = 7; res:text("ok") end)
    app:get("/read", function(req, res) res:text(tostring(req.session.userId)) end)
    app:get("/write", function(req, res) req.session.hits = (req.session.hits or 0) + 1; res:text("ok") end)
    app:get("/regenerate", function(req, res) req.session:regenerate(true); res:text("ok") end)
    local c = Client.new(app)
    c:get("/login")
    c:get("/write") -- loads the merge script once
    return c
end

print(("%-28s %6s  %s"):format("request", "trips", "commands"))
for _, row in ipairs({ { "read-only", "/read" }, { "write", "/write" }, { "rolling read", "/read", true },
    { "regenerate", "/regenerate" } }) do
    local c = site(row[3])
    local cmds = server:client_commands(function() c:get(row[2]) end)
    print(("%-28s %6d  %s"):format(row[1], #cmds, table.concat(cmds, " ")))
end
server:close()

-- Redis round trips per request for RedisStore: read-only, write, rolling read, regenerate.
-- Counted from MONITOR (commands run inside the merge script are not round trips).
-- Usage: lua5.4 bench/round_trips.lua   (starts its own redis-server on a loopback port)
local flavour = rawget(_G, "jit") and "luajit" or "lua54"
package.cpath = "./build/" .. flavour .. "/?.so;" .. package.cpath
package.path = "./bench/?.lua;" .. package.path

local hs = require("honeymoon_session")
local App = require("app") -- bench/app.lua

local function sh(cmd)
    local p = assert(io.popen("(" .. cmd .. ") 2>&1"))
    local out = p:read("*a")
    p:close()
    return out
end

-- A throwaway redis-server on a free loopback port.
local dir = sh("mktemp -d"):gsub("%s+$", "")
local port
local function cli(...)
    return sh(("redis-cli -p %d --raw %s"):format(port, table.concat({ ... }, " ")))
end
math.randomseed(os.time())
for _ = 1, 20 do
    port = math.random(20000, 45000)
    os.execute(("redis-server --port %d --bind 127.0.0.1 --save '' --appendonly no --daemonize yes"
        .. " --dir %s --pidfile %s/redis.pid --logfile %s/redis.log"):format(port, dir, dir, dir))
    local up = false
    for _ = 1, 100 do
        if cli("PING"):match("PONG") then
            up = true
            break
        end
        os.execute("sleep 0.02")
    end
    if up then break end
    port = nil
end
assert(port, "could not start redis-server on a free loopback port")

---The commands clients sent while `fn` ran, in order, from MONITOR.
local function client_commands(fn)
    local out = dir .. "/monitor"
    os.execute(("redis-cli -p %d MONITOR > %s 2>&1 & echo $! > %s.pid"):format(port, out, out))
    for _ = 1, 100 do
        local f = io.open(out)
        local text = f and f:read("*a") or ""
        if f then f:close() end
        if text:match("OK") then break end
        os.execute("sleep 0.01")
    end
    fn()
    cli("PING", "monitor-end")
    local text
    for _ = 1, 100 do
        local f = assert(io.open(out))
        text = f:read("*a")
        f:close()
        if text:match('"monitor%-end"') then break end
        os.execute("sleep 0.01")
    end
    os.execute(("kill $(cat %s.pid) 2>/dev/null; rm -f %s %s.pid"):format(out, out, out))
    local commands = {}
    for line in text:gmatch("[^\n]+") do
        local name = line:match('^%d+%.%d+ %[%d+ [%d%.]+:%d+%] "(%w+)"')
        if name and not line:match('"monitor%-end"') then commands[#commands + 1] = name:upper() end
    end
    return commands
end

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
    local cmds = client_commands(function() get(row[2]) end)
    print(("%-28s %6d  %s"):format(row[1], #cmds, table.concat(cmds, " ")))
end
cli("SHUTDOWN", "NOSAVE")
os.execute("rm -rf '" .. dir .. "'")

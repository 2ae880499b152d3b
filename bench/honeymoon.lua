-- The session overhead inside the real HoneyMoon framework (its application, router, request
-- and response), against HoneyMoon's own pure-Lua session middleware, in one run:
--   (a) the app without sessions,
--   (b) with HoneyMoon's session() and its MemoryStore,
--   (c) with ours: require("honeymoon_session").session{...} and our MemoryStore,
-- for anonymous, read and write requests. Prints µs per request, the overheads (b-a) and
-- (c-a) with their range over rounds, and (c-a)/(b-a) (DESIGN.md's target: at most 1/3).
-- Not a test and not run in CI (it needs a copy of HoneyMoon, which CI cannot fetch).
--
-- Usage (from the repo root, after `make both`):
--   lua5.4 bench/honeymoon.lua /path/to/honeymoon [iterations]
--   luajit bench/honeymoon.lua /path/to/honeymoon [iterations]
-- where /path/to/honeymoon is the framework's folder (the one holding init.lua and lib/), e.g.
-- harbor_modules/honeymoon of github.com/coppermoondev/coppermine at commit e3cd368.
-- BENCH_ROUNDS sets the rounds (default 5).
local root = arg and arg[1]
if not root then
    io.stderr:write("usage: lua5.4 bench/honeymoon.lua /path/to/honeymoon [iterations]\n")
    os.exit(2)
end
root = root:gsub("/+$", "")
local N = tonumber(arg[2]) or 100000
local ROUNDS = tonumber(os.getenv("BENCH_ROUNDS")) or 5

local flavour = rawget(_G, "jit") and "luajit" or "lua54"
package.cpath = "./build/" .. flavour .. "/?.so;" .. package.cpath
local hs = require("honeymoon_session")
package.path = "./bench/?.lua;" .. package.path
local stats = require("stats") -- bench/stats.lua
local median, range = stats.median, stats.range
-- CPU time of the process: other work on the machine inflates it far less than wall time.
local clock = os.clock

-- HoneyMoon is required as "honeymoon" and "honeymoon.lib...." from `root`, whatever the
-- folder is called.
local function honeymoon_searcher(name)
    if name ~= "honeymoon" and name:sub(1, 10) ~= "honeymoon." then return nil end
    local rel = name == "honeymoon" and "" or name:sub(11):gsub("%.", "/")
    local candidates = rel == "" and { root .. "/init.lua" } or { root .. "/" .. rel .. ".lua", root .. "/" .. rel .. "/init.lua" }
    for _, file in ipairs(candidates) do
        local f = io.open(file, "rb")
        if f then
            f:close()
            return assert(loadfile(file))
        end
    end
    return "\n\tno file for " .. name .. " under " .. root
end
table.insert(package.searchers or package.loaders, 2, honeymoon_searcher)

-- CopperMoon's globals that HoneyMoon expects.
local ok_cjson, cjson = pcall(require, "cjson")
json = ok_cjson and { encode = cjson.encode, decode = cjson.decode } or hs.json -- luacheck: ignore
os_ext = { env = os.getenv } -- luacheck: ignore
fs = { -- luacheck: ignore
    read = function(path)
        local f = assert(io.open(path, "rb"))
        local s = f:read("*a")
        f:close()
        return s
    end,
}
time = { monotonic_ms = function() return hs._monotonic() * 1000 end, now = os.time } -- luacheck: ignore

local honeymoon = require("honeymoon")
math.randomseed(os.time())

-- One app definition, three ways of giving it sessions.
local function build(session_middleware)
    local app = honeymoon.new()
    app:set("env", "production")
    if session_middleware then app:use(session_middleware) end
    -- A few routes ahead of the measured ones, so the router walks a realistic table.
    app:get("/", function(_, res) res:html("<h1>home</h1>") end)
    app:get("/users/:id", function(req, res) res:json({ id = req.params.id }) end)
    app:get("/posts/:id/comments", function(req, res) res:json({ post = req.params.id, comments = {} }) end)
    app:post("/login", function(req, res)
        if req.session then req.session.userId = 42 end
        res:redirect("/")
    end)
    app:get("/anon", function(_, res) res:send("ok") end)
    app:get("/read", function(req, res)
        res:send(req.session and tostring(req.session.userId) or "42")
    end)
    app:get("/write", function(req, res)
        local s = req.session
        if s then s.counter = (s.counter or 0) + 1 end
        res:send("ok")
    end)
    return app
end

local apps = {
    { name = "(a) no sessions", app = build(nil) },
    { name = "(b) HoneyMoon session()", app = build(honeymoon.session({ secret = "bench-secret", store = honeymoon.MemoryStore() })) },
    { name = "(c) honeymoon_session", app = build(hs.session({ secret = "bench-secret", store = hs.MemoryStore() })) },
}

-- What a server hands HoneyMoon for each request: a fresh context with lowercased headers.
local function request(app, method, path, cookie)
    local ctx = {
        method = method, path = path, query = {}, body = "",
        headers = { host = "localhost:3000", accept = "text/html,application/xhtml+xml", ["user-agent"] = "bench", cookie = cookie },
    }
    app:_handleRequest(ctx, method)
    return ctx
end

local function set_cookie(ctx)
    local h = ctx._headers and ctx._headers["Set-Cookie"]
    if type(h) == "table" then h = h[#h] end
    return h and h:match("^([^;]*)")
end

-- A logged-in session for each app with a session.
for _, v in ipairs(apps) do
    local ctx = request(v.app, "POST", "/login", nil)
    v.cookie = set_cookie(ctx)
    assert(v.name:find("no sessions") or v.cookie, v.name .. ": no session cookie after login")
    local read = request(v.app, "GET", "/read", v.cookie)
    assert(read._body == "42", v.name .. ": /read answered " .. tostring(read._body) .. " (status " .. tostring(read._status) .. ")")
end

local scenarios = {
    { "anonymous (session untouched)", "/anon", false },
    { "read (existing session)", "/read", true },
    { "write (existing session)", "/write", true },
}

local function time(v, path, with_cookie, n)
    local app, cookie = v.app, with_cookie and v.cookie or nil
    local t0 = clock()
    for _ = 1, n do request(app, "GET", path, cookie) end
    return (clock() - t0) / n * 1e6
end

print(("HoneyMoon %s from %s; honeymoon_session %s; %s; %d requests per cell, %d rounds")
    :format(honeymoon._VERSION, root, hs.version, rawget(_G, "jit") and jit.version or _VERSION, N, ROUNDS))
print(("%-30s %8s %8s %8s %10s %16s %10s %16s %7s"):format("request", "(a) µs", "(b) µs", "(c) µs",
    "b-a", "b-a range", "c-a", "c-a range", "(c-a)/(b-a)"))
for _, sc in ipairs(scenarios) do
    local _, path, with_cookie = sc[1], sc[2], sc[3]
    for _, v in ipairs(apps) do time(v, path, with_cookie, math.floor(N / 10)) end -- warm up
    local t = { {}, {}, {} }
    local db, dc = {}, {}
    for r = 1, ROUNDS do
        for i, v in ipairs(apps) do t[i][r] = time(v, path, with_cookie, N) end
        db[r], dc[r] = t[2][r] - t[1][r], t[3][r] - t[1][r]
    end
    local blo, bhi = range(db)
    local clo, chi = range(dc)
    local mb, mc = median(db), median(dc)
    print(("%-30s %8.2f %8.2f %8.2f %10.2f %16s %10.2f %16s %7.2f"):format(sc[1], median(t[1]), median(t[2]),
        median(t[3]), mb, ("%.2f – %.2f"):format(blo, bhi), mc, ("%.2f – %.2f"):format(clo, chi), mc / mb))
end
print("target (DESIGN.md): (c-a) at most a third of (b-a), i.e. (c-a)/(b-a) <= 0.33")

-- Where a request's session overhead goes: the bench app (bench/app.lua) with cumulative
-- variants of the middleware, each adding one step of the real one, so the difference between
-- two lines is what that step costs inside a request (garbage and interpreter effects
-- included). A last line shows what the framework contract alone costs over no middleware.
-- Not a test: no assertions on time. For the lead optimising the engine.
-- Usage (from the repo root, after `make both`):
--   lua5.4 bench/breakdown.lua [iterations] [rounds]
--   luajit bench/breakdown.lua [iterations] [rounds]
local flavour = rawget(_G, "jit") and "luajit" or "lua54"
package.cpath = "./build/" .. flavour .. "/?.so;" .. package.cpath
package.path = "./bench/?.lua;" .. package.path

local hs = require("honeymoon_session")
local App = require("app") -- bench/app.lua
local median = require("stats").median -- bench/stats.lua
local N = tonumber(arg and arg[1]) or 300000
local ROUNDS = tonumber(arg and arg[2]) or 5
local find = string.find
local core = hs.core({ secret = "bench-secret" })
local ctx, name = core.ctx, core.name

local function routes(app)
    app:post("/login", function(req, res)
        local s = req.session
        if s then s.userId = 42 end
        res:redirect("/")
    end)
    -- The same work with or without a session (tostring either way).
    app:get("/read", function(req, res)
        local s = req.session
        res:text(tostring(s and s.userId or 42))
    end)
    app:get("/write", function(req, res)
        local s = req.session
        if s then s.counter = (s.counter or 0) + 1 end
        res:text("ok")
    end)
    app:get("/anon", function(_, res) res:text("ok") end)
    return app
end

-- The middleware's res.send hook (one function, its state under private keys of the
-- response), minus the commit it runs.
local SESSION, OWN_SEND = {}, {}
local function hooked_send(self, ...)
    local send = self[OWN_SEND]
    if self[SESSION] ~= nil then
        self[SESSION] = nil
        if self.send == hooked_send then self.send = send end
    end
    return send(self, ...)
end
local function hook_send(res, session)
    if res[SESSION] ~= nil then return end
    res[OWN_SEND], res[SESSION] = res.send, session
    res.send = hooked_send
end

-- Each variant does what the one before does, plus one step of src/lua/middleware.lua.
local variants = {
    { "no middleware", nil },
    { "an empty middleware", function(_, _, nxt) nxt() end },
    { "+ the load (or id) crossing alone", function(req, _, nxt)
        local h = req.headers.cookie
        if h and find(h, name, 1, true) then ctx.load(h) else ctx.id() end
        nxt()
    end },
    { "+ the session table (core:load)", function(req, _, nxt)
        local h = req.headers.cookie
        local s, id
        if h and find(h, name, 1, true) then s, id = core:load(h, false, req) else s, id = core:fresh(false, req) end
        req.session, req.sessionID = s, id
        nxt()
    end },
    { "+ the res.send wrapper", function(req, res, nxt)
        local h = req.headers.cookie
        local s, id
        if h and find(h, name, 1, true) then s, id = core:load(h, false, req) else s, id = core:fresh(false, req) end
        req.session, req.sessionID = s, id
        hook_send(res, s)
        nxt()
    end },
    { "+ the commit: the real middleware", hs.session(core) },
}

-- What the framework contract alone costs, with no session at all: two fields on req (a
-- constant id, an empty table) and the res.send hook. Any middleware that keeps the contract
-- (DESIGN.md: req.session and req.sessionID set, commit just before send) pays this much.
local EMPTY = {}
local floor = { "the contract alone (fields + send hook)", function(req, res, nxt)
    req.session, req.sessionID = EMPTY, "0123456789abcdef0123456789abcdef"
    hook_send(res, EMPTY)
    nxt()
end }

local apps = {}
local real = #variants -- the real middleware's app logs in
variants[#variants + 1] = floor
for i, v in ipairs(variants) do
    local app = App.new()
    if v[2] then app:use(v[2]) end
    apps[i] = routes(app)
end
local login = apps[real]:handle({ method = "POST", url = "/login", headers = {} })
local cookie = login.headers["Set-Cookie"]:match("^([^;]*)")

local function time(app, path, ck, n)
    local t0 = os.clock()
    for _ = 1, n do app:handle({ method = "GET", url = path, headers = { Cookie = ck } }) end
    return (os.clock() - t0) / n * 1e9
end

print(("%s, %d requests x %d rounds; CPU ns per request: median (range), and the step's cost")
    :format(rawget(_G, "jit") and jit.version or _VERSION, N, ROUNDS))
for _, sc in ipairs({ { "read", "/read", cookie }, { "write", "/write", cookie }, { "anonymous, untouched", "/anon", nil } }) do
    print("-- " .. sc[1])
    local t = {}
    for i in ipairs(apps) do
        t[i] = {}
        time(apps[i], sc[2], sc[3], math.floor(N / 10)) -- warm up
    end
    for r = 1, ROUNDS do
        for i in ipairs(apps) do t[i][r] = time(apps[i], sc[2], sc[3], N) end
    end
    local prev
    for i, v in ipairs(variants) do
        local lo, hi = math.huge, -math.huge
        for _, x in ipairs(t[i]) do lo, hi = math.min(lo, x), math.max(hi, x) end
        local m = median(t[i])
        -- The last row is not a step: its cost is over "no middleware".
        if v == floor then prev = median(t[1]) end
        print(("%-38s %6.0f (%5.0f-%5.0f) %+6.0f"):format(v[1], m, lo, hi, prev and m - prev or 0))
        prev = m
    end
end

-- Per-request overhead of the session middleware: (test app with it) - (same app without),
-- measured in one run for each scenario. Prints µs per request. Not a test: no assertions on time.
-- Usage (from the repo root, after `make both`):
--   lua5.4 bench/overhead.lua [iterations] [redis-url]   (with a url: RedisStore, else MemoryStore)
local flavour = rawget(_G, "jit") and "luajit" or "lua54"
package.cpath = "./build/" .. flavour .. "/?.so;" .. package.cpath
package.path = "./?.lua;" .. package.path

local hs = require("honeymoon_session")
local App = require("spec.support.app")
local clock = hs._monotonic -- wall time: os.clock would miss time spent waiting on Redis
local N = tonumber(arg and arg[1]) or 200000
local REDIS = arg and arg[2]

local function handlers(app)
    app:get("/anon", function(_, res) res:text("ok") end)
    app:get("/anon-check", function(req, res)
        res:text(req.session and req.session:has("userId") and "in" or "out")
    end)
    app:get("/read", function(req, res) res:text(req.session and tostring(req.session.userId) or "42") end)
    app:get("/write", function(req, res)
        if req.session then req.session.counter = (req.session.counter or 0) + 1 end
        res:text("ok")
    end)
    app:post("/login", function(req, res)
        if req.session then
            req.session:regenerate(false)
            req.session.userId = 42
        end
        res:redirect("/dashboard")
    end)
    return app
end

local plain = handlers(App.new())
local store = REDIS and hs.RedisStore({ url = REDIS, prefix = "bench:" }) or hs.MemoryStore()
if REDIS then store:clear() end
local with = App.new()
with:use(hs.session({ secret = "bench-secret", store = store }))
handlers(with)

-- An existing session for the read and write scenarios.
local r = with:handle({ method = "POST", path = "/login", headers = {} })
local cookie = r.headers["set-cookie"][1]:match("^([^;]*)")

local function time(app, method, path, headers)
    local req = { method = method, path = path, headers = headers }
    for _ = 1, N / 10 do app:handle(req) end -- warm up (JIT, caches)
    local t0 = clock()
    for _ = 1, N do
        req.headers = headers -- the app may not keep state between requests; reuse the table
        app:handle(req)
    end
    return (clock() - t0) / N * 1e6
end

print(("honeymoon_session %s on %s, %s, %d requests per row"):format(hs.version,
    rawget(_G, "jit") and jit.version or _VERSION, REDIS and "RedisStore (loopback)" or "MemoryStore", N))
print(("%-34s %10s %10s %10s"):format("scenario", "with µs", "without µs", "overhead"))
local rows = {
    { "anonymous, session untouched", "GET", "/anon", {} },
    { "anonymous, checks has(\"userId\")", "GET", "/anon-check", {} },
    { "existing session, read", "GET", "/read", { cookie = cookie } },
    { "existing session, write", "GET", "/write", { cookie = cookie } },
    { "login with regenerate", "POST", "/login", {} },
}
for _, row in ipairs(rows) do
    local a = time(with, row[2], row[3], row[4])
    local b = time(plain, row[2], row[3], row[4])
    print(("%-34s %10.2f %10.2f %10.2f"):format(row[1], a, b, a - b))
end
print(("store holds %d sessions after the run"):format(store:length()))

-- One scenario of bench/overhead.lua, run a fixed number of times, for counting instructions
-- under valgrind's callgrind instead of timing: on a shared, noisy machine wall and CPU time
-- swing by 2x, while an instruction count repeats within a fraction of a percent, so it is the
-- A/B measure for a change to the hot path. Not a test: it checks the answers, not the cost.
-- It does `warm` requests (JIT traces, the store's tables, the allocator), then `n` more; run
-- it with n and with 0 and subtract, and the start-up and warm-up cancel out.
-- bench/callgrind.sh does that for every scenario and prints Ir per request.
-- Usage (from the repo root, after `make both`):
--   valgrind --tool=callgrind lua5.4 bench/callgrind.lua <anon|read|write> [n] [warm] [plain]
--   valgrind --tool=callgrind --smc-check=all luajit bench/callgrind.lua read 2000
-- "plain" runs the same app without the middleware (the difference is the session's cost).
local flavour = rawget(_G, "jit") and "luajit" or "lua54"
package.cpath = "./build/" .. flavour .. "/?.so;" .. package.cpath
package.path = "./bench/?.lua;" .. package.path

local hs = require("honeymoon_session")
local App = require("app") -- bench/app.lua

local SCENARIO = arg and arg[1] or "read"
local N = tonumber(arg and arg[2]) or 2000
local WARM = tonumber(arg and arg[3]) or 1000
local PLAIN = arg and arg[4] == "plain"

local handlers = require("routes") -- bench/routes.lua: the handlers of overhead.lua's first rows

local scenarios = {
    anon = { "/anon", false, "ok" },
    read = { "/read", true, "42" },
    write = { "/write", true, "ok" },
}
local sc = assert(scenarios[SCENARIO], "scenario must be anon, read or write")
local path, logged_in, want = sc[1], sc[2], sc[3]

-- The session is always made through the middleware (a MemoryStore holds it), so the plain
-- run's request carries the same cookie header.
local with = handlers(App.new():use(hs.session({ secret = "bench-secret", store = hs.MemoryStore() })))
local cookie
if logged_in then
    -- A session whose cookie needs no escape in its signature (no "+" or "/" in the base64,
    -- about one login in four): cookies then have one length from run to run, where each
    -- escape moved a run's count by about 100 instructions per request.
    for _ = 1, 200 do
        local res = with:handle({ method = "POST", url = "/login", headers = {} })
        cookie = assert(res.headers["Set-Cookie"], "no session cookie from /login"):match("^([^;]*)")
        if cookie:find("%.[^%%]*$") then break end
    end
end
local app = PLAIN and handlers(App.new()) or with

-- A fresh raw request each time, as a server makes.
local function run(n)
    for _ = 1, n do
        local res = app:handle({ method = "GET", url = path, headers = { Cookie = cookie } })
        if res.body ~= want then
            error(("GET %s answered %q, expected %q (%s)"):format(path, tostring(res.body), want,
                tostring(app.last_error)))
        end
    end
end

-- A full collection after each part: the garbage a run leaves is then collected within it,
-- not in whichever run's allocation happens to trigger the next cycle.
run(WARM)
collectgarbage()
run(N)
collectgarbage()

-- The nginx demo's session cost per request without a load generator: one worker runs the
-- demo's /counter (load, +1, save: a merge into the shared dict, and a Set-Cookie) and
-- /counter-plain (the same work without a session) as subrequests (ngx.location.capture,
-- which carry this request's Cookie header), in interleaved batches, and times them with the
-- worker's CPU clock. Subrequests cost more than requests, but the same for both routes: the
-- difference is what a session costs, without wrk and the kernel sharing the two cores
-- (bench/nginx_cost.sh's figures move by a fifth with the machine; these by a few percent).
-- Figures only, nothing is asserted. Run by bench/nginx_subrequests.sh, which serves it at
-- GET /bench-subrequests?n=BATCH&r=ROUNDS.
local M = {}

local ROUTES = { "/counter-plain", "/counter" }

local function quartiles(t)
    table.sort(t)
    local n = #t
    return t[math.floor((n + 3) / 4)], t[math.floor((n + 1) / 2)], t[math.floor((3 * n + 3) / 4)]
end

function M.run()
    local n = tonumber(ngx.var.arg_n) or 5000
    local rounds = tonumber(ngx.var.arg_r) or 15
    local capture, clock = ngx.location.capture, os.clock
    local samples = {}
    for _, route in ipairs(ROUTES) do samples[route] = {} end
    for _ = 1, rounds do
        for _, route in ipairs(ROUTES) do
            -- Each batch starts from a collected heap: the other route's garbage is not its bill.
            collectgarbage()
            local t0 = clock()
            for _ = 1, n do
                local res = capture(route)
                if res.status ~= 200 then
                    ngx.say("nginx_subrequests: ", route, " answered ", res.status)
                    return ngx.exit(500)
                end
            end
            local s = samples[route]
            s[#s + 1] = (clock() - t0) / n * 1e6
        end
    end
    local cost = {}
    for i = 1, rounds do cost[i] = samples["/counter"][i] - samples["/counter-plain"][i] end
    ngx.say(string.format("nginx_subrequests: %s, 1 worker, %d rounds of %d subrequests per route, "
        .. "interleaved; worker CPU per subrequest (us): median (first - third quartile)",
        jit and jit.version or _VERSION, rounds, n))
    for _, route in ipairs(ROUTES) do
        local q1, med, q3 = quartiles(samples[route])
        ngx.say(string.format("  %-30s %6.2f  (%.2f - %.2f)", route, med, q1, q3))
    end
    local q1, med, q3 = quartiles(cost)
    ngx.say(string.format("  %-30s %6.2f  (%.2f - %.2f)", "session cost (difference)", med, q1, q3))
end

return M

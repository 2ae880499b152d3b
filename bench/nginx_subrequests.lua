-- One batch of bench/nginx_subrequests.sh: GET /bench-subrequests?route=R&n=N runs the demo's
-- route R N times as subrequests (ngx.location.capture, which carry this request's Cookie
-- header) and answers the worker's CPU time per subrequest in µs. A batch is a request of its
-- own, so the memory its subrequests take from the request's pool is freed before the next
-- (one long request would grow the worker by hundreds of MB and time page faults).
local M = {}

local ROUTES = { ["/counter"] = true, ["/counter-plain"] = true }

function M.run()
    local route, n = ngx.var.arg_route, tonumber(ngx.var.arg_n)
    if not ROUTES[route] or not n or n < 1 or n > 10000 then
        ngx.status = 400
        ngx.say("nginx_subrequests: route must be /counter or /counter-plain and n 1..10000")
        return
    end
    local capture, clock = ngx.location.capture, os.clock
    -- Each batch starts from a collected heap: the other route's garbage is not its bill.
    collectgarbage()
    local t0 = clock()
    for _ = 1, n do
        local res = capture(route)
        if res.status ~= 200 then
            ngx.status = 500
            ngx.say("nginx_subrequests: ", route, " answered ", res.status)
            return
        end
    end
    ngx.say(string.format("%.4f", (clock() - t0) / n * 1e6))
end

return M

-- wrk script for scripts/load.sh: GET one path with a fixed set of session cookies, taken in
-- turn, so the number of sessions stays what load.sh created beforehand.
--   wrk -s examples/demo/wrk.lua http://127.0.0.1:PORT -- /counter "app.sid=s%3A..." ...
-- done() prints one machine-readable RESULT line.
local requests, count, turn = {}, 0, 0

function init(args)
    local path = args[1] or "/"
    for k = 2, #args do
        count = count + 1
        requests[count] = wrk.format("GET", path, { Cookie = args[k] })
    end
    if count == 0 then count = 1; requests[1] = wrk.format("GET", path) end
end

function request()
    turn = turn % count + 1
    return requests[turn]
end

function done(summary, latency)
    local e = summary.errors
    io.write(string.format(
        "RESULT requests=%d rps=%.1f connect=%d read=%d write=%d timeout=%d status=%d p50_ms=%.2f p99_ms=%.2f\n",
        summary.requests, summary.requests / (summary.duration / 1e6), e.connect, e.read, e.write,
        e.timeout, e.status, latency:percentile(50) / 1000, latency:percentile(99) / 1000))
end

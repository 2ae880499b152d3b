-- A loopback TCP proxy written with cqueues that holds each reply from upstream for `delay`
-- seconds before passing it on: "Redis behind a slow path" inside one cqueues loop.
--   local port = SlowProxy.start(cq, upstream_port, 0.2)
-- upstream_port may be a function, asked at each new connection (a host name that comes to
-- name another server: a failover).
-- Its coroutines live in `cq`; they end when that controller is dropped or stepped no more.
local cqueues = require("cqueues")
local socket = require("cqueues.socket")

local M = {}

local function pump(from, to, delay)
    -- Either side may close (the store drops a connection it will not pool): then stop.
    pcall(function()
        while true do
            local data = from:xread(-65536, "b")
            if not data then break end
            if delay > 0 then cqueues.sleep(delay) end
            if not to:xwrite(data, "bn") then break end
        end
    end)
    pcall(from.close, from)
    pcall(to.close, to)
end

local function quiet(_, _, err) return err end

---@return integer port the proxy listens on (127.0.0.1)
function M.start(cq, upstream_port, delay)
    local server = socket.listen("127.0.0.1", 0)
    server:onerror(quiet)
    assert(server:listen())
    local _, _, port = server:localname()
    cq:wrap(function()
        while true do
            local client = server:accept()
            if not client then break end
            cq:wrap(function()
                client:onerror(quiet)
                local up = type(upstream_port) == "function" and upstream_port() or upstream_port
                local upstream = socket.connect("127.0.0.1", up)
                upstream:onerror(quiet)
                client:setmode("b", "b")
                upstream:setmode("b", "b")
                cq:wrap(pump, client, upstream, 0)
                pump(upstream, client, delay)
            end)
        end
    end)
    return port
end

return M

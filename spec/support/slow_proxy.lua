-- A loopback TCP proxy written with cqueues that holds each reply from upstream for `delay`
-- seconds before passing it on: "Redis behind a slow path" inside one cqueues loop.
--   local port = SlowProxy.start(cq, upstream_port, 0.2)
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
                local upstream = socket.connect("127.0.0.1", upstream_port)
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

-- The non-blocking check's nginx handler: /counter reads, adds one and saves through the
-- event-loop RedisStore over cosockets; /new makes a session. (/plain is a plain location.)
local RedisStore = require("honeymoon_session.stores.redis")
local url = os.getenv("NB_REDIS_URL")
-- NB_BLOCKING=1 swaps in the native blocking RedisStore, to see the check fail as it should.
local store = os.getenv("NB_BLOCKING") == "1"
    and require("honeymoon_session").RedisStore({ url = url, prefix = "nb:" })
    or RedisStore.new({ url = url, prefix = "nb:", socket = "ngx" })
local adapter = require("honeymoon_session.adapters.openresty").new({
    secret = "nonblocking-check",
    store = store,
})

local M = {}

function M.handle()
    local session = adapter:start()
    if ngx.var.uri == "/counter" then
        session.n = (session.n or 0) + 1
    else
        session.n = 0
    end
    adapter:finish(session)
    ngx.say(session.n)
end

return M

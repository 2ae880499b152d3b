-- The interop test's Lua app, without a server: the session options interop/node/app.mjs also
-- uses (cookie connect.sid, secret interop-secret, a day's lifetime, keys sess:<id>) and the
-- routes. Two servers serve it:
--   interop/lua/app.lua        lua-http, core:load / core:commit over the native hs.RedisStore
--   interop/lua/openresty.lua  nginx, the OpenResty adapter over the cosocket RedisStore
--                              (honeymoon_session.stores.redis, socket = "ngx")
-- Routes (JSON): /visit increments lua_visits, /show returns the session, /login regenerates
-- it and sets user, /logout destroys it,
-- /remember gives the session a 30-day lifetime, /lifetime shows it, /list?n=N stores
-- session.list = {1..N} (test aid).
local hs = require("honeymoon_session")
local encode = hs.json.encode

local M = {}

-- Session options for hs.core / the OpenResty adapter; the server adds its store.
function M.options(store)
    -- staleGrace: 2 s, so the suite can wait past the grace of an id /login retired.
    return { name = "connect.sid", secret = "interop-secret", ttl = 86400, store = store, staleGrace = 2 }
end

M.prefix = "sess:" -- connect-redis's default, as the Node app

local routes = {}

routes["/visit"] = function(session)
    session.lua_visits = (session.lua_visits or 0) + 1
    return session:all()
end

-- Remember me: this session's cookie (and so its Redis TTL) lives 30 days.
routes["/remember"] = function(session)
    session.cookie.maxAge = 30 * 86400 * 1000
    session.remembered = true
    return session:all()
end

-- The session's cookie lifetime as Lua sees it (ms; null for a browser-session cookie).
routes["/lifetime"] = function(session)
    return { maxAge = session.cookie.maxAge or hs.json.null }
end

routes["/show"] = function(session)
    return session:all()
end

-- Test aid: session.list = { 1, 2, ..., n } (n from ?n=, default 300).
routes["/list"] = function(session, query)
    local n = tonumber(query:match("n=(%d+)")) or 300
    local list = {}
    for i = 1, n do list[i] = i end
    session.list = list
    return session:all()
end

-- Writes the key `cart` a Node app made, around the arrays inside it (an empty one, one with
-- nulls), and adds an empty array of Lua's own.
routes["/coupon"] = function(session)
    local cart = session.cart
    cart.coupon = "WELCOME"
    cart.gifts = hs.array()
    return session:all()
end

-- A login: a new id (the old one is retired for the stale grace), then the user.
routes["/login"] = function(session)
    session:regenerate()
    session.user = "u-lua"
    return session:all()
end

routes["/logout"] = function(session)
    session:destroy()
    return { destroyed = true }
end

---Serves one request. `start()` loads the session; `finish(session)` commits it and returns its
---Set-Cookie lines (the OpenResty adapter also puts them in the response headers itself). Both
---run inside a pcall: a failure answers 500 with the message.
---@param path string
---@param query string the query string without "?", "" if none
---@return integer status, string body (JSON), string[]|nil cookies, any err (on a 500)
function M.serve(path, query, start, finish)
    local route = routes[path]
    if not route then
        return 404, encode({ error = "not found" })
    end
    local ok, body, cookies = pcall(function()
        local session = start()
        local body = encode(route(session, query or ""))
        return body, finish(session)
    end)
    if not ok then
        return 500, encode({ error = tostring(body) }), nil, body
    end
    return 200, body, cookies
end

return M

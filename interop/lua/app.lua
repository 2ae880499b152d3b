-- Lua (LuaJIT) app for the interop test: lua-http's server plus honeymoon_session's core and
-- RedisStore, with the cookie name, secret and key prefix interop/node/app.mjs uses.
--   luajit interop/lua/app.lua [PORT [REDIS_URL]]     (or PORT / REDIS_URL in the environment;
--   lua5.4 works too)
-- Routes (JSON): /visit increments lua_visits, /show returns the session, /logout destroys it,
-- /list?n=N stores session.list = {1..N}.
-- HS_CPATH (default <repo>/build/luajit/?.so, or build/lua54 under Lua 5.4) locates honeymoon_session.so.
local dir = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or "."
local flavour = jit and "luajit" or "lua54"
package.cpath = (os.getenv("HS_CPATH") or (dir .. "/../../build/" .. flavour .. "/?.so")) .. ";" .. package.cpath
if not jit then -- Debian's lua-http is pure Lua under the 5.1 tree
    package.path = package.path .. ";/usr/share/lua/5.1/?.lua;/usr/share/lua/5.1/?/init.lua"
end

local hs = require("honeymoon_session")
local http_server = require("http.server")
local http_headers = require("http.headers")

local port = tonumber(arg[1] or os.getenv("PORT") or "3001")
local redis_url = arg[2] or os.getenv("REDIS_URL") or "redis://127.0.0.1:6379"

local core = hs.core({
    name = "connect.sid",
    secret = "interop-secret",
    ttl = 86400,
    store = hs.RedisStore({ url = redis_url, prefix = "sess:" }),
})

local routes = {}

routes["/visit"] = function(session)
    session.lua_visits = (session.lua_visits or 0) + 1
    return session:all()
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

routes["/logout"] = function(session)
    session:destroy()
    return { destroyed = true }
end

local function respond(stream, status, body, cookies)
    local h = http_headers.new()
    h:append(":status", tostring(status))
    h:append("content-type", "application/json; charset=utf-8")
    h:append("content-length", tostring(#body))
    for _, line in ipairs(cookies or {}) do
        h:append("set-cookie", line)
    end
    stream:write_headers(h, false)
    stream:write_chunk(body, true)
end

local function onstream(_, stream)
    local req = stream:get_headers()
    local path, query = (req:get(":path") or "/"):match("^([^?]*)%??(.*)$")
    local parts = {}
    for name, value in req:each() do
        if name == "cookie" then parts[#parts + 1] = value end
    end
    local cookie = #parts > 0 and table.concat(parts, "; ") or nil

    local route = routes[path]
    if not route then
        return respond(stream, 404, hs.json.encode({ error = "not found" }))
    end
    local ok, err = pcall(function()
        local session = core:load(cookie, false)
        local body = hs.json.encode(route(session, query))
        local cookies = core:commit(session)
        respond(stream, 200, body, cookies)
    end)
    if not ok then
        io.stderr:write("lua app: ", tostring(err), "\n")
        respond(stream, 500, hs.json.encode({ error = tostring(err) }))
    end
end

local server = assert(http_server.listen({
    host = "127.0.0.1",
    port = port,
    onstream = onstream,
    onerror = function(_, ctx, op, err)
        io.stderr:write("lua app: ", tostring(op), " ", tostring(err), "\n")
    end,
}))
assert(server:listen())
print(("lua app on http://127.0.0.1:%d (%s)"):format(port, hs.version))
io.stdout:flush()
assert(server:loop())

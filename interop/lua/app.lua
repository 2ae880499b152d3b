-- Lua (LuaJIT) app for the interop test on lua-http's server: honeymoon_session's core and the
-- native (blocking) hs.RedisStore, serving interop/lua/routes.lua (the cookie name, secret and
-- key prefix interop/node/app.mjs uses; nginx serves the same routes: openresty.lua).
--   luajit interop/lua/app.lua [PORT [REDIS_URL]]     (or PORT / REDIS_URL in the environment;
--   lua5.4 works too)
-- Routes (JSON, see routes.lua): /visit, /show, /logout, /list?n=N.
-- HS_CPATH (default <repo>/build/luajit/?.so, or build/lua54 under Lua 5.4) locates honeymoon_session.so.
local dir = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or "."
local flavour = jit and "luajit" or "lua54"
package.cpath = (os.getenv("HS_CPATH") or (dir .. "/../../build/" .. flavour .. "/?.so")) .. ";" .. package.cpath
package.path = dir .. "/../../?.lua;" .. package.path -- interop.lua.routes
if not jit then -- Debian's lua-http is pure Lua under the 5.1 tree
    package.path = package.path .. ";/usr/share/lua/5.1/?.lua;/usr/share/lua/5.1/?/init.lua"
end

local hs = require("honeymoon_session")
local routes = require("interop.lua.routes") -- options and routes, shared with openresty.lua
local http_server = require("http.server")
local http_headers = require("http.headers")

local port = tonumber(arg[1] or os.getenv("PORT") or "3001")
local redis_url = arg[2] or os.getenv("REDIS_URL") or "redis://127.0.0.1:6379"

local core = hs.core(routes.options(hs.RedisStore({ url = redis_url, prefix = routes.prefix })))

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

    local status, body, cookies, err = routes.serve(path, query,
        function() return core:load(cookie, false) end,
        function(session) return core:commit(session) end)
    if err ~= nil then io.stderr:write("lua app: ", tostring(err), "\n") end
    respond(stream, status, body, cookies)
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

-- The demo (examples/demo/routes.lua) served by lua-http on 127.0.0.1:$PORT (default 3000),
-- sessions through honeymoon_session.adapters.lua_http with a MemoryStore.
--   make both && lua5.4 examples/demo/app.lua      (or luajit examples/demo/app.lua)
-- Then open http://127.0.0.1:3000/ and log in as alice@example.com / wonderland.
-- PORT=0 picks a free port; the first line printed names the address.

-- Module paths from this file's location, so it runs from any directory.
local root = (arg and arg[0] or ""):match("^(.*)/examples/demo/[^/]*$") or "."
local flavour = rawget(_G, "jit") and "luajit" or "lua54"
package.cpath = root .. "/build/" .. flavour .. "/?.so;" .. package.cpath
package.path = root .. "/?.lua;" .. root .. "/lua/?.lua;" .. package.path
if _VERSION ~= "Lua 5.1" then
    -- Debian ships lua-http (pure Lua) for 5.1 only; its C dependencies exist for 5.4 too.
    package.path = package.path .. ";/usr/share/lua/5.1/?.lua;/usr/share/lua/5.1/?/init.lua"
end

local http_server = require("http.server")
local http_headers = require("http.headers")
local hs = require("honeymoon_session")
local routes = require("examples.demo.routes")
-- One process serves every request, so its memory is a store every request sees. The app
-- holds it: the sessions page calls its sessionsOf and destroyAll.
routes.store = hs.MemoryStore()
local options = { store = routes.store }
for k, v in pairs(routes.options) do options[k] = v end
local adapter = require("honeymoon_session.adapters.lua_http").new(options)

local HOST = os.getenv("HOST") or "127.0.0.1"
local PORT = tonumber(os.getenv("PORT") or "3000")
local TIMEOUT = 10 -- seconds to read a request body

local function log(fmt, ...) io.stderr:write(string.format(fmt, ...), "\n") end

local function respond(stream, method, res, session)
    local body = res.body or ""
    local headers = http_headers.new()
    headers:append(":status", tostring(res.status))
    if res.content_type then headers:append("content-type", res.content_type) end
    if res.location then headers:append("location", res.location) end
    headers:append("cache-control", "no-store")
    headers:append("content-length", tostring(#body))
    if session ~= nil then
        local ok, err = pcall(adapter.commit, adapter, session, headers)
        if not ok then -- a store failure: no cookie, and say so
            log("demo: session commit failed: %s", tostring(err))
            return respond(stream, method, { status = 500, content_type = "text/plain", body = "Internal error\n" })
        end
    end
    local empty = method == "HEAD" or #body == 0
    assert(stream:write_headers(headers, empty))
    if not empty then assert(stream:write_chunk(body, true)) end
end

local function onstream(_, stream)
    local req_headers = assert(stream:get_headers())
    local method = req_headers:get(":method")
    local path = (req_headers:get(":path") or "/"):match("^[^?#]*")
    local handler, uses_session = routes.find(method, path)

    local req = { method = method, path = path, content_type = req_headers:get("content-type") }
    if method == "POST" then
        local length = tonumber(req_headers:get("content-length") or "0")
        if length == nil or length > routes.MAX_BODY then return respond(stream, method, { status = 413 }) end
        -- At most MAX_BODY + 1 bytes, also for a chunked body without a length.
        local body, err = stream:get_body_chars(routes.MAX_BODY + 1, TIMEOUT)
        if body == nil and err ~= nil then error(err) end
        if body and #body > routes.MAX_BODY then return respond(stream, method, { status = 413 }) end
        req.body = body or ""
    end

    local session
    if uses_session then
        session = adapter:load(req_headers, stream:checktls() ~= nil, req)
        req.session = session
    end
    local ok, res = pcall(handler, req)
    if not ok then
        log("demo: %s %s failed: %s", method, path, tostring(res))
        -- No commit: the handler's unsaved changes are dropped (what it already wrote through
        -- save(), regenerate() or destroy() stays written, but no cookie goes out).
        return respond(stream, method, { status = 500, content_type = "text/plain", body = "Internal error\n" })
    end
    return respond(stream, method, res, session)
end

local server = assert(http_server.listen({
    host = HOST,
    port = PORT,
    reuseaddr = true,
    onstream = onstream,
    onerror = function(_, context, op, err)
        -- Client resets and timeouts are routine under load; keep the log to one line each.
        log("demo: %s on %s: %s", tostring(op), tostring(context), tostring(err))
    end,
}))
assert(server:listen())
local _, host, port = server:localname()
io.stdout:write(("honeymoon_session demo (lua-http, %s): http://%s:%d/\n"):format(
    rawget(_G, "jit") and jit.version or _VERSION, host, port))
io.stdout:flush()
assert(server:loop())

-- The non-blocking check's lua-http server (one process, cqueues): /counter reads, adds one and
-- saves through the event-loop RedisStore (socket = "cqueues"); /plain never touches a session;
-- /new makes a session and returns its cookie. Usage:
--   luajit scripts/nonblocking/lua_http_server.lua ROOT PORT REDIS_URL PORT_FILE
local root, port, redis_url, port_file = arg[1], tonumber(arg[2]), arg[3], arg[4]
local flavour = rawget(_G, "jit") and "luajit" or "lua54"
package.cpath = root .. "/build/" .. flavour .. "/?.so;" .. package.cpath
package.path = root .. "/lua/?.lua;" .. root .. "/?.lua;" .. package.path
    .. ";/usr/share/lua/5.1/?.lua;/usr/share/lua/5.1/?/init.lua"

local http_server = require("http.server")
local http_headers = require("http.headers")
local RedisStore = require("honeymoon_session.stores.redis")
local adapter = require("honeymoon_session.adapters.lua_http").new({
    secret = "nonblocking-check",
    store = RedisStore.new({ url = redis_url, prefix = "nb:", socket = "cqueues" }),
})

local function reply(stream, body, session)
    local headers = http_headers.new()
    headers:append(":status", "200")
    headers:append("content-type", "text/plain")
    if session ~= nil then adapter:commit(session, headers) end
    assert(stream:write_headers(headers, false))
    assert(stream:write_chunk(body, true))
end

local function onstream(_, stream)
    local req_headers = assert(stream:get_headers())
    local path = req_headers:get(":path")
    if path == "/plain" then return reply(stream, "plain\n") end
    local session = adapter:load(req_headers, false)
    if path == "/counter" then
        session.n = (session.n or 0) + 1
    elseif path == "/new" then
        session.n = 0
    end
    reply(stream, tostring(session.n) .. "\n", session)
end

local server = assert(http_server.listen({
    host = "127.0.0.1", port = port, onstream = onstream,
    onerror = function(_, context, op, err) io.stderr:write(tostring(context), " ", tostring(op), " ", tostring(err), "\n") end,
}))
assert(server:listen())
local _, _, bound = server:localname()
local f = assert(io.open(port_file, "w")); f:write(bound); f:close()
assert(server:loop())

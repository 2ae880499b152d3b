-- The interop test's Lua app under nginx (lua-nginx-module, LuaJIT build of the module): the
-- routes of interop/lua/routes.lua, sessions through honeymoon_session.adapters.openresty over
-- the event-loop RedisStore on cosockets (honeymoon_session.stores.redis, socket = "ngx"), so
-- every Redis round trip yields to the worker's event loop. Loaded once per worker by
-- interop/lua/nginx.conf.in (generated and started by interop/run.sh, INTEROP_LUA=openresty):
--   content_by_lua_block { require("interop.lua.openresty").handle() }
-- REDIS_URL comes from the environment (nginx.conf: env REDIS_URL;).
local routes = require("interop.lua.routes")
local Redis = require("honeymoon_session.stores.redis")

local store = Redis.new({
    url = os.getenv("REDIS_URL") or "redis://127.0.0.1:6379",
    prefix = routes.prefix,
    socket = "ngx",
})
local adapter = require("honeymoon_session.adapters.openresty").new(routes.options(store))

local ngx = ngx
local M = { adapter = adapter, store = store }

local function start() return adapter:start() end
-- Commits, and puts the Set-Cookie line (if any) into ngx.header: call before ngx.print.
local function finish(session) return adapter:finish(session) end

function M.handle()
    local status, body, _, err = routes.serve(ngx.var.uri, ngx.var.args or "", start, finish)
    if err ~= nil then ngx.log(ngx.ERR, "interop: ", ngx.var.request_uri, ": ", tostring(err)) end
    ngx.status = status
    local header = ngx.header
    header["Content-Type"] = "application/json; charset=utf-8"
    header["Content-Length"] = #body
    ngx.print(body)
end

return M

-- The demo (examples/demo/routes.lua) as an nginx content handler, sessions through
-- honeymoon_session.adapters.openresty. Loaded once per worker by nginx.conf.in:
--   content_by_lua_block { require("examples.demo.openresty").handle() }
-- nginx runs several workers (worker_processes auto), and a user's requests land on any of
-- them: the adapter's default store, a SharedDictStore on nginx.conf's `lua_shared_dict
-- sessions`, is shared by all of them. The app holds it too: the sessions page calls its
-- sessionsOf and destroyAll.
local routes = require("examples.demo.routes")
local adapter = require("honeymoon_session.adapters.openresty").new(routes.options)
routes.store = adapter.store

local ngx = ngx
local M = { adapter = adapter }

local function fail(what, err)
    ngx.log(ngx.ERR, "demo: ", what, ": ", tostring(err))
    return ngx.exit(ngx.HTTP_INTERNAL_SERVER_ERROR)
end

function M.handle()
    local method = ngx.req.get_method()
    local path = ngx.var.uri
    local handler, uses_session = routes.find(method, path)

    local req = { method = method, path = path, content_type = ngx.var.content_type }
    if method == "POST" then
        ngx.req.read_body() -- client_max_body_size refuses bodies over 64k with 413 first
        req.body = ngx.req.get_body_data() or ""
    end

    local session
    if uses_session then
        session = adapter:start(req)
        req.session = session
    end
    local ok, res = pcall(handler, req)
    -- No commit: the handler's unsaved changes are dropped (what it already wrote through
    -- save(), regenerate() or destroy() stays written, but no cookie goes out).
    if not ok then return fail(method .. " " .. path .. " failed", res) end
    if session ~= nil then
        local committed, err = pcall(adapter.finish, adapter, session)
        if not committed then return fail("session commit failed", err) end
    end

    local body = res.body or ""
    ngx.status = res.status
    local header = ngx.header
    if res.content_type then header["Content-Type"] = res.content_type end
    if res.location then header["Location"] = res.location end
    header["Cache-Control"] = "no-store"
    header["Content-Length"] = #body
    if #body > 0 and method ~= "HEAD" then ngx.print(body) end
end

return M

-- Routes for spec/openresty_http_spec.lua (busted does not load this file; nginx does, through
-- the spec's config): one OpenResty adapter per worker on the default store (lua_shared_dict
-- sessions), cookie "sub.sid".
--   GET /parent[?share=1]  starts the session, sets parent = 1, captures /child (with
--                          ctx = ngx.ctx when share=1), sets after = 1, finishes; answers
--                          "child <status> <child's Set-Cookie or none>"
--   GET /capture           captures /child with ctx = ngx.ctx without starting a session
--                          itself; answers the child's body and Set-Cookie line
--   GET /child             starts the session, sets child = 1, finishes; answers its lines
--   GET /read              the session's data as JSON
local hs = require("honeymoon_session")
local adapter = require("honeymoon_session.adapters.openresty").new({ secret = "subrequests", name = "sub.sid" })

local ngx = ngx
local M = {}

function M.parent()
    local session = adapter:start()
    session.parent = 1
    local res = ngx.location.capture("/child", ngx.var.arg_share and { ctx = ngx.ctx } or nil)
    session.after = 1
    adapter:finish(session)
    ngx.say("child ", res.status, " ", tostring(res.header["Set-Cookie"] or "none"))
end

function M.capture()
    local res = ngx.location.capture("/child", { ctx = ngx.ctx })
    ngx.say(res.body:gsub("\n$", ""), " ", tostring(res.header["Set-Cookie"] or "none"))
end

function M.child()
    local session = adapter:start()
    session.child = 1
    ngx.say("lines ", #adapter:finish(session))
end

function M.read()
    local session = adapter:start()
    local data = session:all()
    adapter:finish(session)
    ngx.say(hs.json.encode(data))
end

return M

-- The OpenResty adapter inside a real nginx, seen from an HTTP client (curl): what reaches the
-- client's Set-Cookie, not what the adapter hands a fake ngx (adapters_spec.lua does that).
-- The routes are spec/nginx/subrequests.lua.
local Nginx = require("spec.support.nginx")
local hs = require("honeymoon_session")

local LOCATIONS = [[
        location = /parent { content_by_lua_block { require("spec.nginx.subrequests").parent() } }
        location = /capture { content_by_lua_block { require("spec.nginx.subrequests").capture() } }
        location = /child { content_by_lua_block { require("spec.nginx.subrequests").child() } }
        location = /read { content_by_lua_block { require("spec.nginx.subrequests").read() } }]]

---Headers and body of one GET through curl, with an optional Cookie header.
local function get(nginx, path, cookie)
    return nginx:shell(("curl -s -m 5 -D - %s \"$URL%s\""):format(
        cookie and ("-H 'Cookie: " .. cookie .. "'") or "", path))
end

---The name=value of the response's sub.sid Set-Cookie line, or nil.
local function cookie_of(response)
    return response:match("\n[Ss]et%-[Cc]ookie: (sub%.sid=[^;\r\n]*)")
end

describe("adapters.openresty in nginx", function()
    local nginx

    lazy_setup(function()
        assert.is_true(Nginx.available(), "nginx with libnginx-mod-http-lua (scripts/setup.sh)")
        nginx = Nginx.start({ workers = 1, http = "    lua_shared_dict sessions 1m;", locations = LOCATIONS })
    end)
    lazy_teardown(function() if nginx then nginx:stop() end end)

    -- A subrequest that shares the parent's ngx.ctx gets the parent's session from start(); its
    -- finish() put the session's Set-Cookie line into the subrequest's own response, which never
    -- reaches the client, and committed the session, so the parent's finish() had nothing left
    -- to send: a new session was stored, its cookie lost, and what the parent wrote after the
    -- subrequest was dropped.
    it("a subrequest sharing ngx.ctx leaves the commit to the parent, whose response sets the cookie", function()
        local response = get(nginx, "/parent?share=1")
        assert.matches("child 200 none", response, 1, true)
        local cookie = cookie_of(response)
        assert.is_not_nil(cookie, response .. nginx:errors())
        local read = get(nginx, "/read", cookie)
        assert.same({ parent = 1, child = 1, after = 1 }, hs.json.decode(read:match("\r\n\r\n(.*)$")), read)
    end)

    -- Only the request's own session is left to it: one the subrequest started is its own to
    -- commit, and its line is in the capture's res.header for the request to pass on.
    it("a subrequest commits a session it started itself, sharing ngx.ctx or not", function()
        local body = get(nginx, "/capture"):match("\r\n\r\n(.*)$")
        local cookie = body:match("^lines 1 (sub%.sid=[^;]*)")
        assert.is_not_nil(cookie, body)
        local read = get(nginx, "/read", cookie)
        assert.same({ child = 1 }, hs.json.decode(read:match("\r\n\r\n(.*)$")), read)
    end)
end)

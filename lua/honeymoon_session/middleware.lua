-- The HoneyMoon middleware: a thin layer over the native core (core:load, core:commit).
-- Embedded into the native module at build time; kept in Lua because hooking a response's
-- send is naturally Lua. Receives the core and its weak session -> request table (which
-- lets regenerate/destroy keep req.sessionID current); returns the middleware.
local core, requests = ...
local name = core.name
-- Looked up once: a method call through the userdata would look them up every request.
local load, commit_session = core.load, core.commit

---@param req table HoneyMoon request
---@param res table HoneyMoon response
---@param nxt fun() runs the rest of the chain
return function(req, res, nxt)
    local headers = req.headers
    local header = headers and headers.cookie
    if header == nil and req.cookie then
        -- A server that hides raw headers: ask it for the one cookie (already URL-decoded).
        local value = req:cookie(name)
        if value then header = name .. "=" .. value end
    end
    local session, id = load(core, header, req.secure == true)
    requests[session] = req
    req.session, req.sessionID = session, id

    local send, committed = res.send, false
    local function commit()
        committed = true -- before the work: a failing commit must not run again from send
        local line = commit_session(core, session)[1]
        if line then
            if res.append then res:append("Set-Cookie", line) else res:set("Set-Cookie", line) end
        end
    end
    -- On the instance, so json/redirect/render (which all call self:send) are covered too.
    res.send = function(self, ...)
        if not committed then commit() end
        return send(self, ...)
    end
    nxt()
    if not committed then commit() end
end

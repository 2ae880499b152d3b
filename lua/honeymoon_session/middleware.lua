-- The HoneyMoon middleware: a thin layer over the native core (core:load, core:commit).
-- Embedded into the native module at build time; kept in Lua because hooking a response's
-- send is naturally Lua. The core is passed in; this chunk returns the middleware.
local core = ...
local name = core.name

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
    local session = core:load(header, req.secure == true, req)
    req.session = session

    local send, committed = res.send, false
    local function commit()
        committed = true -- before the work: a failing commit must not run again from send
        local lines = core:commit(session)
        local line = lines[1]
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

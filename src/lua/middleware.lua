-- The HoneyMoon middleware over the core: load before the chain, commit exactly once just
-- before the response is sent (or when the chain returns without sending). Embedded in the
-- module; receives a core (core.lua) and returns the middleware.
local core = ...
local find, gsub, type = string.find, string.gsub, type
local name = core.name
local cookie_prefix = name .. "="
local load, fresh, commit = core._load, core._fresh, core._commit_session
-- req:cookie's value is decoded already; the header parser decodes and splits at ';' again.
local ESCAPE = { ["%"] = "%25", [";"] = "%3B" }

-- Under these keys of the response: its session until committed, and the send the hook
-- replaced. Keys of the response, not a closure per request: that would cost the closure and
-- its upvalues, and on LuaJIT end the trace.
local SESSION, OWN_SEND = {}, {}

-- Stores what needs storing and adds the Set-Cookie line, if any (none for a session the
-- handler unset: see Session.commit).
local function finish(session, res)
    local line = commit(session, true)
    if line then
        if res.append then res:append("Set-Cookie", line) else res:set("Set-Cookie", line) end
    end
end

-- The response's send while its session is uncommitted: on the instance, so json/redirect/
-- render (which all call self:send) are covered too. Commits once, then sends.
local function hooked_send(self, ...)
    local send, session = self[OWN_SEND], self[SESSION]
    if session ~= nil then
        self[SESSION] = nil -- before the work: a failing commit must not run again
        -- Unhooked, unless a later middleware wrapped send meanwhile (that wrapper calls this).
        if self.send == hooked_send then self.send = send end
        finish(session, self)
    end
    return send(self, ...)
end

---@param req table HoneyMoon request
---@param res table HoneyMoon response
---@param nxt fun() runs the rest of the chain
return function(req, res, nxt)
    -- Mounted twice in one chain (an app's and a router's): the first's session stands, as in
    -- express-session.
    if res[SESSION] ~= nil then return nxt() end
    local headers, header = req.headers, nil
    if headers ~= nil then
        header = headers.cookie
    elseif req.cookie then
        -- A server that hides raw headers: ask it for the one cookie (already URL-decoded).
        local value = req:cookie(name)
        if type(value) == "string" then
            -- Escaped again, so the parser reads back exactly this one value.
            if find(value, "[%%;]") then value = gsub(value, "[%%;]", ESCAPE) end
            header = cookie_prefix .. value
        elseif value ~= nil then
            error("honeymoon_session: req:cookie(name) must return a string or nil, got a " .. type(value), 0)
        end
    end
    local secure = req.secure == true
    local session, id
    -- Only a header that may carry our cookie is worth parsing natively.
    if header ~= nil and (type(header) ~= "string" or find(header, name, 1, true)) then
        if type(header) ~= "string" then header = core.header_text(header) end
        session, id = load(core, header, secure, req)
    else
        session, id = fresh(core, secure, req)
    end
    req.session, req.sessionID = session, id

    res[OWN_SEND], res[SESSION] = res.send, session
    res.send = hooked_send
    nxt()
    if res[SESSION] ~= nil then -- the chain returned without sending: commit now, as the hook
        res[SESSION] = nil
        if res.send == hooked_send then res.send = res[OWN_SEND] end
        finish(session, res)
    end
end

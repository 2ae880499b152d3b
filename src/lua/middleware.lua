-- The HoneyMoon middleware over the core: load before the chain, commit exactly once just
-- before the response is sent (or when the chain returns without sending). Embedded in the
-- module; receives a core (core.lua) and returns the middleware.
local core = ...
local find, gsub, type = string.find, string.gsub, type
local name = core.name
local cookie_prefix = name .. "="
local load, fresh, commit = core._load, core._fresh, core._commit
-- req:cookie's value is decoded already; the header parser decodes and splits at ';' again.
local ESCAPE = { ["%"] = "%25", [";"] = "%3B" }

-- Stores what needs storing and adds the Set-Cookie line, if any.
local function finish(session, res)
    local line = commit(core, session)
    if line then
        if res.append then res:append("Set-Cookie", line) else res:set("Set-Cookie", line) end
    end
end

---@param req table HoneyMoon request
---@param res table HoneyMoon response
---@param nxt fun() runs the rest of the chain
return function(req, res, nxt)
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

    local send, committed = res.send, false
    -- On the instance, so json/redirect/render (which all call self:send) are covered too.
    res.send = function(self, ...)
        if not committed then
            committed = true -- before the work: a failing commit must not run again
            finish(session, res)
        end
        return send(self, ...)
    end
    nxt()
    if not committed then
        committed = true
        finish(session, res)
    end
end

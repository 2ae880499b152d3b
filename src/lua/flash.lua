-- The flash() middleware: req.flash(key[, value]) and res.locals.flash over the session's
-- flash/getFlash, so both spellings read and write the same messages.
local setmetatable, rawset, error, type = setmetatable, rawset, error, type

return function()
    return function(req, res, nxt)
        local session = req.session
        if session == nil then
            error("honeymoon_session: flash() needs session() earlier in the middleware chain", 2)
        end
        ---@param key string
        ---@param value any? set when given, else read (and remove)
        req.flash = function(key, value)
            -- Tail calls: the session's argument errors then name the caller's line, not this one.
            if value == nil then return session:getFlash(key) end
            return session:flash(key, value)
        end
        local locals = res.locals
        if locals == nil then locals = {}; res.locals = locals end
        -- Reading a message in a template consumes it, as getFlash does; the proxy keeps what
        -- it read, so a template that tests a message and then prints it gets it both times.
        locals.flash = setmetatable({}, {
            __index = function(shown, key)
                -- Checked here, so the error names the line that indexed (a template's).
                if type(key) ~= "string" then
                    error("honeymoon_session: session keys must be strings, got " .. (key == nil and "nil" or "a " .. type(key)), 2)
                end
                local value = session:getFlash(key)
                if value ~= nil then rawset(shown, key, value) end
                return value
            end,
        })
        nxt()
    end
end

-- The flash() middleware: req.flash(key[, value]) and res.locals.flash over the session's
-- flash/getFlash, so both spellings read and write the same messages.
local setmetatable, error = setmetatable, error

return function()
    return function(req, res, nxt)
        local session = req.session
        if session == nil then
            error("honeymoon_session: flash() needs session() earlier in the middleware chain", 2)
        end
        ---@param key string
        ---@param value any? set when given, else read (and remove)
        req.flash = function(key, value)
            if value == nil then return session:getFlash(key) end
            session:flash(key, value)
        end
        local locals = res.locals
        if locals == nil then locals = {}; res.locals = locals end
        -- Reading a message in a template consumes it, as getFlash does.
        locals.flash = setmetatable({}, { __index = function(_, key) return session:getFlash(key) end })
        nxt()
    end
end

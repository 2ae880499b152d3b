-- The framework-agnostic core: load a request's session from its Cookie header and commit it
-- once. The middleware and the server adapters are thin layers over it. Embedded in the
-- module; receives the store functions (store.lua), the session type (session.lua) and the
-- names of the methods a Lua store needs; returns the core constructor.
local ops, Session, store_methods = ...
local type, error, setmetatable, concat = type, error, setmetatable, table.concat
local load_session, new_session, commit_session = ops.load, Session.new, Session.commit

---@class honeymoon_session.Core
---@field name string the cookie name
local Core = {}
Core.__index = Core

local function check_store(store)
    local kind = type(store)
    if kind ~= "table" and kind ~= "userdata" then return end -- the engine names the problem
    for _, name in ipairs(store_methods) do
        local f = store[name]
        if f == nil then
            error("honeymoon_session: store is missing the method " .. name .. "(); a store needs "
                .. concat(store_methods, ", "), 0)
        elseif type(f) ~= "function" then
            error("honeymoon_session: store method " .. name .. "() must be a function, got a " .. type(f), 0)
        end
    end
    if store.format == "record" and type(store.merge) ~= "function" then
        error("honeymoon_session: a store with format = \"record\" needs a merge() method", 0)
    end
end

---The Cookie header as one string: the adapters may hand over a list of header lines.
local function header_text(header)
    if type(header) == "table" then
        if #header == 0 then return nil end
        for i = 1, #header do
            if type(header[i]) ~= "string" then
                error("honeymoon_session: a Cookie header list must hold strings, got a " .. type(header[i]) .. " at [" .. i .. "]", 3)
            end
        end
        return concat(header, "; ")
    end
    if header ~= nil and type(header) ~= "string" then
        error("honeymoon_session: the Cookie header must be a string or a list of strings, got a " .. type(header), 3)
    end
    return header
end

Core.header_text = header_text

---@param engine userdata the native engine (src/engine.rs)
---@param store any the store object from the options (nil: a MemoryStore)
function Core.new(engine, store)
    check_store(store)
    local load, commit, id = engine:crossings()
    local ctx = {
        engine = engine, store = store, native = engine.native,
        record = type(store) == "table" and store.format == "record",
        ttl = engine.ttl, save_uninitialized = engine.saveUninitialized,
        load = load, commit = commit, id = id,
        candidates = engine.candidates, adopt = engine.adopt, destroy = engine.destroy,
    }
    if not ctx.native then ctx.life = engine:life() end
    return setmetatable({ ctx = ctx, name = engine.name, engine = engine }, Core)
end

---Loads a request's session. Never fails on a bad cookie: it starts a fresh session.
---@param header string|string[]|nil the Cookie header (or its lines)
---@param secure boolean? the request came over HTTPS (for cookie.secure = "auto")
---@param req table? a request table whose sessionID is kept in step
---@return honeymoon_session.Session session
---@return string id
function Core:load(header, secure, req)
    local ctx = self.ctx
    local id, data, flash, shadow, snap, version = load_session(ctx, header_text(header))
    local s = new_session(ctx, id, data, flash, shadow, snap, version, secure == true, req)
    if req ~= nil then req.sessionID = id end
    return s, id
end

---The same for the middleware, which knows its header is a string and sets req.sessionID
---itself: one call less on every request.
function Core:_load(header, secure, req)
    local ctx = self.ctx
    if ctx.native then
        local id, data, flash, shadow, snap, version = ctx.load(header)
        return new_session(ctx, id, data, flash, shadow, snap, version, secure, req), id
    end
    local id, data, flash, shadow, snap, version = load_session(ctx, header)
    return new_session(ctx, id, data, flash, shadow, snap, version, secure, req), id
end

---A new session without looking at any cookie (the middleware's path for a visitor without
---our cookie).
function Core:fresh(secure, req)
    local ctx = self.ctx
    local id = ctx.id()
    return new_session(ctx, id, nil, nil, nil, nil, nil, secure == true, req), id
end

---Commits once: stores what needs storing. Returns the Set-Cookie lines (0 or 1).
---@return string[]
function Core:commit(session)
    local line = commit_session(session)
    return { line }
end

---The one Set-Cookie line or nil, without a table.
Core._commit = function(_, session) return commit_session(session) end

return Core

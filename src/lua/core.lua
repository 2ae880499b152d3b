-- The framework-agnostic core: load a request's session from its Cookie header and commit it
-- once. The middleware and the server adapters are thin layers over it. Embedded in the
-- module; receives the store functions (store.lua), the session type (session.lua), the
-- names of the methods a Lua store needs, the native id drawer for LuaJIT's FFI and the
-- method check's maker (exports.lua); returns the core constructor.
local ops, Session, store_methods, id_into, colon_check = ...
local type, error, setmetatable, getmetatable, pairs, concat = type, error, setmetatable, getmetatable, pairs, table.concat
local load_session, new_session, fresh_session, commit_session = ops.load, Session.new, Session.fresh, Session.commit

---@class honeymoon_session.Core
---@field name string the cookie name
local Core = {}
Core.__index = Core

local function field(t, k) return t[k] end

local function check_store(store)
    local kind = type(store)
    if kind ~= "table" and kind ~= "userdata" then return end -- the engine names the problem
    -- A userdata without fields (no metatable, no __index) raises on indexing: say what it is.
    if kind == "userdata" and not pcall(field, store, "get") then
        error("honeymoon_session: store must be a table with the store methods, got a userdata that cannot be indexed", 0)
    end
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

---The Cookie header as one string: the adapters may hand over a list of header lines (a
---server that keeps repeated headers apart), which are joined; anything else is an error.
---@param level integer? where the error is raised: the caller of core:load (an argument it
---passed), or no position for the middleware (the request's header).
local function header_text(header, level)
    local kind = type(header)
    if kind == "string" or header == nil then return header end
    level = level or 0
    if kind ~= "table" then
        error("honeymoon_session: the Cookie header must be a string or a list of strings, got a " .. kind, level)
    end
    local n, count = #header, 0
    for _ in pairs(header) do count = count + 1 end
    if count ~= n then
        error("honeymoon_session: the Cookie header must be a string or a list of strings, got a table that is not a list", level)
    end
    for i = 1, n do
        if type(header[i]) ~= "string" then
            error("honeymoon_session: a Cookie header list must hold strings, got a " .. type(header[i]) .. " at [" .. i .. "]", level)
        end
    end
    if n == 0 then return nil end
    return concat(header, "; ")
end

Core.header_text = header_text

-- On LuaJIT, ids are drawn through the FFI: calling a Lua C function ends the JIT's trace and
-- cost about 0.5 µs in a request there, where an FFI call is compiled into the trace.
-- Elsewhere (or without the ffi library), nil: the engine's own id function.
local function ffi_drawer(fallback)
    if id_into == nil or rawget(_G, "jit") == nil then return nil end
    local ok, ffi = pcall(require, "ffi")
    if not ok or type(ffi) ~= "table" then return nil end
    -- A sandbox may hand out a stub ffi: then the engine's function, not a setup error.
    local cast_ok, draw = pcall(ffi.cast, "int (*)(uint8_t *)", id_into)
    local new_ok, buf = pcall(ffi.new, "uint8_t[32]")
    local str = ffi.string
    if not (cast_ok and new_ok and type(str) == "function") then return nil end
    return function()
        -- One buffer for all draws: nothing can run between the draw and the copy (no yield,
        -- no GC step for this call), so keep them in one expression. -1: the OS random
        -- source failed; the engine's function raises the reason.
        return draw(buf) == 0 and str(buf, 32) or fallback()
    end
end

-- A core method called with a dot: say so at the caller's line.
local check_self = colon_check(Core, "core")

---Raises, at the line that called `call` (the caller's caller), unless `req` is a table or
---nil: the core and the adapters keep its sessionID in step.
---@param call string the call as the message names it
function Core._check_req(req, call)
    if req ~= nil and type(req) ~= "table" then
        error("honeymoon_session: " .. call .. ": req must be a table (its sessionID is kept in step) or nil, got a "
            .. type(req), 3)
    end
end

---@param engine userdata the native engine (src/engine.rs)
---@param store any the store object from the options (nil: a MemoryStore)
function Core.new(engine, store)
    check_store(store)
    local load, commit, id, candidates, adopt = engine:crossings()
    id = ffi_drawer(id) or id
    local ctx = {
        engine = engine, store = store, native = engine.native,
        record = type(store) == "table" and store.format == "record",
        ttl = engine.ttl, save_uninitialized = engine.saveUninitialized,
        load = load, commit = commit, id = id,
        -- A Lua store's get answer: a record string through the crossing, a table through
        -- the engine's method (store.lua's adopt picks).
        candidates = candidates, adopt = adopt, adopt_table = engine.adopt, destroy = engine.destroy,
        reload = engine.reload, index = engine.index, stale_grace = engine.staleGrace,
        -- Handed to a record store's get and merge: a store that parses what it holds (JSON)
        -- stops there.
        max_size = engine.maxSize,
        -- What a get before a write found: retired, and the lifetime the session keeps.
        inspect = engine.inspect,
        -- The size check before a table store's own merge (store.lua's mergeable).
        merge_fits = engine.merge_fits,
        -- A Lua store whose merge and touch refuse a record regenerate retired (this module's
        -- own do); for any other, store.lua checks with a get first.
        stale_aware = type(store) == "table" and store.staleAware == true,
    }
    -- The config's lifetime and cookie attributes: what a Lua store is handed with a write,
    -- and what req.session.cookie shows.
    ctx.life = engine:life()
    return setmetatable({ ctx = ctx, name = engine.name, engine = engine }, Core)
end

---Loads a request's session. Never fails on a bad cookie: it starts a fresh session.
---@param header string|string[]|nil the Cookie header (or its lines)
---@param secure boolean? the request came over HTTPS (for cookie.secure = "auto")
---@param req table? a request table whose sessionID is kept in step
---@return honeymoon_session.Session session
---@return string id
function Core:load(header, secure, req)
    check_self(self, "load")
    Core._check_req(req, "core:load(header, secure, req)")
    local ctx = self.ctx
    -- 3: header_text, this method, its caller.
    local id, data, flash, shadow, meta, snap, version, copy, n = load_session(ctx, header_text(header, 3))
    -- Any true value is HTTPS (a server's TLS object, say), as the middleware's req.secure is not.
    local s = new_session(ctx, id, data, flash, shadow, meta, snap, version, secure ~= nil and secure ~= false, req, copy, n)
    if req ~= nil then req.sessionID = id end
    return s, id
end

---The same for the middleware, which knows its header is a string and sets req.sessionID
---itself: one call less on every request.
function Core:_load(header, secure, req)
    local ctx = self.ctx
    if ctx.native then
        local id, data, flash, shadow, meta, snap, version, copy, n = ctx.load(header)
        return new_session(ctx, id, data, flash, shadow, meta, snap, version, secure, req, copy, n), id
    end
    local id, data, flash, shadow, meta, snap, version = load_session(ctx, header)
    return new_session(ctx, id, data, flash, shadow, meta, snap, version, secure, req), id
end

---A new session without looking at any cookie (the middleware's path for a visitor without
---our cookie).
function Core:fresh(secure, req)
    check_self(self, "fresh")
    Core._check_req(req, "core:fresh(secure, req)")
    local s, id = Core._fresh(self, secure ~= nil and secure ~= false, req)
    -- As load: req.sessionID answers from the start (the middleware sets its own).
    if req ~= nil then req.sessionID = id end
    return s, id
end

---The same without the check, for the middleware (every anonymous request).
function Core:_fresh(secure, req)
    local ctx = self.ctx
    local id = ctx.id()
    return fresh_session(ctx, id, secure == true, req), id
end

---Commits once: stores what needs storing. Returns the Set-Cookie lines (0 or 1). Only a
---session this core made: another core's would go to that core's store under its secret.
---@return string[]
function Core:commit(session)
    check_self(self, "commit")
    local m = type(session) == "table" and getmetatable(session) or nil
    local ctx = type(m) == "table" and m.ctx or nil
    if ctx ~= self.ctx then
        if ctx == nil then
            error("honeymoon_session: core:commit takes a session that core:load made, got a " .. type(session), 0)
        end
        error("honeymoon_session: core:commit: this session was made by another core (another session() or core() configuration, with its own store and secret); commit it with the core that loaded it", 0)
    end
    local line = commit_session(session)
    return { line }
end

---The one Set-Cookie line or nil, without a table.
Core._commit = function(_, session) return commit_session(session) end

---The same as a plain function, `core._commit_session(session)`: the middleware's, one call
---less on every request.
Core._commit_session = commit_session

return Core

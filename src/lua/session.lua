-- req.session: the session's data as a plain Lua table, so property reads and writes never
-- leave Lua, with the session API on a metatable of its own that also holds the session's
-- state (id, what was loaded, flash). Keeping the state out of the table keeps `pairs` on the
-- data alone, also on LuaJIT, which ignores __pairs. Embedded in the module; receives the
-- store functions (store.lua), the engine's list of method names, the array marker, the
-- engine's owner rule (hs._owner) and its way of naming a path of keys in a message (hs._path).
local ops, method_names, array_mt, owner_of, path = ...
local type, error, next, pairs, rawget, rawset, tostring = type, error, next, pairs, rawget, rawset, tostring
local getmetatable, setmetatable = getmetatable, setmetatable
local commit, destroy_id, reload, destroy_moved = ops.commit, ops.destroy, ops.reload, ops.drop_moved
local retire_or_destroy, note_retired = ops.retire_or_destroy, ops.retired
local SAVE_NOW, FINAL = ops.SAVE_NOW, ops.FINAL
local floor, sub, byte = math.floor, string.sub, string.byte
local unpack = table.unpack or unpack -- Lua 5.1 and LuaJIT: the global

local FLASH_KEY = "__flash"
local META_KEY = "__meta"
local MAX_DEPTH = 64
local EXACT = 2 ^ 53 -- bookkeeping numbers count below it (meta::EXACT)

---@class honeymoon_session.Session
---@field cookie honeymoon_session.SessionCookie this session's cookie (express-session's shape)
local Methods = {}
local is_method = {}
for _, name in pairs(method_names) do is_method[name] = true end

local cookie_of -- defined below, with the cookie object

-- Missing keys: methods, and `cookie`, the session's cookie object (made on first use).
local function index(s, k)
    if k == "cookie" then return cookie_of(s) end
    return Methods[k]
end

local function state(s, level)
    local m = getmetatable(s)
    -- Not a table: nil, or a protected metatable's __metatable value.
    if type(m) ~= "table" or m.__index ~= index then
        error("honeymoon_session: session methods are called with a colon: req.session:method(...)", level or 3)
    end
    return m
end

local function check_key(k, level)
    if type(k) ~= "string" then
        local t = type(k)
        error("honeymoon_session: session keys must be strings, got " .. (t == "nil" and "nil" or "a " .. t), level or 3)
    end
end

local unstorable = { ["function"] = "a function", userdata = "a userdata", thread = "a coroutine" }

-- `under`: the table the key is in (flash messages'). The key is named as the engine names it
-- at commit (`["my key"]`), escaped: it may hold anything.
local function check_value(k, v, level, under)
    local bad = unstorable[type(v)]
    if bad then
        error("honeymoon_session: session value " .. (under and path(under, k) or path(k)) .. " is " .. bad
            .. "; sessions hold only nil, booleans, numbers, strings and tables of them", level or 3)
    end
end

local function reserved(k, level)
    -- "__flash:<key>": where each flash message is stored. Its ":" tested first: this runs on
    -- every write of a new key, and sub makes a string.
    if k == FLASH_KEY or (#k >= 8 and byte(k, 8) == 58 and sub(k, 1, 8) == "__flash:") then
        error('honeymoon_session: the session key ' .. (k == FLASH_KEY and '"__flash"' or 'prefix "__flash:"')
            .. ' is reserved for flash messages; use flash() and getFlash()', level or 3)
    elseif k == META_KEY then
        error('honeymoon_session: the session key "__meta" is reserved for the session\'s own bookkeeping '
            .. '(its lifetime, creation time and owner); use session.cookie.maxAge for the lifetime', level or 3)
    end
end

-- After commit the response has left: a write to the store now would be lost or orphaned.
local function live(m, what)
    if m.committed then
        error("honeymoon_session: session:" .. what .. "() after the response was committed; call it before res:send (the stored session is unchanged)", 3)
    end
end

-- express-session's save(cb), destroy(cb), reload(cb) and regenerate(cb): here each call is
-- done when it returns, and a callback passed out of habit would never run (a function is
-- also true to Lua: regenerate(cb) would keep the data). Raised before anything changes.
local function no_argument(what, arg)
    if arg ~= nil then
        error("honeymoon_session: session:" .. what .. "() takes no arguments, got a " .. type(arg)
            .. (type(arg) == "function" and "; it takes no callback (it is done when it returns)" or ""), 3)
    end
end

---Keeps req.sessionID in step with the id.
local function follow(m)
    local req = m.req
    if req ~= nil then req.sessionID = m.id end
end

-- all()'s copy. `keys` holds the way down (keys[i]: the key at level i) and `open` the tables
-- being copied, so that a cycle is told from depth and both are named as the commit names them.
-- A failure raises { what, level } for all() to word.
local function deep_copy(v, depth, keys, open)
    if type(v) ~= "table" then return v end
    if open[v] then error({ "is a table that contains itself (a cycle); sessions hold only nil, booleans, "
        .. "numbers, strings and tables of them", depth - 1 }, 0) end
    if depth > MAX_DEPTH then error({ "nests deeper than 64 levels", depth - 1 }, 0) end
    open[v] = true
    local out = {}
    for k, x in next, v do
        keys[depth] = k
        out[k] = deep_copy(x, depth + 1, keys, open)
    end
    keys[depth], open[v] = nil, nil
    -- A JSON array stays one (see hs.array).
    if getmetatable(v) == array_mt then setmetatable(out, array_mt) end
    return out
end

---@return string
function Methods:getId() return state(self).id end

---The live value (nested tables can be mutated in place), or `default`.
---@param key string
---@param default any
function Methods:get(key, default)
    local m = state(self)
    check_key(key)
    local v
    if is_method[key] then
        local shadow = m.shadow
        v = shadow and shadow[key]
    else
        v = rawget(self, key)
    end
    if v == nil then return default end
    return v
end

---@param key string
---@param value any
function Methods:set(key, value)
    local m = state(self)
    check_key(key)
    reserved(key)
    check_value(key, value)
    if is_method[key] then
        local shadow = m.shadow
        if shadow == nil then
            if value == nil then return end
            shadow = {}
            m.shadow = shadow
        end
        shadow[key] = value
    else
        rawset(self, key, value)
    end
end

---@param key string
---@return boolean
function Methods:has(key)
    local m = state(self)
    check_key(key)
    -- get's lookup, not a call to get: a bad key is then reported at the caller's line.
    if is_method[key] then
        local shadow = m.shadow
        return shadow ~= nil and shadow[key] ~= nil
    end
    return rawget(self, key) ~= nil
end

---@param key string
function Methods:forget(key)
    state(self)
    -- Checked here, at the caller's line: set's checks would point at this function.
    check_key(key)
    reserved(key)
    Methods.set(self, key, nil)
end

---A deep copy of the data.
---@return table
function Methods:all()
    local m = state(self)
    local keys, open = {}, {}
    local ok, out = pcall(deep_copy, self, 1, keys, open)
    local shadow = m.shadow
    if ok and shadow then
        -- Values under method names, a level down like the rest.
        for k, v in next, shadow do
            keys[1] = k
            ok, v = pcall(deep_copy, v, 2, keys, open)
            if not ok then out = v break end
            out[k] = v
        end
    end
    if not ok then
        if type(out) ~= "table" then error(out, 0) end -- not the copy's (out of memory)
        error("honeymoon_session: session value " .. path(unpack(keys, 1, out[2])) .. " " .. out[1], 2)
    end
    return out
end

---Readable through getFlash in this request and the next.
---@param key string
---@param value any
function Methods:flash(key, value)
    local m = state(self)
    check_key(key)
    -- req.flash(key) reads, connect-flash's way; here a missing value would silently drop the
    -- message one request early.
    if value == nil then
        error("honeymoon_session: session:flash(key, value) needs a value; read a message with getFlash(key)", 2)
    end
    check_value(key, value, nil, "flash")
    local new = m.flash_new
    if new == nil then
        new = {}
        m.flash_new = new
    end
    local old = m.flash_old
    if old ~= nil then old[key] = nil end
    new[key] = value
end

---Returns and removes a flash message.
---@param key string
function Methods:getFlash(key)
    local m = state(self)
    check_key(key)
    local found
    local new, old = m.flash_new, m.flash_old
    if new ~= nil then
        found = new[key]
        new[key] = nil
    end
    if old ~= nil then
        local v = old[key]
        if v ~= nil then
            old[key] = nil
            if found == nil then found = v end
        end
    end
    return found
end

function Methods:clearFlash()
    local m = state(self)
    m.flash_old, m.flash_new = nil, nil
end

---Stores the session now; its cookie goes out with the response.
---@return boolean stored false when the store no longer holds the session (another request
---destroyed it, or it expired): nothing was written, and nothing will be.
function Methods:save(extra)
    local m = state(self)
    no_argument("save", extra)
    live(m, "save")
    -- An id regenerate retired is read-only until its grace ends.
    if m.stale then return false end
    commit(self, m, SAVE_NOW)
    if m.state == "gone" then return false end
    -- The store now holds this request's data under this id: regenerate must not keep it
    -- readable for the stale grace (it may be the login's).
    -- The copy describes the loaded session, no longer the stored one.
    m.must_save, m.cookie_due, m.wrote, m.copy = false, true, true, nil
    return true
end

local function clear(self)
    for k in next, self do rawset(self, k, nil) end
end

---Empties the session: its data, method-named keys and flash messages.
local function drop_data(self, m)
    clear(self)
    m.shadow, m.flash_old, m.flash_new = nil, nil, nil
end

---Removes the session from the store; the request goes on with an empty session under a new
---id, and the response clears the cookie.
function Methods:destroy(extra)
    local m = state(self)
    no_argument("destroy", extra)
    live(m, "destroy")
    if m.state == "stored" then destroy_id(m) end
    destroy_moved(m) -- see regenerate
    drop_data(self, m)
    m.meta, m.copy = nil, nil
    m.id, m.state, m.snap, m.ver = m.ctx.id(), "destroyed", nil, nil
    m.must_save, m.cookie_due = false, false
    follow(m)
end

-- Whether the `index` field's value `v` names `owner` (the stored owner, a string): rendered by
-- the engine's own rule (hs._owner), which refuses what names no owner it keeps.
local function same_owner(v, owner)
    local ok, rendered = pcall(owner_of, v, "session", "regenerate")
    return ok and rendered == owner
end

---A new id; the old one is deleted from the store. Data is kept only when `keep` is true.
---@param keep boolean?
---@return string id
function Methods:regenerate(keep)
    local m = state(self)
    if keep ~= nil and keep ~= true and keep ~= false then
        error("honeymoon_session: session:regenerate(keepData) takes true, false or nothing, got a " .. type(keep)
            .. (type(keep) == "function" and "; it takes no callback (it returns the new id when done)" or ""), 2)
    end
    live(m, "regenerate")
    if m.stale then
        -- A retired id (see Engine::retire) is read-only, and so is the request: it writes
        -- nothing and sends no cookie, so a browser's parallel request (a double-submitted
        -- login) cannot replace the newer cookie, and a stolen copy of the old cookie cannot
        -- mint a live session from the retired data. The request goes on under an id that is
        -- never stored; the retired id runs out its grace.
        if not keep then drop_data(self, m) end
        m.id, m.state, m.snap, m.ver, m.copy = m.ctx.id(), "new", nil, nil, nil
        follow(m)
        return m.id
    end
    -- An old id a failed move left behind (its retirement raised, and the handler went on)
    -- should be gone already; the ids this request retired go too when the data is dropped now (a
    -- logout right after a rotation must not leave the logged-in data readable under it).
    if m.moved_from ~= nil or (m.retired_from ~= nil and not keep) then destroy_moved(m) end
    local st = m.state
    local existed = false
    local meta = m.meta
    local move = false
    if st == "stored" then
        local owned = meta ~= nil and meta.owner ~= nil
        local index = m.ctx.index
        -- A logged-in session (one that names an owner, the option `index`) whose data is
        -- dropped, or kept without that owner (a logout that keeps the cart, a login as
        -- someone else): its logged-in data must not stay readable under the old id for the
        -- grace, so the old id goes at once.
        local logged_out = owned and (not keep or not same_owner(rawget(self, index), meta.owner))
        -- Retired, not deleted, unless the old id holds this request's writes (a save()): they
        -- may be the login's.
        local retire = m.ctx.stale_grace > 0 and not m.wrote
        if keep and (owned or (index ~= nil and rawget(self, index) ~= nil)) then
            -- The data moves (its owner, if any, with it): stored under the new id below,
            -- before the old id is retired or deleted (store.lua's settle).
            move, existed = true, true
            m.moved_from = { id = m.id, snap = m.snap, ver = m.ver, retire = retire and not logged_out }
        else
            -- A retired old id stays readable, with its stored data, for the stale grace: a
            -- browser's parallel requests that still carry it finish without replacing the
            -- new cookie.
            local old_id, retiring = m.id, retire and not logged_out
            existed = retire_or_destroy(self, m, retiring, keep)
            if existed and retiring then note_retired(m, old_id) end
        end
    end
    -- Data moves to the new id only from a session that is still alive (or was never stored):
    -- a session another request destroyed meanwhile must not come back under a new id.
    if keep and (st == "gone" or (st == "stored" and not existed)) then keep = false end
    -- What a failed move rolls back to (below).
    local was = move and { m.id, m.snap, m.ver, m.wrote, m.copy, m.must_save, m.cookie_due, meta }
    -- The new session keeps the data's lifetime and creation time (absoluteTimeout counts on)
    -- with the data; without it, it starts a life of its own.
    if keep and meta ~= nil then
        m.meta = { maxAge = meta.maxAge, created = meta.created }
    else
        m.meta = nil
    end
    if not keep then drop_data(self, m) end
    m.id, m.state, m.snap, m.ver, m.wrote, m.copy = m.ctx.id(), "new", nil, nil, nil, nil
    m.must_save, m.cookie_due = true, false
    follow(m)
    if move then
        -- Stored now, and only then the old id retired: a destroyAll that runs meanwhile finds
        -- one of the two (if the old one is gone by then, the new one goes too: state "gone",
        -- no cookie). Now rather than at the commit, so that destroyAll(owner, getId()) later
        -- in this request spares the new id.
        local ok, err = pcall(commit, self, m, SAVE_NOW)
        if not ok and m.state == "new" then
            -- The new id was not stored: the session stays what it was, under its old id.
            m.id, m.snap, m.ver, m.wrote, m.copy, m.must_save, m.cookie_due, m.meta = unpack(was, 1, 8)
            m.state, m.moved_from = "stored", nil
            follow(m)
        end
        if not ok then error(err, 0) end
        if m.state == "stored" then m.must_save, m.cookie_due, m.wrote = false, true, true end
    end
    return m.id
end

---Refreshes the session's lifetime at commit (store TTL and cookie), as `rolling` does for
---every request; nothing for a session that is not stored.
function Methods:touch(extra)
    local m = state(self)
    no_argument("touch", extra)
    live(m, "touch")
    m.touch = true
end

---Replaces the session's data with what the store holds now, dropping this request's unsaved
---changes (and flash messages set in it).
---@return boolean found false when the store does not hold the session (never stored,
---destroyed elsewhere, or expired): the session is then empty.
function Methods:reload(extra)
    local m = state(self)
    no_argument("reload", extra)
    live(m, "reload")
    local data, flash, shadow, meta, snap, version
    if m.state == "stored" then
        data, flash, shadow, meta, snap, version = reload(m.ctx, m.id)
    end
    clear(self)
    m.flash_new, m.copy = nil, nil
    if data == nil then
        m.shadow, m.flash_old, m.meta = nil, nil, nil
        if m.state == "stored" then m.state, m.snap, m.ver = "gone", nil, nil end
        return false
    end
    for k, v in next, data do rawset(self, k, v) end
    m.shadow, m.flash_old, m.meta, m.snap, m.ver = shadow, flash, meta, snap, version
    m.stale = meta ~= nil and type(meta.stale) == "number" or nil
    return true
end

-- The cookie object: `req.session.cookie`, shaped like express-session's. Its lifetime is the
-- session's own (kept in the record's bookkeeping, so the store's TTL follows it); the other
-- attributes are the session() options'.
-- Each cookie object has a metatable of its own, with these metamethods and its session's
-- state (`owner`), so that pairs, next and an encoder walking the object find nothing in it.
local Cookie = {}

---@class honeymoon_session.SessionCookie
---@field maxAge number|false|nil milliseconds this session's cookie (and stored session) lives; false: a browser-session cookie. Settable.
---@field originalMaxAge number|nil the same, read-only (express-session's name)
---@field path string
---@field domain string|nil
---@field httpOnly boolean
---@field secure boolean|"auto"
---@field sameSite string|false
---@field partitioned boolean|nil
---@field priority "Low"|"Medium"|"High"|nil

-- The session's cookie lifetime in ms (nil: a browser-session cookie). What the engine
-- honours (meta::own_ms): a whole number of ms from 1 and below 2^53 (express-session can
-- store 500; its cookie then lives a second), or false; anything else stored means the
-- options'.
local function lifetime(m)
    local own = m.meta and m.meta.maxAge
    if own == false then return nil end
    if type(own) == "number" and own >= 1 and own < EXACT and floor(own) == own then return own end
    local config = m.ctx.life.maxAge
    if config == false then return nil end
    return config * 1000
end

-- The cookie attributes read from the options' lifetime (ctx.life), which also holds the
-- store's ttl: that is no cookie attribute (and would read as the cookie's lifetime).
local ATTRIBUTES = {
    path = true, domain = true, httpOnly = true, secure = true, sameSite = true, partitioned = true, priority = true,
}

Cookie.__index = function(c, k)
    local m = getmetatable(c).owner
    if k == "maxAge" or k == "originalMaxAge" then return lifetime(m) end
    if ATTRIBUTES[k] then return m.ctx.life[k] end
    return nil
end

Cookie.__newindex = function(c, k, v)
    local m = getmetatable(c).owner
    if k ~= "maxAge" then
        error("honeymoon_session: " .. path("session", "cookie", k) .. " cannot be set per session; "
            .. "only session.cookie.maxAge can (the other attributes are session() options)", 2)
    end
    if v == nil then v = false end
    if v ~= false and (type(v) ~= "number" or v ~= v or v < 1000 or v > 3153600000000) then
        error("honeymoon_session: session.cookie.maxAge must be milliseconds from 1000 to 3153600000000, "
            .. "or false for a browser-session cookie, got "
            .. (v ~= v and "NaN" or type(v) == "number" and tostring(v) or "a " .. type(v)), 2)
    end
    if m.committed then
        error("honeymoon_session: session.cookie.maxAge set after the response was committed; set it before res:send", 2)
    end
    if v ~= false then v = floor(v) end
    local meta = m.meta
    if meta == nil then
        meta = {}
        m.meta = meta
    end
    meta.maxAge = v
end

Cookie.__tostring = function() return "honeymoon_session.SessionCookie" end

function cookie_of(s)
    local m = getmetatable(s)
    local c = m.cookie_object
    if c == nil then
        c = setmetatable({}, {
            __index = Cookie.__index, __newindex = Cookie.__newindex, __tostring = Cookie.__tostring, owner = m,
        })
        m.cookie_object = c
    end
    return c
end

-- Property writes to absent keys come here: method names and the flash key are refused, and
-- values are checked at once (nested ones at commit).
local function guard(self, key, value)
    check_key(key)
    if key == "cookie" then
        error("honeymoon_session: session.cookie is the session's cookie object and cannot be assigned; "
            .. "set session.cookie.maxAge, or use session:set(\"cookie\", value) to store a value under that name", 2)
    end
    if is_method[key] then
        error("honeymoon_session: session." .. key .. " is a method and cannot be assigned; use session:set(\""
            .. key .. "\", value) to store a value under that name", 2)
    end
    reserved(key)
    check_value(key, value)
    rawset(self, key, value)
end

local function name() return "honeymoon_session.Session" end

for _, n in pairs(method_names) do
    if Methods[n] == nil and n ~= "cookie" then error("honeymoon_session: session.lua lacks the method " .. n) end
end

local S = {}

---A session over `data` (the table the engine decoded, or a new one).
---@return table session, table state
-- The data table holds nothing else, so pairs() walks the data without a __pairs. Fields that
-- are nil are left out of the constructor: each one costs a hash slot in every request.
function S.new(ctx, id, data, flash, shadow, meta, snap, version, secure, req, copy, n)
    if snap == nil then return S.fresh(ctx, id, secure, req) end
    local m = {
        __index = index, __newindex = guard, __tostring = name,
        ctx = ctx, id = id, state = "stored", secure = secure, req = req, committed = false,
        snap = snap,
    }
    if version ~= nil then m.ver = version end
    if copy ~= nil then m.copy, m.n = copy, n end
    if flash ~= nil then m.flash_old = flash end
    if shadow ~= nil then m.shadow = shadow end
    if meta ~= nil then
        m.meta = meta
        -- An id regenerate retired: readable until its grace ends, never written, no cookie.
        if type(meta.stale) == "number" then m.stale = true end
    end
    return setmetatable(data, m)
end

---A new session (nothing loaded): the anonymous request's, called without S.new's arguments.
function S.fresh(ctx, id, secure, req)
    -- Seven fields: a hash part of 8 slots, where 9 took 16 (committed and secure are nil
    -- until true).
    local m = {
        __index = index, __newindex = guard, __tostring = name,
        ctx = ctx, id = id, state = "new", req = req,
    }
    if secure then m.secure = true end
    return setmetatable({}, m)
end

local math_type = math.type -- nil before Lua 5.3: no integer subtype to tell apart

-- Whether a flat session (scalars only, as loaded: `m.copy` holds its `m.n` keys) is exactly
-- as loaded. Then its commit has nothing to do, and needs no crossing.
local unchanged
if rawget(_G, "jit") == nil then
    unchanged = function(s, m)
        local copy, n = m.copy, 0
        for k, v in next, s do
            local was = copy[k]
            -- A NaN, a table, 1 -> 1.0 or 0.0 -> -0.0 (equal, but stored differently) is a change.
            if v ~= was or type(v) == "table" or (math_type and math_type(v) ~= math_type(was))
                or (v == 0 and 1 / v ~= 1 / was) then
                return false
            end
            n = n + 1
        end
        return n == m.n
    end
else
    -- LuaJIT: the same check as a tail call per key, not a loop. LuaJIT compiles a hot loop as
    -- a trace of its own, and every trace through the commit then stopped at it (a flat
    -- session's loop runs once or twice), so the rest of the request ran in the interpreter:
    -- a read cost 2,700 instructions more. (On Lua 5.4 the calls cost more than the loop.)
    local function same_after(s, copy, k, left)
        local v
        k, v = next(s, k)
        if k == nil then return left == 0 end
        local was = copy[k]
        if v ~= was or type(v) == "table" or (math_type and math_type(v) ~= math_type(was))
            or (v == 0 and 1 / v ~= 1 / was) then
            return false
        end
        return same_after(s, copy, k, left - 1)
    end
    unchanged = function(s, m) return same_after(s, m.copy, nil, m.n) end
end

---Commits once: returns the Set-Cookie line, if any. `middleware`: the middleware's commit,
---for which a handler that unset req.session has ended the session's part in the request.
function S.commit(s, middleware)
    -- state()'s check without its call (every request commits); state() raises.
    local m = getmetatable(s)
    if m == nil or m.__index ~= index then m = state(s, 2) end
    if m.committed then return nil end
    m.committed = true -- before the work: a failing commit must not run again
    -- req.session = nil (or false): nothing saved and no cookie, the store keeps what it holds
    -- (express-session's default, unset = "keep").
    if middleware and not m.req.session then return nil end
    -- A retired id's response must not replace the newer cookie, nor write the old session.
    if m.stale then return nil end
    -- A flat stored session nobody changed: nothing to write, no cookie (the engine only
    -- hands out a copy when no option would make this commit do anything).
    if m.copy ~= nil and m.state == "stored" and m.flash_new == nil and m.flash_old == nil
        and m.shadow == nil and m.meta == nil and not m.must_save and not m.cookie_due
        and not m.touch and unchanged(s, m) then
        return nil
    end
    -- A new session that holds nothing costs nothing (unless told to save it).
    if m.state == "new" and next(s) == nil and m.flash_new == nil and m.shadow == nil
        and not m.must_save and not m.ctx.save_uninitialized then
        return nil
    end
    return commit(s, m, FINAL)
end

S.Methods = Methods
return S

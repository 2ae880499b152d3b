-- The HoneyMoon middleware: a thin layer over the native core (core:load, core:commit).
-- Embedded into the native module at build time; kept in Lua because hooking a response's
-- send is naturally Lua. Receives the core, its weak session -> request table (which lets
-- regenerate/destroy keep req.sessionID current) and the options it needs; returns the
-- middleware.
local core, requests, save_uninitialized, methods = ...
local name = core.name
local find, ipairs, next, pairs, rawget, rawset = string.find, ipairs, next, pairs, rawget, rawset
local getmetatable, setmetatable, type = getmetatable, setmetatable, type
-- Looked up once: a method call through the userdata would look them up every request.
local load, commit_session, new_id, fresh = core.load, core._commit, core._id, core._fresh
local cookie_prefix = name .. "="

-- A visitor without our cookie gets a lazy session: only an id until a handler first uses
-- it, then the native session (made under that id). A visitor who never touches the session
-- costs one native call instead of a native object, a commit and a finalizer.
-- Its slots, under keys no handler can name: `session[1] = x` must reach __newindex (and be
-- refused as a non-string key), not overwrite the id.
local ID, SECURE, REQ, NATIVE = {}, {}, {}, {}

local Lazy

local function check(lazy)
    if getmetatable(lazy) ~= Lazy then
        error("honeymoon_session: session methods are called with a colon: req.session:method(...)", 3)
    end
end

local function native(lazy)
    check(lazy)
    local s = rawget(lazy, NATIVE)
    if s == nil then
        s = fresh(core, rawget(lazy, ID), rawget(lazy, SECURE))
        requests[s] = rawget(lazy, REQ)
        rawset(lazy, NATIVE, s)
    end
    return s
end

local forward = {}
for _, method in ipairs(methods) do
    forward[method] = function(lazy, ...)
        local s = native(lazy)
        return s[method](s, ...)
    end
end
forward.getId = function(lazy)
    check(lazy)
    local s = rawget(lazy, NATIVE)
    if s == nil then return rawget(lazy, ID) end
    return s:getId()
end
-- Reads of a session that holds nothing yet need no native session: an anonymous visitor
-- checked for `has("userId")` on every page stays cheap. (Bad keys still go native, for its
-- error.)
forward.get = function(lazy, key, default)
    check(lazy)
    if rawget(lazy, NATIVE) == nil and type(key) == "string" then return default end
    local s = native(lazy)
    return s:get(key, default)
end
forward.has = function(lazy, key)
    check(lazy)
    if rawget(lazy, NATIVE) == nil and type(key) == "string" then return false end
    return native(lazy):has(key)
end
forward.all = function(lazy)
    check(lazy)
    local s = rawget(lazy, NATIVE)
    if s == nil then return {} end
    return s:all()
end

Lazy = {
    __index = function(lazy, key)
        local f = forward[key]
        if f ~= nil then return f end
        local s = rawget(lazy, NATIVE)
        if s == nil then return nil end -- nothing stored yet: no need to make it
        return s[key]
    end,
    __newindex = function(lazy, key, value) native(lazy)[key] = value end,
    __tostring = function() return "honeymoon_session.Session" end,
    -- Lua 5.2+: pairs walks the data, like the native session's; nothing is stored yet.
    __pairs = function(lazy)
        local s = rawget(lazy, NATIVE)
        if s ~= nil then return pairs(s) end
        return next, {}, nil
    end,
}

-- Stores what needs storing and adds the Set-Cookie line, if any.
local function commit(session, res)
    if getmetatable(session) == Lazy then
        local s = rawget(session, NATIVE)
        if s == nil then
            if not save_uninitialized then return end -- new and untouched: nothing to do
            s = native(session)
        end
        session = s
    end
    local line = commit_session(core, session)
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
        if value then header = cookie_prefix .. value end
    end
    local secure = req.secure == true
    local session, id
    -- Only a header that may carry our cookie is worth parsing natively.
    if header ~= nil and find(header, name, 1, true) then
        session, id = load(core, header, secure)
        requests[session] = req
    else
        id = new_id()
        session = setmetatable({ [ID] = id, [SECURE] = secure, [REQ] = req }, Lazy)
    end
    req.session, req.sessionID = session, id

    local send, committed = res.send, false
    -- On the instance, so json/redirect/render (which all call self:send) are covered too.
    res.send = function(self, ...)
        if not committed then
            committed = true -- before the work: a failing commit must not run again
            commit(session, res)
        end
        return send(self, ...)
    end
    nxt()
    if not committed then
        committed = true
        commit(session, res)
    end
end

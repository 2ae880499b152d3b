-- The export table pinned to the LuaLS stub (types/honeymoon_session.lua): every name the build
-- exports, with its kind, must be named in the stub's `honeymoon_session` class (a `function
-- M.<name>` or a `---@field <name> <type>`), and every name the stub gives must be exported
-- (an entry marked "Only in builds with the test-hooks feature" may be absent). Likewise the
-- session's methods, the core's public methods and the native stores' methods. A new export
-- without a stub entry fails here, so it cannot go undocumented.
local hs = require("honeymoon_session")

-- What the stub says: per class, name -> kind ("function", "string", "table", ...).
local function stub(path)
    local classes, current, hooks = {}, nil, {}
    local var_class = {} -- `local M = {}` after a @class line: M's functions are that class's
    local pending_hook = false
    for line in io.lines(path) do
        local class = line:match("^%-%-%-@class%s+([%w_.]+)")
        if class then
            current = class
            classes[class] = classes[class] or {}
        end
        local field, ty = line:match("^%-%-%-@field%s+([%w_]+)%??%s+(%S+)")
        if field and current then
            local kind = ty:match("^fun%(") and "function" or ty:match("^{") and "table"
                or ty:match('^"') and "string" or ty:match("^[%w_.]+")
            if kind:match("^honeymoon_session%.") or kind:match("%[%]$") then kind = "table" end
            classes[current][field] = kind
        end
        local var = line:match("^local%s+([%w_]+)%s*=%s*{}")
        if var and current then var_class[var] = current end
        if line:match("Only in builds with the test%-hooks feature") then pending_hook = true end
        local owner, sep, name = line:match("^function%s+([%w_]+)([.:])([%w_]+)%(")
        if owner and var_class[owner] then
            classes[var_class[owner]][name] = "function"
            if pending_hook then hooks[name] = true end
            pending_hook = false
        end
    end
    return classes, hooks
end

local classes, hooks = stub("types/honeymoon_session.lua")
-- What a build may lack: the test hooks (the rock's build), and without the redis feature
-- RedisStore and what honeymoon_session.stores.redis needs.
local optional = {}
for name in pairs(hooks) do optional[name] = true end
if hs.RedisStore == nil then optional.RedisStore, optional._redis = true, true end

-- name -> kind of what `t` holds (and, with `public`, only names without a leading underscore).
local function kinds(t, public)
    local out = {}
    for k, v in pairs(t) do
        if type(k) == "string" and not (public and k:sub(1, 1) == "_") then out[k] = type(v) end
    end
    return out
end

local function compare(what, actual, documented, optional)
    local problems = {}
    for name, kind in pairs(actual) do
        local doc = documented[name]
        if doc == nil then
            problems[#problems + 1] = what .. "." .. name .. " (a " .. kind .. ") is exported but not in the stub"
        elseif doc ~= "any" and doc ~= kind and not (doc == "integer" and kind == "number") then
            problems[#problems + 1] = what .. "." .. name .. " is a " .. kind .. ", the stub says " .. doc
        end
    end
    for name in pairs(documented) do
        if actual[name] == nil and not (optional and optional[name]) then
            problems[#problems + 1] = what .. "." .. name .. " is in the stub but not exported"
        end
    end
    table.sort(problems)
    return problems
end

describe("the export table", function()
    it("is the stub's honeymoon_session class, name for name and kind for kind", function()
        assert.are.same({}, compare("honeymoon_session", kinds(hs), classes["honeymoon_session"], optional))
    end)

    it("has the test hooks exactly in a build with the test-hooks feature", function()
        -- Both or neither: the specs run on a build with them (make both).
        assert.are.equal(hs._advance_clock == nil, hs._record_patch == nil)
        assert.is_true(next(hooks) ~= nil, "the stub marks the test hooks")
    end)

    it("gives a session the stub's Session methods", function()
        local s = hs.core({ secret = "exports-spec" }):load(nil)
        -- The methods live behind __index (a function), in its upvalue `Methods`
        -- (src/lua/session.lua): every one of them, not only those the stub names.
        local index, methods = getmetatable(s).__index, nil
        for i = 1, math.huge do
            local name, value = debug.getupvalue(index, i)
            if name == nil then break end
            if name == "Methods" then methods = kinds(value) end
        end
        assert.is_table(methods, "session.lua's __index keeps its methods in the upvalue Methods")
        local documented = {}
        for name, kind in pairs(classes["honeymoon_session.Session"]) do
            if kind == "function" then documented[name] = kind end
        end
        assert.are.same({}, compare("session", methods, documented))
        assert.are.equal("table", type(s.cookie))
    end)

    it("gives session.cookie the stub's SessionCookie fields, and nothing of the engine's lifetime", function()
        local core = hs.core({ secret = "exports-spec", cookie = {
            secure = true, sameSite = "None", domain = "example.com", partitioned = true, priority = "high" } })
        local s = core:load(nil)
        local documented = classes["honeymoon_session.SessionCookie"]
        for name, kind in pairs(documented) do
            local v = s.cookie[name]
            assert.is_true(v == nil or type(v) == kind or (kind == "integer" and type(v) == "number"),
                "session.cookie." .. name .. " is a " .. type(v) .. ", the stub says " .. kind)
        end
        assert.are.equal(true, s.cookie.partitioned)
        assert.are.equal("High", s.cookie.priority)
        -- The store's ttl (seconds) is not a cookie attribute: express-session's cookie has none,
        -- and a reader would take it for the cookie's lifetime (maxAge, in ms).
        for _, name in ipairs({ "ttl", "owner", "https", "expires" }) do
            assert.is_nil(s.cookie[name], "session.cookie." .. name)
        end
    end)

    it("gives a core the stub's Core methods (the public ones)", function()
        local core = hs.core({ secret = "exports-spec" })
        local actual = kinds(getmetatable(core).__index, true)
        actual.new, actual.header_text = nil, nil -- the adapters' and exports.lua's, not an app's
        actual.name = type(core.name)
        assert.are.same({}, compare("core", actual, classes["honeymoon_session.Core"]))
    end)

    it("gives the native stores the stub's Store methods", function()
        local documented = {}
        for name, kind in pairs(classes["honeymoon_session.Store"]) do
            -- merge, staleAware and format are for stores written in Lua.
            if kind == "function" and name ~= "merge" then documented[name] = kind end
        end
        for _, make in ipairs({ "MemoryStore", "RedisStore" }) do
            if hs[make] then
                local actual = kinds(getmetatable(hs[make]()), true)
                assert.are.same({}, compare(make, actual, documented))
            end
        end
    end)
end)

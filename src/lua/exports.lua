-- The public export table: wires the embedded chunks (store -> session -> core -> middleware)
-- over the native functions, and gives every error the module raises one shape, a plain
-- "honeymoon_session: ..." string. Receives the native table and the chunks (src/lib.rs).
local native, chunks = ...
local pcall, error, pairs, tostring, type = pcall, error, pairs, tostring, type
local setmetatable, getmetatable = setmetatable, getmetatable

---The plain message of an error this module raised.
---@param err any
---@return string
local function message(err)
    if type(err) == "string" then return err end
    -- Never raises: an error object whose __tostring fails (or returns no string) is named by its type.
    local ok, text = pcall(tostring, err)
    if not ok or type(text) ~= "string" then return "a " .. type(err) .. " error value" end
    text = text:gsub("^runtime error: ", "", 1)
    return (text:gsub("\n*stack traceback:.*$", ""))
end

local function unwrap(ok, ...)
    if not ok then error(message((...)), 0) end
    return ...
end

local function strict(f)
    return function(...) return unwrap(pcall(f, ...)) end
end

-- The check a method of the objects whose metatable is `mt` makes first: called with a dot
-- (`x.load(...)`), it would fail inside on its first argument, so it says so at the caller's
-- line (level 3: the method's caller). The core's, and the adapters' (as `_colon_check`).
local function colon_check(mt, kind)
    local message = "honeymoon_session: " .. kind .. " methods are called with a colon: " .. kind .. ":"
    return function(self, name)
        if getmetatable(self) ~= mt then error(message .. name .. "(...)", 3) end
    end
end

local ops = chunks.store()
local Session = chunks.session(ops, native.methods, native.array_mt, native._owner, native._path)
local Core = chunks.core(ops, Session, native.store_methods, native._id_into, colon_check)
local middleware = chunks.middleware

-- A native store is handed out as a Lua object over its userdata, so its methods raise plain
-- strings too; the engine finds the userdata under `_native` and calls it directly.
-- sessionsOf and destroyAll are the owner index's ("log out everywhere"), for the app.
local store_methods = {
    "get", "set", "destroy", "touch", "exists", "all", "length", "clear", "sessionsOf", "destroyAll",
}
local function native_store(make, kind)
    local Store = {}
    Store.__index = Store
    Store.__tostring = function(self) return tostring(self._native) end
    for _, name in pairs(store_methods) do
        Store[name] = function(self, ...)
            -- self may be a wrapper that inherits the store through __index: that is a store too.
            local ud = type(self) == "table" and self._native
            if type(ud) ~= "userdata" then
                error("honeymoon_session: store methods are called with a colon: store:" .. name .. "(...)", 2)
            end
            return unwrap(pcall(ud[name], ud, ...))
        end
    end
    return function(opts)
        if opts ~= nil and type(opts) ~= "table" then
            error("honeymoon_session: " .. kind .. " takes an options table or nothing, got a " .. type(opts), 2)
        end
        return setmetatable({ _native = unwrap(pcall(make, opts)) }, Store)
    end
end

local M = {}
M.version = native.version

-- A core for session() or core(): their own name in a bad-argument error, at the caller's line.
local function core_of(opts, caller)
    if getmetatable(opts) == Core then return opts end
    if opts ~= nil and type(opts) ~= "table" then
        error("honeymoon_session: " .. caller .. " takes an options table, got a " .. type(opts), 3)
    end
    local engine = unwrap(pcall(native.engine, opts))
    return Core.new(engine, opts and opts.store)
end

---The framework-agnostic core (see the README's "Other servers"). A core is returned as it is.
---@param opts table|honeymoon_session.Core|nil
---@return honeymoon_session.Core
function M.core(opts)
    local core = core_of(opts, "core") -- not a tail call: the error's level counts this frame
    return core
end

---The middleware: function(req, res, next).
---@param opts table|nil
function M.session(opts)
    return middleware(core_of(opts, "session"))
end

M.flash = chunks.flash()
M.MemoryStore = native_store(native.MemoryStore, "MemoryStore")
if native.RedisStore then M.RedisStore = native_store(native.RedisStore, "RedisStore") end
local decode = strict(native.json.decode)
M.json = {
    encode = strict(native.json.encode),
    ---@param text string
    decode = function(text)
        if type(text) ~= "string" then
            error("honeymoon_session: json.decode takes a string, got a " .. type(text), 2)
        end
        return decode(text)
    end,
}

local array_mt = native.array_mt
---Marks `t` (or a new table) as a JSON array: the session stores it, and a Node app sharing the
---session reads it, as an array, even when it is empty or has holes. Tables the module decodes
---from JSON arrays carry the mark already.
---@param t table?
---@return table t
function M.array(t)
    if t == nil then t = {} end
    if type(t) ~= "table" then
        error("honeymoon_session: array(t) takes a table or nothing, got a " .. type(t), 2)
    end
    local mt = getmetatable(t)
    if mt ~= nil and mt ~= array_mt then
        error("honeymoon_session: array(t): the table already has a metatable of its own", 2)
    end
    return setmetatable(t, array_mt)
end
M.array_mt = array_mt
M._default_name = native.default_name
M._colon_check = colon_check -- internal: the adapters' method check
M.error_message = message
-- A record store's merge (a plain C function under it: its errors are plain strings already):
-- the merged record, and the owner and whether the merge changed it where the session names
-- one. Where the merged session keeps another lifetime than the commit assumed (another
-- request changed it since this one loaded the session), that is noted for the commit whose
-- patch this is (src/lua/store.lua's `merging`: on the commit's state, so nothing outlives its
-- request), for the commit to give the store's TTL and the cookie with one touch more, with no
-- change to the store's own code; and returned fourth, for a store that writes the session
-- with that lifetime's TTL in the merge itself, atomically (SharedDictStore), and returns it
-- after the version (then no touch follows).
local merge_patch, merging = native._merge_patch, ops.merging
function M._merge_patch(current, patch)
    local merged, owner, changed, kept = merge_patch(current, patch)
    local m = merging[patch]
    if m ~= nil then
        local notes = m.kept_notes
        if kept ~= nil then
            if notes == nil then
                notes = {}
                m.kept_notes = notes
            end
            notes[patch] = kept
        elseif notes ~= nil then
            notes[patch] = nil -- a second merge of the patch found the lifetime assumed
        end
    end
    if kept ~= nil then return merged, owner, changed, kept end
    if owner == nil and not changed then return merged end
    return merged, owner, changed
end
M._record_meta = native._record_meta
M._now_ms = native._now_ms
M._owner = strict(native._owner)
M._shown = native._shown
M._redis = native._redis -- internal: what honeymoon_session.stores.redis needs from Rust
M._monotonic = native._monotonic
-- Only in builds with the test-hooks feature:
M._advance_clock = native._advance_clock
M._record_patch = native._record_patch and strict(native._record_patch)
return M

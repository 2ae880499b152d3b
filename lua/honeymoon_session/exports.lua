-- The public export table, over the native one. Setup functions raise plain string errors
-- ("honeymoon_session: ..."), as Lua modules do, instead of mlua's error objects; they run
-- once, so the pcall costs nothing that matters.
local native = ...
local pcall, error, pairs, tostring = pcall, error, pairs, tostring

---The plain message of an error this module raised (mlua error values carry a prefix and a
---traceback).
---@param err any
---@return string
local function message(err)
    local text = tostring(err):gsub("^runtime error: ", "", 1)
    return (text:gsub("\n*stack traceback:.*$", ""))
end

local function strict(f)
    return function(...)
        local ok, a, b = pcall(f, ...)
        if not ok then error(message(a), 0) end
        return a, b
    end
end

local M = {}
for k, v in pairs(native) do M[k] = v end
M.session = strict(native.session)
M.core = strict(native.core)
M.MemoryStore = strict(native.MemoryStore)
if native.RedisStore then M.RedisStore = strict(native.RedisStore) end
M.flash = native.flash
M.json = { encode = strict(native.json.encode), decode = strict(native.json.decode) }
M.error_message = message
return M

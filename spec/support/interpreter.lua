-- What the running interpreter is and can do, for the specs that depend on it. A spec that
-- cannot run here says so with pending(reason): a skip is never counted as a pass.
local M = {}

local jit = rawget(_G, "jit")
local version = _VERSION:sub(5) -- "5.1" .. "5.4"

---lua51, lua52, lua53, lua54 or luajit: the build/ directory of this interpreter's module.
M.flavour = jit and "luajit" or "lua" .. version:gsub("%.", "")
---The command that runs this interpreter (Debian's names).
M.command = jit and "luajit" or "lua" .. version
---Lua 5.3 and 5.4 have an integer subtype; on 5.1, 5.2 and LuaJIT every number is a double.
M.has_integers = math.type ~= nil
---Whether a coroutine can yield from inside pcall. Not on Lua 5.1 (PUC): there a store or handler
---that yields raises "attempt to yield across metamethod/C-call boundary".
M.yields_across_pcall = (function()
  local co = coroutine.create(function() return pcall(coroutine.yield) end)
  coroutine.resume(co)
  return coroutine.status(co) == "suspended"
end)()

M.NO_INTEGERS = "Lua 5.1, 5.2 and LuaJIT have one number type (a double)"
M.NO_YIELD_IN_PCALL = "Lua 5.1 cannot yield across pcall (the framework's and the module's)"

return M

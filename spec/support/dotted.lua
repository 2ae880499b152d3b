-- Calls each of a store's methods with a dot (store.get(id)) and checks the error: the
-- module's colon message, at the line of the call.
local assert = require("luassert")

local METHODS = { "get", "set", "merge", "destroy", "touch", "exists", "sessionsOf", "destroyAll", "all", "length",
  "clear" }

return function(store)
  for _, name in ipairs(METHODS) do
    local line = debug.getinfo(1, "l").currentline + 1
    local ok, err = pcall(function() local _ = store[name]("SESSIONID") end)
    assert.is_false(ok, name)
    local want = "dotted.lua:" .. line .. ": honeymoon_session: store methods are called with a colon: store:" .. name
      .. "(...)"
    assert.equal(want, tostring(err):sub(-#want), name)
  end
end

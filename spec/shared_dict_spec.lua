-- The SharedDictStore outside nginx: the module loads (an installed rock's files must), and new()
-- refuses at once, saying why. Its contract is checked inside nginx by
-- scripts/shared_dict_check.sh (spec/nginx/shared_dict.lua).
local SharedDictStore = require("honeymoon_session.stores.shared_dict")

describe("SharedDictStore outside nginx", function()
  it("loads, and new() says it needs nginx", function()
    assert.is_function(SharedDictStore.new)
    local ok, err = pcall(SharedDictStore.new, { dict = "sessions" })
    assert.is_false(ok)
    assert.equals("honeymoon_session: SharedDictStore: not running under nginx with the Lua module (there is no "
      .. "ngx.shared); outside nginx use MemoryStore or RedisStore", err)
  end)

  it("checks its options before looking for nginx", function()
    local function message(opts)
      local ok, err = pcall(SharedDictStore.new, opts)
      assert.is_false(ok)
      return err
    end
    assert.equals("honeymoon_session: SharedDictStore: unknown option ttl (options: dict, prefix, lock_exptime, "
      .. "lock_timeout)", message({ ttl = 5 }))
    assert.equals("honeymoon_session: SharedDictStore: prefix must be a string, got number", message({ prefix = 1 }))
    assert.equals("honeymoon_session: SharedDictStore: options must be a table, got string", message("sessions"))
  end)
end)

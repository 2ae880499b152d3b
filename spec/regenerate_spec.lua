-- regenerate(true) moves data to a new id only from a session that is still alive: a session
-- another request destroyed (a logout, an admin's kill) while this one ran must not come back
-- under a new id. save() says when the store no longer holds the session.
local hs = require("honeymoon_session")
local TableStore = require("spec.support.table_store")

local function cookie(line) return (assert(line, "a Set-Cookie line")):match("^([^;]*)") end

---A session of `user` stored through `core`: its cookie.
local function logged_in(core, user)
  local s = core:load(nil)
  s.user = user
  return cookie(core:commit(s)[1])
end

local stores = {
  { "MemoryStore", function() return hs.MemoryStore() end },
  { "a Lua table store", function() return TableStore.new() end },
}

for _, case in ipairs(stores) do
  describe("regenerate(true) on " .. case[1], function()
    local core

    before_each(function()
      core = hs.core({ secret = "regen-secret", store = case[2]() })
    end)

    it("keeps the data of a live session", function()
      local c = logged_in(core, "alice")
      local a = core:load(c)
      local id = a:regenerate(true)
      local line = core:commit(a)[1]
      assert.matches(id, line, 1, true)
      assert.equal("alice", core:load(cookie(line)).user)
    end)

    it("does not bring back a session another request destroyed meanwhile", function()
      local c = logged_in(core, "alice")
      local a, b = core:load(c), core:load(c)
      b:destroy()
      core:commit(b) -- the logout
      a:regenerate(true)
      local lines = core:commit(a)
      assert.is_nil(a.user, "the destroyed session's data stays gone")
      if lines[1] then assert.is_nil(core:load(cookie(lines[1])).user) end
    end)

    it("does not bring back a session save() found gone", function()
      local c = logged_in(core, "bob")
      local a, b = core:load(c), core:load(c)
      b:destroy()
      core:commit(b)
      a.x = 1
      assert.is_false(a:save())
      a:regenerate(true)
      local lines = core:commit(a)
      assert.is_nil(a.user)
      if lines[1] then assert.is_nil(core:load(cookie(lines[1])).user) end
    end)

    it("save() answers true when it stored", function()
      local a = core:load(logged_in(core, "carol"))
      a.y = 2
      assert.is_true(a:save())
    end)
  end)
end

-- `staleAware` vouches that a store's merge and touch refuse what regenerate retired; a store
-- without merge writes whole sessions with set, which refuses nothing, so the module still
-- reads before that write.
describe("a Lua store without merge that sets staleAware", function()
  local core, store

  before_each(function()
    store = TableStore.new()
    store.staleAware = true
    core = hs.core({ secret = "regen-secret", store = store })
  end)

  it("does not write back a session another request destroyed meanwhile", function()
    local c = logged_in(core, "ann")
    local a = core:load(c)
    local b = core:load(c)
    b:destroy()
    core:commit(b)
    a.cart = "apple"
    assert.same({}, core:commit(a))
    assert.equal(0, store:length())
  end)

  it("does not overwrite the id a login retired meanwhile", function()
    local c = logged_in(core, "ann")
    local id = c:match("s%%3A([%w_%-]+)%.")
    local a = core:load(c)
    local b = core:load(c)
    b:regenerate(true)
    core:commit(b)
    a.cart = "apple"
    assert.same({}, core:commit(a))
    local retired = store:get(id)
    assert.is_table(retired, "the retired id runs out its grace")
    assert.is_nil(retired.cart)
  end)
end)

-- save() stores the session at once; the cookie it makes due goes out only if the store still
-- holds the session at the commit: a login (or a logout) another request finished meanwhile
-- must not have its cookie replaced by this one.
for _, case in ipairs(stores) do
  describe("a cookie due from save() on " .. case[1], function()
    local core, store

    before_each(function()
      store = case[2]()
      core = hs.core({ secret = "regen-secret", store = store })
    end)

    it("is sent when nothing happened meanwhile", function()
      local c = logged_in(core, "ann")
      local a = core:load(c)
      a.cart = "apple"
      assert.is_true(a:save())
      assert.equal(c, cookie(core:commit(a)[1]))
    end)

    it("is not sent over the cookie of a login that retired the id meanwhile", function()
      local c = logged_in(core, "ann")
      local a = core:load(c)
      local b = core:load(c)
      a.cart = "apple"
      assert.is_true(a:save())
      b:regenerate(true)
      assert.not_equal(c, cookie(core:commit(b)[1]))
      assert.same({}, core:commit(a))
    end)

    it("is not sent for a session another request destroyed meanwhile", function()
      local c = logged_in(core, "ann")
      local a = core:load(c)
      local b = core:load(c)
      assert.is_true(a:save())
      b:destroy()
      core:commit(b)
      assert.same({}, core:commit(a))
      assert.equal(0, store:length())
    end)
  end)
end

describe("the ids regenerate retired", function()
  it("are still deleted by a destroy() retried after a store error", function()
    local store = TableStore.new()
    local core = hs.core({ secret = "regen-secret", store = store })
    local c = logged_in(core, "ann")
    local old = c:match("s%%3A([%w_%-]+)%.")
    local r = core:load(c)
    r:regenerate(true)
    local destroy, fail = store.destroy, true
    function store:destroy(id)
      if fail then
        fail = false
        error("connection reset", 0)
      end
      return destroy(self, id)
    end
    assert.is_false((pcall(r.destroy, r)))
    assert.is_table(store:get(old), "the failed destroy deleted nothing")
    assert.is_true((pcall(r.destroy, r)))
    core:commit(r)
    assert.is_nil(store:get(old))
  end)
end)

-- Stored sessions as the codec reads them: JSON another program wrote (a Node app through
-- Redis, or a Lua 5.4 server sharing the store with a LuaJIT one), read back unchanged.

local hs = require("honeymoon_session")

---A record store (format = "record") that holds what the spec puts in `rows` and counts writes.
local function record_store()
  local store = { format = "record", rows = {}, writes = 0 }
  function store:get(id) return self.rows[id] end
  function store:set(id, record)
    self.writes = self.writes + 1
    self.rows[id] = record
  end
  function store:merge(id, patch)
    self.writes = self.writes + 1
    local current = self.rows[id]
    if current == nil then return false end
    local merged = hs._merge_patch(current, patch)
    if merged == false then return false end
    self.rows[id] = merged
    return true
  end
  function store:destroy(id) self.rows[id] = nil end
  function store:touch(id) return self.rows[id] ~= nil end
  function store:exists(id) return self.rows[id] ~= nil end
  function store:all() return {} end
  function store:length() return 0 end
  function store:clear() self.rows = {} end
  return store
end

describe("a session read from JSON and left alone", function()
  -- What connect-redis's JSON holds, as the event-loop RedisStore hands it to the engine.
  local function loaded(json)
    local store = record_store()
    local core = hs.core({ secret = "codec-secret", store = store })
    local s, id = core:load(nil, false)
    s.seed = true
    local cookie = core:commit(s)[1]:match("^([^;]*)")
    store.rows[id] = assert(hs._redis.decode(json))
    store.writes = 0
    return core, store, cookie
  end

  it("is not written back, whatever numbers the JSON holds (every interpreter)", function()
    -- 1.0 and 2.0 as a Lua 5.3/5.4 server writes its floats; 2^63 as a u64 (another writer).
    local core, store, cookie = loaded(
      '{"f":1.0,"nested":{"g":2.0,"list":[3.0,0.5]},"neg":-0.0,"big":9223372036854775808,'
        .. '"huge":1e300,"i":7,"cookie":{"originalMaxAge":86400000,"expires":"2030-01-01T00:00:00.000Z",'
        .. '"secure":false,"httpOnly":true,"path":"/"}}')
    local s = core:load(cookie, false)
    assert.equal(1, s.f)
    assert.equal(2, s.nested.g)
    assert.equal(0.5, s.nested.list[2])
    assert.equal(7, s.i)
    local lines = core:commit(s)
    assert.equal(0, store.writes)
    assert.same({}, lines)
  end)
end)

describe("stored JSON the event-loop RedisStore cannot hand over", function()
  -- The record store reads JSON with hs._redis.decode (raising `RedisStore:get failed: …
  -- (redis at …)` with what it returns): what it lets through, the engine refuses as
  -- `store:get failed`, without the store's name or address.
  local function nested(levels) -- a session whose value `a` makes `levels` levels in all
    return '{"a":' .. ("["):rep(levels - 1) .. ("]"):rep(levels - 1) .. "}"
  end

  it("refuses nesting past 64 levels itself, as past serde_json's 128", function()
    assert.is_string(hs._redis.decode(nested(64)))
    for _, levels in ipairs({ 65, 100, 200 }) do
      local record, why = hs._redis.decode(nested(levels))
      assert.is_nil(record and #record, levels .. " levels")
      assert.equal("stored session data nests deeper than 64 levels", why)
    end
  end)

  it("refuses a record larger than the maxSize it is given itself", function()
    -- 200 strings of 100 bytes: about 20,600 bytes as a record, within the parse's allowance
    -- (maxSize and 4096 bytes for the cookie object) at maxSize 20,000.
    local parts = {}
    for i = 1, 200 do parts[i] = ('"k%d":"%s"'):format(i, ("x"):rep(100)) end
    local json = "{" .. table.concat(parts, ",") .. "}"
    local size = #assert(hs._redis.decode(json))
    assert.is_true(size > 20000 and size < 24096, "record of " .. size .. " bytes")
    local record, why = hs._redis.decode(json, 20000)
    assert.is_nil(record and #record)
    assert.equal(("the stored session is %d bytes, more than maxSize (20000 bytes)"):format(size), why)
    assert.is_string(hs._redis.decode(json, size))
  end)
end)

describe("a number a session stores, as another interpreter or a JSON reader gets it", function()
  -- LuaJIT, 5.1 and 5.2 hold 2^63 as a double; it was stored as the integer 2^63 - 1 (the
  -- saturated conversion), which a Lua 5.3/5.4 server sharing the store read as
  -- 9223372036854775807 (an integer, not equal to 2^63), and the RedisStore's JSON carried so.
  it("is the number the session held, 2^63 included (every interpreter)", function()
    local store = record_store()
    local core = hs.core({ secret = "codec-secret", store = store })
    local s, id = core:load(nil, false)
    s.big, s.neg, s.mid = 2 ^ 63, -(2 ^ 63), 2 ^ 62
    local cookie = core:commit(s)[1]:match("^([^;]*)")
    local json = assert(hs._redis.encode(store.rows[id], 60))
    local big = json:match('"big":([^,}]+)')
    assert.are_not.equal("9223372036854775807", big, json)
    assert.equal(2 ^ 63, tonumber(big), json)
    assert.equal(-(2 ^ 63), tonumber(json:match('"neg":([^,}]+)')), json)
    assert.equal(2 ^ 62, tonumber(json:match('"mid":([^,}]+)')), json)
    local again = core:load(cookie, false)
    assert.same({ 2 ^ 63, -(2 ^ 63), 2 ^ 62 }, { again.big, again.neg, again.mid })
  end)
end)

-- The lifetime race, store by store: request A loads the session, request B (a browser's
-- parallel request, a "remember me" login) sets its lifetime and commits, then A writes or
-- touches it and commits. The merge or touch keeps B's lifetime in the store, so A's commit
-- must give the session that lifetime too: the store's TTL and the Max-Age of A's cookie. And
-- the other way round (B sets a browser-session cookie, or a shorter life), and under
-- absoluteTimeout's cap.
local hs = require("honeymoon_session")
local App = require("examples.framework.app")
local Client = require("examples.framework.client")
local Site = require("spec.support.site")

local NAME = "honeymoon.sid"
local TTL = 3600
local DAY = 86400
local MONTH = 30 * DAY

local function now_s() return hs._now_ms() / 1000 end

---One race. `kit` makes the store (`kit.store()`), says how long it still keeps session `id`
---(`kit.left(store, id)`, seconds; nil: by letting the clock run, `kit.lives`), and runs a
---piece of the request flow (`kit.run(f)`: inside an event loop for a store whose calls yield).
---`b` is the lifetime request B sets (ms, or false), `a` what request A does: "write", "touch"
---(session:touch()) or "rolling" (a read under rolling). Returns A's Set-Cookie line, the
---store and the session id.
local function race(kit, opts, b, a)
  local store = kit.store()
  local o = { secret = "race-secret", store = store, ttl = TTL }
  for k, v in pairs(opts or {}) do o[k] = v end
  if a == "rolling" then o.rolling = true end
  local core = hs.core(o)
  local app = App.new()
  app:use(hs.session(core))
  app:post("/login", function(req, res) req.session.user = "ann" res:text("in") end)
  app:post("/remember", function(req, res) req.session.cookie.maxAge = b res:text("") end)
  local line, id
  kit.run(function()
    local c = Client.new(app)
    c:post("/login")
    id = c:cookie(NAME):match("^s%%3A([^.]+)%.")
    local loaded = core:load(NAME .. "=" .. c:cookie(NAME)) -- request A
    local r = c:post("/remember") -- request B, while A runs
    assert(#Site.cookie_lines(r, NAME) == 1, "B's commit sent its cookie")
    if a == "write" then loaded.hits = 1 elseif a == "touch" then loaded:touch() end
    line = core:commit(loaded)[1]
  end)
  return line, store, id
end

---Asserts the store keeps session `id` for about `want` seconds.
local function lives(kit, store, id, want)
  local left = kit.left and kit.left(store, id)
  if kit.left then
    assert.is_number(left, "the store holds the session")
    assert.is_true(math.abs(left - want) <= 5, ("the store keeps it %s s, not %d"):format(tostring(left), want))
    return
  end
  Site.advance(want - 5)
  assert.is_true(store:exists(id), "still stored 5 s before its end")
  Site.advance(10)
  assert.is_false(store:exists(id), "gone 5 s after its end")
end

local function check_races(kit)
  for _, step in ipairs({ { "write", "writes" }, { "touch", "calls touch()" }, { "rolling", "reads under rolling" } }) do
    local a, does = step[1], step[2]
    it("A " .. does .. " after B set remember me: A's cookie and the store keep the 30 days", function()
      local line, store, id = race(kit, nil, MONTH * 1000, a)
      assert.is_string(line, "A's response sends the cookie")
      assert.equal(tostring(MONTH), Site.attr(line, "Max-Age"))
      lives(kit, store, id, MONTH)
    end)

    it("A " .. does .. " after B set a shorter life: both follow it", function()
      local line, store, id = race(kit, nil, 60000, a)
      assert.equal("60", Site.attr(line, "Max-Age"))
      lives(kit, store, id, 60)
    end)
  end

  it("A writes after B set a browser-session cookie: A's cookie is one too", function()
    local line, store, id = race(kit, { cookie = { maxAge = 2 * TTL } }, false, "write")
    assert.is_string(line)
    assert.is_nil(Site.attr(line, "Max-Age"))
    assert.is_nil(Site.attr(line, "Expires"))
    assert.is_true(kit.left == nil or kit.left(store, id) ~= nil)
  end)

  it("A touches after B set remember me under absoluteTimeout: both are capped by what is left", function()
    local line, store, id = race(kit, { absoluteTimeout = 2 * DAY }, MONTH * 1000, "touch")
    local max_age = tonumber(Site.attr(line, "Max-Age"))
    assert.is_true(max_age > 2 * DAY - 60 and max_age <= 2 * DAY, line)
    lives(kit, store, id, max_age)
  end)
end

local function plain(f) f() end

describe("the lifetime race: MemoryStore", function()
  check_races({ store = hs.MemoryStore, run = plain })
end)

describe("the lifetime race: RedisStore", function()
  local RedisServer = require("scripts.lib.redis_server")
  local server
  lazy_setup(function() server = RedisServer.start() end)
  lazy_teardown(function() server:close() end)
  local function left(_, id) return tonumber((server:cli("TTL", "sess:" .. id):match("%-?%d+"))) end

  describe("native (blocking)", function()
    check_races({ store = function() return hs.RedisStore({ url = server.url }) end, left = left, run = plain })

    it("keeps Node's exact originalMaxAge, and writes expires for the lifetime kept", function()
      local kit = { store = function() return hs.RedisStore({ url = server.url }) end, left = left, run = plain }
      local _, _, id = race(kit, nil, MONTH * 1000, "write")
      local stored = hs.json.decode((server:cli("GET", "sess:" .. id):gsub("\n$", "")))
      assert.equal(MONTH * 1000, stored.cookie.originalMaxAge)
      assert.equal(1, stored.hits)
      -- expires: a month from now by the module's clock, not an hour (ISO dates sort as text).
      local soon = os.date("!%Y-%m-%dT%H:%M:%S", math.floor(now_s()) + 29 * DAY)
      assert.is_true(stored.cookie.expires > soon, stored.cookie.expires)
    end)
  end)
end)

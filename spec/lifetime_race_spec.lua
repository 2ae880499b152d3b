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
local TableStore = require("spec.support.table_store")
local FakeDict = require("spec.support.fake_dict")
local SharedDictStore = require("honeymoon_session.stores.shared_dict")
local Interpreter = require("spec.support.interpreter")

local NAME = "honeymoon.sid"
local TTL = 3600
local DAY = 86400
local MONTH = 30 * DAY

local function now_s() return hs._now_ms() / 1000 end

---A record store of a user's own: records with an expiry by the module's clock, merged with
---hs._merge_patch and written with the TTL it is handed, as the README's contract shows.
local function record_store(stale_aware)
  local rows = {}
  local s = { format = "record", rows = rows, staleAware = stale_aware }
  local function live(id)
    local r = rows[id]
    if r and r.expires > now_s() then return r end
    rows[id] = nil
  end
  function s:get(id) local r = live(id) return r and r.record end
  function s:set(id, record, ttl) rows[id] = { record = record, expires = now_s() + ttl } end
  function s:merge(id, patch, ttl)
    local r = live(id)
    if not r then return false end
    local merged = hs._merge_patch(r.record, patch)
    if not merged then return false end
    rows[id] = { record = merged, expires = now_s() + ttl }
    return true
  end
  function s:touch(id, ttl)
    local r = live(id)
    if not r then return false end
    r.expires = now_s() + ttl
    return true
  end
  function s:destroy(id) rows[id] = nil end
  function s:exists(id) return live(id) ~= nil end
  function s:all()
    local ids = {}
    for id in pairs(rows) do if live(id) then ids[#ids + 1] = id end end
    return ids
  end
  function s:length() return #s:all() end
  function s:clear() for id in pairs(rows) do rows[id] = nil end end
  function s.left(id) local r = live(id) return r and r.expires - now_s() end
  return s
end

---The spec's TableStore (tables, not records) with a merge that applies the changed keys.
local function table_store()
  local s = TableStore.new({ clock = now_s })
  function s:merge(id, set, removed, ttl)
    local row = self.rows[id]
    if not row or row.expires_at <= now_s() then return false end
    for k, v in pairs(set) do row.data[k] = v end
    for _, k in ipairs(removed) do row.data[k] = nil end
    row.expires_at = now_s() + ttl
    return true
  end
  function s.left(id) local row = s.rows[id] return row and row.expires_at - now_s() end
  return s
end

---One race. `kit` makes the store (`kit.store()`), says how long it still keeps session `id`
---(`kit.left(store, id)`, seconds; nil: by letting the clock run, `kit.lives`), and runs a
---piece of the request flow (`kit.run(f)`: inside an event loop for a store whose calls yield).
---`b` is the lifetime request B sets (ms, or false), `a` what request A does: "write", "touch"
---(session:touch()), "rolling" (a read under rolling), "owner" (a write that logs in as bob:
---under the option `index = "user"`, a new owner in the bookkeeping) or a number (it sets its
---own lifetime, ms, and logs in as bob). `first`: option names the core of the request that
---first stored the session went without (a setting turned on since). Returns A's Set-Cookie
---line, the store, the session id and a function that loads the session again (as the next
---request would).
local function race(kit, opts, b, a, first)
  local store = kit.store()
  local o = { secret = "race-secret", store = store, ttl = TTL }
  for k, v in pairs(opts or {}) do o[k] = v end
  if a == "rolling" then o.rolling = true end
  local function app_of(core)
    local app = App.new()
    app:use(hs.session(core))
    app:post("/login", function(req, res) req.session.user = "ann" res:text("in") end)
    app:post("/remember", function(req, res) req.session.cookie.maxAge = b res:text("") end)
    return app
  end
  local core = hs.core(o)
  local app = app_of(core)
  local before = app
  if first then
    local earlier = {}
    for k, v in pairs(o) do earlier[k] = v end
    for _, k in ipairs(first) do earlier[k] = nil end
    before = app_of(hs.core(earlier))
  end
  local line, id, cookie
  kit.run(function()
    local c = Client.new(before)
    c:post("/login")
    c.app = app
    cookie = NAME .. "=" .. c:cookie(NAME)
    id = c:cookie(NAME):match("^s%%3A([^.]+)%.")
    local loaded = core:load(cookie) -- request A
    local r = c:post("/remember") -- request B, while A runs
    assert(#Site.cookie_lines(r, NAME) == 1, "B's commit sent its cookie")
    if a == "write" then
      loaded.hits = 1
    elseif a == "touch" then
      loaded:touch()
    elseif a == "owner" then
      loaded.user = "bob"
    elseif type(a) == "number" then
      loaded.cookie.maxAge = a
      loaded.user = "bob"
    end
    line = core:commit(loaded)[1]
  end)
  local function load_again()
    local again
    kit.run(function() again = core:load(cookie) end)
    return again
  end
  return line, store, id, load_again
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

-- The races of a request whose commit rewrites the bookkeeping for a reason of its own, not the
-- lifetime (a login under `index`, a creation time stamped): the store keeps the stored
-- lifetime inside the merged __meta, and A's commit follows it. One that sets its own
-- lifetime writes it (the last writer's).
local function check_rewrite_races(kit)
  it("A logs in (a new owner) after B set remember me: A's owner, B's 30 days", function()
    local line, store, id, load_again = race(kit, { index = "user" }, MONTH * 1000, "owner")
    assert.is_string(line, "A's response sends the cookie")
    assert.equal(tostring(MONTH), Site.attr(line, "Max-Age"))
    local again = load_again()
    assert.equal("bob", again.user)
    assert.equal(MONTH * 1000, again.cookie.maxAge, "the stored bookkeeping keeps B's lifetime")
    lives(kit, store, id, MONTH)
  end)

  it("A stamps the creation time (absoluteTimeout turned on since) after B set remember me: B's 30 days", function()
    local line, store, id, load_again = race(kit, { absoluteTimeout = 90 * DAY }, MONTH * 1000, "write",
      { "absoluteTimeout" })
    assert.is_string(line, "A's response sends the cookie")
    assert.equal(tostring(MONTH), Site.attr(line, "Max-Age"))
    local again = load_again()
    assert.equal(1, again.hits)
    assert.equal(MONTH * 1000, again.cookie.maxAge, "the stored bookkeeping keeps B's lifetime")
    lives(kit, store, id, MONTH)
  end)

  it("A stamps the creation time after B set remember me, under a shorter absoluteTimeout: capped", function()
    local line, store, id = race(kit, { absoluteTimeout = 2 * DAY }, MONTH * 1000, "write", { "absoluteTimeout" })
    local max_age = tonumber(Site.attr(line, "Max-Age"))
    assert.is_true(max_age > 2 * DAY - 60 and max_age <= 2 * DAY, line)
    lives(kit, store, id, max_age)
  end)

  it("A sets its own lifetime and logs in after B set remember me: A's, the last writer's", function()
    local line, store, id, load_again = race(kit, { index = "user" }, MONTH * 1000, 7 * DAY * 1000)
    assert.equal(tostring(7 * DAY), Site.attr(line, "Max-Age"))
    assert.equal(7 * DAY * 1000, load_again().cookie.maxAge)
    lives(kit, store, id, 7 * DAY)
  end)
end

-- The one race a store with only half the contract (a staleAware store's merge) is held to.
local function check_write_race(kit)
  it("A writes after B set remember me: A's cookie and the store keep the 30 days", function()
    local line, store, id = race(kit, nil, MONTH * 1000, "write")
    assert.equal(tostring(MONTH), Site.attr(line, "Max-Age"))
    lives(kit, store, id, MONTH)
  end)
  check_rewrite_races(kit)
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
  check_rewrite_races(kit)
end

local function plain(f) f() end

describe("the lifetime race: MemoryStore", function()
  check_races({ store = hs.MemoryStore, run = plain })
end)

describe("the lifetime race: a table store with merge", function()
  check_races({ store = table_store, left = function(s, id) return s.left(id) end, run = plain })
end)

describe("the lifetime race: a staleAware table store with merge", function()
  -- Its merge is preceded by a get (for its size) whether it is staleAware or not: the read
  -- tells the commit the lifetime kept. (Its touch would have to ask hs._record_meta.)
  local kit = {
    store = function()
      local s = table_store()
      s.staleAware = true
      return s
    end,
    left = function(s, id) return s.left(id) end,
    run = plain,
  }
  check_write_race(kit)
end)

describe("the lifetime race: a record store of one's own (hs._merge_patch)", function()
  check_races({ store = record_store, left = function(s, id) return s.left(id) end, run = plain })
end)

describe("the lifetime race: a staleAware record store of one's own", function()
  -- Its merges through hs._merge_patch keep the lifetime with nothing of its own; its touch
  -- would have to ask hs._record_meta (the README's contract), which this one does not.
  local kit = { store = function() return record_store(true) end, left = function(s, id) return s.left(id) end,
    run = plain }
  check_write_race(kit)
end)

describe("the lifetime race: SharedDictStore (a fake dict)", function()
  local saved
  before_each(function()
    saved = rawget(_G, "ngx")
    _G.ngx = FakeDict.ngx({ "sessions" })
  end)
  after_each(function() _G.ngx = saved end)
  check_races({
    store = function() return SharedDictStore.new({ dict = "sessions" }) end,
    left = function(s, id) return s.dict:ttl(s.prefix .. id) end,
    run = plain,
  })
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

  describe("event loop (cqueues)", function()
    if not Interpreter.yields_across_pcall then
      pending("its socket calls yield inside the store's pcall: " .. Interpreter.NO_YIELD_IN_PCALL)
      return
    end
    local cqueues = require("cqueues")
    local LuaRedis = require("honeymoon_session.stores.redis")
    -- Runs f as a coroutine of a cqueues loop (socket calls there yield) to its end.
    local function in_loop(f)
      local cq = cqueues.new()
      local done, failure = false, nil
      cq:wrap(function()
        local ok, err = pcall(f)
        if not ok then failure = err end
        done = true
      end)
      local deadline = cqueues.monotime() + 20
      while not done do
        local ok, err = cq:step(0.05)
        if not ok then error(err, 0) end
        assert(cqueues.monotime() < deadline, "the loop did not finish in 20 s")
      end
      if failure then error(failure, 0) end
    end
    check_races({
      store = function() return LuaRedis.new({ url = server.url, socket = "cqueues" }) end,
      left = left,
      run = in_loop,
    })
  end)
end)

---A session stored in `store` by a core of its own: the core, the cookie, the id.
local function session_of(store)
  local core = hs.core({ secret = "race-secret", store = store, ttl = TTL })
  local first = core:load(nil)
  first.user = "ann"
  local cookie = core:commit(first)[1]:match("^([^;]+)")
  return core, cookie, first:getId()
end

---Another request sets the session's lifetime (ms) and commits.
local function remember(core, cookie, ms)
  local s = core:load(cookie)
  s.cookie.maxAge = ms
  core:commit(s)
end

-- What hs._merge_patch finds for a commit reaches that commit alone, whichever coroutine calls
-- it and however often, and nothing of it outlives the request.
describe("the lifetime race: what hs._merge_patch notes for the commit", function()
  it("a store that calls hs._merge_patch in a helper coroutine: A still follows B's lifetime", function()
    local kit = {
      store = function()
        local s = record_store()
        function s.merge(self, id, patch, ttl)
          local r = self.rows[id]
          if not r then return false end
          -- The store's I/O runs in a coroutine of its own: hs._merge_patch is called there.
          local merged = coroutine.wrap(function() return hs._merge_patch(r.record, patch) end)()
          if not merged then return false end
          self.rows[id] = { record = merged, expires = now_s() + ttl }
          return true
        end
        return s
      end,
      left = function(s, id) return s.left(id) end,
      run = plain,
    }
    local line, store, id = race(kit, nil, MONTH * 1000, "write")
    assert.equal(tostring(MONTH), Site.attr(line, "Max-Age"))
    lives(kit, store, id, MONTH)
  end)

  it("a store that merges twice (it found the record changed and merged again): the last merge's lifetime counts", function()
    local store = record_store()
    local core, cookie, id = session_of(store)
    local mine = core:load(cookie) -- request A
    remember(core, cookie, MONTH * 1000) -- request B: remember me
    local merge, retried = store.merge, false
    function store.merge(self, sid, patch, ttl, ...)
      if retried then return merge(self, sid, patch, ttl, ...) end
      retried = true
      -- A compare-and-set store: a first merge against what it read (B's month) ...
      assert.is_string(hs._merge_patch(self.rows[sid].record, patch))
      -- ... then request C sets the config's lifetime back before the write, the store sees
      -- the record changed and merges again.
      remember(core, cookie, TTL * 1000)
      return merge(self, sid, patch, ttl, ...)
    end
    mine.hits = 1
    local line = core:commit(mine)[1]
    assert.is_true(retried)
    assert.equal(tostring(TTL), Site.attr(line, "Max-Age"))
    assert.is_true(math.abs(store.left(id) - TTL) <= 5, "the store keeps it " .. store.left(id) .. " s")
  end)

  -- A store whose one I/O coroutine serves every request's merge: the requests wait (yield)
  -- until it has merged their patches, one after the other, in its own coroutine.
  local function queued_store()
    local s = record_store()
    local jobs, direct = {}, s.merge
    s.direct = true
    function s.merge(self, id, patch, ttl, ...)
      if s.direct then return direct(self, id, patch, ttl, ...) end
      local job = { id = id, patch = patch, ttl = ttl }
      jobs[#jobs + 1] = job
      while job.ok == nil do coroutine.yield() end
      return job.ok
    end
    function s.work()
      for i, job in ipairs(jobs) do
        local merged = hs._merge_patch(s.rows[job.id].record, job.patch)
        if merged then s.rows[job.id] = { record = merged, expires = now_s() + job.ttl } end
        job.ok = merged and true or false
        jobs[i] = nil
      end
    end
    return s
  end

  it("a store whose one I/O coroutine merges several requests' patches: each commit gets its own", function()
    if not Interpreter.yields_across_pcall then
      pending("the store's merge yields inside the module's pcall: " .. Interpreter.NO_YIELD_IN_PCALL)
      return
    end
    local store = queued_store()
    local core, raced, raced_id = session_of(store)
    local _, calm, calm_id = session_of(store)
    local a = core:load(raced) -- loaded before B's remember me
    remember(core, raced, MONTH * 1000)
    local other = core:load(calm) -- no race on this one
    a.hits, other.hits = 1, 1
    store.direct = false
    local lines, commits = {}, {}
    for i, s in ipairs({ a, other }) do
      commits[i] = coroutine.create(function() lines[i] = core:commit(s)[1] end)
      assert(coroutine.resume(commits[i]))
      assert.equal("suspended", coroutine.status(commits[i]), "the merge waits for the I/O coroutine")
    end
    coroutine.wrap(store.work)() -- A's patch first, then the other's, in one coroutine
    for i = 1, 2 do
      local ok, err = coroutine.resume(commits[i])
      assert(ok, err)
      assert.equal("dead", coroutine.status(commits[i]))
    end
    assert.equal(tostring(MONTH), Site.attr(lines[1], "Max-Age"))
    assert.is_true(math.abs(store.left(raced_id) - MONTH) <= 5, "A's session lives " .. store.left(raced_id) .. " s")
    assert.equal(tostring(TTL), Site.attr(lines[2], "Max-Age"))
    assert.is_true(math.abs(store.left(calm_id) - TTL) <= 5, "the other lives " .. store.left(calm_id) .. " s")
  end)

  it("nothing of it is kept for a request abandoned while the store's merge yields after hs._merge_patch", function()
    if not Interpreter.yields_across_pcall then
      pending("the store's merge yields inside the module's pcall: " .. Interpreter.NO_YIELD_IN_PCALL)
      return
    end
    local store = record_store()
    local merge = store.merge
    local suspend = false
    function store.merge(self, id, patch, ...)
      if not suspend then return merge(self, id, patch, ...) end
      -- A cosocket store: merged, then the write waits on the network; the client goes away
      -- (or the light thread is killed) and the request is never resumed.
      assert.is_string(hs._merge_patch(self.rows[id].record, patch))
      coroutine.yield()
      error("never resumed")
    end
    local core, cookie = session_of(store)
    local BIG = 200000
    local function abandoned(i)
      local mine = core:load(cookie) -- request A
      remember(core, cookie, (MONTH + i) * 1000) -- B: a lifetime A did not load
      mine.blob = string.rep(string.char(65 + i % 26), BIG) .. i -- a patch of 200 kB
      suspend = true
      local co = coroutine.create(function() core:commit(mine) end)
      assert(coroutine.resume(co))
      suspend = false
      assert.equal("suspended", coroutine.status(co))
    end
    abandoned(0)
    collectgarbage("collect")
    collectgarbage("collect")
    local before = collectgarbage("count")
    for i = 1, 20 do abandoned(i) end
    collectgarbage("collect")
    collectgarbage("collect")
    local grown = (collectgarbage("count") - before) * 1024
    assert.is_true(grown < 2 * BIG, ("20 abandoned requests left %d bytes behind"):format(grown))
  end)
end)

-- A third request C that sets the lifetime again right after A's merge (which found B's): the
-- store must keep C's, which a touch after A's merge would overwrite. `left(store, id)` is how
-- long the store keeps the session; `max_age` the Max-Age A's response sends (by default the
-- month A's merge found: a store that applies it in the merge makes no touch after it).
local function third_request_after_merge(store, left, max_age)
  local core, cookie, id = session_of(store)
  local mine = core:load(cookie) -- request A
  remember(core, cookie, MONTH * 1000) -- B: remember me
  local merge, c_ran = store.merge, false
  function store.merge(self, ...)
    local ok, v, kept = merge(self, ...)
    if not c_ran then
      c_ran = true
      remember(core, cookie, 60000) -- C, right after A's merge: a minute
    end
    return ok, v, kept
  end
  mine.hits = 1
  local line = core:commit(mine)[1]
  assert.is_true(c_ran)
  assert.equal(tostring(max_age or MONTH), Site.attr(line, "Max-Age"), "A's cookie")
  local n = left(store, id)
  assert.is_true(math.abs(n - 60) <= 5, "the store keeps the session " .. tostring(n) .. " s, not C's 60")
  assert.equal(1, core:load(cookie).hits)
end

describe("the lifetime race: a merge that writes the lifetime it keeps itself", function()
  local saved
  before_each(function()
    saved = rawget(_G, "ngx")
    _G.ngx = FakeDict.ngx({ "sessions" })
  end)
  after_each(function() _G.ngx = saved end)

  it("SharedDictStore: a third request's lifetime, stored right after A's merge, is the TTL it keeps", function()
    third_request_after_merge(SharedDictStore.new({ dict = "sessions" }),
      function(s, id) return s.dict:ttl(s.prefix .. id) end)
  end)

  it("SharedDictStore's touch: a third request's lifetime stored between its read and its expire wins", function()
    local store = SharedDictStore.new({ dict = "sessions" })
    local core, cookie, id = session_of(store)
    local mine = core:load(cookie) -- request A
    remember(core, cookie, MONTH * 1000) -- B: remember me
    local dict = store.dict
    local expire, c_ran = dict.expire, false
    -- C (another worker) stores a minute after A's touch read the record, before its expire.
    dict.expire = function(self, ...)
      if not c_ran then
        c_ran = true
        remember(core, cookie, 60000)
      end
      return expire(self, ...)
    end
    mine:touch()
    local line = core:commit(mine)[1]
    dict.expire = expire
    assert.is_true(c_ran)
    assert.equal("60", Site.attr(line, "Max-Age"), "A's cookie")
    local left = dict:ttl(store.prefix .. id)
    assert.is_true(math.abs(left - 60) <= 5, "the dict keeps the session " .. tostring(left) .. " s, not C's 60")
  end)

  it("a record store of one's own that writes with kept.ttl and returns it: the same", function()
    local store = record_store()
    function store.merge(self, id, patch, ttl)
      local r = self.rows[id]
      if not r then return false end
      local merged, _, _, kept = hs._merge_patch(r.record, patch)
      if not merged then return false end
      self.rows[id] = { record = merged, expires = now_s() + (kept and kept.ttl or ttl) }
      return true, nil, kept
    end
    third_request_after_merge(store, function(s, id) return s.left(id) end)
  end)
end)

-- A store of one's own that writes with the `ttl` it is handed: the commit's touch after the
-- merge asks for what is stored then, so a lifetime a third request set in between wins
-- (through the read before the touch, or the store's own hs._record_meta(record, assumed)).
describe("the lifetime race: the touch after a merge re-checks the lifetime stored", function()
  local function left(s, id) return s.left(id) end

  ---A record store's touch that asks hs._record_meta(record, assumed), as the README's
  ---contract shows; `before`, if given, runs as it starts.
  local function asking_touch(before)
    return function(self, id, ttl, _, assumed)
      if before then before() end
      local r = self.rows[id]
      if not r then return false end
      local _, _, stale, kept = hs._record_meta(r.record, assumed)
      if stale then return false end
      if kept then ttl = kept.ttl end
      r.expires = now_s() + ttl
      return true, kept
    end
  end

  it("a record store of one's own (read before the touch): C's lifetime, TTL and cookie", function()
    third_request_after_merge(record_store(), left, 60)
  end)

  it("a table store with merge (read before its merge and before the touch): the same", function()
    third_request_after_merge(table_store(), left, 60)
  end)

  it("a record store that is not staleAware, whose touch asks hs._record_meta(record, assumed): a lifetime stored between the read and the touch wins", function()
    local store = record_store()
    local core, cookie, id = session_of(store)
    local c_ran = false
    store.touch = asking_touch(function()
      if c_ran then return end
      -- C commits a minute after the read before A's touch, before the touch's own read.
      c_ran = true
      remember(core, cookie, 60000)
    end)
    local mine = core:load(cookie) -- request A
    remember(core, cookie, MONTH * 1000) -- B: remember me
    mine.hits = 1
    local line = core:commit(mine)[1]
    assert.is_true(c_ran)
    assert.equal("60", Site.attr(line, "Max-Age"), "A's cookie")
    assert.is_true(math.abs(left(store, id) - 60) <= 5, "the store keeps the session " .. left(store, id) .. " s, not C's 60")
  end)

  it("a staleAware record store whose touch asks hs._record_meta(record, assumed): the same", function()
    local store = record_store(true)
    store.touch = asking_touch()
    third_request_after_merge(store, left, 60)
  end)
end)

-- A table store's own merge is handed `changed.__meta` whole: where the request rewrote the
-- bookkeeping for a field of its own (a lifetime, a creation time) and left the owner as it
-- loaded it, a login (or logout) another request stored since must stand, as in every other
-- store's merge (meta::merged's keep_owner); else the logged-in session escapes destroyAll.
describe("the owner race: a table store with merge", function()
  local function raced(a_does)
    local store = table_store()
    local o = { secret = "race-secret", store = store, ttl = TTL, index = "user" }
    local core = hs.core(o)
    local first = a_does == "stamp" and hs.core({ secret = "race-secret", store = store, ttl = TTL }) or core
    local s = first:load(nil)
    s.cart = 1
    local cookie = first:commit(s)[1]:match("^([^;]+)")
    local id = s:getId()
    local mine = core:load(cookie) -- request A, before the login
    local b = core:load(cookie) -- request B: the login (or, after one of A's own, the logout)
    b.user = "ann"
    core:commit(b)
    assert.equal("ann", store.rows[id].data.__meta.owner, "B's login is stored")
    if a_does == "logout" then
      mine = core:load(cookie) -- A, logged in
      b = core:load(cookie)
      b.user = nil
      core:commit(b)
      assert.is_nil((store.rows[id].data.__meta or {}).owner, "B's logout is stored")
    end
    if a_does == "stamp" then mine.hits = 1 else mine.cookie.maxAge = MONTH * 1000 end
    core:commit(mine)
    return store, id, core:load(cookie)
  end

  it("A sets remember me after B logged in: B's owner stands", function()
    local store, id, again = raced("remember")
    assert.equal("ann", store.rows[id].data.__meta.owner, "the stored owner")
    assert.equal("ann", again.user)
    assert.equal(MONTH * 1000, again.cookie.maxAge, "A's lifetime")
  end)

  it("A sets remember me after B logged out: the session is not listed again", function()
    local store, id, again = raced("logout")
    assert.is_nil(store.rows[id].data.__meta.owner, "the stored owner")
    assert.is_nil(again.user)
    assert.equal(MONTH * 1000, again.cookie.maxAge, "A's lifetime")
  end)

  it("A stamps the creation time (index turned on since) after B logged in: B's owner stands", function()
    local store, id = raced("stamp")
    assert.equal("ann", store.rows[id].data.__meta.owner, "the stored owner")
    assert.is_number(store.rows[id].data.__meta.created)
  end)
end)

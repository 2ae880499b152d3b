-- Store conformance: every store in STORES goes through the same checks, first by calling its
-- eight methods directly (get, set, destroy, touch, exists, all, length, clear), then as the
-- store behind the session middleware.

local hs = require("honeymoon_session")
local App = require("examples.framework.app")
local Client = require("examples.framework.client")
local Db = require("spec.support.db")
local TableStore = require("spec.support.table_store")
local DatabaseStore = require("spec.support.database_store")
local RedisServer = require("scripts.lib.redis_server")
local Site = require("spec.support.site")

local SECRET = "store-conformance-secret"
local COOKIE = "honeymoon.sid"
local SCHEMA = "CREATE TABLE sessions (id TEXT PRIMARY KEY, data TEXT, expires_at INTEGER)"

-- Each entry's new() returns a fresh fixture:
--   store  the store under test
--   age    age(seconds): lets that much time pass for the store (never for client cookies)
--   close  optional cleanup
-- Capabilities:
--   binary        carries any byte string; otherwise it must refuse non-UTF-8 loudly
--   touch_result  touch() answers whether the entry was live
local STORES = {
  {
    name = "MemoryStore",
    binary = true,
    touch_result = true,
    new = function()
      -- The module clock is process-wide and only moves forward; nothing here assumes a time.
      return { store = hs.MemoryStore(), age = hs._advance_clock }
    end,
  },
  {
    name = "TableStore (plain Lua table)",
    binary = true,
    touch_result = true,
    new = function()
      local now = 1000
      return {
        store = TableStore.new({ clock = function() return now end }),
        age = function(seconds) now = now + seconds end,
      }
    end,
  },
  {
    name = "DatabaseStore (spec page example on SQLite)",
    -- It stores sessions as JSON, and a JSON string is Unicode text: a byte string that is not
    -- valid UTF-8 has no JSON form. So it cannot carry binary payloads; json.encode refuses
    -- them and set() raises, rather than storing something else.
    binary = false,
    touch_result = false, -- the example's touch() returns nothing
    new = function()
      local db = Db.open(":memory:")
      db:execute(SCHEMA)
      return {
        store = DatabaseStore.new(db),
        -- The example compares expires_at with os.time(): pull every expiry earlier instead
        -- of sleeping. Margins in the specs stay well above a second of real time.
        age = function(seconds) db:execute("UPDATE sessions SET expires_at = expires_at - ?", seconds) end,
        close = function() db:close() end,
      }
    end,
  },
  {
    name = "RedisStore (redis-server on loopback)",
    -- JSON, like connect-redis: no binary strings (set() raises rather than store something else).
    binary = false,
    touch_result = true,
    new = function()
      local server = RedisServer.start()
      local prefix = "conformance:"
      return {
        store = hs.RedisStore({ url = server.url, prefix = prefix }),
        age = function(seconds) server:age(prefix, seconds) end,
        close = function() server:close() end,
      }
    end,
  },
}

---------------------------------------------------------------------------
-- Helpers
---------------------------------------------------------------------------

local sorted = Site.sorted

-- Every byte value, twice, so it cannot be mistaken for text in any encoding.
local BINARY
do
  local bytes = {}
  for b = 0, 255 do bytes[#bytes + 1] = string.char(b) end
  BINARY = table.concat(bytes) .. "\255\254\0\128" .. table.concat(bytes)
end

local UNICODE = {
  greeting = "héllo wörld",
  cjk = "日本語のテキスト",
  emoji = "🎉 👩‍💻 🇫🇷",
  rtl = "مرحبا بالعالم",
  combining = "e\204\129", -- e + COMBINING ACUTE ACCENT
  ["ключ"] = "значение",
  quotes = "it's \"quoted\", back\\slash",
  controls = "tab\there, newline\nthere, nul\0inside",
}

-- JSON-friendly data any store must carry: string keys, arrays, nested objects, scalars.
local function profile(n)
  return {
    user = { id = n, name = "user" .. n, roles = { "admin", "dev" } },
    enabled = true,
    disabled = false,
    ratio = 0.25,
  }
end

local function many_keys(n)
  local t = {}
  for i = 1, n do t["key" .. i] = i end
  return t
end

local ONE_MB = string.rep("0123456789abcdef", 65536)

-- The session id in a client's session cookie (`s%3A<id>.<sig>`), or nil.
local function cookie_id(client)
  local value = client:cookie(COOKIE)
  return value and value:match("^s%%3A([%w_%-]+)%.")
end

-- An app whose "/" route runs whatever function the spec hands to visit().
local function session_site(store, extra)
  local opts = { secret = SECRET, store = store }
  for k, v in pairs(extra or {}) do opts[k] = v end
  local app, pending = App.new(), {}
  app:use(hs.session(opts))
  app:get("/", function(req, res)
    local fn = pending.fn
    pending.fn = nil
    if fn then fn(req, res) end
  end)
  local site = { app = app }
  -- Runs fn(req, res) in a request from `client` (a new one when omitted).
  function site.visit(client, fn)
    pending.fn = fn
    return client:get("/")
  end
  -- The session data a request from `client` sees (a deep copy), and its session id.
  function site.read(client)
    local data, id
    site.visit(client, function(req)
      data, id = req.session:all(), req.sessionID
    end)
    return data, id
  end
  return site
end

-- A store's data without the module's bookkeeping (a Lua store holds `__meta` as a field).
local function data_of(t)
  if t == nil then return nil end
  local out = {}
  for k, v in pairs(t) do
    if k ~= "__meta" then out[k] = v end
  end
  return out
end

local function login(site, client, user)
  return site.visit(client, function(req) req.session.user = user or "ann" end)
end

---------------------------------------------------------------------------
-- The suite
---------------------------------------------------------------------------

for _, kind in ipairs(STORES) do
  describe(kind.name, function()
    local fx, store

    before_each(function()
      fx = kind.new()
      store = fx.store
    end)

    after_each(function()
      if fx.close then fx.close() end
    end)

    describe("store methods", function()
      it("get returns nil and exists returns false for an id never set", function()
        assert.is_nil(store:get("never-set"))
        assert.is_false(store:exists("never-set"))
        assert.equal(0, store:length())
        assert.same({}, store:all())
      end)

      it("set then get returns the same data", function()
        store:set("s1", profile(1), 600)
        assert.same(profile(1), store:get("s1"))
        assert.is_true(store:exists("s1"))
      end)

      it("set replaces the whole entry instead of merging into it", function()
        store:set("s1", { a = 1, b = 2 }, 600)
        store:set("s1", { c = 3 }, 600)
        assert.same({ c = 3 }, store:get("s1"))
        assert.equal(1, store:length())
      end)

      it("keeps entries under different ids apart", function()
        store:set("s1", profile(1), 600)
        store:set("s2", profile(2), 600)
        assert.same(profile(1), store:get("s1"))
        assert.same(profile(2), store:get("s2"))
      end)

      it("destroy removes one entry and ignores unknown ids", function()
        store:set("s1", profile(1), 600)
        store:set("s2", profile(2), 600)
        store:destroy("s1")
        store:destroy("never-set")
        assert.is_nil(store:get("s1"))
        assert.is_false(store:exists("s1"))
        assert.same(profile(2), store:get("s2"))
        assert.same({ "s2" }, store:all())
      end)

      it("all lists exactly the live ids and length counts them", function()
        for _, id in ipairs({ "c", "a", "b" }) do store:set(id, { id = id }, 600) end
        assert.same({ "a", "b", "c" }, sorted(store:all()))
        assert.equal(3, store:length())
      end)

      it("clear removes every entry", function()
        for i = 1, 5 do store:set("s" .. i, profile(i), 600) end
        store:clear()
        assert.equal(0, store:length())
        assert.same({}, store:all())
        assert.is_nil(store:get("s1"))
        assert.is_false(store:exists("s5"))
      end)

      it("get returns a copy: mutating it does not change the store", function()
        store:set("s1", profile(1), 600)
        local got = store:get("s1")
        got.user.name = "mallory"
        got.user.roles[3] = "root"
        got.extra = "added"
        assert.same(profile(1), store:get("s1"))
        assert.are_not.equal(store:get("s1"), store:get("s1"))
      end)

      it("set keeps a copy: mutating the table passed in does not change the store", function()
        local data = profile(1)
        store:set("s1", data, 600)
        data.user.name = "mallory"
        data.user.roles[1] = "root"
        data.enabled = nil
        assert.same(profile(1), store:get("s1"))
      end)

      it("expires entries after their ttl: get, exists, all and length stop seeing them", function()
        store:set("short", { n = 1 }, 60)
        store:set("long", { n = 2 }, 3600)
        fx.age(30)
        assert.same({ "long", "short" }, sorted(store:all()))
        fx.age(90) -- 120 s after set: "short" (60 s) is gone, "long" (3600 s) is not
        assert.is_nil(store:get("short"))
        assert.is_false(store:exists("short"))
        assert.same({ "long" }, store:all())
        assert.equal(1, store:length())
        assert.same({ n = 2 }, store:get("long"))
      end)

      it("touch restarts a live entry's ttl from now", function()
        store:set("s1", { n = 1 }, 100)
        fx.age(60)
        store:touch("s1", 100)
        fx.age(60) -- 120 s after set, 60 s after touch
        assert.same({ n = 1 }, store:get("s1"))
        fx.age(60) -- 120 s after touch
        assert.is_nil(store:get("s1"))
      end)

      it("touch does not create an entry for an unknown id", function()
        store:touch("never-set", 600)
        assert.is_false(store:exists("never-set"))
        assert.is_nil(store:get("never-set"))
        assert.equal(0, store:length())
      end)

      if kind.touch_result then
        it("touch returns true for a live entry and false for an unknown or expired one", function()
          store:set("s1", { n = 1 }, 60)
          assert.is_true(store:touch("s1", 60))
          assert.is_false(store:touch("never-set", 60))
          fx.age(120)
          assert.is_false(store:touch("s1", 60))
          assert.is_false(store:exists("s1"))
        end)
      end

      it("unicode keys and values round-trip unchanged", function()
        store:set("s1", { text = UNICODE }, 600)
        assert.same({ text = UNICODE }, store:get("s1"))
      end)

      if kind.binary then
        it("binary strings (every byte value, NUL and invalid UTF-8 included) round-trip exactly", function()
          store:set("s1", { blob = BINARY, nested = { BINARY } }, 600)
          local got = store:get("s1")
          assert.equal(BINARY, got.blob)
          assert.equal(BINARY, got.nested[1])
        end)
      else
        it("refuses a non-UTF-8 string loudly and keeps what it held", function()
          store:set("s1", { user = "ann" }, 600)
          local ok, err = pcall(store.set, store, "s1", { user = "ann", blob = BINARY }, 600)
          assert.is_false(ok)
          assert.matches("UTF-8", tostring(err), 1, true)
          assert.same({ user = "ann" }, store:get("s1"))
          ok = pcall(store.set, store, "s2", { blob = "\255" }, 600)
          assert.is_false(ok)
          assert.is_false(store:exists("s2"))
        end)

        it("names the whole path of a nested string it refuses", function()
          local ok, err = pcall(store.set, store, "s1", { cart = { items = { "ok", { sku = BINARY } } } }, 600)
          assert.is_false(ok)
          assert.matches("cart.items[2].sku", tostring(err), 1, true)
          assert.matches("UTF-8", tostring(err), 1, true)
        end)
      end

      it("holds a 1 MB string value", function()
        store:set("big", { blob = ONE_MB }, 600)
        local got = store:get("big")
        assert.equal(#ONE_MB, #got.blob)
        assert.is_true(got.blob == ONE_MB)
      end)

      it("holds a session with 10,000 keys", function()
        local data = many_keys(10000)
        store:set("wide", data, 600)
        assert.same(data, store:get("wide"))
      end)

      it("holds 10,000 sessions at once", function()
        for i = 1, 10000 do store:set("id" .. i, { n = i }, 600) end
        assert.equal(10000, store:length())
        local ids = store:all()
        assert.equal(10000, #ids)
        local seen = {}
        for _, id in ipairs(ids) do seen[id] = true end
        for i = 1, 10000, 999 do
          assert.is_true(seen["id" .. i])
          assert.same({ n = i }, store:get("id" .. i))
        end
        store:clear()
        assert.equal(0, store:length())
      end)
    end)

    describe("behind the session middleware", function()
      it("stores nothing for an untouched visit, then stores data under the id its cookie names", function()
        local site = session_site(store)
        local c = Client.new(site.app)
        local r = site.visit(c, function() end)
        assert.is_nil(r.headers["set-cookie"])
        assert.equal(0, store:length())

        login(site, c, "ann")
        local id = cookie_id(c)
        assert.is_string(id)
        assert.same({ id }, store:all())
        assert.same({ user = "ann" }, store:get(id))
      end)

      it("reads back in a later request what an earlier one stored", function()
        local site = session_site(store)
        local c = Client.new(site.app)
        login(site, c, "ann")
        local data, id = site.read(c)
        assert.same({ user = "ann" }, data)
        assert.equal(cookie_id(c), id)
      end)

      it("writes nested changes and removed keys back to the store", function()
        local site = session_site(store)
        local c = Client.new(site.app)
        site.visit(c, function(req)
          req.session.user = "ann"
          req.session.cart = { items = { "apple" } }
        end)
        site.visit(c, function(req)
          local items = req.session:get("cart").items
          items[#items + 1] = "pear"
          req.session:forget("user")
        end)
        assert.same({ cart = { items = { "apple", "pear" } } }, store:get(cookie_id(c)))
      end)

      it("destroy deletes the entry from the store and clears the cookie", function()
        local site = session_site(store)
        local c = Client.new(site.app)
        login(site, c, "ann")
        local id = cookie_id(c)
        site.visit(c, function(req) req.session:destroy() end)
        assert.is_false(store:exists(id))
        assert.equal(0, store:length())
        assert.is_nil(c:cookie(COOKIE))
      end)

      it("regenerate moves the data to a new id and deletes the old entry (staleGrace = 0)", function()
        local site = session_site(store, { staleGrace = 0 })
        local c = Client.new(site.app)
        login(site, c, "ann")
        local old, new = cookie_id(c), nil
        site.visit(c, function(req) new = req.session:regenerate(true) end)
        assert.are_not.equal(old, new)
        assert.equal(new, cookie_id(c))
        assert.same({ new }, store:all())
        assert.same({ user = "ann" }, store:get(new))
      end)

      it("regenerate retires the old id for the stale grace: its own data only, never written, no cookie; then gone", function()
        local site = session_site(store)
        local c = Client.new(site.app)
        login(site, c, "ann")
        local old_id = cookie_id(c)
        local parallel = Client.new(site.app) -- a request the browser sent with the pre-login cookie
        parallel:set_cookie(COOKIE, c:cookie(COOKIE))
        local new_id
        site.visit(c, function(req)
          new_id = req.session:regenerate(true)
          req.session.role = "admin"
        end)
        assert.equal(new_id, cookie_id(c))
        local seen
        local r = site.visit(parallel, function(req)
          seen = req.session:all()
          req.session.late = "write"
        end)
        assert.same({ user = "ann" }, seen, "the old id shows its own data, never the new session's")
        assert.is_nil(r.headers["set-cookie"], "no cookie that could replace the new one")
        assert.same({ user = "ann" }, data_of(store:get(old_id)), "the old id is never written")
        assert.same({ user = "ann", role = "admin" }, data_of(store:get(new_id)))
        fx.age(11) -- the default grace is 10 s
        assert.is_nil(store:get(old_id))
        assert.same({ user = "ann", role = "admin" }, data_of(store:get(new_id)))
      end)

      it("keeps a session with a lifetime of its own that long, past the options' ttl", function()
        local site = session_site(store, { ttl = 100 })
        local c = Client.new(site.app)
        site.visit(c, function(req)
          req.session.user = "ann"
          req.session.cookie.maxAge = 1000 * 1000 -- 1000 s
        end)
        local id = cookie_id(c)
        fx.age(500)
        assert.same({ user = "ann" }, data_of(store:get(id)))
        fx.age(600)
        assert.is_nil(store:get(id))
      end)

      it("ends a session at absoluteTimeout even when every request refreshes it", function()
        local site = session_site(store, { ttl = 100, rolling = true, absoluteTimeout = 150 })
        local c = Client.new(site.app)
        login(site, c, "ann")
        local id = cookie_id(c)
        -- Time passes for the store and for the module (which stamps the creation time).
        local function age(seconds)
          fx.age(seconds)
          if fx.age ~= hs._advance_clock then hs._advance_clock(seconds) end
        end
        -- The store's TTL is capped at what is left of the 150 s, whatever rolling refreshes.
        age(90)
        assert.equal("ann", site.read(c).user)
        age(90)
        assert.is_nil(store:get(id))
      end)

      it("replaces a session the store has expired with a fresh one, never reviving its id", function()
        local site = session_site(store, { ttl = 100 })
        local c = Client.new(site.app)
        login(site, c, "ann")
        local old = cookie_id(c)
        fx.age(200) -- the store's copy lapses; the browser still sends its cookie
        local data, id = site.read(c)
        assert.same({}, data)
        assert.are_not.equal(old, id)
        assert.is_false(store:exists(old))
        assert.equal(0, store:length())
      end)

      for _, rolling in ipairs({ true, false }) do
        local outcome = rolling and "keeps an active user logged in" or "lets the session lapse"
        it("with rolling=" .. tostring(rolling) .. ", a visit every 60 s of a 100 s ttl " .. outcome, function()
          local site = session_site(store, { ttl = 100, rolling = rolling })
          local c = Client.new(site.app)
          login(site, c, "ann")
          fx.age(60)
          site.read(c)
          fx.age(60) -- 120 s after login
          local data = site.read(c)
          assert.equal(rolling and "ann" or nil, data.user)
        end)
      end

      it("carries a unicode payload from one request to the next", function()
        local site = session_site(store)
        local c = Client.new(site.app)
        site.visit(c, function(req) req.session.text = UNICODE end)
        assert.same({ text = UNICODE }, (site.read(c)))
        assert.same({ text = UNICODE }, store:get(cookie_id(c)))
      end)

      if kind.binary then
        it("carries a binary payload from one request to the next", function()
          local site = session_site(store)
          local c = Client.new(site.app)
          site.visit(c, function(req) req.session.blob = BINARY end)
          assert.equal(BINARY, (site.read(c)).blob)
        end)
      else
        it("fails a request that stores binary data (500, store:set failed) and sends no cookie", function()
          local site = session_site(store)
          local c = Client.new(site.app)
          local r = site.visit(c, function(req) req.session.blob = BINARY end)
          assert.equal(500, r.status)
          assert.matches("[sS]tore:set failed", site.app.last_error)
          assert.matches("UTF-8", site.app.last_error, 1, true)
          assert.is_nil(r.headers["set-cookie"])
          assert.equal(0, store:length())
        end)

        it("keeps a logged-in session as it was when a binary write fails", function()
          local site = session_site(store)
          local c = Client.new(site.app)
          login(site, c, "ann")
          local id = cookie_id(c)
          local r = site.visit(c, function(req) req.session.blob = "\255\254" end)
          assert.equal(500, r.status)
          assert.is_nil(r.headers["set-cookie"])
          assert.same({ user = "ann" }, store:get(id))
          assert.same({ user = "ann" }, (site.read(c)))
        end)
      end

      it("carries a 1 MB value and a 10,000-key table between requests", function()
        local site = session_site(store)
        local c = Client.new(site.app)
        site.visit(c, function(req)
          req.session.blob = ONE_MB
          req.session.wide = many_keys(10000)
        end)
        local data = site.read(c)
        assert.is_true(data.blob == ONE_MB)
        assert.same(many_keys(10000), data.wide)
      end)

      it("keeps 10,000 users' sessions apart", function()
        local site = session_site(store)
        local clients = {}
        for i = 1, 10000 do
          local c = Client.new(site.app)
          site.visit(c, function(req) req.session.n = i end)
          clients[i] = c
        end
        assert.equal(10000, store:length())
        for i = 1, 10000, 499 do
          assert.same({ n = i }, (site.read(clients[i])))
        end
      end)

      it("logs every user out when the store is cleared", function()
        local site = session_site(store)
        local a, b = Client.new(site.app), Client.new(site.app)
        login(site, a, "ann")
        login(site, b, "bob")
        store:clear()
        assert.same({}, (site.read(a)))
        assert.same({}, (site.read(b)))
        assert.equal(0, store:length())
      end)
    end)
  end)
end

describe("errors a store written in Lua raises", function()
  local function failing_store(message)
    local store = TableStore.new()
    store.get = function() error(message, 0) end
    return store
  end

  local function error_of(store)
    local core = hs.core({ secret = "x", store = TableStore.new() })
    local s = core:load(nil)
    s.k = 1
    local header = core:_commit(s):match("^([^;]*)")
    local broken = hs.core({ secret = "x", store = store })
    local ok, err = pcall(broken.load, broken, header)
    assert.is_false(ok)
    return err
  end

  it("are wrapped to name the method", function()
    assert.equal("honeymoon_session: store:get failed: disk on fire", error_of(failing_store("disk on fire")))
  end)

  it("pass unchanged when they already name a store of this module (one prefix, not two)", function()
    local msg = "honeymoon_session: RedisStore:get failed: connection refused (redis at 127.0.0.1:1/0)"
    assert.equal(msg, error_of(failing_store(msg)))
  end)
end)

-- Most Lua I/O libraries report a failure by returning nil (ngx.shared.DICT's set: false) and a
-- message rather than raising, and a store that passes their answer on does the same. Such an
-- answer is a failure: taken for success it would report a session saved, and send its cookie,
-- when the store kept nothing, or a logout done when the session lives on (DESIGN rule 14).
describe("failures a store written in Lua returns as nil (or false) and a message", function()
  -- A TableStore (with merge when asked) whose method `failing` answers `first, message`.
  local function store_failing(failing, first, with_merge)
    local store = TableStore.new()
    if with_merge then
      function store.merge(self, id, changed, removed, ttl)
        local current = self:get(id)
        if current == nil then return false end
        for k, v in pairs(changed) do current[k] = v end
        for _, k in ipairs(removed) do current[k] = nil end
        self:set(id, current, ttl)
        return true
      end
    end
    local fail = false
    local original = store[failing]
    store[failing] = function(self, ...)
      if fail then return first, "connection refused" end
      return original(self, ...)
    end
    return store, function() fail = true end
  end

  -- A core over `store` and the Cookie header of a session stored in it before the failure.
  local function stored_session(store, opts)
    local o = { secret = "x", store = store }
    for k, v in pairs(opts or {}) do o[k] = v end
    local core = hs.core(o)
    local s = core:load(nil)
    s.user = "alice"
    local header = core:_commit(s):match("^([^;]*)")
    return core, header, s:getId()
  end

  local function raises(want, f, ...)
    local ok, err = pcall(f, ...)
    assert.is_false(ok, "expected " .. want)
    assert.equal(want, err)
  end

  for _, first in ipairs({ "nil", "false" }) do
    local value = first == "false" and false or nil

    it("set answering " .. first .. ", message fails the commit: no cookie, nothing reported stored", function()
      local store, fail = store_failing("set", value)
      local core = hs.core({ secret = "x", store = store })
      fail()
      local s = core:load(nil)
      s.user = "alice"
      raises("honeymoon_session: store:set failed: connection refused", core.commit, core, s)
      assert.equal(0, store:length())
    end)

    it("set answering " .. first .. ", message makes save() raise, not return true", function()
      local store, fail = store_failing("set", value)
      local core = hs.core({ secret = "x", store = store })
      fail()
      local s = core:load(nil)
      s.user = "alice"
      raises("honeymoon_session: store:set failed: connection refused", s.save, s)
      assert.equal(0, store:length())
    end)

    it("destroy answering " .. first .. ", message makes destroy() raise: the logout did not happen", function()
      local store, fail = store_failing("destroy", value)
      local core, header, id = stored_session(store)
      fail()
      local s = core:load(header)
      raises("honeymoon_session: store:destroy failed: connection refused", s.destroy, s)
      assert.equal(id, s:getId(), "the session goes on under its id, which the store still holds")
      assert.same("alice", store:get(id).user)
    end)
  end

  it("touch answering nil, message fails the commit instead of sending the cookie", function()
    local store, fail = store_failing("touch", nil)
    local core, header = stored_session(store, { rolling = true })
    fail()
    local s = core:load(header)
    raises("honeymoon_session: store:touch failed: connection refused", core.commit, core, s)
  end)

  it("merge answering nil, message fails the commit with the store's message", function()
    local store, fail = store_failing("merge", nil, true)
    local core, header, id = stored_session(store)
    fail()
    local s = core:load(header)
    s.n = 1
    raises("honeymoon_session: store:merge failed: connection refused", core.commit, core, s)
    assert.is_nil(store:get(id).n)
  end)

  it("get answering nil, message fails the load instead of starting a fresh session", function()
    local store, fail = store_failing("get", nil)
    local core, header = stored_session(store)
    fail()
    raises("honeymoon_session: store:get failed: connection refused", core.load, core, header)
  end)

  it("exists answering nil, message fails with the store's message", function()
    local store, fail = store_failing("exists", nil)
    local core, header, id = stored_session(store, { staleGrace = 0 })
    fail()
    local s = core:load(header)
    raises("honeymoon_session: store:exists failed: connection refused", s.regenerate, s, true)
    assert.equal(id, s:getId())
  end)

  it("false and a message from touch, merge or exists is still their answer: gone", function()
    for _, method in ipairs({ "touch", "merge" }) do
      local store, fail = store_failing(method, false, method == "merge")
      local core, header = stored_session(store, { rolling = true })
      fail()
      local s = core:load(header)
      if method == "merge" then s.n = 1 end
      assert.same({}, core:commit(s), method)
    end
    local store, fail = store_failing("exists", false)
    local core, header = stored_session(store, { staleGrace = 0 })
    fail()
    local s = core:load(header)
    s:regenerate(true)
    assert.is_nil(s.user, "regenerate(true) of a session the store no longer holds keeps nothing")
  end)
end)

-- After `true`, touch (and a record store's merge, after its version) may return the lifetime
-- it refreshed the session for; the cookie then carries that lifetime. One that is not a
-- lifetime (a field missing, NaN, past 100 years, negative) must not become the cookie's: it
-- gave a browser-session cookie for a session the store keeps, or a Max-Age of 2^64 - 1 with
-- an Expires in the year 292278994.
describe("a lifetime a store written in Lua returns", function()
  local function core_returning(kept, record)
    local store = TableStore.new()
    if record then
      -- A record store over the TableStore's rows, its merge answering `kept`.
      local rows = {}
      store = { format = "record" }
      function store.get(_, id) return rows[id] end
      function store.set(_, id, r) rows[id] = r end
      function store.merge(_, id, patch)
        rows[id] = hs._merge_patch(rows[id], patch)
        return true, nil, kept
      end
      function store.destroy(_, id) rows[id] = nil end
      function store.touch() return true end
      function store.exists(_, id) return rows[id] ~= nil end
      function store.all() return {} end
      function store.length() return 0 end
      function store.clear() end
    else
      local touch = store.touch
      function store.touch(self, ...)
        touch(self, ...)
        return true, kept
      end
    end
    local core = hs.core({ secret = "x", store = store, rolling = not record, ttl = 600 })
    local s = core:load(nil)
    s.n = 1
    local header = core:_commit(s):match("^([^;]*)")
    return core, header
  end

  local function commit_of(kept, record)
    local core, header = core_returning(kept, record)
    local s = core:load(header)
    if record then s.n = 2 end
    return pcall(core._commit, core, s)
  end

  it("is the cookie's when it is one", function()
    for _, record in ipairs({ false, true }) do
      local ok, line = commit_of({ ttl = 60, maxAge = 60, originalMaxAge = 60 }, record)
      assert.is_true(ok, line)
      assert.truthy(line:find("; Max-Age=60; ", 1, true), line)
      ok, line = commit_of({ ttl = 60, maxAge = false, originalMaxAge = false }, record)
      assert.is_true(ok, line)
      assert.falsy(line:find("Max-Age", 1, true), line)
    end
  end)

  it("is refused, naming the method and the field, when it is not one", function()
    local bad = {
      { { ttl = 60 }, "maxAge is nil" },
      { { ttl = 60, maxAge = 1e300, originalMaxAge = 60 }, "maxAge is 1e+300" },
      { { ttl = 0 / 0, maxAge = 60 }, "ttl is NaN" },
      { { ttl = 60, maxAge = -5 }, "maxAge is -5" },
      { { ttl = 60, maxAge = 1.5 }, "maxAge is 1.5" },
      { { ttl = 60, maxAge = "60" }, "maxAge is a string" },
      { { ttl = 60, maxAge = 60, originalMaxAge = true }, "originalMaxAge is true" },
      { { ttl = 3153600001, maxAge = 60 }, "ttl is 3153600001" },
    }
    for _, record in ipairs({ false, true }) do
      local method = record and "merge" or "touch"
      for _, case in ipairs(bad) do
        local ok, err = commit_of(case[1], record)
        assert.is_false(ok, case[2])
        assert.equal("honeymoon_session: store:" .. method .. " failed: it returned a lifetime whose "
          .. case[2] .. "; a lifetime is { ttl =, maxAge =, originalMaxAge = } in whole seconds from 1 to "
          .. "3153600000 (maxAge and originalMaxAge may be false, originalMaxAge nil), as hs._record_meta "
          .. "returns it", err)
      end
    end
  end)
end)

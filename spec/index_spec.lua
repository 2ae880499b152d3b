-- "Log out everywhere" (the session option `index`): every store that keeps an owner index goes
-- through the same checks, through the session middleware the way an app uses it. A store lists
-- an owner's live sessions (store:sessionsOf(owner)) and ends them (store:destroyAll(owner,
-- exceptId)); the index follows logins, logouts, writes, touches, expiry, regenerate's retired
-- ids and concurrent requests. The DatabaseStore (the Sessions page's example) has no such
-- methods: its entry is a capability it lacks, reported pending, never a pass.
local hs = require("honeymoon_session")
local App = require("examples.framework.app")
local Client = require("examples.framework.client")
local Db = require("spec.support.db")
local TableStore = require("spec.support.table_store")
local DatabaseStore = require("spec.support.database_store")
local RedisServer = require("scripts.lib.redis_server")
local FakeDict = require("spec.support.fake_dict")
local Interpreter = require("spec.support.interpreter")
local Site = require("spec.support.site")

local SECRET = "index-secret"
local COOKIE = "honeymoon.sid"

-- One redis-server for the Redis entries, started on first use.
local redis
local function redis_server()
  if not redis then redis = RedisServer.start() end
  return redis
end

local function lines(text)
  local out = {}
  for line in text:gmatch("[^\n]+") do out[#out + 1] = line end
  table.sort(out)
  return out
end

-- The ids a Redis owner index holds, as stored (before any read filters them).
local function zset(server, key)
  return lines(server:cli("ZRANGE", key, 0, -1))
end

-- Lets `seconds` pass for the module (the engine, MemoryStore, the index's times) and for the
-- stores with clocks of their own.
local function module_age(seconds) hs._advance_clock(seconds) end

local coroutine_start = Site.start

-- Each entry's new() returns a fixture:
--   store        the store under test
--   age(s)       lets s seconds pass for the store and the module
--   close()      optional cleanup
--   index_ids(o) optional: the ids the store's raw index holds for owner o, sorted
--   pause, start optional: how a handler waits and how a paused request is started (default:
--                a plain coroutine; the cqueues store's requests run in a cqueues loop)
-- Capability: index = false for a store without sessionsOf/destroyAll. whole_writes: a store
-- without merge; prunes_on_login: a whole write drops an owner's expired ids from the raw index.
local STORES = {
  {
    name = "MemoryStore",
    index = true,
    new = function() return { store = hs.MemoryStore(), age = module_age } end,
  },
  {
    name = "TableStore (the reference custom store)",
    index = true,
    lua_methods = true, -- a Lua object: a spec may wrap its methods
    whole_writes = true, -- no merge: a commit writes the whole session back
    new = function()
      local store = TableStore.new({ clock = function() return hs._now_ms() / 1000 end })
      return {
        store = store,
        age = module_age,
        index_ids = function(owner)
          local ids = {}
          for id in pairs(store.owners[owner] or {}) do ids[#ids + 1] = id end
          table.sort(ids)
          return ids
        end,
      }
    end,
  },
  {
    name = "DatabaseStore (the Sessions page's example)",
    index = false,
    new = function()
      local db = Db.open(":memory:")
      db:execute("CREATE TABLE sessions (id TEXT PRIMARY KEY, data TEXT, expires_at INTEGER)")
      return { store = DatabaseStore.new(db), age = module_age, close = function() db:close() end }
    end,
  },
  {
    name = "RedisStore (native)",
    index = true,
    redis = true,
    new = function()
      local server = redis_server()
      server:cli("FLUSHALL")
      local prefix = "idx:"
      return {
        store = hs.RedisStore({ url = server.url, prefix = prefix }),
        server = server, prefix = prefix,
        index_key = function(owner) return "owner:" .. prefix .. owner end,
        age = function(seconds)
          server:age(prefix, seconds)
          server:age("owner:" .. prefix, seconds)
          module_age(seconds)
        end,
        index_ids = function(owner) return zset(server, "owner:" .. prefix .. owner) end,
      }
    end,
  },
  {
    name = "RedisStore for event loops (cqueues)",
    index = true,
    lua_methods = true, -- a Lua object: a spec may wrap its methods
    redis = true,
    new = function()
      local server = redis_server()
      server:cli("FLUSHALL")
      local cqueues = require("cqueues")
      local condition = require("cqueues.condition")
      local prefix = "lidx:"
      local waiting
      local fx = {
        store = require("honeymoon_session.stores.redis").new({
          url = server.url, prefix = prefix, indexPrefix = "by-owner:", socket = "cqueues",
        }),
        server = server, prefix = prefix,
        index_key = function(owner) return "by-owner:" .. owner end,
        age = function(seconds)
          server:age(prefix, seconds)
          server:age("by-owner:", seconds)
          module_age(seconds)
        end,
        index_ids = function(owner) return zset(server, "by-owner:" .. owner) end,
      }
      -- A paused request runs in a cqueues loop (its store calls yield to that loop); the
      -- spec's other requests run outside it, where the store blocks.
      function fx.pause()
        waiting = condition.new()
        waiting:wait()
      end
      function fx.start(fn)
        local cq = cqueues.new()
        local done, result, failure = false, nil, nil
        waiting = nil
        cq:wrap(function()
          local ok, r = pcall(fn)
          if ok then result = r else failure = r end
          done = true
        end)
        local deadline = cqueues.monotime() + 10
        while not waiting and not done do
          assert(cq:step(0.01))
          assert(cqueues.monotime() < deadline, "the request did not pause")
        end
        assert.is_false(done, "the request finished instead of pausing")
        return function()
          waiting:signal()
          while not done do
            assert(cq:step(0.05))
            assert(cqueues.monotime() < deadline + 10, "the request did not finish")
          end
          if failure then error(failure, 0) end
          return result
        end
      end
      return fx
    end,
  },
  {
    name = "SharedDictStore (a fake lua_shared_dict)",
    index = true,
    lua_methods = true, -- a Lua object: a spec may wrap its methods
    prunes_on_login = true,
    new = function()
      local saved = rawget(_G, "ngx")
      local fake = FakeDict.ngx({ "sessions" })
      _G.ngx = fake
      local store = require("honeymoon_session.stores.shared_dict").new({ dict = "sessions", prefix = "s:" })
      return {
        store = store,
        age = module_age,
        close = function() _G.ngx = saved end,
        index_ids = function(owner)
          local list = fake.shared.sessions:get("\0owner:s:" .. owner) or ""
          local ids, pos = {}, 1
          while true do -- each id ends with a NUL byte (no pattern: %z differs between versions)
            local stop = list:find("\0", pos, true)
            if not stop then break end
            ids[#ids + 1] = list:sub(pos, stop - 1)
            pos = stop + 1
          end
          table.sort(ids)
          return ids
        end,
      }
    end,
  },
}

-- The session id in a client's cookie, or nil.
local function id_of(client)
  local v = client:cookie(COOKIE)
  return v and v:match("^s%%3A([%w_%-]+)%.")
end

local function ids_of(list)
  local out = {}
  for i, s in ipairs(list) do out[i] = s.id end
  return out
end

local sorted = Site.sorted

-- An app with `index = "userId"` over the fixture's store.
local function site(fx, opts)
  local o = { secret = SECRET, store = fx.store, index = "userId" }
  for k, v in pairs(opts or {}) do o[k] = v end
  local app = App.new()
  app:use(hs.session(o))
  local store = fx.store
  app:get("/login", function(req, res)
    req.session:regenerate()
    local user = req.query.user
    req.session.userId = req.query.number and tonumber(user) or user
    res:text("in")
  end)
  app:get("/whoami", function(req, res) res:text(tostring(req.session.userId or "anon")) end)
  app:get("/write", function(req, res)
    req.session[req.query.k] = req.query.v
    res:text("ok")
  end)
  app:get("/touch", function(req, res)
    req.session:touch()
    res:text("ok")
  end)
  app:get("/logout", function(req, res) -- the session goes on, anonymous
    req.session.userId = nil
    res:text("out")
  end)
  app:get("/regenerate-logout", function(req, res) -- a logout that drops the data with the id
    req.session:regenerate()
    res:text("out")
  end)
  app:get("/regenerate", function(req, res)
    req.session:regenerate(true) -- e.g. a privilege change: the old id is retired, still owned
    res:text("ok")
  end)
  app:get("/sessions", function(req, res)
    local out = {}
    for _, s in ipairs(store:sessionsOf(req.session.userId)) do
      out[#out + 1] = s.id .. (s.id == req.session:getId() and " current" or "")
    end
    res:text(table.concat(out, "\n"))
  end)
  app:get("/logout-others", function(req, res)
    res:text(tostring(store:destroyAll(req.session.userId, req.session:getId())))
  end)
  app:get("/slow", function(req, res) -- a request that writes after another one ran
    fx.pause()
    req.session[req.query.k] = req.query.v
    res:text("ok")
  end)
  return app
end

local function login(app, user, query)
  local c = Client.new(app)
  assert.equal("in", c:get("/login?user=" .. user .. (query or "")).body)
  return c, id_of(c)
end

for _, kind in ipairs(STORES) do
  describe("log out everywhere: " .. kind.name, function()
    if not kind.index then
      it("lists and ends an owner's sessions", function()
        pending("a capability this store lacks (no sessionsOf/destroyAll): with it, a store written in Lua "
          .. "keeps an owner index; see the README's Log out everywhere")
      end)
      return
    end

    local fx, store

    before_each(function()
      fx = kind.new()
      store = fx.store
      fx.pause = fx.pause or coroutine.yield
      fx.start = fx.start or coroutine_start
    end)

    after_each(function()
      if fx.close then fx.close() end
    end)

    -- destroyAll ended ann's session of client `a` (its id was `old`) while a request `r` of
    -- it ran: that response sent no cookie, nothing of ann's is listed or stored, and the
    -- client's next request is anonymous.
    local function assert_ended(r, a, old)
      assert.is_nil(r.headers["Set-Cookie"], "no cookie for a session destroyAll ended")
      assert.equal(old, id_of(a))
      assert.same({}, store:sessionsOf("ann"))
      assert.is_false(store:exists(old))
      assert.equal("anon", a:get("/whoami").body)
    end

    -- Logs ann in, runs `path` for her until it pauses, runs destroyAll("ann") meanwhile (it
    -- must end `ended` ids, or at least one when nil), then lets the request finish: the
    -- session must be over. Returns the finished response.
    local function race_destroy_all(app, path, ended)
      local a, id_a = login(app, "ann")
      local finish = fx.start(function() return a:get(path) end)
      local n = store:destroyAll("ann")
      if ended then assert.equal(ended, n) else assert.is_true(n >= 1) end
      local r = finish()
      assert_ended(r, a, id_a)
      return r
    end

    if kind.redis then
      lazy_teardown(function()
        if redis then redis:close() end
        redis = nil
      end)
    end

    if kind.redis then
      it("a session whose Node-written JSON holds a lone surrogate escape is still listed and ended", function()
        local app = site(fx)
        local a, id = login(app, "ann")
        local key = fx.prefix .. id
        local json = fx.server:cli("GET", key):gsub("\n$", "")
        -- What Node's JSON.stringify writes for a string cut inside an emoji: this module reads
        -- it, Redis's cjson refuses it, and the scripts must still see the owner.
        fx.server:cli("SET", key, (json:gsub("^{", '{"q":"x\\ud83d",')), "EX", 3600)
        assert.equal("ann", a:get("/whoami").body)
        assert.same({ id }, ids_of(store:sessionsOf("ann")))
        assert.equal(1, store:destroyAll("ann"))
        assert.equal("anon", a:get("/whoami").body)
      end)
    end

    if kind.redis then
      -- A script's earlier writes stay when a later command fails: the index is written first,
      -- so a write that fails there stores nothing, rather than a session no index lists.
      it("a write that cannot list the session (another type at the index key) stores nothing", function()
        local app = site(fx)
        local c = Client.new(app)
        assert.equal(200, c:get("/write?k=cart&v=apple").status)
        fx.server:cli("SET", fx.index_key("mallory"), "not a sorted set")
        assert.equal(500, c:get("/write?k=userId&v=mallory").status, "the merge (CAS) fails")
        assert.equal("anon", c:get("/whoami").body)
        local d = Client.new(app)
        assert.equal(500, d:get("/login?user=mallory").status, "the whole write (SET_LISTED) fails")
        assert.equal("anon", d:get("/whoami").body)
      end)
    end

    it("lists two logins of one user, most recently seen first, with created and lastSeen in seconds", function()
      local app = site(fx)
      local before = math.floor(hs._now_ms() / 1000)
      local a, id_a = login(app, "ann")
      fx.age(5)
      local b, id_b = login(app, "ann")
      login(app, "bob")
      local list = store:sessionsOf("ann")
      assert.same({ id_b, id_a }, ids_of(list))
      for _, s in ipairs(list) do
        assert.equal(math.floor(s.lastSeen), s.lastSeen)
        assert.equal(math.floor(s.created), s.created)
        assert.is_true(s.created >= before and s.lastSeen >= s.created, "times in seconds since the epoch")
      end
      assert.is_true(list[1].lastSeen >= list[2].lastSeen + 4, "lastSeen follows the logins")
      -- In a request: the current session is the one whose id is the request's.
      assert.equal(id_b .. " current\n" .. id_a, b:get("/sessions").body)
      assert.equal(id_b .. "\n" .. id_a .. " current", a:get("/sessions").body)
      assert.same({}, store:sessionsOf("nobody"))
    end)

    it("lastSeen follows writes and touches", function()
      local app = site(fx)
      local a, id_a = login(app, "ann")
      fx.age(5)
      local b, id_b = login(app, "ann")
      fx.age(5)
      a:get("/write?k=cart&v=apple")
      assert.same({ id_a, id_b }, ids_of(store:sessionsOf("ann")))
      fx.age(5)
      b:get("/touch")
      assert.same({ id_b, id_a }, ids_of(store:sessionsOf("ann")))
    end)

    it("destroyAll(owner, current) logs the other session out: its next request is anonymous, with no session back", function()
      local app = site(fx)
      local a, id_a = login(app, "ann")
      local b, id_b = login(app, "ann")
      local c = login(app, "bob")
      assert.equal("1", b:get("/logout-others").body)
      local r = a:get("/whoami")
      assert.equal("anon", r.body)
      assert.is_nil(r.headers["set-cookie"], "no session, no cookie")
      assert.is_false(store:exists(id_a))
      assert.equal("ann", b:get("/whoami").body)
      assert.equal("bob", c:get("/whoami").body)
      assert.same({ id_b }, ids_of(store:sessionsOf("ann")))
      assert.equal(0, store:destroyAll("nobody"))
      -- Without an id to keep, every session of the owner ends.
      assert.equal(1, store:destroyAll("ann"))
      assert.equal("anon", b:get("/whoami").body)
      assert.same({}, store:sessionsOf("ann"))
    end)

    it("a logout (userId removed) drops the session from the owner's list; destroyAll spares it", function()
      local app = site(fx)
      local a, id_a = login(app, "ann")
      local _, id_b = login(app, "ann")
      assert.equal("out", a:get("/logout").body)
      assert.same({ id_b }, ids_of(store:sessionsOf("ann")))
      assert.equal(1, store:destroyAll("ann"))
      assert.is_true(store:exists(id_a), "the logged-out session is not the owner's any more")
      assert.equal("anon", a:get("/whoami").body)
      if fx.index_ids then assert.same({}, fx.index_ids("ann")) end
    end)

    it("a login without regenerate lists the session; another user's login moves it to that user's list", function()
      local app = site(fx)
      local a = Client.new(app)
      a:get("/write?k=cart&v=apple") -- an anonymous session, stored
      local id_a = id_of(a)
      assert.same({}, store:sessionsOf("ann"))
      a:get("/write?k=userId&v=ann") -- a write of the stored session names its owner
      assert.same({ id_a }, ids_of(store:sessionsOf("ann")))
      a:get("/write?k=userId&v=bob") -- the same id changes owner
      assert.same({}, store:sessionsOf("ann"))
      assert.same({ id_a }, ids_of(store:sessionsOf("bob")))
      assert.equal(0, store:destroyAll("ann"))
      assert.equal("bob", a:get("/whoami").body)
    end)

    it("an expired session is not listed and leaves the index", function()
      local app = site(fx, { ttl = 100 })
      local _, id_a = login(app, "ann")
      fx.age(60)
      local b, id_b = login(app, "ann")
      fx.age(60) -- a: 120 s old, past its 100 s; b: 60 s
      if kind.redis then
        -- A write of the owner's other session drops the expired id from its set, unread.
        b:get("/write?k=n&v=1")
        assert.same({ id_b }, fx.index_ids("ann"))
      end
      local _, id_c = login(app, "ann")
      if kind.redis or kind.prunes_on_login then
        assert.same(sorted({ id_b, id_c }), fx.index_ids("ann"))
      end
      assert.same({ id_c, id_b }, ids_of(store:sessionsOf("ann")))
      if fx.index_ids then assert.same(sorted({ id_b, id_c }), fx.index_ids("ann")) end
      assert.equal(1, store:destroyAll("ann", id_c))
      assert.is_false(store:exists(id_a))
      fx.age(200) -- c expires too: nothing of the owner is left
      assert.same({}, store:sessionsOf("ann"))
      if fx.index_ids then assert.same({}, fx.index_ids("ann")) end
      if fx.index_key then
        assert.equal("0", fx.server:cli("EXISTS", fx.index_key("ann")):match("%d"), "the owner's key expired with its sessions")
      end
    end)

    if kind.redis then
      it("the owner's key expires when its last session does, and clear() removes it", function()
        local app = site(fx, { ttl = 100 })
        login(app, "ann")
        fx.age(50)
        login(app, "ann")
        local ttl = tonumber(fx.server:cli("TTL", fx.index_key("ann")))
        assert.is_true(ttl > 90 and ttl <= 100, "ttl " .. tostring(ttl))
        store:clear()
        assert.equal("0", fx.server:cli("EXISTS", fx.index_key("ann")):match("%d"))
      end)
    end

    it("a logout by regenerate() ends the old id at once: its logged-in data is not readable for the grace", function()
      local app = site(fx)
      local a, old = login(app, "ann")
      local stolen = Client.new(app)
      stolen:set_cookie(COOKIE, a:cookie(COOKIE))
      assert.equal("out", a:get("/regenerate-logout").body)
      assert.is_false(store:exists(old))
      assert.equal("anon", stolen:get("/whoami").body)
      assert.equal("anon", a:get("/whoami").body)
    end)

    it("a logout that keeps the data (userId removed, then regenerate(true)) ends the old id at once too", function()
      local app = site(fx)
      app:get("/logout-keep-cart", function(req, res)
        req.session.userId = nil
        req.session:regenerate(true)
        res:text("out")
      end)
      app:get("/cart", function(req, res) res:text(tostring(req.session.cart)) end)
      local a, old = login(app, "ann")
      assert.equal("ok", a:get("/write?k=cart&v=3").body)
      local stolen = Client.new(app)
      stolen:set_cookie(COOKIE, a:cookie(COOKIE))
      assert.equal("out", a:get("/logout-keep-cart").body)
      assert.is_false(store:exists(old))
      assert.equal("anon", stolen:get("/whoami").body)
      assert.equal("anon", a:get("/whoami").body)
      assert.equal("3", a:get("/cart").body, "the data moved to the new id")
    end)

    -- A login as someone else that keeps the data: the old id holds the first user's logged-in
    -- data, as after a logout that keeps it. (The same owner, a privilege change, is retired.)
    for _, case in ipairs({
      { "a string", "bob", "ann" },
      { "a number", 8, 7 },
    }) do
      it("a login as another user that keeps the data (owner " .. case[1] .. ") ends the old id at once too", function()
        local app = site(fx)
        app:get("/switch-keep-cart", function(req, res)
          req.session.userId = case[2]
          req.session:regenerate(true)
          res:text("switched")
        end)
        app:get("/same-keep-cart", function(req, res)
          req.session.userId = case[3]
          req.session:regenerate(true)
          res:text("same")
        end)
        app:get("/cart", function(req, res) res:text(tostring(req.session.cart)) end)
        local query = type(case[3]) == "number" and "&number=1" or nil
        local a, old = login(app, tostring(case[3]), query)
        assert.equal("ok", a:get("/write?k=cart&v=3").body)
        -- The owner set again to the same value (7 over 7): retired, as regenerate(true) is.
        assert.equal("same", a:get("/same-keep-cart").body)
        assert.is_true(store:exists(old), "the same owner: the old id is retired, not deleted")
        local current = id_of(a)
        local stolen = Client.new(app)
        stolen:set_cookie(COOKIE, a:cookie(COOKIE))
        assert.equal("switched", a:get("/switch-keep-cart").body)
        assert.is_false(store:exists(current))
        assert.equal("anon", stolen:get("/whoami").body)
        assert.equal(tostring(case[2]), a:get("/whoami").body)
        assert.equal("3", a:get("/cart").body, "the data moved to the new id")
      end)
    end

    -- regenerate(true) of an owned session leaves the old id as it is until the new one is
    -- stored; a destroy() or a regenerate() later in the request must still end it.
    for _, case in ipairs({
      { "destroy()", function(s) s:destroy() end },
      { "regenerate()", function(s) s:regenerate() end },
    }) do
      it("regenerate(true) then " .. case[1] .. " in one request ends the old id and keeps no data", function()
        local app = site(fx)
        app:get("/up-then-out", function(req, res)
          req.session:regenerate(true)
          case[2](req.session)
          res:text(tostring(req.session.userId))
        end)
        local a, id_a = login(app, "ann")
        assert.equal("nil", a:get("/up-then-out").body)
        assert.is_false(store:exists(id_a))
        assert.same({}, store:sessionsOf("ann"))
        assert.equal("anon", a:get("/whoami").body)
      end)
    end

    it("regenerate(true) then destroyAll(owner, getId()) keeps this session and ends the others", function()
      local app = site(fx)
      app:get("/rotate-and-logout-others", function(req, res)
        req.session:regenerate(true)
        res:text(tostring(store:destroyAll(req.session.userId, req.session:getId())))
      end)
      local a, id_a = login(app, "ann")
      local b = login(app, "ann")
      local ended = a:get("/rotate-and-logout-others").body
      local id_new = id_of(a)
      assert.are_not.equal(id_a, id_new)
      assert.equal("ann", a:get("/whoami").body)
      assert.equal("anon", b:get("/whoami").body)
      assert.is_false(store:exists(id_a))
      assert.same({ id_new }, ids_of(store:sessionsOf("ann")))
      -- b's session, and the old id while it was retired (none with staleGrace = 0)
      assert.equal("2", ended)
    end)

    it("regenerate(true) then save() stores the new id and retires the old one at the save", function()
      local app = site(fx)
      local saved
      app:get("/up-and-save", function(req, res)
        local s = req.session
        s:regenerate(true)
        saved = s:save()
        res:text(tostring(s.userId))
      end)
      local a, id_a = login(app, "ann")
      assert.equal("ann", a:get("/up-and-save").body)
      assert.is_true(saved)
      local id_new = id_of(a)
      assert.are_not.equal(id_a, id_new)
      assert.same({ id_new }, ids_of(store:sessionsOf("ann")))
      assert.equal(2, store:destroyAll("ann"))
    end)

    it("an id regenerate retired is not listed, but destroyAll ends it too", function()
      local app = site(fx)
      local a, old = login(app, "ann")
      a:get("/regenerate")
      local new = id_of(a)
      assert.are_not.equal(old, new)
      assert.is_true(store:exists(old), "the old id lives on for the stale grace")
      assert.same({ new }, ids_of(store:sessionsOf("ann")))
      assert.equal(2, store:destroyAll("ann"))
      assert.is_false(store:exists(old))
      assert.is_false(store:exists(new))
      assert.equal("anon", a:get("/whoami").body)
    end)

    it("a session kept alive by requests alone (rolling) stays listed past the ttl of its login", function()
      local app = site(fx, { rolling = true, ttl = 100 })
      local a, id = login(app, "ann")
      for _ = 1, 3 do -- 180 s after the login, each request within the ttl
        fx.age(60)
        assert.equal("ann", a:get("/whoami").body)
      end
      assert.same({ id }, ids_of(store:sessionsOf("ann")))
      assert.equal(1, store:destroyAll("ann"))
      assert.equal("anon", a:get("/whoami").body)
    end)

    it("an owner id past 2^53 is indexed exactly where the interpreter has integers, refused where not", function()
      local app = site(fx)
      app:get("/big", function(req, res)
        req.session.userId = math.type and math.tointeger(2 ^ 62) + 7 or 2 ^ 62 + 7
        res:text("ok")
      end)
      local a = Client.new(app)
      local r = a:get("/big")
      if math.type then
        assert.equal(200, r.status)
        assert.same({ id_of(a) }, ids_of(store:sessionsOf(4611686018427387911)))
        assert.same({ id_of(a) }, ids_of(store:sessionsOf("4611686018427387911")))
      else
        assert.equal(500, r.status)
        assert.matches("session.userId names the session's owner (the index option), so it must be",
          tostring(app.last_error), 1, true)
      end
    end)

    it("an owner field that is neither text nor a whole number fails the request instead of going unlisted", function()
      local app = site(fx)
      app:get("/odd", function(req, res) req.session.userId = 1.5 res:text("ok") end)
      local r = Client.new(app):get("/odd")
      assert.equal(500, r.status)
      assert.matches("got the number 1.5", tostring(app.last_error), 1, true)
    end)

    it("an owner whose field is a number is found by the number or its decimal text", function()
      local app = site(fx)
      local _, id_a = login(app, "42", "&number=1")
      local _, id_b = login(app, "42", "&number=1")
      assert.same(sorted({ id_a, id_b }), sorted(ids_of(store:sessionsOf(42))))
      assert.same(sorted({ id_a, id_b }), sorted(ids_of(store:sessionsOf("42"))))
      assert.equal(1, store:destroyAll(42, id_a))
      assert.same({ id_a }, ids_of(store:sessionsOf(42)))
    end)

    describe("concurrent requests", function()
      if not Interpreter.yields_across_pcall then
        it("keep the index right", function() pending(Interpreter.NO_YIELD_IN_PCALL) end)
        return
      end

      it("a slow write and a logout on one session: the index says what the store holds", function()
        local app = site(fx)
        local a, id_a = login(app, "ann")
        local finish = fx.start(function() return a:get("/slow?k=x&v=1") end)
        assert.equal("out", a:get("/logout").body)
        assert.equal(200, finish().status)
        -- A store with merge keeps the logout (the slow request changed x only); a merge-less one
        -- writes the slow request's whole session back. Either way the list agrees with it.
        local owner = a:get("/whoami").body
        if owner == "ann" then
          assert.same({ id_a }, ids_of(store:sessionsOf("ann")))
        else
          assert.equal("anon", owner)
          assert.same({}, store:sessionsOf("ann"))
        end
        if not kind.whole_writes then assert.equal("anon", owner) end
      end)

      it("a slow write of a session ended by destroyAll does not bring it back", function()
        local app = site(fx)
        local a, id_a = login(app, "ann")
        local b, id_b = login(app, "ann")
        local finish = fx.start(function() return a:get("/slow?k=x&v=1") end)
        assert.equal("1", b:get("/logout-others").body)
        finish()
        assert.is_false(store:exists(id_a))
        assert.same({ id_b }, ids_of(store:sessionsOf("ann")))
        assert.equal("anon", a:get("/whoami").body)
      end)

      -- /slow-remember pauses, then makes the session a remember-me one (its own lifetime).
      local function slow_remember(app)
        app:get("/slow-remember", function(req, res)
          fx.pause()
          req.session.cookie.maxAge = 30 * 24 * 3600 * 1000
          res:text("ok")
        end)
      end

      -- A request that rewrites only the bookkeeping (a remember-me lifetime) must not carry
      -- its pre-login view of the owner over a login stored meanwhile: a logged-in session
      -- missing from its owner's list would survive "log out everywhere".
      it("a lifetime change racing a login on one session keeps the login's owner", function()
        local app = site(fx)
        slow_remember(app)
        local a = Client.new(app)
        assert.equal("ok", a:get("/write?k=cart&v=1").body) -- a stored anonymous session
        local id = id_of(a)
        local finish = fx.start(function() return a:get("/slow-remember") end)
        assert.equal("ok", a:get("/write?k=userId&v=ann").body) -- the login, same id
        assert.equal(200, finish().status)
        assert.equal(id, id_of(a))
        -- Before the session's next request, which would write its owner again.
        local listed = ids_of(store:sessionsOf("ann"))
        local ended = store:destroyAll("ann")
        local owner = a:get("/whoami").body
        if kind.whole_writes and owner == "anon" then
          -- A merge-less store wrote the slow request's whole session back: no login, no owner.
          assert.same({}, listed)
        else
          assert.same({ id }, listed)
          assert.equal(1, ended)
          assert.equal("anon", owner)
        end
      end)

      it("a lifetime change racing a logout on one session does not list it again", function()
        local app = site(fx)
        slow_remember(app)
        local a = Client.new(app)
        assert.equal("ok", a:get("/write?k=userId&v=ann").body)
        local finish = fx.start(function() return a:get("/slow-remember") end)
        assert.equal("out", a:get("/logout").body)
        assert.equal(200, finish().status)
        local listed = ids_of(store:sessionsOf("ann"))
        local owner = a:get("/whoami").body
        if not kind.whole_writes then assert.equal("anon", owner) end
        if owner == "anon" then
          assert.same({}, listed)
        else
          assert.same({ id_of(a) }, listed)
        end
      end)

      -- regenerate(true) moves the data, owner and all, to a new id: it stores the new id and
      -- then retires (or, with staleGrace = 0, deletes) the old one, so a destroyAll running at
      -- any point finds one or the other, and nothing brings the session back afterwards.
      for _, grace in ipairs({ 10, 0 }) do
        it("a destroyAll after regenerate(true) ends the session; its commit brings nothing back (staleGrace "
          .. grace .. ")", function()
          local app = site(fx, { staleGrace = grace })
          app:get("/slow-regenerate", function(req, res)
            req.session:regenerate(true)
            req.session.step = "up"
            fx.pause()
            res:text("ok")
          end)
          local bob, id_bob = login(app, "bob")
          -- The new id, and the old one while it is retired.
          assert.equal(200, race_destroy_all(app, "/slow-regenerate", grace > 0 and 2 or 1).status)
          -- Another owner's session is untouched.
          assert.equal("bob", bob:get("/whoami").body)
          assert.same({ id_bob }, ids_of(store:sessionsOf("bob")))
        end)
      end

      -- A second rotation, or one after save(), moves the data the same way (the session's
      -- owner is its data's then), and an id holding this request's writes is deleted, not retired.
      for _, case in ipairs({
        { "a second regenerate(true)", function(s) s:regenerate(true) end },
        { "save() then regenerate(true)", function(s) s.saved = "yes" s:save() end },
      }) do
        it("a destroyAll after " .. case[1] .. " ends the session", function()
          local app = site(fx)
          app:get("/twice", function(req, res)
            local s = req.session
            s:regenerate(true)
            case[2](s)
            s:regenerate(true)
            fx.pause()
            s.step = "up"
            res:text("ok")
          end)
          race_destroy_all(app, "/twice")
        end)
      end

      it("a destroyAll before regenerate(true) ends the session: the move finds the old id gone", function()
        local app = site(fx)
        app:get("/slow-regenerate", function(req, res)
          fx.pause()
          req.session:regenerate(true)
          res:text(tostring(req.session.userId))
        end)
        race_destroy_all(app, "/slow-regenerate", 1)
      end)

      -- The window between the two writes, where a store's calls yield: a destroyAll there
      -- finds the new id listed (and the old one), and the move then finds the old id gone.
      if kind.lua_methods then
        it("a destroyAll between regenerate(true)'s two writes ends the session", function()
          local app = site(fx)
          local set, armed = store.set, false
          store.set = function(self, ...)
            local v = set(self, ...)
            if armed then
              armed = false
              fx.pause()
            end
            return v
          end
          app:get("/rotate", function(req, res)
            armed = true
            req.session:regenerate(true)
            res:text(tostring(req.session.userId))
          end)
          race_destroy_all(app, "/rotate", 2)
        end)
      end

      -- A store error inside regenerate(true) that the handler catches. If the new id's write
      -- failed, the session stays what it was, under its old id. If the old id's retirement
      -- failed, the move stays pending and the request's commit retires it, so a thief's copy
      -- of the old cookie does not outlive the rotation; a destroyAll(owner, getId()) the
      -- handler runs meanwhile spares the new id, and the session lives on under it.
      if kind.lua_methods then
        for _, case in ipairs({
          { fails = "the old id's retirement" },
          { fails = "the old id's retirement", logout_others = true },
          { fails = "the new id's write" },
          { fails = "the new id's write", logout_others = true },
          { fails = "the new id's write", logout = true },
        }) do
          local title = ("a caught failure of %s in regenerate(true)%s"):format(case.fails,
            case.logout_others and ", then destroyAll(owner, getId())"
              or case.logout and ", then a logout with regenerate()" or "")
          it(title, function()
            local app = site(fx)
            -- The new id is written with set; the old one retired with merge (or, without
            -- merge, a second set).
            local retirement = case.fails == "the old id's retirement"
            local name = (retirement and store.merge) and "merge" or "set"
            local nth = (retirement and not store.merge) and 2 or 1
            local method, calls = store[name], nil
            store[name] = function(self, ...)
              if calls then
                calls = calls + 1
                if calls == nth then
                  calls = nil
                  error("the store is down for a moment", 0)
                end
              end
              return method(self, ...)
            end
            local rotate_error, ended
            app:get("/rotate", function(req, res)
              local s = req.session
              calls = 0
              local ok, err = pcall(s.regenerate, s, true)
              calls = nil
              if not ok then rotate_error = err end
              if case.logout_others then ended = store:destroyAll(s.userId, s:getId()) end
              if case.logout then s:regenerate() end
              res:text(tostring(s.userId))
            end)
            local a, id_a = login(app, "ann")
            if case.logout then
              -- The rolled-back session is still the logged-in one: the logout ends its id at
              -- once, as any logout of a session with an owner does.
              assert.equal("nil", a:get("/rotate").body)
              assert.matches("the store is down for a moment", tostring(rotate_error), 1, true)
              assert.is_false(store:exists(id_a))
              assert.same({}, store:sessionsOf("ann"))
              assert.equal("anon", a:get("/whoami").body)
              return
            end
            assert.equal("ann", a:get("/rotate").body)
            assert.matches("the store is down for a moment", tostring(rotate_error), 1, true)
            local id_now = id_of(a)
            assert.equal("ann", a:get("/whoami").body)
            assert.same({ id_now }, ids_of(store:sessionsOf("ann")))
            if retirement then
              assert.are_not.equal(id_a, id_now)
              if case.logout_others then
                assert.equal(1, ended) -- the old id
                assert.is_false(store:exists(id_a))
              else
                assert.is_true(store:exists(id_a), "retired, readable for the grace")
                assert.equal(2, store:destroyAll("ann")) -- the new id and the retired one
              end
            else
              assert.equal(id_a, id_now, "no new id was stored, and no cookie sent")
              if case.logout_others then assert.equal(0, ended) end
            end
          end)
        end
      end

      -- A request still carrying an id that a rotation retired (a double-submitted login, a
      -- stolen copy of the old cookie) reads it, but writes nothing and sends no cookie, also
      -- when it regenerates: it can neither replace the newer cookie nor mint a live session.
      it("regenerate(true) on a retired id stores nothing and sends no cookie", function()
        local app = site(fx)
        app:get("/rotate", function(req, res)
          req.session:regenerate(true)
          res:text(tostring(req.session.userId))
        end)
        local a, id_a = login(app, "ann")
        local thief = Client.new(app)
        thief:set_cookie(COOKIE, a:cookie(COOKIE))
        assert.equal("ann", a:get("/rotate").body)
        local id_new = id_of(a)
        local r = thief:get("/rotate")
        assert.equal("ann", r.body) -- what the request read, kept in the request
        assert.is_nil(r.headers["Set-Cookie"])
        assert.same({ id_new }, ids_of(store:sessionsOf("ann")))
        assert.is_true(store:exists(id_a), "still retired, for the browser's parallel requests")
        assert.equal("ann", a:get("/whoami").body)
      end)

      it("a regenerate(true) that destroyAll did not race moves the session: the old id is retired, the new one listed", function()
        local app = site(fx)
        app:get("/slow-regenerate", function(req, res)
          req.session:regenerate(true)
          fx.pause()
          res:text(tostring(req.session.userId))
        end)
        local a, id_a = login(app, "ann")
        local finish = fx.start(function() return a:get("/slow-regenerate") end)
        -- The old id, retired, still reads its data for the grace.
        local other = Client.new(app)
        other:set_cookie(COOKIE, a:cookie(COOKIE))
        assert.equal("ann", other:get("/whoami").body)
        assert.equal("ann", finish().body)
        local id_new = id_of(a)
        assert.are_not.equal(id_a, id_new)
        assert.same({ id_new }, ids_of(store:sessionsOf("ann")))
        assert.equal("ann", a:get("/whoami").body)
        assert.equal(2, store:destroyAll("ann")) -- the new id and the retired one
        assert.equal("anon", a:get("/whoami").body)
      end)

      -- Retiring an id never changes its owner: a login stored after the retiring request
      -- loaded the session keeps the retired id in reach of destroyAll.
      it("an id regenerate() retires keeps an owner another request stored meanwhile", function()
        local app = site(fx)
        app:get("/slow-regenerate-logout", function(req, res)
          fx.pause()
          req.session:regenerate()
          res:text("ok")
        end)
        local a = Client.new(app)
        assert.equal("ok", a:get("/write?k=cart&v=1").body) -- stored, anonymous
        local old = id_of(a)
        local finish = fx.start(function() return a:get("/slow-regenerate-logout") end)
        local other = Client.new(app)
        other:set_cookie(COOKIE, a:cookie(COOKIE))
        assert.equal("ok", other:get("/write?k=userId&v=ann").body) -- a login on the same id
        finish()
        assert.is_true(store:exists(old), "retired, readable for the grace")
        if kind.whole_writes then
          -- A merge-less store wrote the retiring request's whole (pre-login) session back.
          assert.equal("anon", other:get("/whoami").body)
        else
          assert.equal("ann", other:get("/whoami").body)
          assert.equal(1, store:destroyAll("ann"))
          assert.is_false(store:exists(old))
        end
      end)

      it("two interleaved logins of one user are both listed", function()
        local app = site(fx)
        local a = Client.new(app)
        app:get("/slow-login", function(req, res)
          req.session:regenerate()
          fx.pause()
          req.session.userId = "ann"
          res:text("in")
        end)
        local finish = fx.start(function() return a:get("/slow-login") end)
        local _, id_b = login(app, "ann")
        finish()
        local id_a = id_of(a)
        assert.same(sorted({ id_a, id_b }), sorted(ids_of(store:sessionsOf("ann"))))
      end)
    end)
  end)
end

describe("log out everywhere: what sessionsOf and destroyAll take", function()
  it("the native stores refuse an owner that is not a string or a whole number, naming the store", function()
    local store = hs.MemoryStore()
    local ok, err = pcall(store.sessionsOf, store, {})
    assert.is_false(ok)
    assert.matches("honeymoon_session: MemoryStore:sessionsOf: the owner must be a UTF-8 string, an integer, or a whole number below 2^53", err, 1, true)
    assert.matches("got a table", err, 1, true)
    ok, err = pcall(store.destroyAll, store, 1.5)
    assert.is_false(ok)
    assert.matches("got the number 1.5", err, 1, true)
    ok, err = pcall(store.destroyAll, store, "ann", false)
    assert.is_false(ok)
    assert.matches("the id to keep must be a session id", err, 1, true)
    ok, err = pcall(store.destroyAll, store, "ann", 7)
    assert.is_false(ok)
    assert.matches("MemoryStore:destroyAll: the id to keep must be a session id", err, 1, true)
    assert.same({}, store:sessionsOf(1e15))
  end)

  it("a number past 2^53 that is not an integer is refused as the commit refuses it, on every interpreter", function()
    -- On Lua 5.1, 5.2 and LuaJIT every number is a double, and one this large may be another
    -- id rounded: the commit refuses it as an owner, so sessionsOf and destroyAll must not
    -- answer for it as if it were exact (destroyAll ending nothing, silently).
    local store = hs.MemoryStore()
    for _, v in ipairs({ 2 ^ 53, 2 ^ 62, -(2 ^ 60) }) do
      for _, call in ipairs({
        function() return store:sessionsOf(v) end,
        function() return store:destroyAll(v) end,
        function() return hs._owner(v, "SomeStore", "sessionsOf") end,
      }) do
        local ok, err = pcall(call)
        assert.is_false(ok, string.format("%.17g was accepted", v))
        assert.matches("the owner must be a UTF-8 string, an integer, or a whole number below 2^53", err, 1, true)
      end
    end
    assert.equal("9007199254740991", hs._owner(2 ^ 53 - 1, "SomeStore", "sessionsOf"))
    -- Shown as every message shows a number (1e300, not its 301 digits).
    for _, call in ipairs({
      function() return store:sessionsOf(1e300) end,
      function() return hs._owner(-1e300, "SomeStore", "destroyAll") end,
    }) do
      local _, err = pcall(call)
      assert.matches("got the number %-?1e300$", err)
    end
    local _, err = pcall(store.destroyAll, store, 1e-300)
    assert.matches("got the number 1e%-300$", err)
  end)

  it("a session written without the index option is not listed", function()
    local store = hs.MemoryStore()
    local app = App.new()
    app:use(hs.session({ secret = SECRET, store = store }))
    app:get("/in", function(req, res) req.session.userId = "ann"; res:text("in") end)
    Client.new(app):get("/in")
    assert.same({}, store:sessionsOf("ann"))
    assert.equal(0, store:destroyAll("ann"))
    assert.equal(1, store:length())
  end)

  it("RedisStore refuses an indexPrefix and a prefix of which one starts with the other", function()
    for _, case in ipairs({
      { prefix = "sess:", indexPrefix = "sess:owners:" },
      { prefix = "sess:", indexPrefix = "sess" },
      { prefix = "o" }, -- the default "owner:o" starts with it
    }) do
      local ok, err = pcall(hs.RedisStore, case)
      assert.is_false(ok)
      assert.matches("neither it nor prefix", err, 1, true)
    end
    assert.is_true(pcall(hs.RedisStore, { prefix = "sess:" }))
  end)
end)

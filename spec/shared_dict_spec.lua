-- The SharedDictStore outside nginx: the module loads (an installed rock's files must), and new()
-- refuses at once, saying why. Its contract is checked inside nginx by
-- scripts/shared_dict_check.sh (spec/nginx/shared_dict.lua).
local SharedDictStore = require("honeymoon_session.stores.shared_dict")
local hs = require("honeymoon_session")
local FakeDict = require("spec.support.fake_dict")

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
    assert.equals('honeymoon_session: SharedDictStore: unknown option "ttl" (options: dict, prefix, lock_exptime, '
      .. "lock_timeout)", message({ ttl = 5 }))
    -- The key quoted and escaped as values are: a trailing space, a newline, a control byte show.
    assert.equals('honeymoon_session: SharedDictStore: unknown option "prefix " (options: dict, prefix, lock_exptime, '
      .. "lock_timeout)", message({ ["prefix "] = "s:" }))
    assert.matches('unknown option "dict\\n\\u{1b}\\"" %(options', message({ ["dict\n\27\""] = "s" }))
    assert.matches("unknown option %[1%] %(options", message({ "sessions" }))
    -- In the module's one style: each key as the native setup errors show it (control
    -- characters as Rust escapes them, bytes that are not UTF-8 as U+FFFD, a long key cut), never
    -- raw into a log.
    local function quoted(err, after)
      return assert(err:match("unknown option (.-)" .. after), err)
    end
    for _, key in ipairs({ "dict\n\27\"", "x\255y", "t\tab\\", "nul\0", "c1\194\155", "ls\226\128\168",
      "caf\195\169", ("k"):rep(100), 1, 1.5, 1e300, true, {} }) do
      local mine = quoted(message({ [key] = "s" }), " %(options")
      local native = quoted(hs.error_message(select(2, pcall(hs.session, { [key] = "s" }))), "; known")
      assert.equals(native, mine)
      assert.is_nil(mine:find("%c"), mine)
    end
    -- A dict name, as a value.
    local saved = rawget(_G, "ngx")
    _G.ngx = FakeDict.ngx({ "sessions" })
    local err = message({ dict = "no\27pe\255" })
    _G.ngx = saved
    assert.equals('honeymoon_session: SharedDictStore: no lua_shared_dict named "no\\u{1b}pe\239\191\189": declare '
      .. "it in nginx.conf's http block, e.g. `lua_shared_dict \"no\\u{1b}pe\239\191\189\" 10m;`", err)
    -- Values shown in the module's style (hs._shown), as the native setup errors show them.
    assert.equals("honeymoon_session: SharedDictStore: prefix must be a string, got 1e300", message({ prefix = 1e300 }))
    assert.equals("honeymoon_session: SharedDictStore: lock_timeout must be a number, got true", message({ lock_timeout = true }))
    -- Out of range: the option, the range and what was given, as every setup error says it.
    -- The dict takes whole milliseconds (under 1 ms is 0: never expires), and nginx turns an
    -- expiry past 2^64 ms into garbage, so a lock_exptime is kept within a TTL's range.
    local exptime = "honeymoon_session: SharedDictStore: lock_exptime must be a number of seconds from 0.001 to "
      .. "3153600000 (the dict counts whole milliseconds), got "
    assert.equals(exptime .. "0", message({ lock_exptime = 0 }))
    assert.equals(exptime .. "0.0005", message({ lock_exptime = 0.0005 }))
    assert.equals(exptime .. "1e300", message({ lock_exptime = 1e300 }))
    assert.equals(exptime .. "NaN", message({ lock_exptime = 0 / 0 }))
    local timeout = "honeymoon_session: SharedDictStore: lock_timeout must be a number of seconds from 0, got "
    assert.equals(timeout .. "-1", message({ lock_timeout = -1 }))
    assert.equals(timeout .. "inf", message({ lock_timeout = 1 / 0 }))
    assert.equals('honeymoon_session: SharedDictStore: options must be a table, got "sessions"', message("sessions"))
  end)
end)

describe("SharedDictStore: a method called with a dot", function()
  it("says so, in the module's shape, for every method", function()
    local saved = rawget(_G, "ngx")
    _G.ngx = FakeDict.ngx({ "sessions" })
    local store = SharedDictStore.new({ dict = "sessions" })
    _G.ngx = saved
    require("spec.support.dotted")(store)
  end)
end)

-- The owner index: a session that names an owner is on that owner's list whenever its record
-- is stored, so destroyAll finds it (a fake dict; one process plays both workers, so a lock
-- another worker would wait for shows as the fake's "contended" error).
describe("SharedDictStore: a session is never stored unlisted", function()
  local saved, fake, store, dict
  before_each(function()
    saved = rawget(_G, "ngx")
    fake = FakeDict.ngx({ "sessions" })
    _G.ngx = fake
    dict = fake.shared.sessions
    store = SharedDictStore.new({ dict = "sessions", prefix = "s:" })
  end)
  after_each(function() _G.ngx = saved end)

  local OWNER_LOCK = "\0lock:\0owner:s:ann"
  local ID, OTHER = "SESSIONIDSESSIONIDSESSIONID00001", "SESSIONIDSESSIONIDSESSIONID00002"
  local ANON, ANN = { cart = 1 }, { cart = 1, __meta = { owner = "ann", created = 1 } }
  local function record(t) local _, r = hs._record_patch({}, t) return r end
  local function patch(before, after) local _, _, p = hs._record_patch(before, after) return p end
  local function owner_of(id) return (hs._record_meta(dict:get("s:" .. id))) end
  local function listed()
    local ids = {}
    for _, row in ipairs(store:sessionsOf("ann")) do ids[#ids + 1] = row.id end
    table.sort(ids)
    return ids
  end

  it("a merge that logs the session in, while the owner's list is locked elsewhere, fails and writes nothing", function()
    store:set(ID, record(ANON), 600)
    assert(dict:add(OWNER_LOCK, "another worker", 60)) -- inside sessionsOf or destroyAll of ann
    local ok, err = pcall(store.merge, store, ID, patch(ANON, ANN), 600, nil, { owner = "ann" })
    assert.is_false(ok)
    assert.matches("^honeymoon_session: SharedDictStore:merge failed: .*contended.* %(lua_shared_dict sessions%)$", err)
    assert.is_nil(owner_of(ID), "the login was written without being listed")
    assert.equal("another worker", dict:get(OWNER_LOCK))
    dict:delete(OWNER_LOCK)
    assert.is_true(store:merge(ID, patch(ANON, ANN), 600, nil, { owner = "ann" }))
    assert.equal("ann", owner_of(ID))
    assert.same({ ID }, listed())
    assert.equal(1, store:destroyAll("ann"))
  end)

  it("a merge or touch of a session missing from its owner's list lists it again", function()
    store:set(OTHER, record(ANN), 86400, { owner = "ann" }) -- the list lives a day
    store:set(ID, record(ANN), 600, { owner = "ann" })
    dict:set("\0owner:s:ann", OTHER .. "\0", 86400) -- ID dropped (an earlier failure, an eviction)
    assert.is_true(store:merge(ID, patch(ANN, { cart = 2, __meta = ANN.__meta }), 600, nil, { owner = "ann" }))
    assert.same({ ID, OTHER }, listed())
    dict:set("\0owner:s:ann", OTHER .. "\0", 86400)
    assert.is_true(store:touch(ID, 600, { owner = "ann" }))
    assert.same({ ID, OTHER }, listed())
    assert.equal(2, store:destroyAll("ann"))
  end)

  it("a whole write holds the owner's list lock until its record is stored", function()
    -- The record's write: a dict:add for a new id (a dict:set over a stored one).
    local set, add, during = dict.set, dict.add, nil
    local function writing(original)
      return function(self, key, ...)
        if key == "s:" .. ID and during == nil then
          -- Another worker's sessionsOf between the listing and the write: it would find no
          -- record and drop the id from the list.
          during = { pcall(store.sessionsOf, store, "ann") }
        end
        return original(self, key, ...)
      end
    end
    dict.set, dict.add = writing(set), writing(add)
    store:set(ID, record(ANN), 600, { owner = "ann" })
    dict.set, dict.add = set, add
    assert.is_false(during[1], "sessionsOf ran between the listing and the write")
    assert.matches("contended", tostring(during[2]), 1, true)
    assert.same({ ID }, listed())
  end)

  it("destroyAll keeps listed a session another worker logged in while its owner lock had expired", function()
    store:set(OTHER, record(ANN), 3600, { owner = "ann" })
    assert.is_true(store:merge(OTHER, patch(ANN, ANON), 3600)) -- logged out: the list keeps it as a hint
    store:set(ID, record(ANN), 3600, { owner = "ann" })
    -- destroyAll has checked OTHER (not ann's: spared) and waits on ID's session lock for
    -- longer than its owner lock lives; meanwhile another worker logs OTHER in as ann again.
    local get, relogged = dict.get, false
    dict.get = function(self, key)
      if key == "s:" .. ID and not relogged then
        relogged = true
        hs._advance_clock(2) -- past lock_exptime: the owner lock is free
        assert.is_true(store:merge(OTHER, patch(ANON, ANN), 3600, nil, { owner = "ann" }))
      end
      return get(self, key)
    end
    assert.equal(1, store:destroyAll("ann"))
    dict.get = get
    assert.is_true(relogged)
    assert.equal("ann", owner_of(OTHER))
    assert.same({ OTHER }, listed(), "stored as ann's, so on ann's list")
    assert.equal(1, store:destroyAll("ann"))
  end)

  -- The relisting after a merge or touch: its write stands whatever the list does.
  it("an owned touch or merge relists at most once per TTL, and never raises after its write", function()
    store:set(ID, record(ANN), 3600, { owner = "ann" })
    hs._advance_clock(1)
    local add, taken = dict.add, 0
    dict.add = function(self, key, ...)
      if key == OWNER_LOCK then taken = taken + 1 end
      return add(self, key, ...)
    end
    assert.is_true(store:touch(ID, 3600))
    assert.is_true(store:merge(ID, patch(ANN, { cart = 2, __meta = ANN.__meta }), 3600))
    hs._advance_clock(1800)
    assert.is_true(store:touch(ID, 3600))
    dict.add = add
    assert.equal(0, taken, "the list, written with slack, outlives the session: no relisting")
    -- Later the list's time left is below the session's: it needs relisting, and its lock is
    -- held elsewhere.
    hs._advance_clock(1900)
    assert(dict:add(OWNER_LOCK, "another worker", 60))
    local warned = {}
    fake.log = function(_, ...) warned[#warned + 1] = table.concat({ ... }) end
    local before = dict:ttl("s:" .. ID)
    assert.is_true(store:touch(ID, 3600))
    assert.is_true(dict:ttl("s:" .. ID) > before, "the touch landed")
    assert.is_true(store:merge(ID, patch({ cart = 2, __meta = ANN.__meta }, { cart = 3, __meta = ANN.__meta }), 3600))
    assert.equal(2, #warned)
    assert.matches("the session was written, but not listed under its owner this time", warned[1], 1, true)
    dict:delete(OWNER_LOCK)
    assert.is_true(store:touch(ID, 3600))
    assert.same({ ID }, listed())
  end)
end)

-- A TTL the dict would misread (0 and anything under a millisecond are "never expires"; a
-- negative one raises the dict's own bare error) is refused in the store's error shape.
describe("SharedDictStore: ttl", function()
  local saved, fake, store
  before_each(function()
    saved = rawget(_G, "ngx")
    fake = FakeDict.ngx({ "sessions" })
    _G.ngx = fake
    store = SharedDictStore.new({ dict = "sessions", prefix = "s:" })
  end)
  after_each(function() _G.ngx = saved end)

  local function record(t) local _, r = hs._record_patch({}, t) return r end

  it("set, merge and touch refuse a ttl that is not whole seconds from 1, and write nothing", function()
    local _, _, patch = hs._record_patch({ a = 1 }, { a = 2 })
    store:set("live", record({ a = 1 }), 60)
    local calls = {
      set = function(ttl) return store:set("new", record({ a = 1 }), ttl) end,
      merge = function(ttl) return store:merge("live", patch, ttl) end,
      touch = function(ttl) return store:touch("live", ttl) end,
    }
    for method, call in pairs(calls) do
      -- Numbers shown as the native stores show them (1e300, NaN), not by tostring.
      local cases = { [0] = "0", [0.0004] = "0.0004", [1.5] = "1.5", [-5] = "-5", [1 / 0] = "inf",
        [3153600001] = "3153600001", [1e300] = "1e300", [-1e-300] = "-1e-300", ["60"] = "a string" }
      cases[#cases + 1] = { 0 / 0, "NaN" }
      for ttl, got in pairs(cases) do
        if type(got) == "table" then ttl, got = got[1], got[2] end
        local ok, err = pcall(call, ttl)
        assert.is_false(ok, method .. " took ttl " .. tostring(ttl))
        assert.equal("honeymoon_session: SharedDictStore:" .. method .. " failed: ttl must be a whole number of "
          .. "seconds from 1 to 3153600000, got " .. got .. " (lua_shared_dict sessions)", err)
      end
    end
    assert.is_nil(store:get("new"))
    assert.equal(record({ a = 1 }), store:get("live"))
    local left = fake.shared.sessions:ttl("s:live")
    assert.is_true(left > 0 and left <= 60, "the live session's ttl is " .. tostring(left))
  end)

  it("takes whole seconds from 1; nil is a day, as for the other stores", function()
    local _, _, patch = hs._record_patch({ a = 1 }, { a = 2 })
    -- The fake dict counts in real time (a moment passes between a write and the ttl read) and
    -- in doubles (now + ttl - now may come out a few ulps over ttl).
    local function left(id, want)
      local t = fake.shared.sessions:ttl("s:" .. id)
      assert.is_true(t > want - 1 and t <= want + 1e-3, id .. " lives " .. tostring(t) .. " s, not " .. want)
    end
    store:set("one", record({ a = 1 }), 1)
    left("one", 1)
    store:set("day", record({ a = 1 }))
    left("day", 86400)
    assert.is_true(store:merge("day", patch, 3153600000))
    left("day", 3153600000)
    assert.is_true(store:touch("day"))
    left("day", 86400)
  end)
end)

-- Two workers over one dict, played in one process (a fake dict): one worker's store call, and
-- the other's landing in the middle of it.
describe("SharedDictStore: races between two workers", function()
  local saved, fake, store
  before_each(function()
    saved = rawget(_G, "ngx")
    fake = FakeDict.ngx({ "sessions" })
    _G.ngx = fake
    store = SharedDictStore.new({ dict = "sessions", prefix = "s:" })
  end)
  after_each(function() _G.ngx = saved end)

  local function request(core, cookie, handler)
    local s = core:load(cookie)
    handler(s)
    local line = core:commit(s)[1]
    return line and line:match("^([^;]*)"), line
  end

  -- A rolling read's touch in one, and a login's regenerate in the other landing between the
  -- touch's get and its expire.
  it("a touch racing with regenerate leaves the retired id its grace, and sends no cookie for it", function()
    local opts = { secret = "race-secret", store = store, rolling = true, ttl = 86400, staleGrace = 10 }
    local reader, login = hs.core(opts), hs.core(opts)
    local cookie = request(reader, nil, function(s) s.visitor = "anon" end)
    local old_id = reader:load(cookie):getId()
    local dict = fake.shared.sessions
    local expire, new_cookie = dict.expire, nil
    dict.expire = function(self, key, exptime)
      dict.expire = expire
      if key == "s:" .. old_id then -- the other worker's login, at this instant
        new_cookie = request(login, cookie, function(s) s:regenerate(true) s.user = 1 end)
      end
      return expire(self, key, exptime)
    end
    local _, line = request(reader, cookie, function(s) local _ = s.visitor end)
    assert.is_truthy(new_cookie, "the login ran inside the touch")
    assert.is_nil(line, "a cookie for the retired id went out: " .. tostring(line))
    local left = dict:ttl("s:" .. old_id)
    assert.is_true(left > 0 and left <= 10, "the retired id lives " .. tostring(left) .. " s more")
    hs._advance_clock(11)
    assert.is_nil(dict:get("s:" .. old_id), "the retired id outlived its grace")
    assert.equal(1, reader:load(new_cookie).user)
  end)

  -- As above, but this worker is descheduled past the whole grace between the touch's expire
  -- (which gave the retired id the full TTL) and its second read: the grace is over, so the
  -- retired id must go now, not live on with the TTL the expire gave it.
  it("a touch racing with regenerate, its grace over before the touch looks again, deletes the retired id", function()
    local opts = { secret = "race-secret", store = store, rolling = true, ttl = 86400, staleGrace = 10 }
    local reader, login = hs.core(opts), hs.core(opts)
    local cookie = request(reader, nil, function(s) s.visitor = "anon" end)
    local old_id = reader:load(cookie):getId()
    local dict = fake.shared.sessions
    local expire, new_cookie = dict.expire, nil
    dict.expire = function(self, key, exptime)
      dict.expire = expire
      if key ~= "s:" .. old_id then return expire(self, key, exptime) end
      new_cookie = request(login, cookie, function(s) s:regenerate(true) s.user = 1 end)
      local ok, err = expire(self, key, exptime)
      hs._advance_clock(11)
      return ok, err
    end
    local _, line = request(reader, cookie, function(s) local _ = s.visitor end)
    assert.is_truthy(new_cookie, "the login ran inside the touch")
    assert.is_nil(line, "a cookie for the retired id went out: " .. tostring(line))
    assert.is_nil(dict:get("s:" .. old_id), "the retired id outlived its grace")
    assert.equal(1, reader:load(new_cookie).user)
  end)

  -- merge reads under its lock, but destroy takes no lock: another worker's destroy (or the
  -- session's expiry) can land between merge's read and its write. The write must not bring
  -- the session back (dict:replace, not set).
  it("a session destroyed or expired between merge's read and its write stays gone", function()
    local dict = fake.shared.sessions
    local _, record = hs._record_patch({}, { a = 1 })
    local _, _, patch = hs._record_patch({ a = 1 }, { a = 1, b = 2 })
    local get = dict.get
    local function meanwhile(id, f)
      dict.get = function(self, key)
        local v = get(self, key)
        if key == "s:" .. id then
          dict.get = get
          f()
        end
        return v
      end
    end
    local destroyed, expired = "SESSIONIDSESSIONIDSESSIONID00002", "SESSIONIDSESSIONIDSESSIONID00003"
    store:set(destroyed, record, 60)
    meanwhile(destroyed, function() store:destroy(destroyed) end)
    assert.is_false(store:merge(destroyed, patch, 60), "merge into a destroyed session")
    assert.is_false(store:exists(destroyed), "the destroyed session came back")
    store:set(expired, record, 60)
    meanwhile(expired, function() hs._advance_clock(61) end)
    assert.is_false(store:merge(expired, patch, 60), "merge into an expired session")
    assert.is_false(store:exists(expired), "the expired session came back")
  end)

  it("a plain touch still refreshes the TTL and sends the cookie", function()
    local core = hs.core({ secret = "race-secret", store = store, rolling = true, ttl = 100 })
    local cookie = request(core, nil, function(s) s.a = 1 end)
    hs._advance_clock(50)
    local _, line = request(core, cookie, function(s) local _ = s.a end)
    assert.is_truthy(line)
    -- The dict counts in real time, so a moment passes between the refresh and this read;
    -- without the refresh about 50 s would be left.
    local left = fake.shared.sessions:ttl("s:" .. core:load(cookie):getId())
    assert.is_true(left > 90 and left <= 100, "the touch left " .. tostring(left) .. " s")
  end)

  -- destroyAll holds the owner lock while it takes each session's merge lock; a wait there (on
  -- a lock a dead worker left) can outlast the owner lock's own lock_exptime (1 s). These play
  -- what another worker does meanwhile: `meanwhile(dict)` runs when destroyAll reads session
  -- `id`, with the clock moved past both locks' expiry. Returns whether it ran.
  local ANN = "SESSIONIDSESSIONIDSESSIONID0000"
  local function ann_session(n)
    local _, record = hs._record_patch({}, { userId = "ann", __meta = { owner = "ann", created = 1 } })
    store:set(ANN .. n, record, 3600, { owner = "ann", ttl = 3600 })
  end
  local function during_wait(id, meanwhile)
    local dict = fake.shared.sessions
    local get, ran = dict.get, false
    dict.get = function(self, key)
      if key == "s:" .. id and not ran then -- (only destroyAll reads it from here on)
        ran = true
        hs._advance_clock(2)
        meanwhile(self)
      end
      return get(self, key)
    end
    return function()
      dict.get = get
      return ran
    end
  end
  local function listed(owner)
    local ids = {}
    for _, s in ipairs(store:sessionsOf(owner)) do ids[#ids + 1] = s.id end
    return ids
  end

  it("destroyAll keeps a login that another worker listed while it waited", function()
    ann_session(1)
    local done = during_wait(ANN .. 1, function() ann_session(2) end)
    assert.equal(1, store:destroyAll("ann"))
    assert.is_true(done(), "the login ran inside destroyAll")
    assert.is_false(store:exists(ANN .. 1))
    assert.same({ ANN .. 2 }, listed("ann"))
  end)

  it("destroyAll that lost its owner lock to another worker neither writes the list nor frees that lock", function()
    ann_session(1)
    local owner_lock = "\0lock:\0owner:s:ann"
    local done = during_wait(ANN .. 1, function(dict) assert(dict:add(owner_lock, "another worker", 60)) end)
    -- One process plays both workers: waiting for the other's lock shows as the fake's error.
    local ok, err = pcall(store.destroyAll, store, "ann")
    assert.is_true(done(), "the other worker took the lock inside destroyAll")
    assert.is_false(ok)
    assert.matches("contended", tostring(err), 1, true)
    assert.equal("another worker", fake.shared.sessions:get(owner_lock))
  end)

  it("destroyAll keeps the spared session listed, also when the list expired while it waited", function()
    ann_session(1)
    ann_session(2)
    local done = during_wait(ANN .. 1, function(dict)
      for k in pairs(dict.entries) do -- the owner's list and lock go (expired, or evicted)
        if k:find("ann", 1, true) and not k:find("s:SESSION", 1, true) then dict.entries[k] = nil end
      end
    end)
    assert.equal(1, store:destroyAll("ann", ANN .. 2))
    assert.is_true(done(), "the list went away inside destroyAll")
    assert.same({ ANN .. 2 }, listed("ann"))
  end)

  it("destroyAll holds the session's merge lock from its check to its delete, so an owner change cannot land between", function()
    local before = { userId = "ann", __meta = { owner = "ann", created = 1 } }
    local after = { userId = "bob", __meta = { owner = "bob", created = 1 } }
    local _, record = hs._record_patch({}, before)
    local _, _, patch = hs._record_patch(before, after)
    local id = "SESSIONIDSESSIONIDSESSIONID00001"
    store:set(id, record, 3600, { owner = "ann", ttl = 3600 })
    local dict = fake.shared.sessions
    local get, merged = dict.get, nil
    -- Another worker's merge (a logout of ann and a login as bob) tries to run right after
    -- destroyAll read the record. One process plays both, so a merge that would wait for the
    -- lock shows as the fake's "contended" error instead.
    dict.get = function(self, key)
      local v = get(self, key)
      if key == "s:" .. id and merged == nil and debug.traceback():find("destroyAll", 1, true) then
        merged = { pcall(store.merge, store, id, patch, 3600) }
      end
      return v
    end
    assert.equal(1, store:destroyAll("ann"))
    dict.get = get
    assert.is_false(merged[1], "the merge ran inside destroyAll's check-and-delete")
    assert.matches("contended", tostring(merged[2]), 1, true)
    assert.is_false(store:exists(id))
  end)
end)

-- Hardening: what clients send (bad, forged and odd cookies), what handlers try to store
-- (values a session cannot hold), and stores that fail or are not stores at all.

local hs = require("honeymoon_session")
local Client = require("examples.framework.client")
local TableStore = require("spec.support.table_store")
local Site = require("spec.support.site")

local SECRET = "hardening-secret"
local NAME = "honeymoon.sid"
local STORE_METHODS = { "get", "set", "destroy", "touch", "exists", "all", "length", "clear" }

---------------------------------------------------------------------------
-- Helpers
---------------------------------------------------------------------------

-- Runs fn(...) expecting it to raise; returns the error as a string.
local function error_of(fn, ...)
  local ok, err = pcall(fn, ...)
  assert.is_false(ok, "expected an error")
  return tostring(err)
end

local function contains(needle, haystack)
  assert.matches(needle, haystack, 1, true)
end

-- Cookie value encoding as the module does it (encodeURIComponent for : + / =).
local function encode(v)
  return (v:gsub("[:+/=]", function(c) return string.format("%%%02X", c:byte()) end))
end

local function decode(v)
  return (v:gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end))
end

-- An app over `opts.store` (a MemoryStore by default) with Site.login_site's routes.
local function make_site(opts)
  local o = opts or {}
  return Site.login_site(SECRET, o.store == nil and hs.MemoryStore() or nil, o)
end

-- Logs `user` in with a fresh client; returns the raw (encoded) cookie value, the session id
-- and the decoded signature.
local function login(site, user)
  local c = Client.new(site.app)
  c:get("/login?user=" .. user)
  local value = assert(c:cookie(NAME), "login set no cookie")
  local id, sig = decode(value):match("^s:([%w_%-]+)%.(.+)$")
  return value, id, sig
end

-- A request carrying exactly `header` as its Cookie header; what the session saw.
local function whoami(site, header)
  local r = site.app:handle({ path = "/whoami", headers = { cookie = header } })
  local user, id = r.body:match("^(%S+) (%S+)$")
  return { status = r.status, user = user ~= "-" and user or nil, id = id, set_cookie = r.headers["set-cookie"] }
end

-- The request was served with a fresh, empty session whose id is none of `known`.
local function assert_fresh(seen, ...)
  assert.equal(200, seen.status)
  assert.is_nil(seen.user)
  assert.is_string(seen.id)
  assert.equal(32, #seen.id)
  assert.is_truthy(seen.id:match("^[%w_%-]+$"))
  for _, id in ipairs({ ... }) do assert.are_not.equal(id, seen.id) end
  assert.is_nil(seen.set_cookie) -- an untouched new session is not sent
end

local function session_line(set_cookie)
  for _, line in ipairs(set_cookie or {}) do
    if line:sub(1, #NAME + 1) == NAME .. "=" then return line end
  end
end

-- A TableStore whose methods raise `store.fail[method]` when set, and count their calls.
local function breakable_store()
  local store = TableStore.new()
  store.fail, store.calls = {}, {}
  for _, m in ipairs(STORE_METHODS) do
    local original = TableStore[m]
    store.calls[m] = 0
    store[m] = function(self, ...)
      self.calls[m] = self.calls[m] + 1
      if self.fail[m] then error(self.fail[m], 0) end
      return original(self, ...)
    end
  end
  return store
end

local function valid_store(overrides)
  local store = {}
  for _, m in ipairs(STORE_METHODS) do store[m] = function() end end
  for k, v in pairs(overrides or {}) do store[k] = v end
  return store
end

---------------------------------------------------------------------------
-- Cookies a client controls
---------------------------------------------------------------------------

describe("session cookies from the client", function()
  local site, value, id, sig

  before_each(function()
    site = make_site()
    value, id, sig = login(site, "alice")
  end)

  it("recognises the genuine cookie (the baseline every other case departs from)", function()
    local seen = whoami(site, NAME .. "=" .. value)
    assert.equal("alice", seen.user)
    assert.equal(id, seen.id)
  end)

  it("ignores garbage values and hands out a fresh id", function()
    local garbage = {
      "", "garbage", "s:", "s:.", "s%3A", "s%3A.", "%", "%%", "%zz", "%E0%A4%A", "%00",
      "\0\1\2\3", "\255\254\253", "日本語", ";", "=", "==", '"', '""', "s%3A%00.x",
      "s:" .. string.rep("A", 32) .. "." .. string.rep("A", 43),
      "s:" .. id .. ".", "s:" .. id .. "." .. string.rep("!", 43), "s:" .. id .. ".." .. sig,
      "s:" .. id .. "." .. sig .. "." .. sig, "s:" .. id .. "\0." .. sig,
    }
    for _, v in ipairs(garbage) do
      assert_fresh(whoami(site, NAME .. "=" .. v), id)
    end
    for _, header in ipairs({ NAME, "; ; ;", "=" .. value, NAME .. value, "\255\0" .. NAME .. "=" .. value .. "\0" }) do
      assert_fresh(whoami(site, header), id)
    end
    assert.equal(1, site.store:length())
  end)

  it("ignores a 10 KB cookie value, even one that starts with the genuine cookie", function()
    local pad = string.rep("A", 10 * 1024)
    assert_fresh(whoami(site, NAME .. "=" .. value .. pad), id)
    assert_fresh(whoami(site, NAME .. "=s%3A" .. pad), id)
    assert_fresh(whoami(site, NAME .. "=" .. pad .. value), id)
  end)

  it("still finds the session cookie in a 10 KB header full of other cookies", function()
    local others = {}
    for i = 1, 400 do others[i] = "tracker" .. i .. "=" .. string.rep("x", 16) end
    local header = table.concat(others, "; ") .. "; " .. NAME .. "=" .. value
    assert.is_true(#header > 10 * 1024)
    assert.equal("alice", whoami(site, header).user)
  end)

  it("ignores a cookie with any one character of the id or the signature changed", function()
    local plain = "s:" .. id .. "." .. sig
    for i = 3, #plain do
      local ch = plain:sub(i, i)
      if ch ~= "." then
        local swapped = ch == "A" and "B" or "A"
        local tampered = plain:sub(1, i - 1) .. swapped .. plain:sub(i + 1)
        assert_fresh(whoami(site, NAME .. "=" .. encode(tampered)), id)
      end
    end
  end)

  it("ignores a truncated or extended signature", function()
    local plain = "s:" .. id .. "." .. sig
    assert_fresh(whoami(site, NAME .. "=" .. encode(plain:sub(1, -2))), id)
    assert_fresh(whoami(site, NAME .. "=" .. encode(plain .. "A")), id)
    assert_fresh(whoami(site, NAME .. "=" .. encode(plain .. "=")), id)
  end)

  it("ignores unsigned cookies naming a live id", function()
    for _, v in ipairs({ id, "s:" .. id, "s%3A" .. id, id .. "." .. encode(sig), "S%3A" .. id .. "." .. encode(sig) }) do
      assert_fresh(whoami(site, NAME .. "=" .. v), id)
    end
  end)

  it("ignores a cookie signed with another secret, even for an id the store holds", function()
    local other = make_site({ secret = "another-secret", store = site.store })
    local foreign_value, foreign_id = login(other, "eve")
    assert.is_true(site.store:exists(foreign_id))
    assert_fresh(whoami(site, NAME .. "=" .. foreign_value), foreign_id, id)
    assert.is_true(site.store:exists(foreign_id))
  end)

  it("ignores a forged cookie naming a real id with another session's signature, leaving that session intact", function()
    local _, bob_id, bob_sig = login(site, "bob")
    local forged = encode("s:" .. id .. "." .. bob_sig)
    assert_fresh(whoami(site, NAME .. "=" .. forged), id, bob_id)
    assert.equal("alice", whoami(site, NAME .. "=" .. value).user)
    assert.equal("bob", whoami(site, NAME .. "=" .. encode("s:" .. bob_id .. "." .. bob_sig)).user)
  end)

  it("does not ask the store about cookies that fail the signature check", function()
    local store = breakable_store()
    local s = make_site({ store = store })
    local _, real_id, real_sig = login(s, "alice")
    store.calls.get = 0
    for _, v in ipairs({ "garbage", real_id, "s%3A" .. real_id, encode("s:" .. real_id .. "." .. real_sig:reverse()) }) do
      whoami(s, NAME .. "=" .. v)
    end
    assert.equal(0, store.calls.get)
  end)

  it("gives a replayed cookie of a destroyed session a fresh id, not the old one", function()
    local c = Client.new(site.app)
    c:set_cookie(NAME, value)
    c:get("/logout")
    assert_fresh(whoami(site, NAME .. "=" .. value), id)
    assert.is_false(site.store:exists(id))
  end)

  describe("duplicate session cookies", function()
    local bob_value, bob_id

    before_each(function()
      bob_value, bob_id = login(site, "bob")
    end)

    local function both(first, second)
      return whoami(site, NAME .. "=" .. first .. "; " .. NAME .. "=" .. second)
    end

    it("the first of two genuine cookies wins", function()
      assert.equal("alice", both(value, bob_value).user)
      assert.equal("bob", both(bob_value, value).user)
    end)

    it("a garbage, unsigned or forged one first does not hide a genuine one after it", function()
      local forged = encode("s:" .. id .. "." .. sig:reverse())
      for _, bad in ipairs({ "garbage", id, forged, string.rep("A", 10240) }) do
        local seen = both(bad, bob_value)
        assert.equal("bob", seen.user)
        assert.equal(bob_id, seen.id)
      end
    end)

    it("a genuine cookie of a destroyed session does not shadow a live one", function()
      local c = Client.new(site.app)
      c:set_cookie(NAME, value)
      c:get("/logout")
      assert.equal("bob", both(value, bob_value).user)
    end)

    it("a cookie of another name in between changes nothing", function()
      local seen = whoami(site, NAME .. "x=" .. value .. "; other=1; " .. NAME .. "=" .. bob_value)
      assert.equal("bob", seen.user)
    end)
  end)

  describe("quoting and percent-encoding", function()
    it("accepts a double-quoted cookie value, as RFC 6265 allows", function()
      assert.equal("alice", whoami(site, NAME .. '="' .. value .. '"').user)
    end)

    it("ignores unbalanced or doubled quotes", function()
      for _, v in ipairs({ '"' .. value, value .. '"', '""' .. value .. '""', "'" .. value .. "'" }) do
        assert_fresh(whoami(site, NAME .. "=" .. v), id)
      end
    end)

    it("accepts an unescaped colon and lower-case escapes", function()
      assert.equal("alice", whoami(site, NAME .. "=" .. "s:" .. id .. "." .. encode(sig)).user)
      assert.equal("alice", whoami(site, NAME .. "=" .. value:gsub("%%%x%x", string.lower)).user)
    end)

    it("accepts a fully percent-encoded copy of the genuine cookie as the same cookie", function()
      local all = decode(value):gsub(".", function(ch) return string.format("%%%02X", ch:byte()) end)
      assert.equal("alice", whoami(site, NAME .. "=" .. all).user)
    end)

    it("accepts the signature's + and / whether escaped or sent raw", function()
      local v, raw_id
      for _ = 1, 40 do -- about three in four signatures contain + or /
        local candidate, candidate_id, candidate_sig = login(site, "carol")
        if candidate_sig:find("[+/]") then
          v, raw_id = candidate, candidate_id
          break
        end
      end
      assert.is_string(v, "no signature with + or / in 40 logins")
      local raw = "s:" .. raw_id .. "." .. decode(v):match("%.(.+)$")
      assert.equal("carol", whoami(site, NAME .. "=" .. v).user)
      assert.equal("carol", whoami(site, NAME .. "=" .. raw).user)
    end)

    it("ignores double-encoded values, bad escapes and escapes that are not UTF-8", function()
      local double = value:gsub("%%", "%%25")
      for _, v in ipairs({ double, value .. "%", value .. "%2", value:gsub("%%3A", "%%G3"), value .. "%FF", "%C3%28" .. value }) do
        assert_fresh(whoami(site, NAME .. "=" .. v), id)
      end
    end)

    it("matches the cookie name exactly, tolerating only spaces around it", function()
      for _, name in ipairs({ NAME:upper(), NAME .. "x", "x" .. NAME, NAME:gsub("%.", "_"), NAME .. " x" }) do
        assert_fresh(whoami(site, name .. "=" .. value), id)
      end
      assert.equal("alice", whoami(site, "  " .. NAME .. "  =  " .. value .. "  ").user)
    end)

    -- express's `cookie` module trims spaces and tabs only: a name or value with another
    -- control character around it is another cookie there, so one app must not read a
    -- session the other does not (found by interop/cookies.test.mjs).
    it("trims spaces and tabs around the name and the value, as express does, and nothing else", function()
      assert.equal("alice", whoami(site, "\t " .. NAME .. " \t=\t " .. value .. " \t").user)
      for _, ws in ipairs({ "\f", "\r", "\n", "\v" }) do
        for _, header in ipairs({
          ws .. NAME .. "=" .. value, NAME .. ws .. "=" .. value,
          NAME .. "=" .. ws .. value, NAME .. "=" .. value .. ws,
        }) do
          assert_fresh(whoami(site, header), id)
        end
      end
      -- express-session reads the second cookie here (the first is named "\fNAME"); so do we.
      local bob_value = login(site, "bob")
      assert.equal("alice", whoami(site, "\f" .. NAME .. "=" .. bob_value .. "; " .. NAME .. "=" .. value).user)
    end)
  end)
end)

---------------------------------------------------------------------------
-- Values a session cannot hold
---------------------------------------------------------------------------

describe("values a session cannot hold", function()
  local core, site

  before_each(function()
    core = hs.core({ secret = SECRET })
    site = make_site()
  end)

  local function new_session()
    return (core:load(nil, false))
  end

  -- Runs fn(req) in a request; returns the response.
  local function run(fn, client)
    site.handler = function(req, res)
      fn(req)
      res:text("ok")
    end
    return (client or Client.new(site.app)):get("/run")
  end

  local KINDS = {
    { "a function", function() return print end },
    { "a coroutine", function() return coroutine.create(function() end) end },
    { "a userdata", function() return io.stdout end },
  }

  for _, kind in ipairs(KINDS) do
    local what, make = kind[1], kind[2]

    it("refuses " .. what .. " at once on property write, set() and flash(), naming the key", function()
      local s = new_session()
      contains("val is " .. what, error_of(function() s.val = make() end))
      contains("val is " .. what, error_of(function() s:set("val", make()) end))
      contains("val is " .. what, error_of(function() s:flash("val", make()) end))
      assert.is_false(s:has("val"))
    end)

    it("refuses " .. what .. " nested in a table at commit, naming its path", function()
      local s = new_session()
      s.cart = { items = { 1, 2, make() } }
      contains("cart.items[3] is " .. what, error_of(core.commit, core, s))
    end)

    it("fails the request (500) over " .. what .. " nested in a table, storing and sending nothing", function()
      local r = run(function(req) req.session.cart = { items = { 1, 2, make() } } end)
      assert.equal(500, r.status)
      contains("cart.items[3] is " .. what, site.app.last_error)
      assert.is_nil(session_line(r.headers["set-cookie"]))
      assert.equal(0, site.store:length())
    end)
  end

  it("names paths through keys that are not identifiers", function()
    local s = new_session()
    s.prefs = { ["my key"] = { [-2] = { print } } }
    contains('prefs["my key"][-2][1] is a function', error_of(core.commit, core, s))
  end)

  -- A key refused at once (in Lua) is named as the engine names one it refuses at commit, in
  -- the module's one style: a plain name as it is, anything else quoted and escaped as Rust
  -- escapes it (\u{1b}), a byte that is not UTF-8 as U+FFFD; never raw into a log.
  it("names a refused key as the commit does, escaped, on every path that refuses it", function()
    for _, case in ipairs({
      { "ok", "ok", "flash.ok" },
      { "my key", '["my key"]', 'flash["my key"]' },
      { "x\27y", '["x\\u{1b}y"]', 'flash["x\\u{1b}y"]' },
      { "bad\255", '["bad\239\191\189"]', 'flash["bad\239\191\189"]' },
      { 'nl\n"', '["nl\\n\\""]', 'flash["nl\\n\\""]' },
    }) do
      local key, named, flashed = case[1], case[2], case[3]
      local s = new_session()
      local errs = {
        error_of(function() s[key] = print end),
        error_of(s.set, s, key, print),
      }
      for _, err in ipairs(errs) do
        contains("honeymoon_session: session value " .. named .. " is a function;", err)
      end
      local flash = error_of(s.flash, s, key, print)
      contains("honeymoon_session: session value " .. flashed .. " is a function;", flash)
      errs[#errs + 1] = flash
      -- The same key refused natively, at commit, one level down.
      s[key] = { f = print }
      contains("honeymoon_session: session value " .. named .. ".f is a function;", error_of(core.commit, core, s))
      s = new_session()
      s:flash(key, { f = print })
      contains("honeymoon_session: session value " .. flashed .. ".f is a function;", error_of(core.commit, core, s))
      local cookie = error_of(function() s.cookie[key] = 1 end)
      contains("honeymoon_session: session.cookie" .. (key == "ok" and ".ok" or named) .. " cannot be set per session;", cookie)
      errs[#errs + 1] = cookie
      for _, err in ipairs(errs) do
        assert.is_nil(err:find("%c"), err)
        assert.is_nil(err:find("\255", 1, true), err)
      end
    end
    -- A key that is not a string, on the cookie, as the engine writes an index.
    contains("honeymoon_session: session.cookie[1] cannot be set per session;",
      error_of(function() new_session().cookie[1] = 1 end))
  end)

  it("catches a function put into a live table returned by get(), and keeps the stored data", function()
    local c = Client.new(site.app)
    run(function(req) req.session.cart = { items = { "apple" } } end, c)
    local id = decode(c:cookie(NAME)):match("^s:([^.]+)")
    local r = run(function(req) req.session:get("cart").hook = print end, c)
    assert.equal(500, r.status)
    contains("cart.hook is a function", site.app.last_error)
    assert.same({ cart = { items = { "apple" } } }, site.store:get(id))
  end)

  it("refuses a table that contains itself, naming where the cycle closes", function()
    local s = new_session()
    local loop = { b = {} }
    loop.b.c = loop
    s.loop = loop
    contains("loop.b.c is a table that contains itself", error_of(core.commit, core, s))
  end)

  it("all() names where a cycle closes or the depth ends, as the commit does, at the caller's line", function()
    local s = new_session()
    local loop = { b = {} }
    loop.b.c = loop
    s.loop = loop
    local ok, err = pcall(s.all, s)
    assert.is_false(ok)
    -- pcall is the caller here: no line, and the commit's words.
    assert.equal("honeymoon_session: session value loop.b.c is a table that contains itself (a cycle); "
      .. "sessions hold only nil, booleans, numbers, strings and tables of them", err)
    local _, at_line = pcall(function() local copy = s:all() return copy end) -- not a tail call
    assert.matches("^spec/hardening_spec%.lua:%d+: honeymoon_session: session value loop%.b%.c ", at_line)
    s = new_session()
    s.deep = Site.nested(1001)
    err = select(2, pcall(s.all, s))
    contains("honeymoon_session: session value deep.n.n.n", err)
    contains("nests deeper than 64 levels", err)
    -- A value under a method name (kept apart from the data) is named and limited the same way.
    s = new_session()
    s:set("save", Site.nested(1001))
    contains("honeymoon_session: session value save.n.n.n", select(2, pcall(s.all, s)))
    -- A shared table is not a cycle, and 64 levels copy.
    s = new_session()
    local shared = { 1, 2 }
    s.a, s.b, s.deep = shared, { again = shared }, Site.nested(63)
    local copy = s:all()
    assert.same({ 1, 2 }, copy.b.again)
    assert.same(s.deep, copy.deep)
  end)

  it("accepts the same table under two keys (shared is not a cycle)", function()
    local s = new_session()
    local shared = { 1, 2 }
    s.a, s.b = shared, { again = shared }
    assert.equal(1, #core:commit(s))
  end)

  it("refuses nesting deeper than a sane limit with the path, and accepts 50 levels", function()
    -- `depth` tables below the top one.
    local function nest(depth) return Site.nested(depth + 1) end
    local s = new_session()
    s.deep = nest(1000)
    local err = error_of(core.commit, core, s)
    contains("deep.n.n.n", err)
    contains("nests deeper than 64 levels", err)
    s = new_session()
    s.deep = nest(50)
    assert.equal(1, #core:commit(s))
  end)

  it("refuses a non-string key at the top level at once", function()
    local s = new_session()
    contains("session keys must be strings", error_of(function() s[1] = "x" end))
    contains("session keys must be strings", error_of(function() s:set(true, "x") end))
  end)

  it("refuses a table keyed by a function or a table at commit, in plain words", function()
    local s = new_session()
    s.t = { [print] = 1 }
    contains("t is a table with a function as a key", error_of(core.commit, core, s))
    s = new_session()
    s.t = { [{}] = 1 }
    contains("t is a table with a table as a key", error_of(core.commit, core, s))
  end)

  it("after a refused commit, the next request starts from a fresh session", function()
    local c = Client.new(site.app)
    run(function(req)
      req.session.user = "ann"
      req.session.bad = { print }
    end, c)
    assert.is_nil(c:cookie(NAME))
    local seen
    run(function(req) seen = req.session:all() end, c)
    assert.same({}, seen)
  end)
end)

-- A number in a message is written short (`1e300`, as the options' errors write it), and the
-- owner field is named as every other path is (`session["user id"]`). The owner's message
-- printed 1e300 with all its 301 digits and the field raw; a float key in a path did the same.
describe("numbers and fields in the messages about values", function()
  it("name a float key as Lua would write it, 1e300 short", function()
    local core = hs.core({ secret = SECRET })
    local s = core:load(nil, false)
    s.t = { [1e300] = print }
    local err = error_of(core.commit, core, s)
    assert.equal("honeymoon_session: session value t[1e300] is a function; sessions hold only nil, booleans, "
      .. "numbers, strings and tables of them", err)
    assert.equal("honeymoon_session: json.encode: value t[1e300] is a function",
      error_of(hs.json.encode, { t = { [1e300] = print } }))
  end)

  it("show an owner that is no owner short, and name its field as a path", function()
    local core = hs.core({ secret = SECRET, index = "user id" })
    local s = core:load(nil, false)
    s["user id"] = 1e300
    local err = error_of(core.commit, core, s)
    assert.equal('honeymoon_session: session["user id"] names the session\'s owner (the index option), so it must be '
      .. "a UTF-8 string, an integer, or a whole number below 2^53 (an id past that is exact only as an integer "
      .. "or a string), got the number 1e300", err)
    s = core:load(nil, false)
    s["user id"] = {}
    assert.matches("got a table$", error_of(core.commit, core, s))
  end)
end)

---------------------------------------------------------------------------
-- Failing stores
---------------------------------------------------------------------------

describe("a store that fails", function()
  local store, site, client

  before_each(function()
    store = breakable_store()
    site = make_site({ store = store, rolling = false })
    client = Client.new(site.app)
    client:get("/login?user=ann")
  end)

  local function assert_failed(r, method, why)
    assert.equal(500, r.status)
    contains("store:" .. method .. " failed", site.app.last_error)
    contains(why, site.app.last_error)
    assert.is_nil(session_line(r.headers["set-cookie"]))
  end

  it("get: the request fails with store:get failed", function()
    store.fail.get = "database is down"
    assert_failed(client:get("/whoami"), "get", "database is down")
  end)

  it("get: core:load raises a Lua error naming store:get", function()
    store.fail.get = "database is down"
    local core = hs.core({ secret = SECRET, store = store })
    local err = error_of(core.load, core, NAME .. "=" .. client:cookie(NAME), false)
    contains("honeymoon_session: store:get failed: database is down", err)
  end)

  it("destroy and touch: session:destroy() and core:commit raise Lua errors naming the method", function()
    local core = hs.core({ secret = SECRET, store = store, rolling = true })
    local header = NAME .. "=" .. client:cookie(NAME)
    store.fail.destroy = "read-only replica"
    local s = core:load(header, false)
    contains("honeymoon_session: store:destroy failed: read-only replica", error_of(s.destroy, s))
    store.fail.touch = "timeout"
    s = core:load(header, false)
    contains("honeymoon_session: store:touch failed: timeout", error_of(core.commit, core, s))
  end)

  it("set: a failed save sends no cookie, when the handler sends the response", function()
    store.fail.set = "disk full"
    local fresh = Client.new(site.app)
    assert_failed(fresh:get("/login?user=bob"), "set", "disk full")
    assert.is_nil(fresh:cookie(NAME))
  end)

  it("set: a failed save sends no cookie, when the response is sent after the chain returns", function()
    store.fail.set = "disk full"
    site.handler = function(req) req.session.user = "bob" end
    local fresh = Client.new(site.app)
    assert_failed(fresh:get("/run"), "set", "disk full")
    assert.is_nil(fresh:cookie(NAME))
  end)

  it("set: a failed write to an existing session keeps the old data and the old cookie", function()
    local before = client:cookie(NAME)
    store.fail.set = "disk full"
    site.handler = function(req) req.session.user = "mallory" end
    assert_failed(client:get("/run"), "set", "disk full")
    store.fail.set = nil
    assert.equal(before, client:cookie(NAME))
    assert.equal("ann " .. decode(before):match("^s:([^.]+)"), client:get("/whoami").body)
  end)

  it("set: core:commit raises a Lua error naming store:set", function()
    store.fail.set = "disk full"
    local core = hs.core({ secret = SECRET, store = store })
    local s = core:load(nil, false)
    s.user = "bob"
    contains("honeymoon_session: store:set failed: disk full", error_of(core.commit, core, s))
  end)

  it("set: session:save() raises in the handler, where it can be caught", function()
    store.fail.set = "disk full"
    local caught
    site.handler = function(req, res)
      req.session.user = "bob"
      local ok, err = pcall(req.session.save, req.session)
      caught = not ok and tostring(err)
      res:text("ok")
    end
    Client.new(site.app):get("/run")
    assert.is_string(caught)
    contains("store:set failed: disk full", caught)
  end)

  it("set: recovers once the store does", function()
    store.fail.set = "disk full"
    local fresh = Client.new(site.app)
    fresh:get("/login?user=bob")
    store.fail.set = nil
    fresh:get("/login?user=bob")
    assert.is_string(fresh:cookie(NAME))
    assert.matches("^bob ", fresh:get("/whoami").body)
  end)

  it("destroy: the request fails with store:destroy failed and no clearing cookie, the session stays", function()
    store.fail.destroy = "read-only replica"
    assert_failed(client:get("/logout"), "destroy", "read-only replica")
    store.fail.destroy = nil
    assert.matches("^ann ", client:get("/whoami").body)
  end)

  it("touch: a rolling session's request fails with store:touch failed and no cookie", function()
    local rolling = make_site({ store = store, rolling = true })
    local c = Client.new(rolling.app)
    c:get("/login?user=ann")
    store.fail.touch = "timeout"
    local r = c:get("/whoami")
    assert.equal(500, r.status)
    contains("store:touch failed", rolling.app.last_error)
    contains("timeout", rolling.app.last_error)
    assert.is_nil(session_line(r.headers["set-cookie"]))
  end)

  it("a method replaced by a non-function after setup fails naming the method", function()
    store.get = "not a function"
    local r = client:get("/whoami")
    assert.equal(500, r.status)
    contains("store:get failed", site.app.last_error)
  end)

  it("get returning something other than a table or nil fails naming store:get", function()
    store.get = function() return "a string" end
    assert.equal(500, client:get("/whoami").status)
    contains("store:get failed", site.app.last_error)
    store.get = function() return { user = print } end
    assert.equal(500, client:get("/whoami").status)
    contains("store:get failed", site.app.last_error)
    store.get = function() return { [1] = "numeric key" } end
    assert.equal(500, client:get("/whoami").status)
    contains("store:get failed", site.app.last_error)
  end)
end)

describe("hs.session() refuses a store that is not one", function()
  for _, m in ipairs(STORE_METHODS) do
    it("names the missing method " .. m .. "()", function()
      local store = valid_store({ [m] = false })
      store[m] = nil
      contains("store is missing the method " .. m .. "()", error_of(hs.session, { secret = SECRET, store = store }))
    end)

    it("names the method " .. m .. "() when it is not a function", function()
      for _, bad in ipairs({ "yes", 42, {}, true }) do
        local store = valid_store({ [m] = bad })
        contains(m .. "()", error_of(hs.session, { secret = SECRET, store = store }))
      end
    end)
  end

  it("refuses a merge() that is there but not a function (it would silently become sets)", function()
    for _, bad in ipairs({ "yes", 42, {}, true, setmetatable({}, { __call = function() end }) }) do
      local store = valid_store({ merge = bad })
      contains("store method merge() must be a function or absent", error_of(hs.session, { secret = SECRET, store = store }))
    end
  end)

  it("refuses a store that is not a table", function()
    for _, bad in ipairs({ "redis", 42, true, print }) do
      contains("store must be a table", error_of(hs.session, { secret = SECRET, store = bad }))
    end
  end)

  it("hs.core() refuses the same stores", function()
    local store = valid_store()
    store.clear = nil
    contains("store is missing the method clear()", error_of(hs.core, { secret = SECRET, store = store }))
  end)
end)

---------------------------------------------------------------------------
-- MemoryStore misuse
---------------------------------------------------------------------------

describe("an unknown option's key in the setup error", function()
  -- Quoted and escaped as values are, so a trailing space or a control byte shows.
  it("is quoted and escaped, under its table's name", function()
    local function message(opts) return hs.error_message(error_of(hs.session, opts)) end
    assert.equal(1, message({ ["secret "] = "x" }):find(
      'honeymoon_session: unknown option "secret "; known options are name, secret,', 1, true))
    assert.equal(1, message({ secret = "x", cookie = { ["max\nAge"] = 5 } }):find(
      'honeymoon_session: unknown option "cookie.max\\nAge"; known options are cookie.path,', 1, true))
    contains("unknown option [1]; known", message({ "secret" }))
  end)
end)

describe("MemoryStore misuse", function()
  local m

  before_each(function()
    m = hs.MemoryStore()
  end)

  local BAD_TTLS = { 0, -1, 1.5, 0 / 0, math.huge, -math.huge, 3153600001 }

  it("set refuses a ttl that is not a whole number of seconds from 1 up, and stores nothing", function()
    for _, ttl in ipairs(BAD_TTLS) do
      contains("ttl", error_of(m.set, m, "id", { a = 1 }, ttl))
    end
    error_of(m.set, m, "id", { a = 1 }, "soon")
    error_of(m.set, m, "id", { a = 1 }, {})
    assert.equal(0, m:length())
  end)

  it("touch refuses a bad ttl and leaves the entry's lifetime alone", function()
    m:set("id", { a = 1 }, 60)
    for _, ttl in ipairs(BAD_TTLS) do
      contains("ttl", error_of(m.touch, m, "id", ttl))
    end
    hs._advance_clock(61)
    assert.is_false(m:exists("id"))
  end)

  it("set refuses data that is not a table of storable values under string keys", function()
    error_of(m.set, m, "id", "not a table", 60)
    error_of(m.set, m, "id", nil, 60)
    contains("session keys must be strings", error_of(m.set, m, "id", { [1] = "x" }, 60))
    contains("cart.items[2] is a function", error_of(m.set, m, "id", { cart = { items = { 1, print } } }, 60))
    local loop = {}
    loop.self = loop
    contains("loop.self is a table that contains itself", error_of(m.set, m, "id", { loop = loop }, 60))
    assert.equal(0, m:length())
  end)

  it("refuses ids that are not strings, in the module's one error shape", function()
    local want = "honeymoon_session: MemoryStore ids must be strings of 1 to 4096 bytes, got "
    assert.equal(want .. "nil", error_of(m.get, m, nil))
    assert.equal(want .. "a table", error_of(m.get, m, {}))
    assert.equal(want .. "nil", error_of(m.set, m, nil, {}, 60))
    assert.equal(want .. "a function", error_of(m.exists, m, print))
    assert.equal(want .. "nil", error_of(m.destroy, m, nil))
    assert.equal(want .. "a table", error_of(m.touch, m, {}, 60))
    assert.equal("honeymoon_session: MemoryStore ids must be UTF-8, got a string that is not",
      error_of(m.get, m, "\255\254"))
    assert.equal("honeymoon_session: MemoryStore:set takes the session data as a table, got a string",
      error_of(m.set, m, "id", "not a table", 60))
  end)

  it("raises instead of crashing when a method is called with a dot", function()
    local want = "honeymoon_session: store methods are called with a colon: store:"
    assert.equal(want .. "get(...)", error_of(m.get, "id"))
    assert.equal(want .. "set(...)", error_of(m.set, "id", {}, 60))
    assert.equal(want .. "length(...)", error_of(m.length))
  end)

  it("a table that inherits a store's methods (__index) is that store to them", function()
    local logged = {}
    local wrapper = setmetatable({
      set = function(self, id, data, ttl)
        logged[#logged + 1] = id
        return m:set(id, data, ttl)
      end,
    }, { __index = m })
    local core = hs.core({ secret = SECRET, store = wrapper })
    local s = core:fresh()
    s.a = 1
    local cookie = core:commit(s)[1]:match("^([^;]*)")
    assert.equal(1, #logged)
    assert.equal(1, core:load(cookie).a) -- the inherited get
    assert.is_true(wrapper:exists(s:getId()))
  end)

  it("refuses unknown options and a non-string shared name", function()
    contains("shared", error_of(hs.MemoryStore, { bogus = 1 }))
    -- The key quoted and escaped as values are (a trailing space shows).
    assert.equal('honeymoon_session: MemoryStore takes only { shared = "name" }, got "shared " = a string',
      hs.error_message(error_of(hs.MemoryStore, { ["shared "] = "s" })))
    contains('got [1] = a string', error_of(hs.MemoryStore, { "s" }))
    contains("shared", error_of(hs.MemoryStore, { shared = 5 }))
  end)
end)

---------------------------------------------------------------------------
-- Resources
---------------------------------------------------------------------------

describe("resources", function()
  it("lets requests and their sessions be garbage-collected after the response", function()
    local site = make_site()
    local alive = setmetatable({}, { __mode = "k" })
    site.handler = function(req, res)
      alive[req] = true
      alive[req.session] = true
      req.session.n = 1
      res:text("ok")
    end
    for _ = 1, 200 do site.app:handle({ path = "/run" }) end
    collectgarbage()
    collectgarbage()
    assert.is_nil(next(alive))
  end)
end)

describe("when the OS random source fails", function()
  local Interpreter = require("spec.support.interpreter")
  -- A getrandom() that answers the probe for the call (length 0) and fails every draw, as a
  -- chroot without /dev/urandom or a sandbox does. LuaJIT seeds itself through syscall(), which
  -- this does not replace.
  local SHIM = [[
#include <errno.h>
#include <sys/types.h>
ssize_t getrandom(void *buf, size_t len, unsigned int flags) {
  (void) buf; (void) flags;
  if (len == 0) return 0;
  errno = EIO;
  return -1;
}
]]
  local script = [[
    package.cpath = %q
    package.path = %q
    local hs = require("honeymoon_session")
    local TableStore = require("spec.support.table_store")
    local function try(name, f)
      local ok, err = pcall(f)
      print(name .. ": " .. (ok and "ok" or tostring(err)))
    end
    try("MemoryStore", function() return hs.MemoryStore() end)
    try("shared MemoryStore", function() return hs.MemoryStore({ shared = "random-source" }) end)
    try("session", function() return hs.session({ secret = "s" }) end)
    try("no secret", function() return hs.session({ store = TableStore.new() }) end)
    try("an id", function() return hs.core({ secret = "s", store = TableStore.new() }):fresh() end)
    try("RedisStore", function() return hs.RedisStore({ url = "redis://127.0.0.1:1/0" }) end)
  ]]

  it("every constructor and draw fails with the module's message, and nothing panics", function()
    local dir = os.tmpname()
    os.remove(dir)
    assert(os.execute("mkdir -p " .. dir))
    local f = assert(io.open(dir .. "/shim.c", "w"))
    f:write(SHIM)
    f:close()
    local built = os.execute("cc -shared -fPIC -o " .. dir .. "/shim.so " .. dir .. "/shim.c")
    assert(built == true or built == 0, "cc could not build the shim")
    f = assert(io.open(dir .. "/t.lua", "w"))
    f:write(script:format(package.cpath, package.path))
    f:close()
    local p = assert(io.popen("LD_PRELOAD=" .. dir .. "/shim.so " .. Interpreter.command .. " "
      .. dir .. "/t.lua 2>" .. dir .. "/err"))
    local out = p:read("*a")
    p:close()
    f = assert(io.open(dir .. "/err"))
    local stderr = f:read("*a")
    f:close()
    os.execute("rm -rf " .. dir)
    local lines = 0
    for line in out:gmatch("[^\n]+") do
      lines = lines + 1
      assert.matches(": honeymoon_session: the OS random source failed: ", line, 1, true)
      assert.matches("let this process call getrandom", line, 1, true)
    end
    assert.equal(6, lines, out .. stderr)
    assert.is_nil(stderr:find("panicked", 1, true), stderr)
  end)
end)

-- session() refuses options that inherit fields through __index (they would be read as the
-- defaults); the stores' own options are read raw too, so they refuse them alike: a RedisStore
-- whose url came from a defaults table would connect to 127.0.0.1 and keep the sessions there,
-- a MemoryStore whose `shared` was inherited would be a store of its own.
describe("store options that inherit fields through __index", function()
  local NOT_PLAIN = " must be a plain table, got a table whose metatable has __index (its inherited "
    .. "fields would be ignored); copy the values into a plain table"
  local function inheriting(fields) return setmetatable({}, { __index = fields }) end
  local function refused(make, opts, want)
    local ok, err = pcall(make, opts)
    assert.is_false(ok, want .. ": accepted")
    assert.equal("honeymoon_session: " .. want .. NOT_PLAIN, hs.error_message(err))
  end

  it("are refused by MemoryStore and RedisStore, at construction", function()
    refused(hs.MemoryStore, inheriting({ shared = "app" }), "MemoryStore options")
    if hs.RedisStore then
      refused(hs.RedisStore, inheriting({ url = "redis://10.0.0.1:6379/2" }), "RedisStore options")
      refused(hs.RedisStore, { url = "rediss://10.0.0.1:6379", tls = inheriting({ ca = "ca.pem" }) },
        "RedisStore tls")
    end
    -- Another metatable hides nothing and is accepted, as for session().
    assert.is_table(hs.MemoryStore(setmetatable({ shared = "spec-plain" }, {})))
  end)

  it("are refused by the event-loop RedisStore and SharedDictStore, at construction", function()
    if hs.RedisStore then
      local LuaRedis = require("honeymoon_session.stores.redis")
      refused(LuaRedis.new, inheriting({ url = "redis://10.0.0.1:6379/2" }), "RedisStore options")
      refused(LuaRedis.new, { pool = inheriting({ size = 4 }) }, "RedisStore pool")
    end
    local SharedDictStore = require("honeymoon_session.stores.shared_dict")
    refused(SharedDictStore.new, inheriting({ dict = "app" }), "SharedDictStore: options")
  end)
end)

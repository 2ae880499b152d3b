-- The session semantics listed in spec/BRIEF.md (rules 1-15, which refine the "Semantics we have
-- decided" of /work/shared/DESIGN.md), one describe per rule, plus DESIGN.md's "no panic crosses
-- the FFI boundary". Each assertion is chosen so that breaking the rule breaks the spec.
-- Time moves with hs._advance_clock (the module's clock) and c:advance (the client's jar).

local cjson = require("cjson")
local hs = require("honeymoon_session")
local App = require("examples.framework.app")
local Client = require("examples.framework.client")
local Site = require("spec.support.site")
local Interpreter = require("spec.support.interpreter")
local advance = Site.advance

local url_decode = App.util.url_decode
local NAME = "honeymoon.sid"

---------------------------------------------------------------------------
-- Helpers
---------------------------------------------------------------------------

local function app_with(opts, routes) return Site.app_with("spec-secret", opts, routes) end

---Routes most specs share: write query params as session keys, dump the session, show the id.
local function kv_routes(extra)
  local routes = {
    ["POST /set"] = function(req, res)
      for k, v in pairs(req.query) do req.session[k] = v end
      res:text(req.session:getId())
    end,
    ["GET /all"] = function(req, res) res:json(req.session:all()) end,
    ["GET /id"] = function(req, res) res:text(req.session:getId()) end,
    ["GET /state"] = function(req, res) res:json({ id = req.session:getId(), all = req.session:all() }) end,
  }
  for k, v in pairs(extra or {}) do routes[k] = v end
  return routes
end

local function all_of(c, opts)
  return cjson.decode(c:get("/all", opts).body)
end

---The Set-Cookie lines of response `r` for the session cookie (or cookie `name`).
local function cookie_lines(r, name) return Site.cookie_lines(r, name or NAME) end
local function cookie_line(r, name) return Site.cookie_line(r, name or NAME) end

local attr = Site.attr

---Splits a signed cookie value (raw or URL-encoded) into id and signature.
local function unsign(value)
  return url_decode(value):match("^s:(.+)%.([^.]+)$")
end

---The session id the client's jar holds.
local function jar_id(c)
  local raw = c:cookie(NAME)
  return raw and (unsign(raw))
end

---The Cookie header that replays the client's current session cookie.
local function replay(c)
  return NAME .. "=" .. assert(c:cookie(NAME), "client holds no session cookie")
end


---A Lua store over a plain table that records every call; `fail` names methods that raise,
---`merge = true` adds the optional merge method.
local function spy_store(opts)
  opts = opts or {}
  local store = { data = {}, calls = {}, fail = opts.fail or {} }
  local function record(name, ...)
    store.calls[#store.calls + 1] = { name, ... }
    if store.fail[name] then error("disk full", 0) end
  end
  function store:get(id) record("get", id); return self.data[id] end
  function store:set(id, data, ttl) record("set", id, data, ttl); self.data[id] = data end
  function store:destroy(id) record("destroy", id); self.data[id] = nil end
  function store:touch(id, ttl) record("touch", id, ttl) end
  function store:exists(id) record("exists", id); return self.data[id] ~= nil end
  function store:all()
    local ids = {}
    for id in pairs(self.data) do ids[#ids + 1] = id end
    return ids
  end
  function store:length() return #self:all() end
  function store:clear() self.data = {} end
  if opts.merge then
    function store:merge(id, changed, removed, ttl)
      record("merge", id, changed, removed, ttl)
      local cur = self.data[id] or {}
      for k, v in pairs(changed) do cur[k] = v end
      for _, k in ipairs(removed) do cur[k] = nil end
      self.data[id] = cur
    end
  end
  ---How many calls of `name` were recorded since the last reset.
  function store:count(name)
    local n = 0
    for _, call in ipairs(self.calls) do
      if call[1] == name then n = n + 1 end
    end
    return n
  end
  function store:reset() self.calls = {} end
  return store
end

local function writes(store)
  return store:count("set") + store:count("merge")
end

---Runs `fn` and returns its error as a string (fails if it does not raise).
local function error_of(fn, ...)
  local ok, err = pcall(fn, ...)
  assert.is_false(ok, "expected an error")
  return tostring(err)
end

---------------------------------------------------------------------------
-- 1. Commit exactly once, before the response leaves
---------------------------------------------------------------------------

describe("rule 1: the session is committed exactly once, before the response leaves", function()
  local senders = {
    send = function(res) res:send("x") end,
    text = function(res) res:text("x") end,
    html = function(res) res:html("<p>") end,
    json = function(res) res:json({ ok = true }) end,
    redirect = function(res) res:redirect("/elsewhere") end,
    render = function(res) res:render("page", { a = 1 }) end,
    ["nothing (handler returns without sending)"] = function() end,
  }
  for how, finish in pairs(senders) do
    it("a response finished by " .. how .. " carries the session cookie and the data is stored", function()
      local store = hs.MemoryStore()
      local _, c = app_with({ store = store }, kv_routes({
        ["POST /w"] = function(req, res)
          req.session.via = how
          finish(res)
        end,
      }))
      local r = c:post("/w")
      cookie_line(r)
      assert.equal(1, store:length())
      assert.same({ via = how }, all_of(c))
    end)
  end

  it("the Set-Cookie line is already on the response when the real send runs", function()
    local at_send = {}
    local app = App.new()
    -- Installed before the session middleware, so the session's hook wraps this one and
    -- this runs at the very moment the response goes out.
    app:use(function(_, res, next)
      res.send = function(self, body)
        at_send[#at_send + 1] = #cookie_lines({ headers = self.headers })
          + #cookie_lines({ headers = { ["set-cookie"] = self._cookie_queue } })
        return App.Response.send(self, body)
      end
      next()
    end)
    app:use(hs.session({ secret = "spec-secret" }))
    app:post("/json", function(req, res)
      req.session.x = 1
      res:json({})
    end)
    app:post("/none", function(req)
      req.session.x = 2
    end)
    local c = Client.new(app)
    c:post("/json")
    c:clear_cookies()
    c:post("/none")
    assert.same({ 1, 1 }, at_send)
  end)

  it("save() followed by a send writes the store once and sends one cookie", function()
    local store = spy_store()
    local _, c = app_with({ store = store }, {
      ["POST /w"] = function(req, res)
        req.session.a = 1
        req.session:save()
        res:text("")
      end,
    })
    local r = c:post("/w")
    assert.equal(1, writes(store))
    assert.equal(1, #cookie_lines(r))
  end)

  it("a write made after the response was sent is not stored (the commit already ran)", function()
    local _, c = app_with(nil, kv_routes({
      ["POST /w"] = function(req, res)
        req.session.before = "send"
        res:text("")
        req.session.after = "send"
      end,
    }))
    c:post("/w")
    assert.same({ before = "send" }, all_of(c))
  end)
end)

---------------------------------------------------------------------------
-- 2. Modified means deeply different from what was loaded
---------------------------------------------------------------------------

describe("rule 2: modified means the data differ deeply from what was loaded", function()
  local function cart_app(store)
    return app_with({ store = store }, kv_routes({
      ["POST /cart"] = function(req, res)
        req.session.cart = { items = { "a", "b" }, meta = { n = 2 } }
        res:text("")
      end,
      ["POST /nested"] = function(req, res)
        req.session.cart.items[3] = "x"
        res:text("")
      end,
      ["POST /via-get"] = function(req, res)
        req.session:get("cart").meta.n = 3
        res:text("")
      end,
      ["POST /same"] = function(req, res)
        req.session.cart = { items = { "a", "b" }, meta = { n = 2 } }
        res:text("")
      end,
      ["GET /read"] = function(req, res)
        res:text(tostring(req.session.cart.items[1]))
      end,
    }))
  end

  it("a write inside a nested table is saved", function()
    local store = spy_store()
    local _, c = cart_app(store)
    c:post("/cart")
    store:reset()
    c:post("/nested")
    assert.equal(1, writes(store))
    assert.same({ cart = { items = { "a", "b", "x" }, meta = { n = 2 } } }, all_of(c))
  end)

  it("a write to a table obtained with get() is saved", function()
    local _, c = cart_app(hs.MemoryStore())
    c:post("/cart")
    c:post("/via-get")
    assert.same({ cart = { items = { "a", "b" }, meta = { n = 3 } } }, all_of(c))
  end)

  it("assigning an equal value, or only reading, writes nothing and sends no cookie", function()
    local store = spy_store()
    local _, c = cart_app(store)
    c:post("/cart")
    store:reset()
    local r = c:post("/same")
    assert.equal(0, writes(store))
    assert.same({}, cookie_lines(r))
    r = c:get("/read")
    assert.equal("a", r.body)
    assert.equal(0, writes(store))
    assert.same({}, cookie_lines(r))
  end)

  it("forgetting a key is a modification", function()
    local store = spy_store()
    local _, c = app_with({ store = store }, kv_routes({
      ["POST /forget"] = function(req, res)
        req.session:forget("a")
        res:text("")
      end,
    }))
    c:post("/set?a=1&b=2")
    store:reset()
    c:post("/forget")
    assert.equal(1, writes(store))
    assert.same({ b = "2" }, all_of(c))
  end)

  -- A flat session (scalars only) is compared with a copy made at load, without a native
  -- crossing; every kind of change must still be seen.
  describe("a flat session's changes are seen without encoding it", function()
    local store, app, c
    before_each(function()
      store = hs.MemoryStore()
      app, c = app_with({ store = store }, kv_routes())
      c:post("/set?a=1&b=x")
    end)

    local function run(f)
      app:route("POST", "/change", function(req, res) f(req.session) res:text("") end)
      return c:post("/change")
    end

    it("an unchanged one is not written and gets no cookie", function()
      local r = run(function(s) local _ = s.a end)
      assert.same({}, cookie_lines(r))
    end)

    for name, case in pairs({
      ["a changed value"] = { function(s) s.a = "2" end, { a = "2", b = "x" } },
      ["a removed key"] = { function(s) s.b = nil end, { a = "1" } },
      ["a key swapped for another"] = { function(s) s.b = nil s.z = "x" end, { a = "1", z = "x" } },
      ["a nested table added"] = { function(s) s.a = { 1 } end, { a = { 1 }, b = "x" } },
      ["a number for a string"] = { function(s) s.a = 1 end, { a = 1, b = "x" } },
    }) do
      it(name .. " is stored", function()
        run(case[1])
        assert.same(case[2], all_of(c))
      end)
    end

    it("a NaN is stored", function()
      run(function(s) s.n = 0 / 0 end)
      app:route("GET", "/nan", function(req, res) res:text(tostring(req.session.n ~= req.session.n)) end)
      assert.equal("true", c:get("/nan").body)
    end)

    it("an integer turned into the equal float is stored as a float (Lua 5.3+)", function()
      if not math.type then pending("no integer subtype before Lua 5.3") end
      c:post("/set?i=0")
      app:route("POST", "/int", function(req, res) req.session.i = 7 res:text("") end)
      c:post("/int")
      run(function(s) s.i = 7.0 end)
      app:route("GET", "/type", function(req, res) res:text(math.type(req.session.i)) end)
      assert.equal("float", c:get("/type").body)
    end)

    it("0.0 turned into -0.0 is stored (equal, but another number)", function()
      run(function(s) s.z = 0.0 end)
      run(function(s) s.z = -0.0 end)
      app:route("GET", "/sign", function(req, res) res:text(tostring(1 / req.session.z)) end)
      assert.equal(tostring(-1 / 0), c:get("/sign").body)
    end)

    -- The comparison walks the keys one by one (on LuaJIT as a tail call per key): with the
    -- most keys a copy is made for (32), an unchanged session is still seen as one, and a change
    -- to any one key, wherever the walk meets it, is stored.
    it("each of 32 keys is compared", function()
      app:route("POST", "/many", function(req, res)
        for i = 1, 30 do req.session["k" .. i] = i end
        res:text("")
      end)
      c:post("/many") -- with a and b: 32 keys
      app:route("GET", "/k", function(req, res)
        local s, out = req.session, {}
        for i = 1, 30 do out[i] = tostring(s["k" .. i]) end
        res:text(table.concat(out, " "))
      end)
      assert.same({}, cookie_lines(run(function(s) local _ = s.k1 end)))
      local want = {}
      for i = 1, 30 do want[i] = tostring(i) end
      for i = 1, 30 do
        assert.equal(1, #cookie_lines(run(function(s) s["k" .. i] = -i end)), "k" .. i)
        want[i] = tostring(-i)
        assert.equal(table.concat(want, " "), c:get("/k").body)
      end
    end)

    it("a value saved, then set back to what was loaded, is stored as set back", function()
      run(function(s)
        s.a = "2"
        s:save()
        s.a = "1"
      end)
      assert.same({ a = "1", b = "x" }, all_of(c))
    end)
  end)
end)

---------------------------------------------------------------------------
-- 3. saveUninitialized
---------------------------------------------------------------------------

describe("JSON arrays: hs.array marks a table that is an array even when empty", function()
  it("a marked table keeps its mark through the store, and all() keeps it too", function()
    local _, c = app_with({}, {
      ["GET /set"] = function(req, res)
        req.session.tags = hs.array()
        req.session.plain = {}
        res:text("ok")
      end,
      ["GET /read"] = function(req, res)
        local s = req.session
        local copy = s:all()
        res:text(table.concat({
          tostring(getmetatable(s.tags) == hs.array_mt), tostring(getmetatable(s.plain) == nil),
          tostring(getmetatable(copy.tags) == hs.array_mt), hs.json.encode(s.tags), hs.json.encode(s.plain),
        }, " "))
      end,
    })
    c:get("/set")
    assert.equal("true true true [] {}", c:get("/read").body)
  end)

  it("json.decode marks arrays, so json.encode writes [] back", function()
    local v = hs.json.decode('{"a":[],"b":{},"c":[1,null,3]}')
    assert.equal(hs.array_mt, getmetatable(v.a))
    assert.is_nil(getmetatable(v.b))
    assert.equal('[1,null,3]', hs.json.encode(v.c))
    assert.equal('[]', hs.json.encode(v.a))
    assert.equal('{}', hs.json.encode(v.b))
  end)

  it("a marked table's holes count toward maxSize, as the nulls they are written as", function()
    -- A route storing a marked table whose one key is at position n (n - 1 holes).
    local function key_at(n)
      return function(req, res)
        local a = hs.array()
        a[n] = 1
        req.session.a = a
        res:text("ok")
      end
    end
    local app, c = app_with({ maxSize = 65536 }, {
      ["GET /sparse"] = key_at(10000), -- 9,999 nulls in JSON
      ["GET /dense"] = key_at(1000),
      ["GET /far"] = key_at(1000000),
    })
    assert.equal(500, c:get("/sparse").status)
    assert.matches("the session is larger than maxSize (65536 bytes) at a", tostring(app.last_error), 1, true)
    assert.equal(200, c:get("/dense").status)
    -- Past 65,536 holes a marked table is written as an object: its holes cost nothing.
    assert.equal(200, c:get("/far").status)
  end)

  it("hs.array takes a table or nothing, and refuses a table with a metatable of its own", function()
    local t = { 1, 2 }
    assert.equal(t, hs.array(t))
    assert.equal(hs.array_mt, getmetatable(t))
    assert.has_error(function() hs.array(5) end, "honeymoon_session: array(t) takes a table or nothing, got a number")
    assert.has_error(function() hs.array(setmetatable({}, {})) end,
      "honeymoon_session: array(t): the table already has a metatable of its own")
  end)
end)

describe("rule 3: saveUninitialized = false stores and sends nothing for an empty new session", function()
  it("an untouched visitor costs no store write and no Set-Cookie, yet has an id", function()
    local store = spy_store()
    local seen
    local _, c = app_with({ store = store }, {
      ["GET /"] = function(req, res)
        seen = { id = req.session:getId(), sid = req.sessionID }
        res:text("")
      end,
    })
    local r = c:get("/")
    assert.same({}, cookie_lines(r))
    assert.equal(0, writes(store))
    assert.is_string(seen.id)
    assert.is_true(#seen.id > 0)
    assert.equal(seen.id, seen.sid)
  end)

  it("a new session emptied again before the commit is not stored", function()
    local store = hs.MemoryStore()
    local _, c = app_with({ store = store }, {
      ["POST /"] = function(req, res)
        req.session.tmp = 1
        req.session:forget("tmp")
        res:text("")
      end,
    })
    assert.same({}, cookie_lines(c:post("/")))
    assert.equal(0, store:length())
  end)

  it("saveUninitialized = true stores and sends an empty new session", function()
    local store = hs.MemoryStore()
    local _, c = app_with({ store = store, saveUninitialized = true }, kv_routes())
    local r = c:get("/id")
    cookie_line(r)
    assert.equal(1, store:length())
    assert.is_true(store:exists(r.body))
    assert.equal(r.body, jar_id(c))
  end)
end)

---------------------------------------------------------------------------
-- 4. resave and rolling
---------------------------------------------------------------------------

describe("rule 4: resave writes unmodified sessions back; rolling refreshes cookie and store TTL", function()
  it("resave = false: an unmodified existing session is not written", function()
    local store = spy_store()
    local _, c = app_with({ store = store }, kv_routes())
    c:post("/set?a=1")
    store:reset()
    c:get("/id")
    c:get("/id")
    assert.equal(0, writes(store))
  end)

  it("resave = true: an unmodified existing session is written back, intact, with its cookie, every request", function()
    local store = spy_store()
    local _, c = app_with({ store = store, resave = true }, kv_routes())
    c:post("/set?a=1")
    store:reset()
    cookie_line(c:get("/id"))
    cookie_line(c:get("/id"))
    assert.equal(2, writes(store))
    assert.same({ a = "1" }, all_of(c))
  end)

  it("rolling = false: an unmodified request sends no cookie and the session expires ttl after its last write", function()
    local _, c = app_with({ ttl = 100 }, kv_routes())
    c:post("/set?a=1")
    local cookie = replay(c)
    advance(60, c)
    assert.same({}, cookie_lines(c:get("/id")))
    advance(60, c)
    assert.same({}, all_of(c, { cookie = cookie }))
  end)

  it("rolling = true: an unmodified request re-sends the cookie and touches the store", function()
    local store = spy_store()
    local _, c = app_with({ store = store, rolling = true, ttl = 100 }, kv_routes())
    c:post("/set?a=1")
    local first = cookie_line(c:post("/set?b=2"))
    store:reset()
    advance(60, c)
    local line = cookie_line(c:get("/id"))
    assert.equal(1, store:count("touch"))
    assert.equal(0, writes(store))
    assert.equal("100", attr(line, "Max-Age"))
    local moved = Client.parse_http_date(attr(line, "Expires")) - Client.parse_http_date(attr(first, "Expires"))
    assert.is_true(moved >= 59 and moved <= 61, "Expires moved by " .. moved)
  end)

  it("rolling = true: the refresh keeps the session alive past ttl after its last write", function()
    local _, c = app_with({ rolling = true, ttl = 100 }, kv_routes())
    c:post("/set?a=1")
    advance(60, c)
    c:get("/id")
    advance(60, c) -- 120 s after the write, 60 s after the refresh
    assert.same({ a = "1" }, all_of(c, { cookie = replay(c) }))
  end)

  it("rolling = true never creates a cookie for an empty new session", function()
    local _, c = app_with({ rolling = true }, kv_routes())
    assert.same({}, cookie_lines(c:get("/id")))
  end)
end)

---------------------------------------------------------------------------
-- 5. The cookie: format, signature, lifetime
---------------------------------------------------------------------------

---base64(HMAC-SHA256(secret, msg)) without padding, from the openssl command line.
local function hmac_b64(secret, msg)
  assert(not secret:find("'") and not msg:find("'"))
  local p = assert(io.popen("printf '%s' '" .. msg .. "' | openssl dgst -sha256 -hmac '" .. secret
    .. "' -binary | base64 | tr -d '=\\n'"))
  local out = p:read("*a")
  p:close()
  return out
end

describe("rule 5: the cookie is express-session's signed format; ttl sets its lifetime unless cookie.maxAge does", function()
  ---Expires as a Unix time.
  local function expires_of(line)
    return Client.parse_http_date(attr(line, "Expires"))
  end

  it("a default cookie line is name=s%3A<id>.<sig>; Path=/; Max-Age; Expires; HttpOnly; SameSite=Lax", function()
    local _, c = app_with(nil, kv_routes())
    local r = c:post("/set?a=1")
    local line = cookie_line(r)
    local value, rest = line:match("^honeymoon%.sid=([^;]*)(.*)$")
    assert.equal(r.body, (unsign(value)))
    assert.matches("^; Path=/; Max%-Age=86400; Expires=%a%a%a, %d%d %a%a%a %d%d%d%d %d%d:%d%d:%d%d GMT; HttpOnly; SameSite=Lax$", rest)
  end)

  it("the value is s:<id>.<base64 HMAC-SHA256(secret, id)>, URL-encoded", function()
    local _, c = app_with({ secret = "keyboard cat" }, kv_routes())
    local id = c:post("/set?a=1").body
    local raw = c:cookie(NAME)
    assert.equal("s%3A", raw:sub(1, 4))
    assert.not_matches("[:+/=]", raw)
    local got_id, sig = unsign(raw)
    assert.equal(id, got_id)
    assert.equal(43, #sig)
    assert.equal(hmac_b64("keyboard cat", id), sig)
  end)

  it("Domain and Secure appear as configured; secure = \"auto\" follows the request", function()
    local _, always = app_with({ cookie = { secure = true, domain = "example.com" } }, kv_routes())
    local line = cookie_line(always:post("/set?a=1"))
    assert.equal("example.com", attr(line, "Domain"))
    assert.is_true(attr(line, "Secure"))
    local _, auto = app_with({ cookie = { secure = "auto" } }, kv_routes())
    assert.is_nil(attr(cookie_line(auto:post("/set?a=1")), "Secure"))
    auto:clear_cookies()
    assert.is_true(attr(cookie_line(auto:post("/set?a=1", { secure = true })), "Secure"))
  end)

  it("Max-Age is ttl and Expires lies ttl seconds ahead", function()
    local _, c1 = app_with({ ttl = 120 }, kv_routes())
    local _, c2 = app_with({ ttl = 1120 }, kv_routes())
    local l1, l2 = cookie_line(c1:post("/set?a=1")), cookie_line(c2:post("/set?a=1"))
    assert.equal("120", attr(l1, "Max-Age"))
    assert.equal("1120", attr(l2, "Max-Age"))
    assert.is_true(math.abs(expires_of(l2) - expires_of(l1) - 1000) <= 1)
  end)

  it("the store keeps the session for ttl seconds, not longer", function()
    local _, c = app_with({ ttl = 100 }, kv_routes())
    c:post("/set?a=1")
    local cookie = replay(c)
    -- 95, not 99: the store counts real milliseconds too, and a slow machine may spend some.
    advance(95, c)
    assert.same({ a = "1" }, all_of(c, { cookie = cookie }))
    advance(6, c)
    assert.same({}, all_of(c, { cookie = cookie }))
  end)

  it("cookie.maxAge sets the cookie's Max-Age and Expires", function()
    local _, short = app_with({ ttl = 1000, cookie = { maxAge = 60 } }, kv_routes())
    local _, plain = app_with({ ttl = 1000 }, kv_routes())
    local ls, lp = cookie_line(short:post("/set?a=1")), cookie_line(plain:post("/set?a=1"))
    assert.equal("60", attr(ls, "Max-Age"))
    assert.is_true(math.abs(expires_of(lp) - expires_of(ls) - 940) <= 1)
  end)

  it("cookie.maxAge does not change the store lifetime", function()
    -- Cookie outlives the store entry: the session is gone anyway.
    local _, c = app_with({ ttl = 100, cookie = { maxAge = 1000 } }, kv_routes())
    c:post("/set?a=1")
    advance(150, c)
    assert.is_not_nil(c:cookie(NAME))
    assert.same({}, all_of(c))
    -- Store entry outlives the cookie: a replayed cookie still finds it.
    local _, d = app_with({ ttl = 1000, cookie = { maxAge = 50 } }, kv_routes())
    d:post("/set?a=1")
    local cookie = replay(d)
    advance(60, d)
    assert.is_nil(d:cookie(NAME))
    assert.same({ a = "1" }, all_of(d, { cookie = cookie }))
  end)
end)

---------------------------------------------------------------------------
-- 6. Ids, and cookies that are never adopted
---------------------------------------------------------------------------

describe("rule 6: ids are random and URL-safe; a cookie is adopted only if validly signed and live", function()
  ---What a request presenting `cookie` gets: its id and data.
  local function state(c, cookie)
    local r = c:get("/state", { cookie = cookie })
    assert.equal(200, r.status, r.body)
    return cjson.decode(r.body)
  end

  it("ids carry at least 128 bits in URL-safe characters and do not repeat", function()
    local app = app_with(nil, kv_routes())
    local seen, n = {}, 0
    for _ = 1, 200 do
      local id = app:handle({ method = "GET", path = "/id" }).body
      assert.matches("^[%w_%-]+$", id)
      local bits = id:match("^%x+$") and #id * 4 or #id * 6
      assert.is_true(bits >= 128, "id too short: " .. id)
      if not seen[id] then n = n + 1 end
      seen[id] = true
    end
    assert.equal(200, n)
  end)

  it("on LuaJIT ids are drawn through the FFI (a call the JIT compiles), elsewhere by the engine", function()
    local core = hs.core({ secret = "spec-secret" })
    local draw = core.ctx.id
    local has_ffi = rawget(_G, "jit") ~= nil and pcall(require, "ffi")
    assert.equal(has_ffi and "Lua" or "C", debug.getinfo(draw, "S").what)
    local seen = {}
    for _ = 1, 1000 do
      local id = draw()
      assert.equal(32, #id)
      assert.matches("^[%w_%-]+$", id)
      assert.is_nil(seen[id])
      seen[id] = true
    end
  end)

  it("a stub ffi library (a sandbox's) leaves ids to the engine instead of failing setup", function()
    local real = package.loaded.ffi
    package.loaded.ffi = {}
    local ok, core = pcall(hs.core, { secret = "spec-secret" })
    package.loaded.ffi = real
    assert.is_true(ok, tostring(core))
    assert.equal("C", debug.getinfo(core.ctx.id, "S").what)
    assert.matches("^[%w_%-]+$", core.ctx.id())
  end)

  it("a validly signed cookie for an id this store does not know gets a fresh id", function()
    local _, c = app_with(nil, kv_routes())
    c:post("/set?a=1")
    local old = jar_id(c)
    local _, other = app_with({ store = hs.MemoryStore() }, kv_routes()) -- same secret, empty store
    local r = other:post("/set?b=2", { cookie = replay(c) })
    assert.are_not.equal(old, r.body)
    assert.are_not.equal(old, jar_id(other))
    assert.equal(r.body, jar_id(other))
  end)

  it("an expired session's cookie gets a fresh id, not the old one", function()
    local _, c = app_with({ ttl = 60 }, kv_routes())
    c:post("/set?a=1")
    local old, cookie = jar_id(c), replay(c)
    advance(61, c)
    local r = c:post("/set?b=2", { cookie = cookie })
    assert.are_not.equal(old, r.body)
    assert.are_not.equal(old, jar_id(c))
    assert.same({ b = "2" }, all_of(c))
  end)

  it("tampered, unsigned, malformed and oversized values are ignored without an error", function()
    local _, c = app_with(nil, kv_routes())
    c:post("/set?a=1")
    local id, sig = unsign(c:cookie(NAME))
    local flipped = sig:sub(1, 5) .. (sig:sub(6, 6) == "A" and "B" or "A") .. sig:sub(7)
    local forged = {
      "s%3A" .. id .. "." .. flipped,
      "s%3A" .. id .. "." .. sig .. "x",
      "s%3A" .. id .. "x." .. sig,
      id,
      "s%3A" .. id,
      "s%3A",
      "%",
      "%zz",
      '"s%3A' .. id .. '"x',
      string.rep("a", 5000),
      "s%3A" .. string.rep("a", 5000) .. "." .. sig,
    }
    for _, value in ipairs(forged) do
      local got = state(c, NAME .. "=" .. value)
      assert.same({}, got.all, value)
      assert.are_not.equal(id, got.id, value)
    end
    assert.same({ a = "1" }, all_of(c))
  end)

  it("a cookie signed with another secret is ignored", function()
    local store = hs.MemoryStore()
    local _, a = app_with({ store = store, secret = "one" }, kv_routes())
    a:post("/set?a=1")
    local _, b = app_with({ store = store, secret = "two" }, kv_routes())
    local got = state(b, replay(a))
    assert.same({}, got.all)
    assert.are_not.equal(jar_id(a), got.id)
  end)

  it("among duplicate session cookies, the validly signed live one wins", function()
    local _, c = app_with(nil, kv_routes())
    c:post("/set?a=1")
    local good, id = replay(c), jar_id(c)
    local _, other = app_with({ store = hs.MemoryStore() }, kv_routes())
    other:post("/set?z=1")
    local dead = replay(other) -- validly signed, but not in this app's store
    for _, header in ipairs({
      NAME .. "=s%3Abogus.sig; " .. good,
      good .. "; " .. NAME .. "=garbage",
      dead .. "; " .. good,
    }) do
      local got = state(c, header)
      assert.equal(id, got.id, header)
      assert.same({ a = "1" }, got.all, header)
    end
  end)
end)

---------------------------------------------------------------------------
-- 7. Secrets
---------------------------------------------------------------------------

describe("rule 7: a list of secrets rotates: the first signs, all verify; no secret means a random one", function()
  it("cookies signed with an old secret are accepted and re-signed with the new one", function()
    local store = hs.MemoryStore()
    local _, old = app_with({ store = store, secret = "old" }, kv_routes())
    old:post("/set?a=1")
    local old_cookie = replay(old)

    local _, rotated = app_with({ store = store, secret = { "new", "old" } }, kv_routes())
    assert.same({ a = "1" }, all_of(rotated, { cookie = old_cookie }))
    local r = rotated:post("/set?b=2", { cookie = old_cookie })
    local id, sig = unsign(cookie_line(r):match("^[^=]+=([^;]*)"))
    assert.equal(jar_id(old), id)
    assert.equal(hmac_b64("new", id), sig)

    local _, only_new = app_with({ store = store, secret = "new" }, kv_routes())
    local _, only_old = app_with({ store = store, secret = "old" }, kv_routes())
    assert.same({ a = "1", b = "2" }, all_of(only_new, { cookie = replay(rotated) }))
    assert.same({}, all_of(only_old, { cookie = replay(rotated) }))
  end)

  describe("without a secret", function()
    local interpreter = Interpreter.command
    local script = [[
      package.cpath = %q
      package.path = %q
      local hs = require("honeymoon_session")
      local App = require("examples.framework.app")
      local Client = require("examples.framework.client")
      local store = hs.MemoryStore()
      local function app()
        local a = App.new()
        a:use(hs.session({ store = store }))
        a:post("/w", function(req, res) req.session.x = "shared"; res:text("") end)
        a:get("/r", function(req, res) res:text(tostring(req.session.x)) end)
        return a
      end
      local c = Client.new(app())
      c:post("/w")
      print("same app: " .. c:get("/r").body)
      c.app = app()
      print("other instance: " .. c:get("/r").body)
    ]]

    ---Runs the script in a fresh interpreter; returns its stdout and stderr.
    local function run()
      local src, err = os.tmpname(), os.tmpname()
      local f = assert(io.open(src, "w"))
      f:write(script:format(package.cpath, package.path))
      f:close()
      local p = assert(io.popen(interpreter .. " " .. src .. " 2>" .. err))
      local out = p:read("*a")
      p:close()
      f = assert(io.open(err))
      local stderr = f:read("*a")
      f:close()
      os.remove(src)
      os.remove(err)
      return out, stderr
    end

    it("sessions work, with exactly one warning on stderr however many middlewares are made", function()
      local out, stderr = run()
      assert.matches("same app: shared", out, 1, true)
      local warnings = 0
      for line in stderr:gmatch("[^\n]+") do
        if line:find("secret", 1, true) then warnings = warnings + 1 end
      end
      assert.equal(1, warnings, "stderr was: " .. stderr)
    end)

    it("the random secret is one per process, so two middlewares on one store share sessions", function()
      local out = run()
      assert.matches("other instance: shared", out, 1, true)
    end)
  end)
end)

---------------------------------------------------------------------------
-- 8. destroy
---------------------------------------------------------------------------

describe("rule 8: destroy() removes the session, clears the cookie and empties the request's session", function()
  local function destroy_app(store, extra)
    local routes = {
      ["POST /app/login"] = function(req, res)
        req.session.userId = 42
        res:text("")
      end,
      ["POST /app/logout"] = function(req, res)
        local before = req.session:getId()
        req.session:destroy()
        res:json({
          before = before,
          after = req.session:getId(),
          sid = req.sessionID,
          all = req.session:all(),
          has = req.session:has("userId"),
          prop = req.session.userId or cjson.null,
        })
      end,
      ["POST /app/logout-and-write"] = function(req, res)
        req.session:destroy()
        req.session.fresh = true
        res:text("")
      end,
      ["GET /app/all"] = function(req, res) res:json(req.session:all()) end,
    }
    for k, v in pairs(extra or {}) do routes[k] = v end
    return app_with({ store = store, cookie = { path = "/app", domain = "example.com" } }, routes)
  end

  it("removes the session from the store and leaves the request with an empty session", function()
    local store = hs.MemoryStore()
    local _, c = destroy_app(store)
    c:post("/app/login")
    local id = jar_id(c)
    local out = cjson.decode(c:post("/app/logout").body)
    assert.equal(id, out.before)
    assert.is_false(store:exists(id))
    assert.equal(0, store:length())
    assert.same({}, out.all)
    assert.is_false(out.has)
    assert.equal(cjson.null, out.prop)
    assert.are_not.equal(id, out.after)
    assert.equal(out.after, out.sid)
  end)

  it("sends a clearing cookie with the same name, path and domain", function()
    local _, c = destroy_app(hs.MemoryStore())
    c:post("/app/login")
    local line = cookie_line(c:post("/app/logout"))
    assert.equal(NAME .. "=", line:match("^[^;]*"))
    assert.equal("0", attr(line, "Max-Age"))
    assert.is_true(Client.parse_http_date(attr(line, "Expires")) < os.time())
    assert.equal("/app", attr(line, "Path"))
    assert.equal("example.com", attr(line, "Domain"))
    assert.is_nil(c:cookie(NAME))
  end)

  it("writing after destroy starts a new session: stored, its cookie sent instead of the clearing one", function()
    local store = hs.MemoryStore()
    local _, c = destroy_app(store)
    c:post("/app/login")
    local id, cookie = jar_id(c), replay(c)
    local r = c:post("/app/logout-and-write", { cookie = cookie })
    local line = cookie_line(r)
    assert.are_not.equal("0", attr(line, "Max-Age"))
    local new_id = jar_id(c)
    assert.is_string(new_id)
    assert.are_not.equal(id, new_id)
    assert.is_false(store:exists(id))
    assert.is_true(store:exists(new_id))
    assert.same({ fresh = true }, cjson.decode(c:get("/app/all").body))
    assert.same({}, cjson.decode(c:get("/app/all", { cookie = cookie }).body))
  end)
end)

---------------------------------------------------------------------------
-- 9. regenerate
---------------------------------------------------------------------------

describe("rule 9: regenerate(keepData) issues a new id, deletes the old, and sends the new cookie", function()
  -- staleGrace = 0: the old id is deleted at once (the default grace is specified in
  -- spec/lifetime_spec.lua).
  local function regen_app(store)
    return app_with({ store = store, staleGrace = 0 }, kv_routes({
      ["POST /regen"] = function(req, res)
        local before = req.session:getId()
        local keep = req.query.keep
        local returned
        if keep == "true" then returned = req.session:regenerate(true)
        elseif keep == "false" then returned = req.session:regenerate(false)
        else returned = req.session:regenerate() end
        res:json({ before = before, returned = returned, id = req.session:getId(), sid = req.sessionID,
                   all = req.session:all() })
      end,
    }))
  end

  for _, case in ipairs({ { "true", { a = "1" } }, { "false", {} }, { "nil", {} } }) do
    local keep, kept = case[1], case[2]
    it("keepData = " .. keep .. ": new id returned, old id deleted, data " .. (keep == "true" and "kept" or "dropped"), function()
      local store = hs.MemoryStore()
      local _, c = regen_app(store)
      c:post("/set?a=1")
      local old = jar_id(c)
      local r = c:post("/regen?keep=" .. keep)
      local out = cjson.decode(r.body)
      assert.equal(old, out.before)
      assert.is_string(out.returned)
      assert.are_not.equal(old, out.returned)
      assert.equal(out.returned, out.id)
      assert.equal(out.returned, out.sid)
      assert.same(kept, out.all)
      assert.is_false(store:exists(old))
      assert.equal(out.returned, unsign(cookie_line(r):match("^[^=]+=([^;]*)")))
      assert.equal(out.returned, jar_id(c))
      assert.same(kept, all_of(c))
    end)
  end

  it("the new cookie is sent and the session stored even when it is empty", function()
    local store = hs.MemoryStore()
    local _, c = regen_app(store)
    local r = c:post("/regen?keep=false")
    local out = cjson.decode(r.body)
    cookie_line(r)
    assert.is_true(store:exists(out.returned))
    assert.equal(out.returned, jar_id(c))
  end)

  it("keepData is true, false or nothing: a callback or a string raises and changes nothing", function()
    -- express-session's regenerate(function(err) ... end) would otherwise keep the data (a
    -- function is true to Lua) and never call the callback; regenerate("false") would keep it too.
    local errs = {}
    local _, c = app_with({}, kv_routes({
      ["POST /regen"] = function(req, res)
        local s = req.session
        local before = s:getId()
        for _, keep in ipairs({ function() errs.called = true end, "false", 0 }) do
          local ok, err = pcall(function() s:regenerate(keep) end)
          errs[#errs + 1] = not ok and err or "no error"
        end
        res:json({ same = before == s:getId() and before == req.sessionID, all = s:all() })
      end,
    }))
    c:post("/set?a=1")
    local old = jar_id(c)
    local r = c:post("/regen")
    assert.same({ same = true, all = { a = "1" } }, cjson.decode(r.body))
    assert.equal(0, #cookie_lines(r), "nothing changed: no cookie")
    assert.equal(old, jar_id(c))
    assert.is_nil(errs.called)
    assert.equal(3, #errs)
    assert.matches("^spec/session_spec%.lua:%d+: honeymoon_session: session:regenerate%(keepData%) takes true, false or nothing, got a function; "
      .. "it takes no callback %(it returns the new id when done%)$", errs[1])
    assert.matches("session:regenerate(keepData) takes true, false or nothing, got a string", errs[2], 1, true)
    assert.matches("session:regenerate(keepData) takes true, false or nothing, got a number", errs[3], 1, true)
  end)

  it("save, destroy, reload and touch take no callback: given one they raise before doing anything", function()
    -- express-session's save(cb), destroy(cb) and reload(cb): here the call is done when it
    -- returns, and a callback passed out of habit would silently never run (a logout that
    -- never redirects).
    local store = hs.MemoryStore()
    local errs = {}
    local _, c = app_with({ store = store }, kv_routes({
      ["POST /cb"] = function(req, res)
        local s = req.session
        s.b = "2"
        for _, name in ipairs({ "save", "destroy", "reload", "touch" }) do
          local ok, err = pcall(function() s[name](s, function() errs.called = true end) end)
          errs[#errs + 1] = not ok and err or "no error"
        end
        res:json(s:all())
      end,
    }))
    c:post("/set?a=1")
    local id = jar_id(c)
    local r = c:post("/cb")
    assert.same({ a = "1", b = "2" }, cjson.decode(r.body), "not destroyed, not reloaded")
    assert.equal(id, jar_id(c))
    assert.is_true(store:exists(id))
    assert.is_nil(errs.called)
    assert.equal(4, #errs)
    for i, name in ipairs({ "save", "destroy", "reload", "touch" }) do
      assert.matches("^spec/session_spec%.lua:%d+: honeymoon_session: session:" .. name
        .. "%(%) takes no arguments, got a function; it takes no callback %(it is done when it returns%)$", errs[i])
    end
  end)
end)

---------------------------------------------------------------------------
-- 10. Flash
---------------------------------------------------------------------------

describe("rule 10: flash lives for this request and the next; getFlash consumes; bookkeeping is hidden", function()
  local seen
  local function flash_app()
    seen = {}
    return app_with(nil, kv_routes({
      ["POST /flash"] = function(req, res)
        req.session:flash("msg", req.query.v or "hello")
        if req.query.read then
          seen.first, seen.second = req.session:getFlash("msg"), req.session:getFlash("msg")
        end
        seen.all, seen.has, seen.prop = req.session:all(), req.session:has("msg"), req.session.msg
        seen.reserved = req.session.__flash
        res:text("")
      end,
      ["GET /read"] = function(req, res)
        seen.read = req.session:getFlash("msg")
        res:text("")
      end,
      ["GET /peek"] = function(req, res)
        seen.all, seen.has, seen.prop = req.session:all(), req.session:has("msg"), req.session.msg
        seen.reserved, seen.has_reserved = req.session.__flash, req.session:has("__flash")
        res:text("")
      end,
    }))
  end

  it("is readable in the same request, once", function()
    local _, c = flash_app()
    c:post("/flash?read=1")
    assert.equal("hello", seen.first)
    assert.is_nil(seen.second)
    c:get("/read")
    assert.is_nil(seen.read)
  end)

  it("is readable in the next request, once", function()
    local _, c = flash_app()
    c:post("/flash")
    c:get("/read")
    assert.equal("hello", seen.read)
    c:get("/read")
    assert.is_nil(seen.read)
  end)

  it("is gone after the next request even if nobody read it", function()
    local _, c = flash_app()
    c:post("/flash")
    c:get("/id")
    c:get("/read")
    assert.is_nil(seen.read)
  end)

  it("flash(): res.locals.flash.key consumes the message, and reads as it again in this request", function()
    local app = App.new()
    app:use(hs.session({ secret = "spec-secret" }))
    app:use(hs.flash())
    local shown
    app:post("/", function(req, res)
      req.session:flash("success", "Saved")
      res:redirect("/")
    end)
    app:get("/", function(req, res)
      local flash = res.locals.flash
      -- A template's usual pattern: test the message, then print it.
      shown = { test = flash.success ~= nil, text = flash.success, missing = flash.error }
      res:text("")
    end)
    local c = Client.new(app)
    c:post("/")
    c:get("/")
    assert.same({ test = true, text = "Saved" }, shown)
    c:get("/")
    assert.same({ test = false }, shown)
  end)

  it("a newer flash of the same key replaces the older one", function()
    local _, c = flash_app()
    c:post("/flash?v=one")
    c:post("/flash?v=two")
    c:get("/read")
    assert.equal("two", seen.read)
  end)

  it("flash(key) without a value raises, pointing to getFlash, and keeps the message", function()
    local got, err
    local _, c = app_with(nil, {
      ["POST /a"] = function(req, res)
        req.session:flash("note", "hi")
        res:text("")
      end,
      ["GET /b"] = function(req, res)
        local ok
        ok, err = pcall(req.session.flash, req.session, "note")
        assert.is_false(ok)
        got = req.session:getFlash("note")
        res:text("")
      end,
    })
    c:post("/a")
    c:get("/b")
    assert.equal("honeymoon_session: session:flash(key, value) needs a value; read a message with getFlash(key)",
      hs.error_message(err))
    assert.equal("hi", got)
  end)

  it("clearFlash() removes the previous request's messages and this one's", function()
    local got
    local _, c = app_with(nil, {
      ["POST /a"] = function(req, res)
        req.session:flash("old", 1)
        res:text("")
      end,
      ["POST /b"] = function(req, res)
        req.session:flash("new", 2)
        req.session:clearFlash()
        got = { old = req.session:getFlash("old"), new = req.session:getFlash("new") }
        res:text("")
      end,
      ["GET /c"] = function(req, res)
        got = { old = req.session:getFlash("old"), new = req.session:getFlash("new") }
        res:text("")
      end,
    })
    c:post("/a")
    c:post("/b")
    assert.same({}, got)
    c:get("/c")
    assert.same({}, got)
  end)

  it("the key __flash is reserved: set() and property writes refuse it", function()
    local errs = {}
    local _, c = app_with(nil, {
      ["POST /"] = function(req, res)
        errs[1] = error_of(req.session.set, req.session, "__flash", { x = 1 })
        errs[2] = error_of(function() req.session.__flash = { x = 1 } end)
        res:text("")
      end,
    })
    assert.equal(200, c:post("/").status)
    assert.equal(2, #errs)
    for _, e in ipairs(errs) do assert.matches("__flash", e, 1, true) end
  end)

  it("keys starting with __flash: are reserved too (each message is stored under one)", function()
    local s = hs.core({ secret = "s" }):load(nil)
    for _, write in ipairs({
      function() s:set("__flash:notice", 1) end,
      function() s["__flash:notice"] = 1 end,
    }) do
      local ok, err = pcall(write)
      assert.is_false(ok)
      assert.matches('the session key prefix "__flash:" is reserved for flash messages', err, 1, true)
    end
    s:set("__flashy", 1) -- only the prefix itself
    assert.equal(1, s.__flashy)
  end)

  -- rawset passes the session's guard; the commit refuses the reserved keys too, or a data
  -- value under "__meta" would become the session's bookkeeping (another owner, so a
  -- destroyAll of its own owner misses it; another lifetime) and one under "__flash:<key>" a
  -- flash message.
  it("a reserved key put in with rawset is refused at the commit, and nothing is stored", function()
    local store = hs.MemoryStore()
    local app, c = app_with({ store = store, index = "user" }, {
      ["POST /login"] = function(req, res) req.session.user = "ann"; res:text("") end,
      ["POST /raw"] = function(req, res)
        rawset(req.session, req.query.key, { owner = "eve", maxAge = 5000 })
        req.session.note = "kept?"
        res:text("")
      end,
      ["GET /show"] = function(req, res) res:text(tostring(req.session.note) .. " " .. tostring(req.session:getFlash("x"))) end,
      ["POST /touch"] = function(req, res) req.session:touch(); res:text("") end,
    })
    c:post("/login")
    for _, key in ipairs({ "__meta", "__flash", "__flash:x" }) do
      local r = c:post("/raw?key=" .. key)
      assert.equal(500, r.status, key)
      local shown = key == "__meta" and '"__meta" is reserved' or key == "__flash" and '"__flash" is reserved'
        or 'prefix "__flash:" is reserved'
      assert.matches("honeymoon_session: the session key " .. shown, tostring(app.last_error), 1, true)
      assert.same({}, cookie_lines(r), key)
      assert.equal("nil nil", c:get("/show").body, key)
    end
    assert.equal(1, #store:sessionsOf("ann"))
    assert.same({}, store:sessionsOf("eve"))
    assert.equal("86400", attr(cookie_line(c:post("/touch")), "Max-Age"))
  end)

  -- Rule 13 for flash messages: each is a key of its own, so a request that expires the
  -- messages it loaded does not drop one that another request added meanwhile.
  -- Two stores written in Lua that merge: the Sessions page's (tables) and a record store.
  local function lua_store(record)
    local rows, st = {}, { format = record and "record" or nil }
    function st:get(id) return rows[id] end
    function st:set(id, data) rows[id] = data end
    function st:merge(id, changed, removed)
      local row = rows[id]
      if row == nil then return false end
      if record then
        local merged = hs._merge_patch(row, changed)
        if merged == false then return false end
        rows[id] = merged
        return true
      end
      for k, v in pairs(changed) do row[k] = v end
      for _, k in ipairs(removed) do row[k] = nil end
      return true
    end
    function st:destroy(id) rows[id] = nil end
    function st:touch(id) return rows[id] ~= nil end
    function st:exists(id) return rows[id] ~= nil end
    function st:all() return {} end
    function st:length() return 0 end
    function st:clear() end
    return st
  end

  for _, kind in ipairs({ "MemoryStore", "a table store with merge", "a record store" }) do
    it("a message added while another request expires the old ones survives (" .. kind .. ")", function()
      local store = kind == "MemoryStore" and hs.MemoryStore() or lua_store(kind == "a record store")
      local core = hs.core({ secret = "s", store = store })
      local function cookie(line) return line and line:match("^([^;]*)") end
      local s0 = core:load(nil)
      s0:flash("welcome", "Hi")
      local jar = cookie(core:commit(s0)[1])
      local x, y = core:load(jar), core:load(jar) -- both loaded with "welcome" pending
      x.theme = "dark"
      x:flash("info", "Saved")
      core:commit(x)
      assert.equal("Hi", y:getFlash("welcome"))
      core:commit(y) -- expires "welcome"; must not drop "info"
      local z = core:load(jar)
      assert.equal("Saved", z:getFlash("info"))
      assert.is_nil(z:getFlash("welcome"))
      assert.equal("dark", z.theme)
    end)
  end

  it("names a bad value nested in a message by the message's key", function()
    local core = hs.core({ secret = "s" })
    local s = core:load(nil)
    s:flash("notice", { f = print })
    local ok, err = pcall(core.commit, core, s)
    assert.is_false(ok)
    assert.matches("session value flash.notice.f is a function", err, 1, true)
  end)

  it("reads the messages of a session stored with them all under __flash, and stores them apart", function()
    local store = require("spec.support.table_store").new()
    local core = hs.core({ secret = "s", store = store })
    local s0 = core:load(nil)
    s0.a = 1
    local jar = core:commit(s0)[1]:match("^([^;]*)")
    local id = s0:getId()
    store.rows[id].data.__flash = { old = "from before" } -- a record of the earlier format
    local s = core:load(jar)
    assert.equal("from before", s:getFlash("old"))
    s:flash("new", "now")
    core:commit(s)
    local stored = store:get(id)
    assert.is_nil(stored.__flash, "the one-table key is gone")
    assert.equal("now", stored["__flash:new"])
    assert.equal("now", core:load(jar):getFlash("new"))
  end)

  it("does not show through all(), has() or property access", function()
    local _, c = flash_app()
    c:post("/set?a=1")
    c:post("/flash")
    assert.same({ a = "1" }, seen.all)
    assert.is_false(seen.has)
    assert.is_nil(seen.prop)
    c:get("/peek")
    assert.same({ a = "1" }, seen.all)
    assert.is_false(seen.has)
    assert.is_nil(seen.prop)
    assert.is_nil(seen.reserved)
    assert.is_false(seen.has_reserved)
  end)
end)

---------------------------------------------------------------------------
-- 11. Property access
---------------------------------------------------------------------------

describe("rule 11: properties are data, method names are reserved, get is live, all is a deep copy", function()
  local METHODS = { "get", "set", "has", "all", "forget", "flash", "getFlash", "clearFlash",
                    "save", "destroy", "regenerate", "getId" }

  it("assigning to a method name is an error that points to set(), and the method survives", function()
    local results = {}
    local _, c = app_with(nil, {
      ["POST /"] = function(req, res)
        for _, m in ipairs(METHODS) do
          local ok, err = pcall(function() req.session[m] = "value" end)
          results[m] = { ok = ok, err = tostring(err), still = type(req.session[m]) }
        end
        res:text("")
      end,
    })
    c:post("/")
    for _, m in ipairs(METHODS) do
      assert.is_false(results[m].ok, m)
      assert.matches("set(", results[m].err, 1, true)
      assert.matches(m, results[m].err, 1, true)
      assert.are_not.equal("string", results[m].still, m)
    end
  end)

  it("set() can store a value under a method name without hiding the method", function()
    local seen
    local _, c = app_with(nil, kv_routes({
      ["POST /w"] = function(req, res)
        req.session:set("save", "a value named save")
        res:text("")
      end,
      ["GET /r"] = function(req, res)
        seen = { value = req.session:get("save"), has = req.session:has("save") }
        req.session:save()
        res:text("")
      end,
    }))
    c:post("/w")
    local r = c:get("/r")
    assert.equal(200, r.status)
    assert.same({ value = "a value named save", has = true }, seen)
    assert.same({ save = "a value named save" }, all_of(c))
  end)

  it("get() returns the live table: in-place changes show at once and are saved", function()
    local seen
    local _, c = app_with(nil, kv_routes({
      ["POST /w"] = function(req, res)
        req.session.cart = { n = 1 }
        res:text("")
      end,
      ["POST /bump"] = function(req, res)
        local cart = req.session:get("cart")
        cart.n = cart.n + 1
        seen = { prop = req.session.cart.n, same = rawequal(cart, req.session.cart) }
        res:text("")
      end,
    }))
    c:post("/w")
    c:post("/bump")
    assert.same({ prop = 2, same = true }, seen)
    assert.same({ cart = { n = 2 } }, all_of(c))
  end)

  it("all() is a deep copy: changing it, even deep down, changes nothing", function()
    local seen
    local _, c = app_with(nil, kv_routes({
      ["POST /w"] = function(req, res)
        req.session.cart = { items = { "a" } }
        res:text("")
      end,
      ["POST /mutate-copy"] = function(req, res)
        local copy = req.session:all()
        copy.cart.items[1] = "changed"
        copy.extra = true
        seen = { item = req.session.cart.items[1], extra = req.session.extra }
        res:text("")
      end,
    }))
    c:post("/w")
    c:post("/mutate-copy")
    assert.same({ item = "a" }, seen)
    assert.same({ cart = { items = { "a" } } }, all_of(c))
  end)
end)

---------------------------------------------------------------------------
-- 12. Values
---------------------------------------------------------------------------

describe("rule 12: sessions hold nil, booleans, numbers, strings and tables; MemoryStore round-trips them exactly", function()
  local all_bytes = {}
  for b = 0, 255 do all_bytes[#all_bytes + 1] = string.char(b) end
  all_bytes = table.concat(all_bytes)

  local function sample()
    return {
      t = true,
      f = false,
      int = 42,
      neg = -7,
      float = 0.1,
      third = 1 / 3,
      big = 2 ^ 53,
      inf = math.huge,
      ninf = -math.huge,
      negzero = -0.0,
      bytes = all_bytes,
      empty_string = "",
      empty = {},
      list = { 1, "two", { 3 } },
      sparse = { [1] = "a", [3] = "c", [1000000] = "m", [-1] = "neg", [0] = "zero" },
      mixed = { 1, 2, x = "y", [2.5] = "float key", [true] = "bool key" },
      nested = { a = { b = { c = { d = "deep" } } }, ["\0\255 key"] = "binary key" },
    }
  end

  local got
  local function values_app()
    got = nil
    return app_with({ store = hs.MemoryStore() }, {
      ["POST /w"] = function(req, res)
        for k, v in pairs(sample()) do req.session[k] = v end
        if math.type then
          req.session.one_float = 1.0
          req.session.maxint = math.maxinteger
          req.session.minint = math.mininteger
          req.session.int53 = math.tointeger(2 ^ 53) + 1
        end
        res:text("")
      end,
      ["GET /r"] = function(req, res)
        got = req.session:all()
        res:text("")
      end,
    })
  end

  it("every kind of allowed value comes back equal", function()
    local _, c = values_app()
    c:post("/w")
    c:get("/r")
    local want = sample()
    for k, v in pairs(want) do assert.same(v, got[k], k) end
    assert.equal(-1 / 0, 1 / got.negzero) -- -0.0 keeps its sign
    assert.equal(256, #got.bytes)
  end)

  it("integers stay integers and floats stay floats (Lua 5.3 and 5.4)", function()
    if not Interpreter.has_integers then pending(Interpreter.NO_INTEGERS) end
    local _, c = values_app()
    c:post("/w")
    c:get("/r")
    assert.equal("integer", math.type(got.int))
    assert.equal("integer", math.type(got.list[1]))
    assert.equal("float", math.type(got.one_float))
    assert.equal("float", math.type(got.big))
    assert.equal(math.maxinteger, got.maxint)
    assert.equal(math.mininteger, got.minint)
    assert.equal("integer", math.type(got.int53))
    assert.equal(math.tointeger(2 ^ 53) + 1, got.int53)
    for k in pairs(got.sparse) do assert.equal("integer", math.type(k)) end
    local float_key
    for k in pairs(got.mixed) do
      if k == 2.5 then float_key = k end
    end
    assert.equal("float", math.type(float_key))
  end)

  it("nil removes a key", function()
    local _, c = app_with(nil, kv_routes({
      ["POST /nil"] = function(req, res)
        req.session.a = nil
        req.session:set("b", nil)
        res:text("")
      end,
    }))
    c:post("/set?a=1&b=2&c=3")
    c:post("/nil")
    assert.same({ c = "3" }, all_of(c))
  end)

  local bad = {
    { "a function deep in a table", function() return { items = { 1, 2, function() end } } end, "cart.items[3] is a function" },
    { "a coroutine", function() return { co = coroutine.create(function() end) } end, "cart.co is a coroutine" },
    { "a userdata", function() return { f = io.stdout } end, "cart.f is a userdata" },
    { "a cycle", function() local t = {}; t.self = t; return t end, "cart.self" },
  }
  for _, case in ipairs(bad) do
    it("refuses " .. case[1] .. " by the commit at the latest, naming the path, and stores nothing", function()
      local app, c = app_with(nil, kv_routes({
        ["POST /bad"] = function(req, res)
          req.session.cart = case[2]()
          res:text("")
        end,
      }))
      c:post("/set?keep=1")
      local r = c:post("/bad")
      assert.equal(500, r.status)
      assert.matches(case[3], app.last_error, 1, true)
      assert.same({ keep = "1" }, all_of(c))
    end)
  end

  it("refuses a function, coroutine or userdata at once on set() or property write, naming the key", function()
    local errs = {}
    local _, c = app_with(nil, kv_routes({
      ["POST /bad"] = function(req, res)
        local s = req.session
        errs[#errs + 1] = error_of(function() s.callback = print end)
        errs[#errs + 1] = error_of(s.set, s, "callback", print)
        errs[#errs + 1] = error_of(function() s.callback = coroutine.create(function() end) end)
        errs[#errs + 1] = error_of(s.set, s, "callback", io.stdout)
        res:text("")
      end,
    }))
    local r = c:post("/bad")
    assert.equal(200, r.status)
    assert.equal(4, #errs)
    for _, e in ipairs(errs) do assert.matches("callback is a", e, 1, true) end
  end)

  it("a refused property write points at the line that wrote, not into the module", function()
    -- error(msg, level) prefixes a position: it must be the handler's, as for set().
    local errs, line = {}, nil
    local _, c = app_with(nil, kv_routes({
      ["POST /bad"] = function(req, res)
        local s = req.session
        line = debug.getinfo(1, "l").currentline + 1
        errs[1] = select(2, pcall(function() s.callback = print end))
        errs[2] = select(2, pcall(function() s.__flash = 1 end))
        errs[3] = select(2, pcall(function() s[1] = 1 end))
        errs[4] = select(2, pcall(function() s.save = 1 end))
        res:text("")
      end,
    }))
    assert.equal(200, c:post("/bad").status)
    for i = 1, 4 do
      assert.is_string(errs[i])
      assert.matches("^[^:]*session_spec%.lua:" .. (line + i - 1) .. ": honeymoon_session: ", errs[i])
    end
  end)

  it("refuses non-string top-level keys", function()
    local errs = {}
    local _, c = app_with(nil, {
      ["POST /"] = function(req, res)
        errs[#errs + 1] = error_of(req.session.set, req.session, 1, "x")
        errs[#errs + 1] = error_of(req.session.set, req.session, true, "x")
        errs[#errs + 1] = error_of(function() req.session[2.5] = "x" end)
        res:text("")
      end,
    })
    c:post("/")
    assert.equal(3, #errs)
    for _, e in ipairs(errs) do assert.matches("string", e, 1, true) end
  end)
end)

---------------------------------------------------------------------------
-- 13. Concurrent requests
---------------------------------------------------------------------------

describe("rule 13: concurrent requests on one session merge by top-level key", function()
  ---An app whose /set can pause inside the handler (after writing) when ?wait=1.
  local function concurrent_app(store)
    return app_with({ store = store }, kv_routes({
      ["POST /slow"] = function(req, res)
        for k, v in pairs(req.query) do
          if k ~= "wait" and k ~= "drop" then req.session[k] = v end
        end
        if req.query.drop then req.session:forget(req.query.drop) end
        coroutine.yield()
        res:text("")
      end,
    }))
  end

  ---Starts a request that pauses in its handler; returns a function that finishes it.
  local function start(c, path)
    if not Interpreter.yields_across_pcall then pending(Interpreter.NO_YIELD_IN_PCALL) end
    return Site.start(function() return c:post(path) end)
  end

  it("two interleaved requests changing different keys both persist", function()
    local _, c = concurrent_app(hs.MemoryStore())
    c:post("/set?base=0")
    local finish_a = start(c, "/slow?a=1")
    c:post("/set?b=2")
    finish_a()
    assert.same({ base = "0", a = "1", b = "2" }, all_of(c))
  end)

  it("a key removed by one request stays removed while another adds a key", function()
    local _, c = concurrent_app(hs.MemoryStore())
    c:post("/set?base=0&x=1")
    local finish_a = start(c, "/slow?drop=x")
    c:post("/set?b=2")
    finish_a()
    assert.same({ base = "0", b = "2" }, all_of(c))
  end)

  it("the same key: the last request to commit wins", function()
    local _, c = concurrent_app(hs.MemoryStore())
    c:post("/set?k=start")
    local finish_a = start(c, "/slow?k=slow")
    c:post("/set?k=fast")
    finish_a()
    assert.same({ k = "slow" }, all_of(c))
  end)

  for _, ending in ipairs({ "destroy", "regenerate" }) do
    it("a request still running when another one calls " .. ending .. "() does not bring the old id back", function()
      local store = hs.MemoryStore()
      local _, c = app_with({ store = store }, kv_routes({
        ["POST /slow"] = function(req, res)
          req.session.late = "write"
          coroutine.yield()
          res:text("")
        end,
        ["POST /end"] = function(req, res)
          req.session[ending](req.session)
          res:text("")
        end,
      }))
      c:post("/set?userId=42")
      local old_id, old_cookie = jar_id(c), replay(c)
      local finish_slow = start(c, "/slow")
      local ended = c:post("/end")
      local slow = finish_slow()
      if ending == "destroy" then
        assert.is_false(store:exists(old_id))
        assert.same({}, all_of(c, { cookie = old_cookie }))
      else
        -- regenerate retired the old id for the stale grace: the late write is refused (the
        -- store's merge sees the retired record), and its response sends no cookie that could
        -- replace the new one.
        assert.same({ userId = "42" }, store:get(old_id))
        assert.same({}, cookie_lines(slow))
        assert.is_string(cookie_line(ended))
        hs._advance_clock(11)
        assert.is_false(store:exists(old_id))
        assert.same({}, all_of(c, { cookie = old_cookie }))
      end
    end)
  end

  it("a Lua store with merge() receives only the changed and removed top-level keys", function()
    local store = spy_store({ merge = true })
    local _, c = concurrent_app(store)
    c:post("/set?a=1&b=2&x=3")
    store:reset()
    c:post("/set?a=9")
    local merge
    for _, call in ipairs(store.calls) do
      if call[1] == "merge" then merge = call end
    end
    assert.is_not_nil(merge, "merge was not called")
    assert.same({ a = "9" }, merge[3])
    assert.same({}, merge[4])
    assert.equal(0, store:count("set"))
  end)

  it("a Lua store without merge() gets the whole session through set()", function()
    local store = spy_store()
    local _, c = concurrent_app(store)
    c:post("/set?a=1&b=2")
    store:reset()
    c:post("/set?a=9")
    assert.equal(1, store:count("set"))
    local call = store.calls[#store.calls]
    assert.equal("set", call[1])
    assert.same({ a = "9", b = "2" }, call[3])
  end)
end)

---------------------------------------------------------------------------
-- 14. Store failures
---------------------------------------------------------------------------

describe("rule 14: store failures are Lua errors naming the store method; nothing is reported saved", function()
  it("a failing set fails the request and sends no session cookie", function()
    local store = spy_store({ fail = { set = true } })
    local app, c = app_with({ store = store }, kv_routes())
    local r = c:post("/set?a=1")
    assert.equal(500, r.status)
    assert.matches("honeymoon_session: store:set failed: disk full", app.last_error, 1, true)
    assert.same({}, cookie_lines(r))
    assert.is_nil(c:cookie(NAME))
  end)

  it("save() raises the failure to the handler that called it", function()
    local store = spy_store({ fail = { set = true } })
    local err
    local _, c = app_with({ store = store }, {
      ["POST /"] = function(req, res)
        req.session.a = 1
        local ok, e = pcall(req.session.save, req.session)
        err = not ok and tostring(e)
        res:text("")
      end,
    })
    c:post("/")
    assert.is_string(err)
    assert.matches("store:set failed: disk full", err, 1, true)
  end)

  it("a failing get, destroy or touch is reported with its method name", function()
    for _, case in ipairs({
      { "get", "/id", {} },
      { "touch", "/id", { rolling = true } },
      { "destroy", "/destroy", {} },
    }) do
      local method, path, opts = case[1], case[2], case[3]
      local store = spy_store()
      opts.store = store
      local app, c = app_with(opts, kv_routes({
        ["GET /destroy"] = function(req, res)
          req.session:destroy()
          res:text("")
        end,
      }))
      c:post("/set?a=1")
      store.fail[method] = true
      local r = c:get(path)
      assert.equal(500, r.status, method)
      assert.matches("store:" .. method .. " failed: disk full", app.last_error, 1, true)
    end
  end)
end)

---------------------------------------------------------------------------
-- 15. Store TTL
---------------------------------------------------------------------------

describe("rule 15: the MemoryStore lets a session go once its ttl has passed", function()
  it("get, exists, all and length stop reporting an expired session", function()
    local store = hs.MemoryStore()
    local _, c = app_with({ store = store, ttl = 30 }, kv_routes())
    local _, d = app_with({ store = store, ttl = 300 }, kv_routes())
    local short = c:post("/set?a=1").body
    local long = d:post("/set?b=2").body
    assert.equal(2, store:length())
    advance(31, c, d)
    assert.is_nil(store:get(short))
    assert.is_false(store:exists(short))
    assert.same({ long }, store:all())
    assert.equal(1, store:length())
    assert.same({ b = "2" }, store:get(long))
  end)

  it("a write refreshes the TTL: the session lives ttl seconds after its last write", function()
    local store = hs.MemoryStore()
    local _, c = app_with({ store = store, ttl = 30 }, kv_routes())
    local id = c:post("/set?a=1").body
    advance(20, c)
    c:post("/set?b=2")
    advance(20, c)
    assert.is_true(store:exists(id))
    advance(11, c)
    assert.is_false(store:exists(id))
  end)
end)

---------------------------------------------------------------------------
-- DESIGN.md: no panic crosses the FFI boundary
---------------------------------------------------------------------------

describe("misuse raises an ordinary Lua error a person can act on, never a panic", function()
  local function assert_actionable(err, mentions)
    assert.is_true(#err > 0)
    assert.not_matches("panicked", err, 1, true)
    if mentions then assert.matches(mentions, err, 1, true) end
  end

  it("bad options fail at setup, naming the option", function()
    for _, case in ipairs({
      { { secret = "s", ttl = "long" }, "ttl" },
      { { secret = "s", ttl = 0 }, "ttl" },
      { { secret = "s", sekret = "typo" }, "sekret" },
      { { secret = "s", cookie = { sameSite = "lax " } }, "sameSite" },
      { { secret = "s", cookie = { maxage = 5 } }, "maxage" },
      { { secret = {} }, "secret" },
      { { secret = "s", name = "bad name" }, "name" },
      { { secret = "s", store = 5 }, "store" },
      { { secret = "s", store = {} }, "store" },
      { { secret = "s", rolling = "yes" }, "rolling" },
    }) do
      assert_actionable(error_of(hs.session, case[1]), case[2])
    end
  end)

  it("a userdata store that cannot be indexed fails at setup with the module's message", function()
    -- A full userdata without a metatable (newproxy() on Lua 5.1 and LuaJIT, or a C object
    -- that has no fields).
    local u = io.tmpfile()
    debug.setmetatable(u, nil)
    for _, make in ipairs({ hs.session, hs.core }) do
      local err = error_of(make, { secret = "s", store = u })
      assert.matches("^honeymoon_session: store must be a table with the store methods, got a userdata", err)
    end
  end)

  it("bad arguments to session methods raise errors, and the request goes on", function()
    local errs = {}
    local _, c = app_with(nil, {
      ["POST /"] = function(req, res)
        local s = req.session
        errs[#errs + 1] = error_of(s.get, s, {})
        errs[#errs + 1] = error_of(s.set, s, 42, "v")
        errs[#errs + 1] = error_of(s.has, s, nil)
        errs[#errs + 1] = error_of(s.flash, s, {}, "v")
        errs[#errs + 1] = error_of(s.get, nil, "k")
        errs[#errs + 1] = error_of(s.getId, {})
        errs[#errs + 1] = error_of(function() s[{}] = 1 end)
        s.ok = true
        res:text("fine")
      end,
    })
    local r = c:post("/")
    assert.equal("fine", r.body)
    assert.equal(7, #errs)
    for _, e in ipairs(errs) do assert_actionable(e) end
    assert.matches("key", errs[1], 1, true)
  end)

  it("errors raised by the module are plain strings starting with honeymoon_session:", function()
    local ok, err = pcall(hs.session, { sekret = "typo" })
    assert.is_false(ok)
    assert.equal("string", type(err))
    assert.matches("^honeymoon_session: ", err)
  end)

  it("a misuse called from Lua code is the module's message, at the caller's line or at none", function()
    -- Never at a line inside the module (an embedded chunk), which would tell the user nothing.
    local core = hs.core({ secret = "s" })
    local s = core:load(nil)
    local function from_lua(f) local ok, err = pcall(function() f() end) assert.is_false(ok) return err end
    local function check(err)
      assert.equal("string", type(err))
      local at = err:match("^(.-)honeymoon_session: ")
      assert.is_not_nil(at, err)
      assert.is_true(at == "" or at:match("session_spec%.lua:%d+: $") ~= nil, err)
    end
    for _, err in ipairs({
      from_lua(function() s.save = 1 end),
      from_lua(function() s.cookie = 1 end),
      from_lua(function() s[1] = 1 end),
      from_lua(function() s.f = print end),
      from_lua(function() s:set("__flash", 1) end),
      from_lua(function() s.getId() end),
      from_lua(function() s.cookie.maxAge = "long" end),
      from_lua(function() s.cookie.path = "/x" end),
      from_lua(function() hs.array(5) end),
      from_lua(function() hs.core(5) end),
      from_lua(function() local m = hs.MemoryStore() m.get("id") end),
      from_lua(function() core.load(nil) end),
      from_lua(function() core.fresh() end),
      from_lua(function() core.commit(s) end),
      -- No position: the adapters call it on their caller's behalf.
      from_lua(function() core:commit({}) end),
      from_lua(function() hs.core({ secret = "s" }):commit(s) end),
    }) do
      check(err)
    end
    core:commit(s)
    check(from_lua(function() s:save() end))
    check(from_lua(function() s.cookie.maxAge = 1000 end))
  end)

  it("core:fresh keeps req.sessionID in step from the start, as core:load does", function()
    local core = hs.core({ secret = "s" })
    local req = {}
    local s, id = core:fresh(false, req)
    assert.equal(id, req.sessionID)
    assert.equal(id, s:getId())
    s:regenerate()
    assert.equal(s:getId(), req.sessionID)
  end)

  it("a bad argument to an export or a method is named at the caller's line", function()
    local s = hs.core({ secret = "s" }):load(nil)
    local core = hs.core({ secret = "s" })
    local function from_lua(f) local ok, err = pcall(function() f() end) assert.is_false(ok) return err end
    local cases = {
      { function() hs.session(5) end, "session takes an options table, got a number" },
      { function() hs.core("x") end, "core takes an options table, got a string" },
      { function() hs.MemoryStore("x") end, "MemoryStore takes an options table or nothing, got a string" },
      { function() hs.json.decode(nil) end, "json.decode takes a string, got a nil" },
      { function() s:has(nil) end, "session keys must be strings, got nil" },
      { function() s:has(1) end, "session keys must be strings, got a number" },
      { function() s:forget("__flash:x") end, 'the session key prefix "__flash:" is reserved' },
      { function() s:forget(true) end, "session keys must be strings, got a boolean" },
      { function() core:load(5) end, "the Cookie header must be a string or a list of strings, got a number" },
      { function() core:load({ "a=1", 2 }) end, "a Cookie header list must hold strings, got a number at [2]" },
      { function() core:load(nil, false, 5) end, "core:load(header, secure, req): req must be a table" },
      { function() core:fresh(false, 5) end, "core:fresh(secure, req): req must be a table" },
    }
    if hs.RedisStore then
      cases[#cases + 1] = { function() hs.RedisStore(5) end, "RedisStore takes an options table or nothing, got a number" }
      cases[#cases + 1] = {
        function() require("honeymoon_session.stores.redis").new("x") end,
        "RedisStore takes an options table or nothing, got a string",
      }
    end
    for _, case in ipairs(cases) do
      local err = from_lua(case[1])
      assert.matches("^spec/session_spec%.lua:%d+: honeymoon_session: ", err)
      assert.matches(case[2], err, 1, true)
    end
  end)

  it("req.flash(key, value) and res.locals.flash[key] name a bad key or value at the caller's line, not inside the module", function()
    local errs = {}
    local app = App.new()
    app:use(hs.session({ secret = "s" }))
    app:use(hs.flash())
    app:get("/", function(req, res)
      for _, args in ipairs({ { 5, "v" }, { "k", print } }) do
        local ok, err = pcall(function() req.flash(args[1], args[2]) end)
        assert.is_false(ok)
        errs[#errs + 1] = err
      end
      local ok, err = pcall(function() local _ = res.locals.flash[1] end)
      assert.is_false(ok)
      errs[#errs + 1] = err
      res:text("")
    end)
    Client.new(app):get("/")
    assert.equal(3, #errs)
    -- req.flash hands over with a tail call, whose caller Lua 5.1 (PUC) no longer knows: there
    -- the error has no position (still not one inside the module).
    local at = (_VERSION == "Lua 5.1" and not rawget(_G, "jit")) and "" or "spec/session_spec%.lua:%d+: "
    assert.matches("^" .. at .. "honeymoon_session: session keys must be strings, got a number", errs[1])
    assert.matches("^" .. at .. "honeymoon_session: session value flash%.k is a function", errs[2])
    assert.matches("^spec/session_spec%.lua:%d+: honeymoon_session: session keys must be strings, got a number", errs[3])
  end)

  it("bad arguments to the other exports raise errors", function()
    assert_actionable(error_of(hs.MemoryStore, { bogus = 1 }), "MemoryStore")
    assert_actionable(error_of(hs.MemoryStore, 5))
    local store = hs.MemoryStore()
    assert_actionable(error_of(store.set, store, "id", "not a table", 60))
    assert_actionable(error_of(store.set, store, "id", {}, -1), "ttl")
    assert_actionable(error_of(hs.session, 5))
  end)

  it("a store returning something that is not session data is an error, not a crash", function()
    local store = spy_store()
    local app, c = app_with({ store = store }, kv_routes())
    c:post("/set?a=1")
    local id = jar_id(c)
    store.data[id] = { f = function() end }
    local r = c:get("/all")
    assert.equal(500, r.status)
    assert_actionable(app.last_error, "store:get")
    store.data[id] = "a string"
    r = c:get("/all")
    assert.equal(500, r.status)
    assert_actionable(app.last_error, "store:get")
  end)
end)

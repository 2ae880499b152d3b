-- Sessions that live as long as they should (issue 9): a per-session lifetime through
-- req.session.cookie, browser-session cookies, absoluteTimeout, the stale grace after
-- regenerate, and touch() / reload(). Time moves with Site.advance (the module's clock and the
-- clients' jars together).

local cjson = require("cjson")
local hs = require("honeymoon_session")
local Client = require("examples.framework.client")
local Site = require("spec.support.site")
local TableStore = require("spec.support.table_store")
local Interpreter = require("spec.support.interpreter")
local advance = Site.advance

local NAME = "honeymoon.sid"
local DAY = 86400
local MONTH_MS = 30 * DAY * 1000

local function app_with(opts, routes) return Site.app_with("spec-secret", opts, routes) end
local function cookie_lines(r) return Site.cookie_lines(r, NAME) end
local function cookie_line(r) return Site.cookie_line(r, NAME) end

local attr = Site.attr

local function id_of(c)
  local raw = c:cookie(NAME)
  return raw and raw:match("^s%%3A([%w_%-]+)%.")
end

---Routes the specs share: log in (optionally with a lifetime), read, write, show the cookie.
local function routes(extra)
  local r = {
    ["POST /login"] = function(req, res)
      req.session:regenerate()
      req.session.userId = 7
      local life = req.query.remember
      if life == "month" then
        req.session.cookie.maxAge = MONTH_MS
      elseif life == "browser" then
        req.session.cookie.maxAge = false
      end
      res:text("in")
    end,
    ["GET /me"] = function(req, res) res:text(tostring(req.session.userId)) end,
    ["POST /hit"] = function(req, res)
      req.session.hits = (req.session.hits or 0) + 1
      res:text(tostring(req.session.hits))
    end,
    ["GET /cookie"] = function(req, res)
      local c = req.session.cookie
      res:json({
        maxAge = c.maxAge or cjson.null, originalMaxAge = c.originalMaxAge or cjson.null,
        path = c.path, httpOnly = c.httpOnly, sameSite = c.sameSite,
      })
    end,
  }
  for k, v in pairs(extra or {}) do r[k] = v end
  return r
end

describe("req.session.cookie: a lifetime per session", function()
  it("maxAge = 30 days (ms) sends a 30-day cookie, keeps the session 30 days, and reads back", function()
    local store = hs.MemoryStore()
    local _, c = app_with({ store = store, ttl = 3600 }, routes())
    local line = cookie_line(c:post("/login?remember=month"))
    assert.equal(tostring(30 * DAY), attr(line, "Max-Age"))
    assert.is_string(attr(line, "Expires"))
    local id = id_of(c)
    advance(10 * DAY, c) -- far past the config's ttl of an hour
    assert.is_true(store:exists(id))
    assert.equal("7", c:get("/me").body)
    local shown = cjson.decode(c:get("/cookie").body)
    assert.equal(MONTH_MS, shown.maxAge)
    assert.equal(MONTH_MS, shown.originalMaxAge)
    advance(21 * DAY, c)
    assert.is_false(store:exists(id))
  end)

  it("maxAge = false sends a browser-session cookie; the store still ends the session after ttl", function()
    local store = hs.MemoryStore()
    local _, c = app_with({ store = store, ttl = 3600 }, routes())
    local line = cookie_line(c:post("/login?remember=browser"))
    assert.is_nil(attr(line, "Max-Age"))
    assert.is_nil(attr(line, "Expires"))
    local id = id_of(c)
    assert.equal("7", c:get("/me").body)
    assert.same(cjson.null, cjson.decode(c:get("/cookie").body).maxAge)
    -- Every later cookie of this session stays a browser-session cookie.
    local again = cookie_line(c:post("/hit"))
    assert.is_nil(attr(again, "Max-Age"))
    advance(3601, c)
    assert.is_false(store:exists(id))
    assert.equal("nil", c:get("/me").body)
  end)

  it("without a lifetime of its own a session follows the options, and the object shows them", function()
    local _, c = app_with({ ttl = 3600, cookie = { path = "/", sameSite = "Strict" } }, routes())
    assert.equal("3600", attr(cookie_line(c:post("/login")), "Max-Age"))
    local shown = cjson.decode(c:get("/cookie").body)
    assert.equal(3600000, shown.maxAge)
    assert.equal("/", shown.path)
    assert.is_true(shown.httpOnly)
    assert.equal("Strict", shown.sameSite)
  end)

  it("changing the lifetime of a stored session alone writes it and re-sends the cookie", function()
    local store = hs.MemoryStore()
    local _, c = app_with({ store = store, ttl = 3600 }, routes({
      ["POST /remember"] = function(req, res)
        req.session.cookie.maxAge = 2 * DAY * 1000
        res:text("")
      end,
    }))
    c:post("/login")
    local line = cookie_line(c:post("/remember"))
    assert.equal(tostring(2 * DAY), attr(line, "Max-Age"))
    advance(DAY, c)
    assert.equal("7", c:get("/me").body)
  end)

  it("regenerate(true) keeps the session's lifetime with its data; regenerate() starts from the options", function()
    local _, c = app_with({ ttl = 3600 }, routes({
      ["POST /keep"] = function(req, res) req.session:regenerate(true) res:text("") end,
      ["POST /fresh"] = function(req, res) req.session:regenerate() req.session.x = 1 res:text("") end,
    }))
    c:post("/login?remember=month")
    assert.equal(tostring(30 * DAY), attr(cookie_line(c:post("/keep")), "Max-Age"))
    assert.equal("3600", attr(cookie_line(c:post("/fresh")), "Max-Age"))
  end)

  it("a Lua store gets the session's own TTL, and sees the lifetime in the data's __meta", function()
    local store = TableStore.new()
    local ttls = {}
    local set = store.set
    function store:set(id, data, ttl)
      ttls[#ttls + 1] = ttl
      return set(self, id, data, ttl)
    end
    local _, c = app_with({ store = store, ttl = 3600 }, routes())
    c:post("/login?remember=month")
    assert.equal(30 * DAY, ttls[#ttls])
    assert.equal(MONTH_MS, store:get(id_of(c)).__meta.maxAge)
  end)

  it("is not data: pairs and all() leave it out, and a value stored under the name is kept apart", function()
    local _, c = app_with({}, routes({
      ["POST /shadow"] = function(req, res)
        req.session:set("cookie", "chocolate")
        res:text("")
      end,
      ["GET /look"] = function(req, res)
        local keys = {}
        for k in pairs(req.session) do keys[#keys + 1] = k end
        table.sort(keys)
        res:json({ keys = keys, all = req.session:all(), stored = req.session:get("cookie"),
          object = type(req.session.cookie) })
      end,
    }))
    c:post("/login")
    c:post("/shadow")
    local look = cjson.decode(c:get("/look").body)
    assert.same({ "userId" }, look.keys)
    assert.same({ userId = 7, cookie = "chocolate" }, look.all)
    assert.equal("chocolate", look.stored)
    assert.equal("table", look.object)
  end)

  it("holds nothing pairs can reach: the session's state stays out of it", function()
    -- pairs(), next() or an encoder walking the object met a table key holding the session's
    -- whole state (what was loaded, the store context), and json.encode raised on that key.
    local _, c = app_with({}, routes({
      ["GET /walk"] = function(req, res)
        local cookie = req.session.cookie
        local keys = {}
        for k in pairs(cookie) do keys[#keys + 1] = type(k) end
        local ok, json = pcall(hs.json.encode, cookie)
        res:json({ keys = keys, first = next(cookie) == nil, encoded = ok, maxAge = cookie.maxAge, path = cookie.path })
      end,
    }))
    c:post("/login")
    local walk = cjson.decode(c:get("/walk").body)
    assert.same({}, walk.keys)
    assert.is_true(walk.first)
    assert.is_true(walk.encoded)
    assert.equal(DAY * 1000, walk.maxAge)
    assert.equal("/", walk.path)
  end)

  it("refuses what it cannot honour, naming the problem", function()
    local errors = {}
    local app, c = app_with({}, {
      ["POST /bad"] = function(req, res)
        local cases = {
          function() req.session.cookie = {} end,
          function() req.session.cookie.maxAge = 10 end,
          function() req.session.cookie.maxAge = "1d" end,
          function() req.session.cookie.maxAge = 0 / 0 end,
          function() req.session.cookie.path = "/x" end,
          function() req.session.__meta = { maxAge = false } end,
          function() req.session:set("__meta", {}) end,
        }
        for i, f in ipairs(cases) do
          local ok, err = pcall(f)
          errors[i] = not ok and tostring(err) or "no error"
        end
        res:text("")
      end,
    })
    assert.equal(200, c:post("/bad").status, tostring(app.last_error))
    assert.matches("session.cookie is the session's cookie object and cannot be assigned", errors[1], 1, true)
    assert.matches("session.cookie.maxAge must be milliseconds from 1000", errors[2], 1, true)
    assert.matches("got a string", errors[3], 1, true)
    assert.matches("got NaN", errors[4], 1, true)
    assert.matches("session.cookie.path cannot be set per session", errors[5], 1, true)
    assert.matches('the session key "__meta" is reserved', errors[6], 1, true)
    assert.matches('the session key "__meta" is reserved', errors[7], 1, true)
  end)
end)

describe("absoluteTimeout", function()
  local function rolling_app(store, opts)
    local o = { store = store, ttl = 10, rolling = true }
    for k, v in pairs(opts or {}) do o[k] = v end
    return app_with(o, routes())
  end

  it("ends a session this long after its creation, however active it is", function()
    local store = hs.MemoryStore()
    local _, c = rolling_app(store, { absoluteTimeout = 30 })
    c:post("/login")
    local id = id_of(c)
    for _ = 1, 5 do -- 25 s of activity, each request well inside the idle ttl
      advance(5, c)
      assert.equal("7", c:get("/me").body)
    end
    -- Near the end the cookie and the store's TTL are capped by what is left, not the ttl.
    local line = cookie_line(c:post("/hit"))
    assert.is_true(tonumber(attr(line, "Max-Age")) <= 5, line)
    advance(6, c)
    assert.equal("nil", c:get("/me").body)
    assert.is_false(store:exists(id))
  end)

  it("without it, rolling keeps the same active session alive indefinitely", function()
    local _, c = rolling_app(hs.MemoryStore())
    c:post("/login")
    local id = id_of(c)
    for _ = 1, 20 do
      advance(5, c)
      assert.equal("7", c:get("/me").body)
    end
    assert.equal(id, id_of(c))
  end)

  it("holds for a Lua store too: the session is not adopted once past, and is deleted", function()
    local now = 1000
    local store = TableStore.new({ clock = function() return now end })
    local app, c = rolling_app(store, { absoluteTimeout = 30, ttl = 100 })
    c:post("/login")
    local id = id_of(c)
    assert.is_number(store:get(id).__meta.created)
    -- A client that kept the cookie past its (capped) expiry; the table store's own clock
    -- stays, so the store still holds the session: the module must refuse it.
    local late = Client.new(app)
    late:set_cookie(NAME, c:cookie(NAME))
    hs._advance_clock(31)
    assert.equal("nil", late:get("/me").body)
    assert.is_nil(store:get(id))
  end)

  it("starts counting for a stored session that has no creation time yet (stored before the option)", function()
    local store = hs.MemoryStore()
    local app_old, c = rolling_app(store)
    c:post("/login")
    local id = id_of(c)
    assert.is_nil(store:get(id).__meta)
    local app = rolling_app(store, { absoluteTimeout = 30 })
    local later = Client.new(app)
    later:set_cookie(NAME, c:cookie(NAME))
    assert.equal("7", later:get("/me").body) -- stamps the creation time now
    for _ = 1, 5 do
      advance(5, later)
      assert.equal("7", later:get("/me").body)
    end
    advance(6, later)
    assert.equal("nil", later:get("/me").body)
    assert.truthy(app_old)
  end)

  it("regenerate(true) keeps the absolute clock running; regenerate() starts a new one", function()
    local _, c = rolling_app(hs.MemoryStore(), { absoluteTimeout = 30 })
    local app = c.app
    app:post("/rotate", function(req, res) req.session:regenerate(true) res:text("") end)
    c:post("/login")
    for _ = 1, 3 do
      advance(9, c)
      c:post("/rotate")
      assert.equal("7", c:get("/me").body)
    end
    advance(4, c) -- 31 s after the login
    assert.equal("nil", c:get("/me").body)
  end)

  it("reload() of a session past its absolute end finds nothing and deletes it", function()
    local store = hs.MemoryStore()
    local _, c = rolling_app(store, { absoluteTimeout = 30 })
    c.app:post("/reload", function(req, res)
      hs._advance_clock(31)
      res:text(tostring(req.session:reload()))
    end)
    c:post("/login")
    local id = id_of(c)
    assert.equal("false", c:post("/reload").body)
    assert.is_false(store:exists(id))
  end)

  it("is refused at setup unless a whole number of seconds", function()
    local ok, err = pcall(hs.session, { absoluteTimeout = -5 })
    assert.is_false(ok)
    assert.matches("absoluteTimeout must be a whole number of seconds", tostring(err), 1, true)
  end)
end)

describe("the stale grace after regenerate", function()
  local function login_app(opts)
    local store = hs.MemoryStore()
    local o = { store = store }
    for k, v in pairs(opts or {}) do o[k] = v end
    local app, c = app_with(o, routes({
      ["POST /cart"] = function(req, res) req.session.cart = "apple" res:text("") end,
      ["GET /all"] = function(req, res) res:json(req.session:all()) end,
      ["POST /logout"] = function(req, res) req.session:destroy() res:text("") end,
    }))
    return app, c, store
  end

  ---A client that sends the cookie `c` holds now (a parallel request of the same browser).
  local function parallel(app, c)
    local p = Client.new(app)
    p:set_cookie(NAME, c:cookie(NAME))
    return p
  end

  ---A visitor puts something in the cart, then logs in: returns the client, a parallel client
  ---still holding the pre-login cookie, the store and the old (pre-login) id.
  local function login_after_cart(opts)
    local app, c, store = login_app(opts)
    c:post("/cart")
    local old = id_of(c)
    local p = parallel(app, c)
    c:post("/login")
    return c, p, store, old
  end

  it("never shows the new session's data through the old id (no session fixation)", function()
    local app, c = login_app()
    c:post("/cart")
    local attacker = parallel(app, c) -- the planted, pre-login cookie
    c:post("/login")
    assert.same({ cart = "apple" }, cjson.decode(attacker:get("/all").body))
    assert.equal("nil", attacker:get("/me").body)
    assert.equal("7", c:get("/me").body)
  end)

  it("a parallel request with the old cookie gets no Set-Cookie, so the login cookie survives", function()
    local c, p = login_after_cart({ rolling = true })
    assert.same({}, cookie_lines(p:get("/me")))
    assert.same({}, cookie_lines(p:post("/hit")), "a write through the old id is dropped, with no cookie")
    assert.same({}, cookie_lines(p:post("/logout")), "destroy on the old id must not clear the new cookie")
    assert.equal("7", c:get("/me").body)
  end)

  it("staleGrace names the grace in seconds; the old id ends with it", function()
    local c, p, store, old = login_after_cart({ staleGrace = 3 })
    advance(2, c, p)
    assert.is_true(store:exists(old))
    assert.same({ cart = "apple" }, cjson.decode(p:get("/all").body))
    advance(2, c, p)
    assert.is_false(store:exists(old))
    assert.same({}, cjson.decode(p:get("/all").body))
  end)

  -- A record store that keeps every entry until deleted: it ignores the TTL it is handed.
  local function forever_record_store()
    local rows = {}
    local s = { format = "record" }
    function s.get(_, id) return rows[id] end
    function s.set(_, id, record) rows[id] = record end
    function s.merge(_, id, patch)
      if rows[id] == nil then return false end
      rows[id] = hs._merge_patch(rows[id], patch)
      return rows[id] ~= nil
    end
    function s.touch(_, id) return rows[id] ~= nil end
    function s.destroy(_, id) rows[id] = nil end
    function s.exists(_, id) return rows[id] ~= nil end
    function s.all() local ids = {} for id in pairs(rows) do ids[#ids + 1] = id end return ids end
    function s.length() return #s.all() end
    function s.clear() rows = {} end
    return s
  end

  -- The grace is the module's to keep, not only the store's TTL: a Lua store may ignore the
  -- TTL or run on another clock (the TableStore here keeps real time, which the spec's clock
  -- outruns), and the retired id must not stay readable past its grace.
  for _, kind in ipairs({ "table", "record" }) do
    it("the old id ends with the grace in a Lua store that keeps it past its TTL (" .. kind .. " store)", function()
      local store = kind == "table" and TableStore.new() or forever_record_store()
      local c, p, _, old = login_after_cart({ store = store, staleGrace = 3 })
      advance(2, c, p)
      assert.same({ cart = "apple" }, cjson.decode(p:get("/all").body))
      advance(2, c, p)
      assert.is_true(store:exists(old), "the store still holds it")
      assert.same({}, cjson.decode(p:get("/all").body))
      assert.is_false(store:exists(old), "deleted once found past its grace")
      assert.equal("7", c:get("/me").body)
    end)
  end

  it("a login that saved before regenerate leaves nothing of it under the old id", function()
    local app, c, store = login_app()
    c:post("/cart")
    local old = id_of(c)
    local attacker = parallel(app, c)
    app:post("/save-login", function(req, res)
      req.session.userId = 7
      req.session:save() -- the login data reached the old id...
      req.session:regenerate(true)
      res:text("in")
    end)
    c:post("/save-login")
    -- ...so the old id is deleted at once, not kept for the grace.
    assert.is_false(store:exists(old))
    assert.equal("nil", attacker:get("/me").body)
    assert.equal("7", c:get("/me").body)
  end)

  -- DESIGN rule 8: after destroy() the old id is dead everywhere, also the ones a regenerate
  -- earlier in the same request retired (they still hold the logged-in data).
  for _, kind in ipairs({ "MemoryStore", "TableStore" }) do
    for _, seq in ipairs({
      { "regenerate(true), destroy()", function(s) s:regenerate(true) s:destroy() end, 0 },
      { "regenerate(), destroy()", function(s) s:regenerate() s:destroy() end, 0 },
      -- regenerate() stores the new, empty session.
      { "regenerate(true) twice, regenerate()", function(s) s:regenerate(true) s:regenerate(true) s:regenerate() end, 1 },
    }) do
      it(seq[1] .. " in one request leaves no id reading the data (" .. kind .. ")", function()
        local store = kind == "MemoryStore" and hs.MemoryStore() or TableStore.new()
        local app, c = app_with({ store = store }, routes({
          ["POST /out"] = function(req, res) seq[2](req.session) res:text("") end,
        }))
        c:post("/login")
        local old = id_of(c)
        local p = parallel(app, c)
        c:post("/out")
        assert.is_false(store:exists(old))
        assert.equal("nil", p:get("/me").body)
        assert.equal("nil", c:get("/me").body)
        assert.equal(seq[3], store:length(), "no other id left behind")
      end)
    end
  end

  -- A request the browser sent before the login, still running when the login retires its id.
  local function started(app, c, path)
    if not Interpreter.yields_across_pcall then pending(Interpreter.NO_YIELD_IN_PCALL) end
    local p = parallel(app, c)
    return Site.start(function() return p:post(path) end)
  end

  for _, kind in ipairs({ "MemoryStore", "TableStore (no merge)", "TableStore (merge that ignores __meta)" }) do
    for _, rolling in ipairs({ false, true }) do
      it("a request that loaded the old id before the login finishes after it without a cookie: "
          .. kind .. (rolling and ", rolling" or ""), function()
        local store
        if kind == "MemoryStore" then
          store = hs.MemoryStore()
        else
          store = TableStore.new()
          if kind:find("merge that") then
            function store:merge(id, set) -- applies the changes, blind to the retirement
              local row = self.rows[id]
              if not row then return false end
              for k, v in pairs(set) do row.data[k] = v end
              return true
            end
          end
        end
        local app, c = app_with({ store = store, rolling = rolling }, routes({
          ["POST /slow"] = function(req, res)
            if not rolling then req.session.late = "write" end
            coroutine.yield()
            res:text("")
          end,
        }))
        c:post("/hit")
        local old = id_of(c)
        local finish = started(app, c, "/slow")
        c:post("/login")
        local r = finish()
        assert.same({}, cookie_lines(r), "no cookie that could replace the login's")
        assert.equal("7", c:get("/me").body)
        local stored = store:get(old)
        assert.is_nil(stored and stored.late, "the old id is not written")
      end)
    end
  end

  it("a Lua store's odd __meta is not taken for a retirement or a lifetime", function()
    local store = TableStore.new()
    local _, c = app_with({ store = store, ttl = 100 }, routes())
    c:post("/hit")
    local id = id_of(c)
    store.rows[id].data.__meta = { stale = "x", maxAge = 0 }
    local line = cookie_line(c:post("/hit"))
    assert.equal("100", attr(line, "Max-Age"))
    assert.equal(2, store:get(id).hits)
  end)

  -- A stored lifetime reads back as what the engine honours: under a second (express-session
  -- can store 500 ms) it is the session's own (a one-second cookie), not the options'; beyond
  -- 2^53 or not whole it is none, and the options' lifetime shows.
  it("session.cookie.maxAge shows the stored lifetime the cookie follows, sub-second or none", function()
    local cases = {
      { 500, 500, "1" }, { 1, 1, "1" }, { 1500, 1500, "2" },
      { 2^53, 100000, "100" }, { 1500.5, 100000, "100" }, { -500, 100000, "100" },
    }
    if math.type then cases[#cases + 1] = { math.maxinteger, 100000, "100" } end
    for _, case in ipairs(cases) do
      local stored, shown, max_age = case[1], case[2], case[3]
      local store = TableStore.new()
      local _, c = app_with({ store = store, ttl = 100, rolling = true }, routes())
      c:post("/hit")
      local id = id_of(c)
      store.rows[id].data.__meta = { maxAge = stored }
      local r = c:get("/cookie")
      assert.equal(shown, cjson.decode(r.body).maxAge, tostring(stored))
      assert.equal(shown, cjson.decode(r.body).originalMaxAge, tostring(stored))
      assert.equal(max_age, attr(cookie_line(r), "Max-Age"), tostring(stored))
    end
  end)

  it("regenerate works on a session too large to store (the old id keeps what was stored)", function()
    local store = hs.MemoryStore()
    local app, c = app_with({ store = store, maxSize = 200 }, routes())
    app:post("/grow", function(req, res)
      req.session.blob = string.rep("x", 500)
      req.session:regenerate()
      res:text("")
    end)
    c:post("/hit")
    local r = c:post("/grow")
    assert.equal(200, r.status)
  end)

  it("staleGrace = 0 deletes the old id at once", function()
    local _, p, store, old = login_after_cart({ staleGrace = 0 })
    assert.is_false(store:exists(old))
    assert.same({}, cjson.decode(p:get("/all").body))
  end)
end)

describe("session:touch()", function()
  it("refreshes a stored session's lifetime and re-sends its cookie without rolling", function()
    local store = hs.MemoryStore()
    local _, c = app_with({ store = store, ttl = 100 }, routes({
      ["POST /touch"] = function(req, res) req.session:touch() res:text("") end,
    }))
    c:post("/login")
    local id = id_of(c)
    advance(80, c)
    assert.same({}, cookie_lines(c:get("/me")), "no rolling: a read sends no cookie")
    assert.equal("100", attr(cookie_line(c:post("/touch")), "Max-Age"))
    advance(80, c)
    assert.is_true(store:exists(id), "160 s after login, 80 after the touch")
    assert.equal("7", c:get("/me").body)
  end)

  it("does nothing for a new, empty session", function()
    local store = hs.MemoryStore()
    local _, c = app_with({ store = store }, {
      ["POST /touch"] = function(req, res) req.session:touch() res:text("") end,
    })
    assert.same({}, cookie_lines(c:post("/touch")))
    assert.equal(0, store:length())
  end)
end)

describe("session:reload()", function()
  it("replaces the data with what the store holds now, dropping this request's unsaved changes", function()
    local app, c = app_with({}, routes({
      ["POST /reload"] = function(req, res)
        req.session.scratch = "unsaved"
        local found = req.session:reload()
        res:json({ found = found, all = req.session:all() })
      end,
    }))
    c:post("/login")
    local other = Client.new(app)
    other:set_cookie(NAME, c:cookie(NAME))
    other:post("/hit") -- another request changes the stored session
    local out = cjson.decode(c:post("/reload").body)
    assert.is_true(out.found)
    assert.same({ userId = 7, hits = 1 }, out.all)
  end)

  it("returns false and leaves an empty session when the store no longer holds it", function()
    local store = hs.MemoryStore()
    local _, c = app_with({ store = store }, routes({
      ["POST /reload"] = function(req, res)
        store:destroy(req.session:getId())
        local found = req.session:reload()
        res:json({ found = found, all = req.session:all() })
      end,
    }))
    c:post("/login")
    local r = c:post("/reload")
    local out = cjson.decode(r.body)
    assert.is_false(out.found)
    assert.same({}, out.all)
    assert.same({}, cookie_lines(r))
  end)

  it("reads through a Lua store as well", function()
    local store = TableStore.new()
    local _, c = app_with({ store = store }, routes({
      ["POST /reload"] = function(req, res)
        req.session.userId = 8
        local found = req.session:reload()
        res:json({ found = found, userId = req.session.userId })
      end,
    }))
    c:post("/login")
    assert.same({ found = true, userId = 7 }, cjson.decode(c:post("/reload").body))
  end)
end)

-- RedisStore beyond the conformance suite: connect-redis's stored form, keys written by Node
-- surviving Lua writes, per-key merges under concurrency, restarts and outages, round trips.
local hs = require("honeymoon_session")
local App = require("examples.framework.app")
local Client = require("examples.framework.client")
local RedisServer = require("scripts.lib.redis_server")

local SECRET = "redis-spec-secret"
local PREFIX = "sess:"

local server

lazy_setup(function() server = RedisServer.start() end)
lazy_teardown(function() server:close() end)
before_each(function() server:cli("FLUSHALL") end)

local function store(opts)
  opts = opts or {}
  opts.url = opts.url or server.url
  return hs.RedisStore(opts)
end

-- An app whose routes run the given handlers; returns app, client, core store.
local function site(session_opts, routes)
  local app = App.new()
  session_opts.secret = SECRET
  app:use(hs.session(session_opts))
  for path, handler in pairs(routes) do
    app:get(path, function(req, res) handler(req, res); if not res:sent() then res:text("ok") end end)
  end
  return app, Client.new(app)
end

local function cookie_id(client)
  local v = client:cookie("honeymoon.sid")
  return v and v:match("^s%%3A([^.]+)%.")
end

local function stored(id)
  local raw = server:cli("GET", PREFIX .. id):gsub("\n$", "")
  return raw, hs.json.decode(raw)
end

-- The commands (round trips) the app sent to Redis while f ran: total and count by name.
local function commands_during(f)
  local by = {}
  local list = server:client_commands(f)
  for _, name in ipairs(list) do by[name] = (by[name] or 0) + 1 end
  return #list, by
end

describe("RedisStore options", function()
  it("refuses unknown options and bad urls at construction, naming them", function()
    local ok, err = pcall(hs.RedisStore, { uri = "redis://x" })
    assert.is_false(ok)
    assert.matches('unknown option "uri"', err, 1, true)
    ok, err = pcall(hs.RedisStore, { url = "http://127.0.0.1" })
    assert.is_false(ok)
    assert.matches("url is not a Redis URL", err, 1, true)
    ok, err = pcall(hs.RedisStore, { commandTimeout = -5 })
    assert.is_false(ok)
    assert.matches("commandTimeout must be", err, 1, true)
  end)

  it("selects the database number in the url and keeps the prefix", function()
    local s = store({ url = server.url .. "/3", prefix = "app1:" })
    s:set("abc", { a = 1 }, 60)
    assert.equal("1", server:cli("-n", 3, "EXISTS", "app1:abc"):match("%d"))
    assert.equal("0", server:cli("EXISTS", "app1:abc"):match("%d"))
    -- A database the server does not have is refused, saying so (the store selects it itself).
    local none = store({ url = server.url .. "/99" })
    local ok, err = pcall(none.get, none, "abc")
    assert.is_false(ok)
    assert.equal("honeymoon_session: RedisStore:get failed: redis refused SELECT 99: ERR DB index is out of range"
      .. " (redis at 127.0.0.1:" .. server.port .. "/99)", tostring(err):match("^[^\n]*"))
  end)
end)

describe("RedisStore stored form (connect-redis)", function()
  it("an absoluteTimeout cap shortens the TTL and the cookie, never the session's stored lifetime", function()
    local _, c = site({ store = store(), ttl = 3600, rolling = true, absoluteTimeout = 100 }, {
      ["/login"] = function(req) req.session.userId = 42 end,
      ["/hit"] = function(req) req.session.hits = (req.session.hits or 0) + 1 end,
      ["/life"] = function(req, res) res:text(tostring(req.session.cookie.maxAge)) end,
    })
    c:get("/login")
    local id = cookie_id(c)
    hs._advance_clock(90)
    local r = c:get("/hit")
    local max_age = tonumber(r.headers["set-cookie"][1]:match("Max%-Age=(%d+)"))
    assert.is_true(max_age <= 10, "the cookie is capped: " .. max_age)
    local ttl = tonumber(server:cli("TTL", PREFIX .. id))
    assert.is_true(ttl <= 10, "the key is capped: " .. ttl)
    local _, doc = stored(id)
    assert.equal(3600000, doc.cookie.originalMaxAge, "express-session's lifetime is not the cap")
    assert.equal("3600000", c:get("/life").body)
  end)

  -- TOUCH (a Lua script in Redis) and the module read a stored __meta.created as one number: one
  -- beyond ±2^53 (no double holds it exactly) is no creation time on both sides, and the
  -- session's absolute clock starts again. TOUCH used to answer 1e19 back, which Redis turned
  -- into -2^63: the session ended at once.
  it("a stored creation time beyond 2^53 is none, for TOUCH as for a load, under absoluteTimeout", function()
    for _, created in ipairs({ "1e19", "9223372036854775808", "-1e19", "9007199254740992", "1.5" }) do
      server:cli("FLUSHALL")
      local app, c = site({ store = store(), ttl = 3600, rolling = true, absoluteTimeout = 600 }, {
        ["/login"] = function(req) req.session.userId = 42 end,
        ["/hit"] = function(req, res) res:text(tostring(req.session.userId)) end,
      })
      c:get("/login")
      local id = cookie_id(c)
      local raw = stored(id):gsub('"__meta":{"created":%-?%d+}', '"__meta":{"created":' .. created .. '}')
      assert.matches('"created":' .. created:gsub("[%.%-]", "%%%0"), raw)
      server:cli("SET", PREFIX .. id, raw, "EX", 3600)
      local r = c:get("/hit")
      assert.equal(200, r.status, tostring(app.last_error))
      assert.equal("42", r.body, created)
      local max_age = tonumber(r.headers["set-cookie"][1]:match("Max%-Age=(%d+)"))
      assert.is_true(max_age > 590 and max_age <= 600, created .. ": the cookie lives the absolute timeout: " .. max_age)
      local ttl = tonumber(server:cli("TTL", PREFIX .. id))
      assert.is_true(ttl > 590 and ttl <= 600, created .. ": the key too: " .. ttl)
      -- Its clock started again at that request: a whole number of ms now.
      local _, doc = stored(id)
      assert.is_true(doc.__meta.created >= 0 and doc.__meta.created < 2^53, created)
      assert.equal("42", c:get("/hit").body)
    end
  end)

  it("writes key prefix..id, the data as JSON and express-session's cookie object", function()
    local _, c = site({ store = store(), ttl = 3600, cookie = { maxAge = 600, sameSite = "Strict" } }, {
      ["/login"] = function(req) req.session.userId = 42; req.session.name = "Ann" end,
    })
    c:get("/login")
    local id = cookie_id(c)
    local _, doc = stored(id)
    assert.equal(42, doc.userId)
    assert.equal("Ann", doc.name)
    assert.equal(600000, doc.cookie.originalMaxAge)
    assert.matches("^%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%d%.%d%d%dZ$", doc.cookie.expires)
    assert.is_true(doc.cookie.httpOnly)
    assert.is_false(doc.cookie.secure)
    assert.equal("/", doc.cookie.path)
    assert.equal("strict", doc.cookie.sameSite)
    -- TTL follows the cookie's lifetime, as connect-redis sets it.
    local ttl = tonumber(server:cli("TTL", PREFIX .. id))
    assert.is_true(ttl > 590 and ttl <= 600, "ttl " .. tostring(ttl))
  end)

  it("never shows the cookie object as session data, and refuses a session key named cookie", function()
    local app, c = site({ store = store() }, {
      ["/set"] = function(req) req.session.a = 1 end,
      ["/keys"] = function(req, res) local n = 0 for _ in pairs(req.session:all()) do n = n + 1 end res:text(tostring(n)) end,
      ["/bad"] = function(req) req.session:set("cookie", "mine") end,
      ["/prop"] = function(req) req.session.cookie = "mine" end,
    })
    c:get("/set")
    assert.equal("1", c:get("/keys").body)
    assert.equal(500, c:get("/bad").status)
    assert.matches('"cookie" is express%-session\'s cookie object', tostring(app.last_error))
    assert.equal(500, c:get("/prop").status)
    assert.matches("session.cookie is the session's cookie object", tostring(app.last_error), 1, true)
  end)

  it("keeps keys a Node app wrote byte for byte through a Lua read-modify-write", function()
    local _, c = site({ store = store() }, {
      ["/start"] = function(req) req.session.lua = 1 end,
      ["/visit"] = function(req) req.session.lua = req.session.lua + 1 end,
    })
    c:get("/start")
    local id = cookie_id(c)
    -- What express-session + passport would have added meanwhile.
    local raw = stored(id)
    -- (Integers past 2^53 only where Lua has 64-bit integers: LuaJIT numbers are doubles.)
    local big = math.type and '"big":12345678901234567' or ""
    raw = raw:gsub("}$", ',"passport":{"user":"u-123","roles":[],"meta":{}},' .. big .. (big ~= "" and "," or "") .. '"half":0.5}')
    server:cli("SET", PREFIX .. id, raw, "EX", 600)
    c:get("/visit")
    local after, doc = stored(id)
    assert.equal(2, doc.lua)
    assert.matches('"passport":{"user":"u-123","roles":[],"meta":{}}', after, 1, true)
    assert.matches('"half":0.5', after, 1, true)
    assert.matches(big, after, 1, true)
  end)

  -- 1E400 is beyond the double range: JavaScript reads it as Infinity and writes that back as
  -- null; serde_json refuses it, which made every request of the session a 500.
  it("reads a number beyond the double range that another writer stored as null, and keeps the session working", function()
    local app, c = site({ store = store() }, {
      ["/start"] = function(req) req.session.lua = 1 end,
      ["/visit"] = function(req, res)
        req.session.lua = req.session.lua + 1
        res:text(tostring(req.session.big) .. " " .. tostring(req.session.list[1]) .. " " .. tostring(req.session.list[2]))
      end,
      ["/keep"] = function(req) req.session:regenerate(true) end,
    })
    c:get("/start")
    local id = cookie_id(c)
    local raw = stored(id):gsub("}$", ',"big":1E400,"list":[-1e999,2]}')
    server:cli("SET", PREFIX .. id, raw, "EX", 600)
    local r = c:get("/visit")
    assert.equal(200, r.status, tostring(app.last_error))
    assert.equal("nil nil 2", r.body)
    local after, doc = stored(id)
    assert.equal(2, doc.lua)
    assert.matches('"big":null,"list":[null,2]', after, 1, true)
    -- A whole write of it (regenerate keeping the data) works too.
    assert.equal(200, c:get("/keep").status, tostring(app.last_error))
    local _, kept = stored(cookie_id(c))
    assert.equal(2, kept.lua)
  end)

  -- A Lua table cannot tell an empty array from an empty object, nor hold a null: arrays a Node
  -- app wrote come back marked (hs.array), so a Lua write of the key around them keeps them
  -- arrays, and Node's items.push still works.
  it("keeps a Node app's arrays arrays, empty or with nulls, in a key Lua writes", function()
    local _, c = site({ store = store() }, {
      ["/start"] = function(req) req.session.lua = 1 end,
      ["/coupon"] = function(req)
        local cart = req.session.cart
        cart.coupon = "WELCOME"
        assert(getmetatable(cart.items) == hs.array_mt, "a decoded array carries the marker")
        assert(#cart.items == 0)
        cart.list = hs.array() -- a new empty array of Lua's own
      end,
    })
    c:get("/start")
    local id = cookie_id(c)
    local raw = stored(id)
    raw = raw:gsub("}$", ',"cart":{"items":[],"holes":[1,null,3],"nested":[[]],"obj":{}}}')
    server:cli("SET", PREFIX .. id, raw, "EX", 600)
    c:get("/coupon")
    local _, doc = stored(id)
    local cart = doc.cart
    -- The coupon shows Lua wrote the key `cart`, whole: the arrays below are its encoding.
    assert.equal("WELCOME", cart.coupon)
    local after = stored(id)
    assert.matches('"items":[]', after, 1, true)
    assert.matches('"holes":[1,null,3]', after, 1, true)
    assert.matches('"nested":[[]]', after, 1, true)
    assert.matches('"obj":{}', after, 1, true)
    assert.matches('"list":[]', after, 1, true)
  end)
end)

describe("RedisStore and maxSize", function()
  it("a stored session larger than maxSize is refused before it is all parsed, naming the store", function()
    local app, c = site({ store = store(), maxSize = 10000 }, {
      ["/start"] = function(req) req.session.a = 1 end,
      ["/read"] = function(req, res) res:text(tostring(req.session.a)) end,
    })
    c:get("/start")
    local id = cookie_id(c)
    -- What a Node app (express-session has no size limit) could leave there; the text after the
    -- arrays is not JSON, so an error that names maxSize shows the parse stopped early.
    server:cli("SET", PREFIX .. id, '{"x":[' .. ("[],"):rep(20000) .. "not json", "EX", 600)
    assert.equal(500, c:get("/read").status)
    local err = tostring(app.last_error)
    assert.matches("RedisStore:get failed: the stored session is more than maxSize (10000 bytes)", err, 1, true)
    assert.matches("(redis at 127.0.0.1:" .. server.port, err, 1, true)
  end)

  it("direct store:get bounds the parse by the default maxSize (4 MiB)", function()
    local st = store()
    -- 400,000 empty arrays: 1.2 MB of JSON, more than 4 MiB as a record. Appended in pieces
    -- (one command-line argument holds at most 128 KiB).
    server:cli("SET", PREFIX .. "big", '{"x":[', "EX", 600)
    for _ = 1, 20 do server:cli("APPEND", PREFIX .. "big", ("[],"):rep(20000)) end
    server:cli("APPEND", PREFIX .. "big", "[]]}")
    local ok, err = pcall(st.get, st, "big")
    assert.is_false(ok)
    assert.matches("more than maxSize (4194304 bytes)", tostring(err), 1, true)
  end)
end)

describe("RedisStore under concurrent requests on one session", function()
  local function interleaved(store_obj, a_key, b_key)
    local core = hs.core({ secret = SECRET, store = store_obj })
    local s = core:load(nil, false)
    s.base = 1
    local header = core:commit(s)[1]:match("^[^;]+")
    local a = core:load(header, false)
    local b = core:load(header, false)
    a[a_key] = "from a"
    b[b_key] = "from b"
    core:commit(a)
    core:commit(b)
    return core:load(header, false)
  end

  for _, kind in ipairs({ { "RedisStore", store }, { "MemoryStore", hs.MemoryStore } }) do
    it(kind[1] .. ": two requests changing different keys both persist", function()
      local s = interleaved(kind[2](), "x", "y")
      assert.equal("from a", s.x)
      assert.equal("from b", s.y)
      assert.equal(1, s.base)
    end)

    it(kind[1] .. ": on the same key the last commit wins", function()
      local s = interleaved(kind[2](), "k", "k")
      assert.equal("from b", s.k)
    end)

    -- Each message is a key of its own (`__flash:<key>`), merged as any other key.
    it(kind[1] .. ": a flash message added while another request expires the old ones survives", function()
      local core = hs.core({ secret = SECRET, store = kind[2]() })
      local s = core:load(nil, false)
      s:flash("welcome", "Hi")
      local header = core:commit(s)[1]:match("^[^;]+")
      local a, b = core:load(header, false), core:load(header, false)
      a:flash("info", "Saved")
      core:commit(a)
      assert.equal("Hi", b:getFlash("welcome"))
      core:commit(b)
      local after = core:load(header, false)
      assert.equal("Saved", after:getFlash("info"))
      assert.is_nil(after:getFlash("welcome"))
    end)
  end

  it("a merge that fails is named merge, with the address", function()
    local core = hs.core({ secret = SECRET, store = store() })
    local s = core:load(nil, false)
    s.a = 1
    local header = core:commit(s)[1]:match("^[^;]+")
    local again = core:load(header, false)
    server:cli("SET", PREFIX .. s:getId(), "[1]") -- another program wrote something else there
    again.b = 2
    local ok, err = pcall(core.commit, core, again)
    assert.is_false(ok)
    assert.matches("^honeymoon_session: RedisStore:merge failed: .*%(redis at 127%.0%.0%.1:%d+/0%)$", err)
  end)

  it("stores each flash message under its own key in connect-redis's JSON", function()
    local core = hs.core({ secret = SECRET, store = store() })
    local s = core:load(nil, false)
    s:flash("info", "Saved")
    core:commit(s)
    local _, json = stored(s:getId())
    assert.equal("Saved", json["__flash:info"])
    assert.is_nil(json.__flash)
  end)

  it("a write racing a logout does not bring the destroyed id back", function()
    local st = store()
    local core = hs.core({ secret = SECRET, store = st })
    local s = core:load(nil, false)
    s.userId = 1
    local header = core:commit(s)[1]:match("^[^;]+")
    local slow = core:load(header, false)
    local logout = core:load(header, false)
    logout:destroy()
    core:commit(logout)
    slow.late = true
    assert.same({}, core:commit(slow))
    assert.equal(0, st:length())
  end)
end)

-- express-session knows nothing of retirement: a request it serves with the old id during the
-- grace (a browser's parallel request) refreshes or rewrites that key with its own TTL (a day:
-- connect-redis's touch is an EXPIRE), and may send its cookie again. Past the grace the
-- module must not keep reading it as retired: that left the user read-only, unable to log in
-- (regenerate on a retired id stores nothing), for as long as Node kept the key alive.
describe("RedisStore and an id regenerate retired that a Node app kept alive", function()
  local function retired_then_kept_by_node(core)
    local s = core:load(nil, false)
    s.cart = "book"
    local old = core:commit(s)[1]:match("^[^;]+")
    local login = core:load(old, false)
    login:regenerate()
    login.userId = 42
    core:commit(login)
    assert.is_number(select(2, stored(s:getId())).__meta.stale, "the old id is retired")
    server:cli("EXPIRE", PREFIX .. s:getId(), 86400) -- Node's touch during the grace
    return old, s:getId()
  end

  it("is readable during the grace, and past it is a fresh session that can log in", function()
    local core = hs.core({ secret = SECRET, store = store(), staleGrace = 5 })
    local old, old_id = retired_then_kept_by_node(core)
    assert.equal("book", core:load(old, false).cart, "read during the grace")
    hs._advance_clock(6)
    local again = core:load(old, false)
    assert.is_nil(again.cart, "past the grace the retired data is not read")
    assert.are_not.equal(old_id, again:getId())
    again:regenerate()
    again.userId = 7
    local lines = core:commit(again)
    assert.equal(1, #lines, "the login's cookie goes out")
    assert.equal(7, core:load(lines[1]:match("^[^;]+"), false).userId)
  end)
end)

describe("RedisStore methods called directly", function()
  it("refuse a bad id, data or ttl with the module's message, never mlua's nor a rounded ttl", function()
    local st = store()
    local ttl_error = "^honeymoon_session: RedisStore ttl must be a whole number of seconds from 1 to 3153600000, got "
    for _, case in ipairs({
      { function() st:set("id", {}, 1.5) end, ttl_error .. "1%.5$" },
      { function() st:set("id", {}, 0.5) end, ttl_error .. "0%.5$" },
      { function() st:set("id", {}, "10") end, ttl_error .. "a string$" },
      { function() st:set("id", {}, {}) end, ttl_error .. "a table$" },
      { function() st:touch("id", 2.5) end, ttl_error .. "2%.5$" },
      { function() st:set("id", "x", 10) end, "^honeymoon_session: RedisStore:set takes the session data as a table, got a string$" },
      { function() st:set({}, {}, 10) end, "^honeymoon_session: RedisStore ids must be strings of 1 to 4096 bytes, got a table$" },
      { function() st:get({}) end, "^honeymoon_session: RedisStore ids must be strings of 1 to 4096 bytes, got a table$" },
      { function() st:exists(nil) end, "^honeymoon_session: RedisStore ids must be strings of 1 to 4096 bytes, got nil$" },
      { function() st:destroy(true) end, "^honeymoon_session: RedisStore ids must be strings of 1 to 4096 bytes, got a boolean$" },
    }) do
      local ok, err = pcall(case[1])
      assert.is_false(ok)
      assert.matches(case[2], err)
    end
    assert.equal(0, tonumber(server:cli("DBSIZE"):match("%d+")), "nothing was written")
    st:set("id", { a = 1 }, 10.0)
    assert.same({ a = 1 }, st:get("id"))
    assert.is_true(st:touch("id", 20))
  end)
end)

describe("RedisStore when Redis restarts or is down", function()
  it("reconnects after the server restarts", function()
    local _, c = site({ store = store() }, {
      ["/set"] = function(req) req.session.n = (req.session.n or 0) + 1 end,
    })
    c:get("/set")
    server:restart() -- no persistence: the session is gone, but the store must work again
    local r = c:get("/set")
    assert.equal(200, r.status)
    assert.equal(1, tonumber(server:cli("DBSIZE"):match("%d+")))
  end)

  it("fails fast with an error naming the store, the method and the address; no cookie is sent", function()
    local down = hs.RedisStore({ url = "redis://127.0.0.1:1", connectTimeout = 500 })
    local app, c = site({ store = down }, { ["/set"] = function(req) req.session.a = 1 end })
    local t0 = os.time()
    local r = c:get("/set")
    assert.is_true(os.time() - t0 <= 2, "a refused connection must not hang")
    assert.equal(500, r.status)
    assert.is_nil(r.headers["set-cookie"])
    assert.matches("RedisStore:set failed", tostring(app.last_error), 1, true)
    assert.matches("127.0.0.1:1", tostring(app.last_error), 1, true)
    local ok, err = pcall(down.get, down, "x")
    assert.is_false(ok)
    assert.matches("RedisStore:get failed", tostring(err), 1, true)
  end)
end)

describe("RedisStore round trips per request", function()
  local function count(opts, path, warm)
    local _, c = site(opts, {
      ["/login"] = function(req) req.session.userId = 7 end,
      ["/read"] = function(req, res) res:text(tostring(req.session.userId)) end,
      ["/write"] = function(req) req.session.hits = (req.session.hits or 0) + 1 end,
      ["/regenerate"] = function(req) req.session:regenerate(true) end,
    })
    c:get("/login")
    c:get("/write") -- the merge script is loaded once; count steady-state requests
    if warm then c:get(path) end -- as is the touch script
    return commands_during(function() assert.equal(200, c:get(path).status) end)
  end

  it("a read-only request costs one (GET)", function()
    local n, by = count({ store = store() }, "/read")
    assert.equal(1, n)
    assert.equal(1, by.GET)
  end)

  it("a write costs two (GET, then one compare-and-set script)", function()
    local n, by = count({ store = store() }, "/write")
    assert.equal(2, n)
    assert.equal(1, by.EVALSHA)
  end)

  it("a rolling read costs two (GET, then the touch script, which leaves a retired id alone)", function()
    local n, by = count({ store = store(), rolling = true }, "/read", true)
    assert.equal(2, n)
    assert.equal(1, by.EVALSHA)
  end)

  it("regenerate costs three (GET, the compare-and-set that retires the old id, SET of the new)", function()
    local n, by = count({ store = store() }, "/regenerate")
    assert.equal(3, n)
    assert.equal(1, by.EVALSHA)
    assert.equal(1, by.SET)
  end)

  it("regenerate(true) of a logged-in session with index costs four (GET, the listed write of the new id, "
      .. "the compare-and-set that retires the old one, the touch that confirms the cookie)", function()
    local n, by = count({ store = store(), index = "userId" }, "/regenerate", true)
    assert.equal(4, n)
    assert.equal(1, by.GET)
    assert.equal(3, by.EVALSHA)
  end)

  it("regenerate with staleGrace = 0 costs three (GET, DEL of the old id, SET of the new)", function()
    local n, by = count({ store = store(), staleGrace = 0 }, "/regenerate")
    assert.equal(3, n)
    assert.equal(1, by.DEL)
    assert.equal(1, by.SET)
  end)
end)

describe("RedisStore over TLS (rediss://)", function()
  local tls_server
  lazy_setup(function() tls_server = RedisServer.start({ tls = true }) end)
  lazy_teardown(function() tls_server:close() end)

  it("carries sessions when told which certificate authority to trust", function()
    local st = hs.RedisStore({ url = tls_server.url, tls = { ca = tls_server.ca } })
    local _, c = site({ store = st }, {
      ["/set"] = function(req) req.session.user = "ann" end,
      ["/get"] = function(req, res) res:text(tostring(req.session.user)) end,
    })
    assert.equal(200, c:get("/set").status)
    assert.equal("ann", c:get("/get").body)
    assert.equal(1, st:length())
  end)

  it("verifies the server: a certificate nobody vouches for is refused, naming the store", function()
    local st = hs.RedisStore({ url = tls_server.url, connectTimeout = 1000 })
    local ok, err = pcall(st.get, st, "x")
    assert.is_false(ok)
    assert.matches("RedisStore:get failed", tostring(err), 1, true)
  end)

  it("refuses tls options that cannot work, at construction", function()
    local cases = {
      { { url = server.url, tls = { ca = tls_server.ca } }, "tls needs a rediss:// url" },
      { { url = "redis://:S3cretPW@127.0.0.1:6379", tls = { ca = tls_server.ca } }, "tls needs a rediss:// url" },
      { { url = tls_server.url, tls = { cafile = "x" } }, 'unknown option "tls.cafile"' },
      { { url = tls_server.url, tls = { cert = tls_server.ca } }, "tls.cert and tls.key go together" },
      { { url = tls_server.url, tls = { ca = "/nonexistent.pem" } }, "tls.ca: cannot read" },
      { { url = tls_server.url, tls = "yes" }, "tls must be a table" },
      -- A ca file holding no PEM certificate (DER, or a key) gave an empty trust store: every
      -- connection then failed with "invalid peer certificate: UnknownIssuer".
      { { url = tls_server.url, tls = { ca = tls_server.dir .. "/key.pem" } }, "honeymoon_session: RedisStore "
        .. "tls.ca must be a PEM file of certificates (-----BEGIN CERTIFICATE-----), got " },
      -- A key file without a private key (a certificate) was "url is not a Redis URL".
      { { url = "rediss://:S3cretPW@127.0.0.1:" .. tls_server.port, tls = { cert = tls_server.dir .. "/cert.pem",
        key = tls_server.ca } }, "honeymoon_session: RedisStore tls.cert, tls.key or tls.ca cannot be used: " },
    }
    for _, case in ipairs(cases) do
      local ok, err = pcall(hs.RedisStore, case[1])
      assert.is_false(ok)
      assert.matches(case[2], err, 1, true)
      assert.is_nil(err:find("url is not", 1, true), err)
      assert.is_nil(err:find("S3cretPW", 1, true), "the password is in: " .. err)
    end
  end)
end)

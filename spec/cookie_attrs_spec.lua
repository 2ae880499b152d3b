-- Cookie attributes of issue 9: cookie.partitioned (CHIPS), cookie.priority, the browser-session
-- cookie (cookie.maxAge = false) and the __Host- / __Secure- / __Http- / __Host-Http- name
-- prefixes, each refused at setup when browsers would refuse the cookie. Time moves with
-- Site.advance (the module's clock and the client's jar together).

local hs = require("honeymoon_session")
local Site = require("spec.support.site")
local RedisServer = require("scripts.lib.redis_server")

local SECRET = "cookie-attrs-spec"
local NAME = "honeymoon.sid"

local function app_with(opts, routes) return Site.app_with(SECRET, opts, routes) end

local ROUTES = {
  ["POST /set"] = function(req, res)
    for k, v in pairs(req.query) do req.session[k] = v end
    res:text(req.session:getId())
  end,
  ["GET /get"] = function(req, res) res:text(tostring(req.session[req.query.k])) end,
  ["GET /id"] = function(req, res) res:text(req.session:getId()) end,
  ["POST /logout"] = function(req, res) req.session:destroy(); res:text("out") end,
}

local attr = Site.attr

---The attributes of a Set-Cookie line after name=value, as written.
local function attributes_of(line) return (line:match("^[^;]*(.*)$")) end

---The message session(opts) raises.
local function refusal(opts)
  opts.secret = SECRET
  local ok, err = pcall(hs.session, opts)
  assert.is_false(ok, "expected session() to refuse the options")
  return hs.error_message(err)
end

describe("cookie.partitioned", function()
  it("adds Partitioned (after Secure, before SameSite) when true", function()
    local _, c = app_with({ cookie = { secure = true, sameSite = "None", partitioned = true } }, ROUTES)
    local line = Site.cookie_line(c:post("/set?a=1", { secure = true }), NAME)
    assert.is_true(attr(line, "Partitioned"))
    assert.matches("; Secure; Partitioned; SameSite=None$", line)
  end)

  it("is off by default and when false", function()
    for _, opts in ipairs({ {}, { cookie = { partitioned = false } } }) do
      local _, c = app_with(opts, ROUTES)
      assert.is_nil(attr(Site.cookie_line(c:post("/set?a=1"), NAME), "Partitioned"))
    end
  end)

  it("goes on the clearing cookie too, so the browser drops the partitioned one", function()
    local _, c = app_with({ cookie = { secure = true, partitioned = true } }, ROUTES)
    c:post("/set?a=1", { secure = true })
    local line = Site.cookie_line(c:post("/logout", { secure = true }), NAME)
    assert.equal("0", attr(line, "Max-Age"))
    assert.is_true(attr(line, "Partitioned"))
  end)

  it("is refused without cookie.secure = true, naming the option and the value", function()
    assert.equal(
      'honeymoon_session: cookie.partitioned = true needs cookie.secure = true, got cookie.secure = false'
        .. ' (browsers drop Partitioned cookies that are not Secure)',
      refusal({ cookie = { partitioned = true } }))
    assert.equal(
      'honeymoon_session: cookie.partitioned = true needs cookie.secure = true, got cookie.secure = "auto"'
        .. ' (browsers drop Partitioned cookies that are not Secure; "auto" is not enough, it leaves Secure off over plain HTTP)',
      refusal({ cookie = { partitioned = true, secure = "auto" } }))
    assert.equal('honeymoon_session: cookie.partitioned must be true or false, got "yes"',
      refusal({ cookie = { partitioned = "yes" } }))
  end)
end)

describe("cookie.priority", function()
  it("adds Priority=Low, Medium or High, accepting any case as express's cookie module does", function()
    for given, written in pairs({ Low = "Low", medium = "Medium", HIGH = "High", hIgH = "High" }) do
      local _, c = app_with({ cookie = { priority = given } }, ROUTES)
      local line = Site.cookie_line(c:post("/set?a=1"), NAME)
      assert.equal(written, attr(line, "Priority"))
      assert.matches("; HttpOnly; Priority=" .. written .. "; SameSite=Lax$", line)
    end
  end)

  it("is absent by default and when false", function()
    for _, opts in ipairs({ {}, { cookie = { priority = false } } }) do
      local _, c = app_with(opts, ROUTES)
      assert.is_nil(attr(Site.cookie_line(c:post("/set?a=1"), NAME), "Priority"))
    end
  end)

  it("refuses anything else, naming the option and the value", function()
    local want = 'honeymoon_session: cookie.priority must be "Low", "Medium", "High" (in any case) or false, got '
    assert.equal(want .. '"urgent"', refusal({ cookie = { priority = "urgent" } }))
    assert.equal(want .. '"high "', refusal({ cookie = { priority = "high " } }))
    assert.equal(want .. "true", refusal({ cookie = { priority = true } }))
    assert.equal(want .. "3", refusal({ cookie = { priority = 3 } }))
  end)
end)

describe("cookie.maxAge = false: a browser-session cookie", function()
  it("sends neither Max-Age nor Expires, yet the session is stored and found on the next request", function()
    local store = hs.MemoryStore()
    local _, c = app_with({ store = store, cookie = { maxAge = false } }, ROUTES)
    local r = c:post("/set?user=ann")
    local line = Site.cookie_line(r, NAME)
    assert.equal("; Path=/; HttpOnly; SameSite=Lax", attributes_of(line))
    assert.is_nil(attr(line, "Max-Age"))
    assert.is_nil(attr(line, "Expires"))
    assert.equal(1, store:length())
    assert.equal("ann", c:get("/get?k=user").body)
    assert.equal(r.body, c:get("/id").body)
  end)

  it("the store still expires the session after ttl", function()
    local _, c = app_with({ ttl = 100, cookie = { maxAge = false } }, ROUTES)
    c:post("/set?user=ann")
    Site.advance(95, c) -- (the store also counts the real milliseconds that pass)
    assert.equal("ann", c:get("/get?k=user").body)
    Site.advance(6, c)
    -- The browser still holds the cookie (no lifetime of its own), but the session is gone.
    assert.is_not_nil(c:cookie(NAME))
    assert.equal("nil", c:get("/get?k=user").body)
  end)

  it("rolling re-sends it without a lifetime, and destroy still clears it with Max-Age=0", function()
    local _, c = app_with({ rolling = true, cookie = { maxAge = false } }, ROUTES)
    c:post("/set?a=1")
    local again = Site.cookie_line(c:get("/id"), NAME)
    assert.is_nil(attr(again, "Max-Age"))
    assert.is_nil(attr(again, "Expires"))
    local clear = Site.cookie_line(c:post("/logout"), NAME)
    assert.equal("0", attr(clear, "Max-Age"))
    assert.equal("Thu, 01 Jan 1970 00:00:00 GMT", attr(clear, "Expires"))
  end)

  it("refuses true and other values, saying that false is accepted", function()
    assert.equal(
      "honeymoon_session: cookie.maxAge must be a whole number of seconds from 1 to 3153600000,"
        .. " or false for a browser-session cookie, got true",
      refusal({ cookie = { maxAge = true } }))
    assert.matches("or false for a browser-session cookie, got 0", refusal({ cookie = { maxAge = 0 } }), 1, true)
  end)

  ---A record store over a table that keeps the life table of each write.
  local function life_keeping_store()
    local rows, lives = {}, {}
    local store = { format = "record" }
    function store.get(_, id) return rows[id] end
    function store.set(_, id, record, _, life) rows[id] = record; lives[#lives + 1] = life end
    function store.merge(_, id, patch, _, _, life)
      if not rows[id] then return false end
      rows[id] = hs._merge_patch(rows[id], patch)
      lives[#lives + 1] = life
      return true
    end
    function store.destroy(_, id) rows[id] = nil end
    function store.touch(_, id) return rows[id] ~= nil end
    function store.exists(_, id) return rows[id] ~= nil end
    function store.all() local ids = {} for id in pairs(rows) do ids[#ids + 1] = id end return ids end
    function store.length(self) return #self.all() end
    function store.clear() rows = {} end
    return store, rows, lives
  end

  it("hands a Lua store maxAge = false and the new attributes in its life table", function()
    local store, rows, lives = life_keeping_store()
    local _, c = app_with({ store = store, ttl = 300,
      cookie = { maxAge = false, secure = true, partitioned = true, priority = "high" } }, ROUTES)
    c:post("/set?a=1", { secure = true })
    assert.equal("1", c:get("/get?k=a", { secure = true }).body)
    local life = lives[1]
    assert.equal(300, life.ttl)
    assert.is_false(life.maxAge)
    assert.is_true(life.partitioned)
    assert.equal("High", life.priority)
    -- What the Lua RedisStore writes from it: express-session's object, the key living ttl.
    if hs._redis then
      local id = c:get("/id", { secure = true }).body
      local json, ex = hs._redis.encode(rows[id], life.ttl, life)
      assert.equal(300, ex)
      assert.matches('"cookie":{"originalMaxAge":null,"partitioned":true,"priority":"high","expires":null,', json, 1, true)
    end
  end)

  -- express-session stores secure as the request decided it, and Node builds a loaded
  -- session's Set-Cookie from what is stored: a stored false would strip Node's Secure.
  it("under secure = 'auto' hands the request's https in life, and RedisStore's JSON stores it", function()
    local store, rows, lives = life_keeping_store()
    local _, c = app_with({ store = store, cookie = { secure = "auto" } }, ROUTES)
    c:post("/set?a=1", { secure = true })
    assert.is_true(lives[1].https)
    assert.equal("auto", lives[1].secure)
    c:post("/set?a=2") -- over plain HTTP
    assert.is_false(lives[2].https)
    if hs._redis then
      local id = c:get("/id").body
      local secure_of = function(life) return hs._redis.encode(rows[id], 60, life):match('"secure":(%a+)') end
      assert.equal("true", secure_of(lives[1]))
      assert.equal("false", secure_of(lives[2]))
    end
  end)
end)

describe("cookie name prefixes", function()
  it("__Host- with secure = true, path / and no domain is accepted and sent as configured", function()
    local _, c = app_with({ name = "__Host-sid", cookie = { secure = true } }, ROUTES)
    local r = c:post("/set?a=1", { secure = true })
    local line = Site.cookie_line(r, "__Host-sid")
    assert.is_true(attr(line, "Secure"))
    assert.equal("/", attr(line, "Path"))
    assert.is_nil(attr(line, "Domain"))
    assert.equal("1", c:get("/get?k=a", { secure = true }).body)
  end)

  it("__Host- is refused without secure = true (\"auto\" is not enough), with another path, or with a domain", function()
    local needs = 'honeymoon_session: name "__Host-sid" needs cookie.secure = true, cookie.path = "/" and no cookie.domain'
      .. " (browsers refuse __Host- cookies otherwise), got "
    assert.equal(needs .. "cookie.secure = false", refusal({ name = "__Host-sid" }))
    assert.equal(needs .. 'cookie.secure = "auto"; "auto" is not enough, it leaves Secure off over plain HTTP',
      refusal({ name = "__Host-sid", cookie = { secure = "auto" } }))
    assert.equal(needs .. 'cookie.path = "/app"',
      refusal({ name = "__Host-sid", cookie = { secure = true, path = "/app" } }))
    assert.equal(needs .. 'cookie.domain = "example.com"',
      refusal({ name = "__Host-sid", cookie = { secure = true, domain = "example.com" } }))
  end)

  it("__Secure- needs secure = true (\"auto\" is not enough) and nothing else", function()
    local needs = 'honeymoon_session: name "__Secure-sid" needs cookie.secure = true'
      .. " (browsers refuse __Secure- cookies otherwise), got "
    assert.equal(needs .. "cookie.secure = false", refusal({ name = "__Secure-sid" }))
    assert.equal(needs .. 'cookie.secure = "auto"; "auto" is not enough, it leaves Secure off over plain HTTP',
      refusal({ name = "__Secure-sid", cookie = { secure = "auto" } }))
    local _, c = app_with({ name = "__Secure-sid", cookie = { secure = true, path = "/", domain = "example.com" } }, ROUTES)
    local line = Site.cookie_line(c:post("/set?a=1", { secure = true }), "__Secure-sid")
    assert.equal("example.com", attr(line, "Domain"))
  end)

  it("match in any case, as browsers match them", function()
    assert.matches('name "__host%-sid" needs', refusal({ name = "__host-sid" }))
    assert.matches('name "__SECURE%-sid" needs', refusal({ name = "__SECURE-sid" }))
    assert.matches('name "__http%-sid" needs', refusal({ name = "__http-sid", cookie = { secure = true, httpOnly = false } }))
    assert.matches('name "__HOST%-HTTP%-sid" needs', refusal({ name = "__HOST-HTTP-sid", cookie = { secure = true, httpOnly = false } }))
  end)

  -- The HTTP-only prefixes of RFC 6265bis (browsers refuse such a cookie unless it is HttpOnly,
  -- so that script can neither set nor read one).
  it("__Http- needs secure = true and httpOnly (the default), and nothing else", function()
    local needs = 'honeymoon_session: name "__Http-sid" needs cookie.secure = true and cookie.httpOnly = true'
      .. " (browsers refuse __Http- cookies otherwise), got "
    assert.equal(needs .. "cookie.secure = false", refusal({ name = "__Http-sid" }))
    assert.equal(needs .. 'cookie.secure = "auto"; "auto" is not enough, it leaves Secure off over plain HTTP',
      refusal({ name = "__Http-sid", cookie = { secure = "auto" } }))
    assert.equal(needs .. "cookie.httpOnly = false",
      refusal({ name = "__Http-sid", cookie = { secure = true, httpOnly = false } }))
    local _, c = app_with({ name = "__Http-sid", cookie = { secure = true, path = "/", domain = "example.com" } }, ROUTES)
    local line = Site.cookie_line(c:post("/set?a=1", { secure = true }), "__Http-sid")
    assert.is_true(attr(line, "Secure"))
    assert.is_true(attr(line, "HttpOnly"))
    assert.equal("example.com", attr(line, "Domain"))
  end)

  it("__Host-Http- needs what __Http- and __Host- need", function()
    local needs = 'honeymoon_session: name "__Host-Http-sid" needs cookie.secure = true, cookie.httpOnly = true,'
      .. ' cookie.path = "/" and no cookie.domain (browsers refuse __Host-Http- cookies otherwise), got '
    assert.equal(needs .. "cookie.secure = false", refusal({ name = "__Host-Http-sid" }))
    assert.equal(needs .. "cookie.httpOnly = false",
      refusal({ name = "__Host-Http-sid", cookie = { secure = true, httpOnly = false } }))
    assert.equal(needs .. 'cookie.path = "/app"',
      refusal({ name = "__Host-Http-sid", cookie = { secure = true, path = "/app" } }))
    assert.equal(needs .. 'cookie.domain = "example.com"',
      refusal({ name = "__Host-Http-sid", cookie = { secure = true, domain = "example.com" } }))
    local _, c = app_with({ name = "__Host-Http-sid", cookie = { secure = true } }, ROUTES)
    local r = c:post("/set?a=1", { secure = true })
    local line = Site.cookie_line(r, "__Host-Http-sid")
    assert.is_true(attr(line, "Secure"))
    assert.is_true(attr(line, "HttpOnly"))
    assert.equal("/", attr(line, "Path"))
    assert.is_nil(attr(line, "Domain"))
    assert.equal("1", c:get("/get?k=a", { secure = true }).body)
  end)
end)

describe("RedisStore: express-session's cookie object with the new attributes", function()
  local server
  lazy_setup(function() server = RedisServer.start() end)
  lazy_teardown(function() server:close() end)

  it("stores partitioned, priority, and null originalMaxAge and expires for a browser-session cookie, the key living ttl", function()
    local _, c = app_with({
      store = hs.RedisStore({ url = server.url }), ttl = 600,
      cookie = { maxAge = false, secure = true, partitioned = true, priority = "Medium" },
    }, ROUTES)
    local id = c:post("/set?a=1", { secure = true }).body
    local raw = server:cli("GET", "sess:" .. id):gsub("\n$", "")
    assert.matches('"cookie":{"originalMaxAge":null,"partitioned":true,"priority":"medium","expires":null,', raw, 1, true)
    local ttl = tonumber(server:cli("TTL", "sess:" .. id))
    assert.is_true(ttl > 590 and ttl <= 600, "ttl " .. tostring(ttl))
    assert.equal("1", c:get("/get?k=a", { secure = true }).body)
  end)
end)

-- Specs for the test-support harness itself (app, client, db), so that a
-- failing session spec can be trusted to be about the session code.

local cjson = require("cjson")
local App = require("examples.framework.app")
local Client = require("examples.framework.client")
local Db = require("spec.support.db")

local function find_line(list, prefix)
  for _, line in ipairs(list or {}) do
    if line:sub(1, #prefix) == prefix then return line end
  end
end

describe("support.app", function()
  it("routes by method and exact path, 404 otherwise", function()
    local app = App.new()
    app:get("/a", function(_, res) res:text("get a") end)
    app:post("/a", function(_, res) res:text("post a") end)
    app:put("/a", function(_, res) res:text("put a") end)
    app:delete("/a", function(_, res) res:text("delete a") end)

    local r = app:handle({ method = "GET", path = "/a" })
    assert.equal(200, r.status)
    assert.equal("get a", r.body)
    assert.equal("post a", app:handle({ method = "POST", path = "/a" }).body)
    assert.equal("put a", app:handle({ method = "put", path = "/a" }).body)
    assert.equal("delete a", app:handle({ method = "DELETE", path = "/a" }).body)

    r = app:handle({ method = "GET", path = "/a/" })
    assert.equal(404, r.status)
    assert.equal("Not Found", r.body)
    assert.equal(404, app:handle({ method = "PATCH", path = "/a" }).status)
  end)

  it("strips and parses the query string", function()
    local app = App.new()
    local seen
    app:get("/q", function(req, res)
      seen = req
      res:send("ok")
    end)
    local r = app:handle({ method = "GET", path = "/q?a=1&b=hello+world&c=%41%2f&a=2&flag" })
    assert.equal(200, r.status)
    assert.equal("/q", seen.path)
    assert.same({ a = "1", b = "hello world", c = "A/", flag = "" }, seen.query)
    assert.equal("/q?a=1&b=hello+world&c=%41%2f&a=2&flag", seen.url)
  end)

  it("runs middleware in order; next() returns after the rest of the chain", function()
    local app, log = App.new(), {}
    app:use(function(_, _, next)
      log[#log + 1] = "m1 in"
      next()
      log[#log + 1] = "m1 out"
    end)
    app:use(function(_, res, next)
      log[#log + 1] = "m2 in"
      next()
      log[#log + 1] = "m2 out sent=" .. tostring(res:sent())
    end)
    app:get("/", function(_, res)
      log[#log + 1] = "route"
      res:send("hi")
    end)
    local r = app:handle({ method = "GET", path = "/" })
    assert.equal("hi", r.body)
    assert.same({ "m1 in", "m2 in", "route", "m2 out sent=true", "m1 out" }, log)
  end)

  it("middleware can end the request without calling next", function()
    local app, routed = App.new(), false
    app:use(function(_, res) res:status(401):text("nope") end)
    app:get("/", function() routed = true end)
    local r = app:handle({ path = "/" })
    assert.equal(401, r.status)
    assert.equal("nope", r.body)
    assert.is_false(routed)
  end)

  it("still runs middleware for unmatched paths (404 is sent at the end of the chain)", function()
    local app, after
    app = App.new()
    app:use(function(_, res, next)
      next()
      after = res.statusCode
    end)
    assert.equal(404, app:handle({ path = "/nowhere" }).status)
    assert.equal(404, after)
  end)

  it("sends 200 with an empty body only after the chain unwinds", function()
    local app, sent_when_unwinding = App.new(), nil
    app:use(function(_, res, next)
      next()
      sent_when_unwinding = res:sent()
      res:set("x-after", "yes")
    end)
    app:get("/", function() end)
    local r = app:handle({ path = "/" })
    assert.equal(200, r.status)
    assert.equal("", r.body)
    assert.is_false(sent_when_unwinding)
    assert.equal("yes", r.headers["x-after"])
  end)

  it("lower-cases request headers and exposes body/secure", function()
    local app, seen = App.new(), nil
    app:post("/h", function(req, res)
      seen = req
      res:send("")
    end)
    app:handle({ method = "POST", path = "/h", headers = { ["X-Thing"] = "1", Cookie = "a=b" }, body = "raw", secure = true })
    assert.equal("1", seen.headers["x-thing"])
    assert.equal("1", seen:get("X-THING"))
    assert.equal("a=b", seen.headers.cookie)
    assert.equal("raw", seen.body)
    assert.is_true(seen.secure)
    app:handle({ method = "POST", path = "/h" })
    assert.is_false(seen.secure)
    assert.is_nil(seen.body)
  end)

  it("parses request cookies: URL-decoded, first occurrence wins", function()
    local app, seen = App.new(), nil
    app:get("/", function(req, res)
      seen = { one = req:cookie("sid"), all = req:cookies(), missing = req:cookie("nope") }
      res:send("")
    end)
    app:handle({ path = "/", headers = { cookie = "sid=s%3Aabc.d%2Bef; other = x y ;sid=second; q=\"quoted\"" } })
    assert.equal("s:abc.d+ef", seen.one)
    assert.same({ sid = "s:abc.d+ef", other = "x y", q = "quoted" }, seen.all)
    assert.is_nil(seen.missing)
  end)

  it("parses form and JSON bodies", function()
    local app, seen = App.new(), {}
    app:post("/form", function(req, res)
      seen.form = req:form()
      res:send("")
    end)
    app:post("/json", function(req, res)
      seen.json = req:json()
      res:send("")
    end)
    app:handle({ method = "POST", path = "/form", body = "name=J+Doe&x=%26%3D%25&empty=" })
    assert.same({ name = "J Doe", x = "&=%", empty = "" }, seen.form)
    app:handle({ method = "POST", path = "/json", body = '{"a":[1,2],"b":"c"}' })
    assert.same({ a = { 1, 2 }, b = "c" }, seen.json)
    app:handle({ method = "POST", path = "/json", body = "" })
    assert.is_nil(seen.json)
  end)

  describe("errors", function()
    it("default handler sends 500 'error: <msg>' and records last_error", function()
      local app = App.new()
      app:get("/boom", function() error("kaboom", 0) end)
      app:get("/fine", function(_, res) res:send("ok") end)
      local r = app:handle({ path = "/boom" })
      assert.equal(500, r.status)
      assert.equal("error: kaboom", r.body)
      assert.matches("kaboom", app.last_error, 1, true)
      assert.matches("stack traceback", app.last_error, 1, true)
      app:handle({ path = "/fine" })
      assert.is_nil(app.last_error)
    end)

    it("catches errors from middleware and passes them to a custom handler", function()
      local app, got = App.new(), nil
      app:use(function() error({ code = 42 }) end)
      app:get("/", function(_, res) res:send("unreachable") end)
      app:set_error_handler(function(err, req, res)
        got = { err = err, path = req.path }
        res:status(503):json({ code = err.code })
      end)
      local r = app:handle({ path = "/" })
      assert.equal(503, r.status)
      assert.same({ code = 42 }, cjson.decode(r.body))
      assert.equal("/", got.path)
      assert.is_not_nil(app.last_error)
    end)

    it("next(err) hands err to the error handler", function()
      local app = App.new()
      app:use(function(_, _, next) next("denied") end)
      app:get("/", function(_, res) res:send("unreachable") end)
      local r = app:handle({ path = "/" })
      assert.equal(500, r.status)
      assert.equal("error: denied", r.body)
    end)

    it("falls back to a plain 500 when the error handler itself fails", function()
      local app = App.new()
      app:get("/", function() error("first", 0) end)
      app:set_error_handler(function() error("second", 0) end)
      local r = app:handle({ path = "/" })
      assert.equal(500, r.status)
      assert.equal("error: first", r.body)
      assert.matches("second", app.last_error, 1, true)
    end)

    it("sending twice raises 'response already sent'", function()
      local app, err = App.new(), nil
      app:get("/", function(_, res)
        res:send("one")
        local ok, e = pcall(res.send, res, "two")
        err = not ok and e
      end)
      local r = app:handle({ path = "/" })
      assert.equal("one", r.body)
      assert.equal("response already sent", err)
    end)

    it("an error after the response was sent keeps the response", function()
      local app = App.new()
      app:get("/", function(_, res)
        res:send("done")
        error("late", 0)
      end)
      local r = app:handle({ path = "/" })
      assert.equal(200, r.status)
      assert.equal("done", r.body)
      assert.matches("late", app.last_error, 1, true)
    end)
  end)

  describe("response", function()
    it("keeps methods on shared metatables", function()
      local app, a, b = App.new(), nil, nil
      app:get("/", function(req, res)
        if a then b = { req, res } else a = { req, res } end
        res:send("")
      end)
      app:handle({ path = "/" })
      app:handle({ path = "/" })
      assert.is_nil(rawget(a[2], "send"))
      assert.equal(getmetatable(a[1]), getmetatable(b[1]))
      assert.equal(getmetatable(a[2]), getmetatable(b[2]))
      assert.are_not.equal(a[2].locals, b[2].locals)
    end)

    for _, case in ipairs({
      { "json", function(res) res:json({ a = 1 }) end, '{"a":1}', "application/json" },
      { "html", function(res) res:html("<p>") end, "<p>", "text/html" },
      { "text", function(res) res:text("plain") end, "plain", "text/plain" },
      { "redirect", function(res) res:redirect("/to") end, "Redirecting to /to", nil },
      { "render", function(res) res:render("view", { x = 1 }) end, 'view:{"x":1}', "text/html" },
    }) do
      it(case[1] .. " goes through an instance override of res.send", function()
        local app, calls = App.new(), 0
        app:use(function(_, res, next)
          local orig = res.send
          res.send = function(self, body)
            calls = calls + 1
            self:set("x-hooked", "1")
            self:cookie("hook", "yes")
            return orig(self, body)
          end
          next()
        end)
        app:get("/", function(_, res) case[2](res) end)
        local r = app:handle({ path = "/" })
        assert.equal(1, calls)
        assert.equal(case[3], r.body)
        assert.equal("1", r.headers["x-hooked"])
        assert.equal("hook=yes; Path=/", find_line(r.headers["set-cookie"], "hook="))
        if case[4] then assert.equal(case[4], r.headers["content-type"]) end
      end)
    end

    it("the implicit empty 200 and the 404 also go through the override", function()
      local app, calls = App.new(), 0
      app:use(function(_, res, next)
        local orig = res.send
        res.send = function(self, body)
          calls = calls + 1
          return orig(self, body)
        end
        next()
      end)
      app:get("/", function() end)
      app:handle({ path = "/" })
      app:handle({ path = "/missing" })
      assert.equal(2, calls)
    end)

    it("redirect defaults to 302, takes a status, sets location", function()
      local app = App.new()
      app:get("/a", function(_, res) res:redirect("/b") end)
      app:get("/c", function(_, res) res:redirect("/d", 303) end)
      local r = app:handle({ path = "/a" })
      assert.equal(302, r.status)
      assert.equal("/b", r.headers.location)
      assert.equal("/b", r.location)
      assert.equal(303, app:handle({ path = "/c" }).status)
    end)

    it("render merges res.locals under data", function()
      local app = App.new()
      app:use(function(_, res, next)
        res.locals.user = "ann"
        res.locals.title = "from locals"
        next()
      end)
      app:get("/", function(_, res) res:render("page", { title = "from data" }) end)
      local r = app:handle({ path = "/" })
      local view, json = r.body:match("^([^:]*):(.*)$")
      assert.equal("page", view)
      assert.same({ user = "ann", title = "from data" }, cjson.decode(json))
    end)

    it("status/set/get/append headers", function()
      local app = App.new()
      app:get("/", function(_, res)
        assert.equal(res, res:status(201))
        res:set("X-One", "a")
        res:set("x-one", "b")
        res:append("Vary", "Cookie")
        res:append("vary", "Accept")
        res:append("Set-Cookie", "raw=1; Path=/")
        res:set("X-Num", 5)
        assert.equal("b", res:get("X-ONE"))
        res:send("")
      end)
      local r = app:handle({ path = "/" })
      assert.equal(201, r.status)
      assert.equal("b", r.headers["x-one"])
      assert.equal("5", r.headers["x-num"])
      assert.equal("Cookie, Accept", r.headers.vary)
      assert.same({ "raw=1; Path=/" }, r.headers["set-cookie"])
    end)

    it("writes queued cookies as a set-cookie list at send time", function()
      local app = App.new()
      app:get("/", function(_, res)
        res:cookie("a", "1")
        res:cookie("b", "x y/é", { path = "/p", domain = "example.com", maxAge = 60.9, httpOnly = true, secure = true, sameSite = "lax" })
        res:cookie("c", "v", { expires = "Wed, 21 Oct 2037 07:28:00 GMT" })
        res:clearCookie("old", { path = "/p" })
        assert.is_nil(res:get("set-cookie")) -- queued, not yet written
        res:send("")
      end)
      local r = app:handle({ path = "/" })
      assert.same({
        "a=1; Path=/",
        "b=x%20y%2F%C3%A9; Path=/p; Domain=example.com; Max-Age=60; HttpOnly; Secure; SameSite=Lax",
        "c=v; Path=/; Expires=Wed, 21 Oct 2037 07:28:00 GMT",
        "old=; Path=/p; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT",
      }, r.headers["set-cookie"])
    end)

    it("has no set-cookie header when no cookie was set", function()
      local app = App.new()
      app:get("/", function(_, res) res:send("x") end)
      assert.is_nil(app:handle({ path = "/" }).headers["set-cookie"])
    end)
  end)
end)

describe("support.client", function()
  local app
  before_each(function()
    app = App.new()
    app:get("/echo", function(req, res) res:json({ cookie = req.headers.cookie or cjson.null, secure = req.secure }) end)
    app:get("/admin/echo", function(req, res) res:send(req.headers.cookie or "") end)
    app:get("/administrator", function(req, res) res:send(req.headers.cookie or "") end)
    local function raw(req, res)
      res:append("set-cookie", req.query.h)
      res:send("")
    end
    app:get("/raw", raw)
    app:get("/admin/raw", raw)
  end)

  local function set(c, line, path)
    return c:get((path or "/raw") .. "?h=" .. App.util.form_encode(line))
  end

  it("stores, sends in insertion order, replaces and deletes cookies", function()
    local c = Client.new(app)
    set(c, "a=1; Path=/")
    set(c, "b=2; path=/; HttpOnly")
    assert.equal("a=1; b=2", c:get("/echo").cookies_sent)
    set(c, "a=3; Path=/")
    assert.equal("a=3; b=2", c:get("/echo").cookies_sent)
    assert.equal("3", c:cookie("a"))
    set(c, "a=; Path=/; Max-Age=0")
    assert.is_nil(c:cookie("a"))
    set(c, "b=; Path=/; Expires=Thu, 01 Jan 1970 00:00:00 GMT")
    assert.is_nil(c:cookie("b"))
    local r = c:get("/echo")
    assert.is_nil(r.cookies_sent)
    assert.equal(cjson.null, cjson.decode(r.body).cookie)
  end)

  it("keeps values raw and parses attributes case-insensitively", function()
    local c = Client.new(app)
    set(c, "sid=s%3Aabc.def; path=/; max-age=3600; HTTPONLY; secure; SameSite=Strict; Domain=example.com")
    assert.equal("s%3Aabc.def", c:cookie("sid"))
    assert.same({ path = "/", ["max-age"] = 3600, httponly = true, secure = true, samesite = "Strict", domain = "example.com" },
      c:cookie_attrs("sid"))
    assert.equal("sid=s%3Aabc.def", c:get("/echo", { secure = true }).cookies_sent)
  end)

  it("Max-Age wins over Expires", function()
    local c = Client.new(app)
    set(c, "a=1; Path=/; Max-Age=100; Expires=Thu, 01 Jan 1970 00:00:00 GMT")
    assert.equal("1", c:cookie("a"))
    set(c, "a=1; Path=/; Max-Age=0; Expires=Wed, 21 Oct 2037 07:28:00 GMT")
    assert.is_nil(c:cookie("a"))
  end)

  it("expires cookies as the jar clock advances", function()
    local c = Client.new(app)
    set(c, "short=1; Path=/; Max-Age=10")
    set(c, "dated=1; Path=/; Expires=" .. os.date("!%a, %d %b %Y %H:%M:%S GMT", c.jar.clock + 100))
    set(c, "session=1; Path=/")
    assert.equal("short=1; dated=1; session=1", c:get("/echo").cookies_sent)
    c:advance(9)
    assert.equal("short=1; dated=1; session=1", c:get("/echo").cookies_sent)
    c:advance(1)
    assert.equal("dated=1; session=1", c:get("/echo").cookies_sent)
    assert.is_nil(c:cookie("short"))
    c:advance(100)
    assert.equal("session=1", c:get("/echo").cookies_sent)
  end)

  it("parses IMF-fixdate without timezone drift", function()
    assert.equal(0, Client.parse_http_date("Thu, 01 Jan 1970 00:00:00 GMT"))
    assert.equal(2140673280, Client.parse_http_date("Sun, 01 Nov 2037 07:28:00 GMT"))
    assert.equal(951782400, Client.parse_http_date("Tue, 29 Feb 2000 00:00:00 GMT"))
    assert.is_nil(Client.parse_http_date("garbage"))
  end)

  it("path-matches cookies and keys them by (name, path)", function()
    local c = Client.new(app)
    set(c, "root=1; Path=/")
    set(c, "adm=2; Path=/admin")
    set(c, "adm=3; Path=/other")
    assert.equal("root=1", c:get("/echo").cookies_sent)
    assert.equal("root=1; adm=2", c:get("/admin/echo").cookies_sent)
    assert.equal("root=1", c:get("/administrator").cookies_sent) -- not a path-segment match
    -- Without a Path attribute, the default path is the request's directory.
    set(c, "dflt=4", "/admin/raw")
    assert.equal("/admin", c:cookie_attrs("dflt").path)
  end)

  it("sends Secure cookies only over https", function()
    local c = Client.new(app)
    set(c, "s=1; Path=/; Secure")
    set(c, "p=2; Path=/")
    local r = c:get("/echo")
    assert.equal("p=2", r.cookies_sent)
    assert.is_false(cjson.decode(r.body).secure)
    r = c:get("/echo", { secure = true })
    assert.equal("s=1; p=2", r.cookies_sent)
    assert.is_true(cjson.decode(r.body).secure)
  end)

  it("opts.cookie overrides the jar; manual jar control", function()
    local c = Client.new(app)
    c:set_cookie("m", "v%20x")
    assert.equal("m=v%20x", c:get("/echo").cookies_sent)
    assert.equal("forged=1", c:get("/echo", { cookie = "forged=1" }).cookies_sent)
    assert.equal("v%20x", c:cookie("m"))
    c:clear_cookies()
    assert.is_nil(c:get("/echo").cookies_sent)
  end)

  it("stores cookies set by res:cookie through a real round trip", function()
    local a = App.new()
    a:get("/login", function(_, res)
      res:cookie("sid", "s:abc/def", { httpOnly = true, maxAge = 60 })
      res:redirect("/home")
    end)
    a:get("/home", function(req, res) res:text("sid=" .. tostring(req:cookie("sid"))) end)
    local c = Client.new(a)
    local r = c:get("/login")
    assert.equal(302, r.status)
    assert.equal("/home", r.location)
    assert.equal("s%3Aabc%2Fdef", c:cookie("sid"))
    local r2 = c:follow(r)
    assert.equal("sid=s:abc/def", r2.body)
    assert.equal("sid=s%3Aabc%2Fdef", r2.cookies_sent)
    assert.is_nil(c:follow(r2))
  end)

  it("encodes form and json bodies", function()
    local a, seen = App.new(), {}
    a:post("/f", function(req, res)
      seen.form, seen.ctype = req:form(), req.headers["content-type"]
      res:send("")
    end)
    a:put("/j", function(req, res)
      seen.json, seen.jtype = req:json(), req.headers["content-type"]
      res:send("")
    end)
    local c = Client.new(a)
    c:post("/f", { form = { name = "J Doe", sym = "a&b=c+d%", n = 5 } })
    assert.same({ name = "J Doe", sym = "a&b=c+d%", n = "5" }, seen.form)
    assert.equal("application/x-www-form-urlencoded", seen.ctype)
    c:request("PUT", "/j", { json = { list = { 1, 2 }, ok = true } })
    assert.same({ list = { 1, 2 }, ok = true }, seen.json)
    assert.equal("application/json", seen.jtype)
  end)
end)

describe("support.db", function()
  local db
  before_each(function()
    db = Db.open(":memory:")
    db:execute("CREATE TABLE sessions (id TEXT PRIMARY KEY, data TEXT, expires_at INTEGER)")
  end)
  after_each(function() db:close() end)

  it("round-trips rows with parameters, including quotes and '?' in data", function()
    local now = os.time()
    assert.equal(1, db:execute("INSERT OR REPLACE INTO sessions (id, data, expires_at) VALUES (?, ?, ?)", "it's", '{"q":"?"}', now + 60))
    db:execute("INSERT OR REPLACE INTO sessions (id, data, expires_at) VALUES (?, ?, ?)", "old", "x", now - 60)
    local row = db:query_row("SELECT data, expires_at FROM sessions WHERE id = ? AND expires_at > ?", "it's", now)
    assert.same({ data = '{"q":"?"}', expires_at = now + 60 }, row)
    assert.equal("number", type(row.expires_at))
    assert.is_nil(db:query_row("SELECT data FROM sessions WHERE id = ?", "nope"))

    local rows = db:query("SELECT id FROM sessions WHERE expires_at > ? ORDER BY id", now)
    assert.same({ { id = "it's" } }, rows)
    assert.same({}, db:query("SELECT id FROM sessions WHERE id = ?", "' OR 1=1 --"))

    local count = db:query_row("SELECT COUNT(*) AS n FROM sessions").n
    assert.equal(2, count)
    assert.equal("number", type(count))
    assert.equal(1, db:execute("DELETE FROM sessions WHERE expires_at <= ?", now))
  end)

  it("renders literals for each Lua type", function()
    assert.equal("SELECT 1, -2, 0.5, 1, 0, NULL, 'a''b'", Db.bind("SELECT ?, ?, ?, ?, ?, ?, ?", 1, -2, 0.5, true, false, nil, "a'b"))
    assert.equal("SELECT 0.10000000000000001", Db.bind("SELECT ?", 0.1))
    assert.equal("SELECT 3", Db.bind("SELECT ?", 3.0))
  end)

  it("ignores ? inside quoted literals and comments of the SQL text", function()
    assert.equal("SELECT '?', \"?\", 'it''s ?', 7 -- ?\n, 8 /* ? */",
      Db.bind("SELECT '?', \"?\", 'it''s ?', ? -- ?\n, ? /* ? */", 7, 8))
    assert.same({ a = "?", b = 5 }, db:query_row("SELECT '?' AS a, ? AS b", 5))
  end)

  it("rejects argument count mismatches, NUL bytes and odd types", function()
    assert.has_error(function() db:execute("SELECT ?, ?", 1) end)
    assert.has_error(function() db:execute("SELECT ?", 1, 2) end)
    assert.has_error(function() db:execute("SELECT 1", nil) end)
    assert.has_error(function() db:execute("SELECT ?", "a\0b") end)
    assert.has_error(function() db:execute("SELECT ?", {}) end)
  end)

  it("raises the SQLite message when a statement fails", function()
    local ok, err = pcall(db.execute, db, "INSERT INTO nope VALUES (?)", 1)
    assert.is_false(ok)
    assert.matches("no such table: nope", err, 1, true)
    ok, err = pcall(db.query, db, "SELEC oops")
    assert.is_false(ok)
    assert.matches("syntax error", err, 1, true)
    db:execute("INSERT INTO sessions (id, data, expires_at) VALUES (?, ?, ?)", "dup", "", 0)
    assert.has_error(function()
      db:execute("INSERT INTO sessions (id, data, expires_at) VALUES (?, ?, ?)", "dup", "", 0)
    end)
  end)

  it("works with a file database", function()
    local path = os.tmpname()
    local f = Db.open(path)
    f:execute("CREATE TABLE t (k TEXT, n INTEGER)")
    f:execute("INSERT INTO t VALUES (?, ?)", "a", 42)
    f:close()
    f = Db.open(path)
    assert.same({ k = "a", n = 42 }, f:query_row("SELECT k, n FROM t"))
    f:close()
    os.remove(path)
  end)
end)

describe("support.redis_server", function()
  local RedisServer = require("scripts.lib.redis_server")

  -- Whether a process runs (a zombie does not: its new parent may not reap it soon).
  local function running(pid)
    local f = io.open("/proc/" .. pid .. "/stat")
    if not f then return false end
    local stat = f:read("*l") or ""
    f:close()
    return stat:match("^%d+ %(.*%) (%a)") ~= "Z"
  end
  local function answers(port)
    local p = assert(io.popen("redis-cli -p " .. port .. " PING 2>&1"))
    local out = p:read("*a")
    p:close()
    return out:match("PONG") ~= nil
  end

  it("stop() ends the server by its pid and returns once it has exited", function()
    local server = RedisServer.start()
    local pid, port = server:pid(), server.port
    assert.is_true(running(pid))
    server:close()
    assert.is_false(running(pid))
    assert.is_false(answers(port))
  end)

  it("a launch that fails (no PONG in time) kills the server it started", function()
    -- A live server whose PONG the launch never sees, as on a machine too loaded to answer in
    -- time: the launch gives up, and must not leave that server running on the port.
    local probe = RedisServer.start()
    local Server = getmetatable(probe)
    probe:close()
    local port
    repeat port = math.random(20000, 45000) until not answers(port)
    local dir = os.tmpname()
    os.remove(dir)
    assert(os.execute("mkdir " .. dir))
    local handle = setmetatable({ dir = dir, port = port, url = "redis://127.0.0.1:" .. port }, Server)
    handle.cli = function() return "" end
    finally(function()
      os.execute("redis-cli -p " .. port .. " SHUTDOWN NOSAVE >/dev/null 2>&1; rm -rf " .. dir)
    end)
    assert.is_false(handle:launch())
    assert.is_false(answers(port))
  end)

  it("client_commands lists the commands sent meanwhile, and raises when MONITOR cannot run", function()
    local server = RedisServer.start()
    finally(function() server:close() end)
    assert.same({ "SET", "GET" }, server:client_commands(function()
      server:cli("SET", "k", "v")
      server:cli("GET", "k")
    end))
    -- An empty list here would read as "no round trips": it must be an error instead.
    server:stop()
    local ok, err = pcall(server.client_commands, server, function() end)
    assert.is_false(ok)
    assert.matches("MONITOR on port " .. server.port .. " did not start", err, 1, true)
  end)
end)

-- Every code block of the user-facing Sessions page (/work/shared/spec/sessions.md), run as a
-- spec. `honeymoon` on the page is the native module `hs` here, the app is the in-process test
-- app (examples/framework/app.lua) and requests go through the cookie-jar client. The page's blocks
-- are kept as written, inside routes; only what the test app lacks is swapped for a local fake
-- (authenticate, User, verifyPassword, os_ext.env, app:get_setting, app:listen).
-- The Custom Store Example (DatabaseStore) and the MemoryStore contract are specified elsewhere.

local cjson = require("cjson")
local hs = require("honeymoon_session")
local App = require("examples.framework.app")
local Client = require("examples.framework.client")
local Site = require("spec.support.site")
local cookie_lines, cookie_line, advance = Site.cookie_lines, Site.cookie_line, Site.advance

local url_decode = App.util.url_decode

---------------------------------------------------------------------------
-- Helpers
---------------------------------------------------------------------------

local function app_with(opts, routes) return Site.app_with("your-secret-key", opts, routes) end



---The session id inside the signed cookie `name` the client holds ("s:<id>.<sig>"), or nil.
local function cookie_id(c, name)
  local raw = c:cookie(name)
  if not raw then return nil end
  return (url_decode(raw):match("^s:(.+)%.[^.]+$"))
end

---Decodes a res:render body ("view:{json}") into view name and data.
local function rendered(r)
  local view, json = r.body:match("^([^:]*):(.*)$")
  assert.is_string(view, "not a rendered page: " .. r.body)
  return view, cjson.decode(json)
end


local function is_integer(v)
  return math.type == nil or math.type(v) == "integer"
end

-- The page's stand-ins: a user table, a login check and a model query.
local USERS = {
  alice = { id = 7, name = "Alice", role = "admin", email = "alice@example.com", password = "wonderland" },
}
for _, u in pairs(USERS) do u.password_hash = "hash:" .. u.password end

---authenticate(username, password) or authenticate(form): the page uses both shapes.
local function authenticate(username, password)
  if type(username) == "table" then username, password = username.username, username.password end
  local user = USERS[username]
  if user and user.password == password then return user end
  return nil
end

local User = {}
function User:where(cond)
  local found
  for _, u in pairs(USERS) do
    if u.email == cond.email then found = u end
  end
  return { first = function() return found end }
end

local function verifyPassword(password, hash)
  return hash == "hash:" .. tostring(password)
end

---------------------------------------------------------------------------
-- Setup and Options
---------------------------------------------------------------------------

describe("sessions.md Setup", function()
  local function setup_app()
    local app = App.new()
    app:use(hs.session({
        name = "honeymoon.sid",
        secret = "your-secret-key",
        ttl = 86400,
        cookie = {
            path = "/",
            httpOnly = true,
            secure = false,
            sameSite = "Lax",
        },
    }))
    app:post("/remember", function(req, res)
      req.session.who = "me"
      res:text("ok")
    end)
    app:get("/recall", function(req, res) res:text(tostring(req.session.who)) end)
    return app, Client.new(app)
  end

  it("sends a signed honeymoon.sid cookie with the configured attributes once data is stored", function()
    local _, c = setup_app()
    local r = c:post("/remember")
    local line = cookie_line(r, "honeymoon.sid")
    assert.matches("^honeymoon%.sid=s%%3A[%w_%-]+%.", line)
    local attrs = c:cookie_attrs("honeymoon.sid")
    assert.equal("/", attrs.path)
    assert.equal(86400, attrs["max-age"])
    assert.is_string(attrs.expires)
    assert.is_true(attrs.httponly)
    assert.equal("Lax", attrs.samesite)
    assert.is_nil(attrs.secure)
  end)

  it("brings the same session back on the next request", function()
    local _, c = setup_app()
    c:post("/remember")
    assert.equal("me", c:get("/recall").body)
    assert.equal("nil", Client.new(c.app):get("/recall").body)
  end)
end)

describe("sessions.md Options (defaults table)", function()
  it("a session with only a secret uses the documented cookie defaults", function()
    local _, c = app_with(nil, { ["POST /w"] = function(req, res) req.session.x = 1; res:text("") end })
    cookie_line(c:post("/w"), "honeymoon.sid")
    local attrs = c:cookie_attrs("honeymoon.sid")
    assert.same({ "/", 86400, true, "Lax" }, { attrs.path, attrs["max-age"], attrs.httponly, attrs.samesite })
    assert.is_nil(attrs.secure)
    assert.is_nil(attrs.domain)
  end)

  it("honours name, ttl and every cookie option", function()
    local _, c = app_with({
      name = "my.sid",
      ttl = 600,
      cookie = { path = "/", httpOnly = false, secure = true, sameSite = "Strict", maxAge = 60, domain = "example.com" },
    }, { ["POST /w"] = function(req, res) req.session.x = 1; res:text("") end })
    local line = cookie_line(c:post("/w", { secure = true }), "my.sid")
    assert.matches("; Domain=example.com", line, 1, true)
    assert.matches("; Max-Age=60;", line, 1, true)
    assert.matches("; Secure", line, 1, true)
    assert.matches("; SameSite=Strict", line, 1, true)
    assert.not_matches("HttpOnly", line, 1, true)
  end)
end)

---------------------------------------------------------------------------
-- Reading and Writing Data
---------------------------------------------------------------------------

describe("sessions.md Direct Property Access", function()
  local seen
  local function profile_app()
    seen = {}
    return app_with(nil, {
      ["POST /profile"] = function(req, res)
        -- Set a value
        req.session.userId = 42
        req.session.username = "Alice"
        req.session.role = "admin"
        res:text("ok")
      end,
      ["GET /profile"] = function(req, res)
        -- Read a value
        local userId = req.session.userId
        local username = req.session.username
        seen.userId, seen.username, seen.role, seen.missing = userId, username, req.session.role, req.session.nothing
        res:text("ok")
      end,
    })
  end

  it("values assigned as properties are read back as properties on the next request", function()
    local _, c = profile_app()
    c:post("/profile")
    c:get("/profile")
    assert.equal(42, seen.userId)
    assert.is_true(is_integer(seen.userId), "userId came back as a float")
    assert.equal("Alice", seen.username)
    assert.equal("admin", seen.role)
    assert.is_nil(seen.missing)
  end)

  it("reads nil for every key before anything was set", function()
    local _, c = profile_app()
    c:get("/profile")
    assert.same({}, seen)
  end)
end)

describe("sessions.md session:set / session:get", function()
  local seen
  local function prefs_app()
    seen = {}
    return app_with(nil, {
      ["POST /prefs"] = function(req, res)
        req.session:set("theme", "dark")
        req.session:set("lang", "fr")
        res:text("ok")
      end,
      ["GET /prefs"] = function(req, res)
        local theme = req.session:get("theme", "light")
        local lang = req.session:get("lang", "en")
        seen.theme, seen.lang, seen.plain = theme, lang, req.session:get("theme")
        res:text("ok")
      end,
    })
  end

  it("get returns the defaults while nothing is set", function()
    local _, c = prefs_app()
    c:get("/prefs")
    assert.same({ theme = "light", lang = "en" }, seen)
  end)

  it("values stored with set are returned by get (not the default) on a later request", function()
    local _, c = prefs_app()
    c:post("/prefs")
    c:get("/prefs")
    assert.same({ theme = "dark", lang = "fr", plain = "dark" }, seen)
  end)

  it("set values are visible as properties too, and a stored false beats the default", function()
    local got
    local _, c = app_with(nil, {
      ["POST /w"] = function(req, res)
        req.session:set("flag", false)
        req.session:set("n", 3)
        res:text("")
      end,
      ["GET /r"] = function(req, res)
        got = { flag = req.session:get("flag", true), n = req.session.n }
        res:text("")
      end,
    })
    c:post("/w")
    c:get("/r")
    assert.same({ flag = false, n = 3 }, got)
  end)
end)

describe("sessions.md session:has", function()
  it("is false before login and true once userId is stored (also for a stored false)", function()
    local log = {}
    local _, c = app_with(nil, {
      ["POST /login"] = function(req, res)
        req.session.userId = 42
        req.session.muted = false
        res:text("")
      end,
      ["GET /"] = function(req, res)
        if req.session:has("userId") then
            -- User is logged in
            log[#log + 1] = "in"
        else
            log[#log + 1] = "out"
        end
        log[#log + 1] = tostring(req.session:has("muted"))
        res:text("")
      end,
    })
    c:get("/")
    c:post("/login")
    c:get("/")
    assert.same({ "out", "false", "in", "true" }, log)
  end)
end)

describe("sessions.md session:all", function()
  it("lists every key and value, and is a copy", function()
    local lines, after
    local _, c = app_with(nil, {
      ["POST /prefs"] = function(req, res)
        req.session:set("theme", "dark")
        req.session:set("lang", "fr")
        res:text("")
      end,
      ["GET /dump"] = function(req, res)
        lines = {}
        local function print(s) lines[#lines + 1] = s end
        local data = req.session:all()
        for key, value in pairs(data) do
            print(key .. " = " .. tostring(value))
        end
        data.theme = "changed in the copy"
        after = req.session.theme
        res:text("")
      end,
    })
    c:post("/prefs")
    c:get("/dump")
    table.sort(lines)
    assert.same({ "lang = fr", "theme = dark" }, lines)
    assert.equal("dark", after)
  end)
end)

describe("sessions.md session:forget", function()
  it("deletes one key, now and for later requests, leaving the others", function()
    local seen = {}
    local _, c = app_with(nil, {
      ["POST /w"] = function(req, res)
        req.session.tempData = "scratch"
        req.session.keep = "kept"
        res:text("")
      end,
      ["POST /forget"] = function(req, res)
        req.session:forget("tempData")
        req.session:forget("neverSet")
        seen.now = req.session.tempData
        res:text("")
      end,
      ["GET /r"] = function(req, res)
        seen.later, seen.has, seen.keep = req.session.tempData, req.session:has("tempData"), req.session.keep
        res:text("")
      end,
    })
    c:post("/w")
    c:post("/forget")
    c:get("/r")
    assert.same({ has = false, keep = "kept" }, seen)
  end)
end)

---------------------------------------------------------------------------
-- Flash Messages
---------------------------------------------------------------------------

describe("sessions.md flash / getFlash (/login -> /dashboard)", function()
  local function flash_app()
    local app, c = app_with(nil, {})
    app:post("/login", function(req, res)
        local data = req:form()
        local user = authenticate(data.username, data.password)
        if user then
            req.session.userId = user.id
            req.session:flash("success", "Welcome back, " .. user.name .. "!")
            res:redirect("/dashboard")
        else
            req.session:flash("error", "Invalid credentials")
            res:redirect("/login")
        end
    end)
    app:get("/dashboard", function(req, res)
        local success = req.session:getFlash("success")
        local error = req.session:getFlash("error")
        res:render("dashboard", {
            flash = { success = success, error = error },
        })
    end)
    -- Not on the page: the login form, showing the error flash.
    app:get("/login", function(req, res)
      res:render("login", { error = req.session:getFlash("error") })
    end)
    return app, c
  end

  it("a good login redirects to a dashboard that shows the welcome message once", function()
    local _, c = flash_app()
    local r = c:post("/login", { form = { username = "alice", password = "wonderland" } })
    assert.equal(302, r.status)
    assert.equal("/dashboard", r.location)
    local view, data = rendered(c:follow(r))
    assert.equal("dashboard", view)
    assert.same({ success = "Welcome back, Alice!" }, data.flash)
    local _, again = rendered(c:get("/dashboard"))
    assert.same({}, again.flash)
  end)

  it("a bad login redirects to /login, which shows the error once", function()
    local _, c = flash_app()
    local r = c:post("/login", { form = { username = "alice", password = "wrong" } })
    assert.equal("/login", r.location)
    local view, data = rendered(c:follow(r))
    assert.equal("login", view)
    assert.equal("Invalid credentials", data.error)
    local _, again = rendered(c:get("/login"))
    assert.is_nil(again.error)
  end)

  it("a flash nobody reads is gone after the next request", function()
    local _, c = flash_app()
    c:post("/login", { form = { username = "alice", password = "wrong" } })
    local _, first = rendered(c:get("/dashboard")) -- reads "success" and "error": consumes the error
    assert.same({ error = "Invalid credentials" }, first.flash)
    c:post("/login", { form = { username = "alice", password = "wrong" } })
    c:get("/nowhere") -- the next request does not read it (404, still a request)
    local _, later = rendered(c:get("/dashboard"))
    assert.same({}, later.flash)
  end)
end)

describe("sessions.md session:clearFlash", function()
  it("drops this request's and the previous request's messages", function()
    local seen = {}
    local _, c = app_with(nil, {
      ["POST /set"] = function(req, res)
        req.session:flash("old", "from before")
        res:text("")
      end,
      ["POST /clear"] = function(req, res)
        req.session:flash("new", "from now")
        req.session:clearFlash()
        seen.old, seen.new = req.session:getFlash("old"), req.session:getFlash("new")
        res:text("")
      end,
      ["GET /read"] = function(req, res)
        seen.next_old, seen.next_new = req.session:getFlash("old"), req.session:getFlash("new")
        res:text("")
      end,
    })
    c:post("/set")
    c:post("/clear")
    c:get("/read")
    assert.same({}, seen)
  end)
end)

---------------------------------------------------------------------------
-- Session Lifecycle
---------------------------------------------------------------------------

describe("sessions.md session:save", function()
  it("writes the store before the handler returns; later writes are still saved at the end", function()
    local store = hs.MemoryStore()
    local in_store
    local _, c = app_with({ store = store }, {
      ["POST /w"] = function(req, res)
        req.session.step = 1
        req.session:save()
        local saved = store:get(req.session:getId())
        in_store = saved and saved.step
        req.session.after = "save"
        res:text("")
      end,
      ["GET /r"] = function(req, res) res:json(req.session:all()) end,
    })
    local r = c:post("/w")
    assert.equal(1, in_store)
    cookie_line(r, "honeymoon.sid")
    assert.same({ step = 1, after = "save" }, cjson.decode(c:get("/r").body))
  end)

  it("stores and sends a session even when it holds no data", function()
    local store = hs.MemoryStore()
    local _, c = app_with({ store = store }, {
      ["POST /w"] = function(req, res)
        req.session:save()
        res:text("")
      end,
    })
    local r = c:post("/w")
    cookie_line(r, "honeymoon.sid")
    assert.equal(1, store:length())
    assert.is_true(store:exists(cookie_id(c, "honeymoon.sid")))
  end)
end)

describe("sessions.md session:destroy (/logout)", function()
  local function logout_app(store)
    local app, c = app_with({ store = store }, {
      ["POST /login"] = function(req, res)
        req.session.userId = 42
        res:text("")
      end,
      ["GET /me"] = function(req, res) res:text(tostring(req.session.userId)) end,
    })
    app:post("/logout", function(req, res)
        req.session:destroy()
        res:redirect("/login")
    end)
    return app, c
  end

  it("logs out: redirects, clears the cookie and forgets the data", function()
    local store = hs.MemoryStore()
    local _, c = logout_app(store)
    c:post("/login")
    local old = c:cookie("honeymoon.sid")
    local old_id = cookie_id(c, "honeymoon.sid")
    assert.is_true(store:exists(old_id))

    local r = c:post("/logout")
    assert.equal(302, r.status)
    assert.equal("/login", r.location)
    assert.matches("^honeymoon%.sid=; .*Max%-Age=0", cookie_line(r, "honeymoon.sid"))
    assert.is_nil(c:cookie("honeymoon.sid"))
    assert.is_false(store:exists(old_id))
    assert.equal("nil", c:get("/me").body)
    -- A copy of the old cookie no longer opens the session.
    assert.equal("nil", c:get("/me", { cookie = "honeymoon.sid=" .. old }).body)
  end)
end)

describe("sessions.md session:regenerate (login)", function()
  local function regen_app(store)
    local app, c = app_with({ store = store }, {
      ["POST /cart"] = function(req, res)
        req.session.cart = { "apple" }
        res:text(req.session:getId())
      end,
      ["GET /me"] = function(req, res)
        res:json({ userId = req.session.userId or cjson.null, cart = req.session.cart or cjson.null })
      end,
    })
    -- After login, regenerate to prevent session fixation
    app:post("/login", function(req, res)
        local user = authenticate(req:form())
        if user then
            req.session:regenerate(true)  -- New ID, keep data
            req.session.userId = user.id
            res:redirect("/dashboard")
        end
    end)
    return app, c
  end

  it("gives the logged-in session a new id, keeps the data and kills the old id", function()
    local store = hs.MemoryStore()
    local _, c = regen_app(store)
    local before = c:post("/cart").body
    local old_cookie = c:cookie("honeymoon.sid")
    assert.equal(before, cookie_id(c, "honeymoon.sid"))

    local r = c:post("/login", { form = { username = "alice", password = "wonderland" } })
    assert.equal("/dashboard", r.location)
    local after = cookie_id(c, "honeymoon.sid")
    assert.is_string(after)
    assert.are_not.equal(before, after)
    assert.same({ userId = 7, cart = { "apple" } }, cjson.decode(c:get("/me").body))
    -- The pre-login cookie (the one an attacker could have planted) never reaches the login:
    -- for the stale grace (10 s) it shows only its own pre-login data, then it is gone.
    assert.same({ userId = cjson.null, cart = { "apple" } },
      cjson.decode(c:get("/me", { cookie = "honeymoon.sid=" .. old_cookie }).body))
    hs._advance_clock(11)
    assert.is_false(store:exists(before))
    assert.same({ userId = cjson.null, cart = cjson.null },
      cjson.decode(c:get("/me", { cookie = "honeymoon.sid=" .. old_cookie }).body))
    assert.same({ userId = 7, cart = { "apple" } }, cjson.decode(c:get("/me").body))
  end)

  it("a failed login leaves the session and its id alone", function()
    local _, c = regen_app(hs.MemoryStore())
    local before = c:post("/cart").body
    local r = c:post("/login", { form = { username = "alice", password = "nope" } })
    assert.equal(200, r.status)
    assert.same({}, cookie_lines(r, "honeymoon.sid"))
    assert.equal(before, cookie_id(c, "honeymoon.sid"))
    assert.same({ userId = cjson.null, cart = { "apple" } }, cjson.decode(c:get("/me").body))
  end)
end)

describe("sessions.md session:getId", function()
  it("is the id in the signed cookie, equals req.sessionID and stays put across requests", function()
    local ids, sids = {}, {}
    local _, c = app_with(nil, {
      ["POST /w"] = function(req, res)
        req.session.x = 1
        local id = req.session:getId()
        ids[#ids + 1] = id
        sids[#sids + 1] = req.sessionID
        res:text("")
      end,
      ["GET /r"] = function(req, res)
        local id = req.session:getId()
        ids[#ids + 1] = id
        res:text("")
      end,
    })
    c:post("/w")
    c:get("/r")
    assert.is_string(ids[1])
    assert.is_true(#ids[1] > 0)
    assert.equal(ids[1], cookie_id(c, "honeymoon.sid"))
    assert.equal(ids[1], ids[2])
    assert.same({ ids[1] }, sids)
  end)
end)

describe("sessions.md MemoryStore", function()
  local function memory_app(store, secret)
    local app = App.new()
    app:use(hs.session({
        store = store,
        secret = secret or "secret",
    }))
    app:post("/w", function(req, res)
      req.session.userId = 42
      res:text("")
    end)
    app:get("/r", function(req, res) res:text(tostring(req.session.userId)) end)
    return app, Client.new(app)
  end

  it("sessions the app writes land in the store it was given", function()
    local store = hs.MemoryStore()
    local _, c = memory_app(store)
    assert.equal(0, store:length())
    c:post("/w")
    assert.equal(1, store:length())
    local id = cookie_id(c, "honeymoon.sid")
    assert.equal(42, store:get(id).userId)
  end)

  it("two apps given the same store and secret share sessions; another store does not", function()
    local store = hs.MemoryStore()
    local _, c = memory_app(store)
    c:post("/w")
    local sid = "honeymoon.sid=" .. c:cookie("honeymoon.sid")
    local _, twin = memory_app(store)
    assert.equal("42", twin:get("/r", { cookie = sid }).body)
    local _, other = memory_app(hs.MemoryStore())
    assert.equal("nil", other:get("/r", { cookie = sid }).body)
  end)
end)

---------------------------------------------------------------------------
-- Complete Example
---------------------------------------------------------------------------

describe("sessions.md Complete Example", function()
  local function complete_example()
    local honeymoon = {
      new = App.new,
      session = hs.session,
      flash = hs.flash,
    }
    local os_ext = { env = os.getenv }
    local settings = { env = "development" }

    local app = honeymoon.new()
    function app:get_setting(key) return settings[key] end

    -- honeymoon.json() and honeymoon.urlencoded(): the test app parses bodies on demand.
    app:use(honeymoon.session({
        name = "app.sid",
        secret = os_ext.env("SESSION_SECRET") or "dev-secret",
        ttl = 86400 * 7,   -- 7 days
        rolling = true,     -- Refresh on each request
        cookie = {
            httpOnly = true,
            secure = app:get_setting("env") == "production",
            sameSite = "Lax",
        },
    }))
    app:use(honeymoon.flash())

    -- Login
    app:post("/login", function(req, res)
        local data = req:form()
        local user = User:where({ email = data.email }):first()

        if user and verifyPassword(data.password, user.password_hash) then
            req.session:regenerate(false)
            req.session.userId = user.id
            req.session.username = user.name
            req.session.role = user.role
            req.session:flash("success", "Welcome back!")
            res:redirect("/dashboard")
        else
            req.session:flash("error", "Invalid email or password")
            res:redirect("/login")
        end
    end)

    -- Dashboard (protected)
    app:get("/dashboard", function(req, res)
        if not req.session:has("userId") then
            return res:redirect("/login")
        end

        res:render("dashboard", {
            username = req.session.username,
            flash = {
                success = req.session:getFlash("success"),
                error = req.session:getFlash("error"),
            },
        })
    end)

    -- Logout
    app:post("/logout", function(req, res)
        req.session:destroy()
        res:redirect("/login")
    end)

    -- Settings
    app:post("/settings/theme", function(req, res)
        local data = req:json()
        req.session:set("theme", data.theme)
        res:json({ theme = data.theme })
    end)

    -- Not on the page: the login form (reads the error through flash()'s req.flash) and a
    -- probe that shows the session's data, standing in for app:listen(3000).
    app:get("/login", function(req, res) res:render("login", { error = req.flash("error") }) end)
    app:get("/whoami", function(req, res) res:json(req.session:all()) end)
    return app, Client.new(app)
  end

  local GOOD = { email = "alice@example.com", password = "wonderland" }
  local WEEK = 86400 * 7

  it("walks login -> dashboard -> settings/theme -> logout", function()
    local _, c = complete_example()

    -- An anonymous visitor is sent to the login page and gets no cookie.
    local r = c:get("/dashboard")
    assert.equal("/login", r.location)
    assert.same({}, cookie_lines(r, "app.sid"))

    -- A wrong password: back to the form, which shows the error once.
    r = c:post("/login", { form = { email = GOOD.email, password = "guess" } })
    assert.equal("/login", r.location)
    local pre_login = cookie_id(c, "app.sid")
    assert.is_string(pre_login)
    local _, form = rendered(c:follow(r))
    assert.equal("Invalid email or password", form.error)
    local _, form_again = rendered(c:get("/login"))
    assert.is_nil(form_again.error)

    -- The right password: a new session id, and the dashboard greets once.
    r = c:post("/login", { form = GOOD })
    assert.equal(302, r.status)
    assert.equal("/dashboard", r.location)
    local id = cookie_id(c, "app.sid")
    assert.is_string(id)
    assert.are_not.equal(pre_login, id)
    local view, page = rendered(c:follow(r))
    assert.equal("dashboard", view)
    assert.equal("Alice", page.username)
    assert.same({ success = "Welcome back!" }, page.flash)
    local _, page2 = rendered(c:get("/dashboard"))
    assert.equal("Alice", page2.username)
    assert.same({}, page2.flash)

    -- Settings: JSON in, JSON out, stored in the session.
    r = c:post("/settings/theme", { json = { theme = "dark" } })
    assert.same({ theme = "dark" }, cjson.decode(r.body))
    assert.same({ userId = 7, username = "Alice", role = "admin", theme = "dark" },
      cjson.decode(c:get("/whoami").body))
    assert.equal(id, cookie_id(c, "app.sid"))

    -- Logout: back to the form, cookie cleared, dashboard locked again.
    local old = "app.sid=" .. c:cookie("app.sid")
    r = c:post("/logout")
    assert.equal("/login", r.location)
    assert.matches("Max%-Age=0", cookie_line(r, "app.sid"))
    assert.is_nil(c:cookie("app.sid"))
    assert.equal("/login", c:get("/dashboard").location)
    assert.equal("/login", c:get("/dashboard", { cookie = old }).location)
  end)

  it("sends a 7-day, non-Secure, HttpOnly, Lax app.sid cookie in development", function()
    local _, c = complete_example()
    c:post("/login", { form = GOOD })
    local attrs = c:cookie_attrs("app.sid")
    assert.equal(WEEK, attrs["max-age"])
    assert.is_true(attrs.httponly)
    assert.is_nil(attrs.secure)
    assert.equal("Lax", attrs.samesite)
    assert.equal("/", attrs.path)
  end)

  it("rolling: every response refreshes the cookie, so an active user stays logged in past 7 days", function()
    local _, c = complete_example()
    c:follow(c:post("/login", { form = GOOD }))
    local r = c:get("/dashboard") -- reads nothing new: unmodified
    assert.matches("Max%-Age=" .. WEEK, cookie_line(r, "app.sid"))
    advance(6 * 86400, c)
    assert.equal(200, c:get("/dashboard").status)
    advance(6 * 86400, c)
    local page = c:get("/dashboard")
    assert.equal(200, page.status)
    assert.equal("Alice", select(2, rendered(page)).username)
  end)

  it("an idle user is logged out after 7 days, in the store as well as in the browser", function()
    local _, c = complete_example()
    c:post("/login", { form = GOOD })
    local kept = "app.sid=" .. c:cookie("app.sid")
    advance(WEEK + 1, c)
    assert.is_nil(c:cookie("app.sid"))
    assert.equal("/login", c:get("/dashboard").location)
    assert.equal("/login", c:get("/dashboard", { cookie = kept }).location)
  end)
end)

---------------------------------------------------------------------------
-- The README's own examples that serve requests. The Quick start runs in
-- scripts/install_check.lua; the block below is read from README.md as it stands, so the spec
-- follows the README rather than a copy of it.
---------------------------------------------------------------------------

---The first ```lua block after heading `heading` in README.md.
local function readme_block(heading)
  local f = assert(io.open("README.md"))
  local readme = f:read("*a")
  f:close()
  local start = assert(readme:find("\n" .. heading .. "\n", 1, true), "README.md has no " .. heading)
  return assert(readme:match("```lua\n(.-)```", start), "no lua block under " .. heading)
end

---Runs `code` with the globals in `env` (and the rest of _G).
local function run_block(code, name, env)
  setmetatable(env, { __index = _G })
  local chunk
  if rawget(_G, "setfenv") then
    chunk = assert(loadstring(code, "=" .. name))
    setfenv(chunk, env)
  else
    chunk = assert(load(code, "=" .. name, "t", env))
  end
  chunk()
end

---A `require` for a README block: `module` comes with its `new(options)` replaced by
---`new(real, options)`, so the spec can adjust the options or keep what the block makes.
local function require_with(module, new)
  local real = require(module)
  return function(name)
    if name == module then return { new = function(o) return new(real, o) end } end
    return require(name)
  end
end

describe("README Log out everywhere", function()
  local function site()
    local app = App.new()
    -- The block's store is a local: the stand-in `hs` hands it over as it is made.
    local store
    local stand_in = setmetatable({
      MemoryStore = function(...)
        store = hs.MemoryStore(...)
        return store
      end,
    }, { __index = hs })
    run_block(readme_block("### Log out everywhere"), "README Log out everywhere", { hs = stand_in, app = app })
    -- Not in the block: a login, the message the redirect carries, and who is logged in.
    app:get("/login", function(req, res)
      req.session:regenerate()
      req.session.userId = tonumber(req.query.user)
      res:text("in")
    end)
    app:get("/message", function(req, res) res:text(tostring(req.session:getFlash("success"))) end)
    app:get("/whoami", function(req, res) res:text(tostring(req.session.userId)) end)
    return app, store
  end

  local function rows_of(r)
    local view, data = rendered(r)
    assert.equal("sessions", view)
    return data.sessions
  end

  it("lists the user's sessions, marks this one, and logs the others out with a flash message", function()
    local app, store = site()
    local a, b, other = Client.new(app), Client.new(app), Client.new(app)
    a:get("/login?user=7")
    b:get("/login?user=7")
    other:get("/login?user=8")

    local rows = rows_of(a:get("/account/sessions"))
    assert.equal(2, #rows)
    local this = 0
    for _, row in ipairs(rows) do
      if row.this then this = this + 1 end
      assert.matches("^%d%d%d%d%-%d%d%-%d%d %d%d:%d%d:%d%d$", row.lastSeen)
    end
    assert.equal(1, this, "exactly one row is the session that asked")

    local r = a:post("/account/logout-others")
    assert.equal(302, r.status)
    assert.equal("/account/sessions", r.location)
    assert.equal("1 other session(s) logged out", a:get("/message").body)
    rows = rows_of(a:get("/account/sessions"))
    assert.equal(1, #rows)
    assert.is_true(rows[1].this)

    assert.equal("7", a:get("/whoami").body)
    assert.equal("nil", b:get("/whoami").body, "the other browser is logged out")
    assert.equal("8", other:get("/whoami").body, "another user's session is untouched")
    assert.equal(1, #store:sessionsOf(7))
  end)
end)

describe("README lua-http and core blocks", function()
  -- Both blocks make their own store (a new MemoryStore): the stand-ins below hand them one
  -- the spec keeps, so a second request finds what the first stored. The block is run as
  -- written; only the names it leaves to the server (stream, response_headers, the core
  -- block's placeholders) are supplied.
  local function cookie_value(line) return (line:match("^honeymoon%.sid=([^;]*)")) end

  it("the lua-http half loads, counts and commits a session across two requests", function()
    local block = readme_block("### lua-http and OpenResty")
    local lua_http = assert(block:match("^(.-)\n%-%- OpenResty"), "no OpenResty part to cut off")
    local store = hs.MemoryStore()
    local stand_in_require = require_with("honeymoon_session.adapters.lua_http", function(real, o)
      o.store = store
      return real.new(o)
    end)
    local function serve(cookie)
      local sent = {}
      local stream = {
        get_headers = function() return { get = function(_, name) if name == "cookie" then return cookie end end } end,
        checktls = function() return nil end,
      }
      local response_headers = { append = function(_, name, value) sent[#sent + 1] = { name, value } end }
      run_block(lua_http, "README lua-http", { require = stand_in_require, stream = stream, response_headers = response_headers })
      assert.equal(1, #sent)
      assert.equal("set-cookie", sent[1][1])
      return sent[1][2]
    end
    local first = serve(nil)
    local second = serve("honeymoon.sid=" .. cookie_value(first))
    assert.equal(cookie_value(first), cookie_value(second), "the same session, found again")
    local id = url_decode(cookie_value(second)):match("^s:(.+)%.[^.]+$")
    assert.equal(2, store:get(id).hits)
  end)

  it("the core block loads the session a Cookie header names, keeps req.sessionID and hands over its lines", function()
    local store = hs.MemoryStore()
    -- rolling: a session the block leaves as it found it still sends its cookie, so the loop
    -- over core:commit's lines has one to hand over.
    local stand_in = setmetatable({
      core = function(o) o.store, o.rolling = store, true; return hs.core(o) end,
    }, { __index = hs })
    local writer = stand_in.core({ secret = "…" })
    local s, id = writer:load(nil)
    s.user = "ann"
    local header = "honeymoon.sid=" .. assert(cookie_value(writer:commit(s)[1]))

    local req, lines = {}, {}
    run_block(readme_block("### Other servers: the core API"), "README core", {
      hs = stand_in, cookie_header_or_nil = header, is_https = false, req_table_or_nil = req,
      add_set_cookie_header = function(line) lines[#lines + 1] = line end,
    })
    assert.equal(id, req.sessionID)
    assert.equal(1, #lines)
    assert.equal(header:match("=(.*)$"), cookie_value(lines[1]))
    assert.equal("ann", store:get(id).user)
  end)
end)

describe("README store blocks", function()
  -- Each block is run as written; a stand-in `require` or `hs` only keeps what the block makes
  -- (its store is a local) and, where the block names a server this process is not, says so.
  local FakeDict = require("spec.support.fake_dict")

  it("the RedisStore block's options are accepted; a request that leaves the session alone needs no Redis", function()
    local app, given = App.new(), nil
    local stand_in = setmetatable({
      session = function(o) given = o; return hs.session(o) end,
    }, { __index = hs })
    -- hs.RedisStore connects lazily: the block runs without a Redis behind its url.
    run_block(readme_block("### RedisStore"), "README RedisStore", { hs = stand_in, app = app })
    assert.equal("connect.sid", given.name)
    assert.equal(getmetatable(hs.RedisStore()), getmetatable(given.store), "a RedisStore")
    app:get("/", function(req, res) res:text(req.sessionID) end)
    local r = Client.new(app):get("/")
    assert.equal(200, r.status)
    assert.equal(32, #r.body)
    assert.same({}, cookie_lines(r, "connect.sid"))
  end)

  it("the event-loop RedisStore block's options are accepted (with cqueues, outside nginx)", function()
    if not pcall(require, "cqueues") then
      pending("cqueues is not installed for this interpreter")
      return
    end
    local made
    local stand_in_require = require_with("honeymoon_session.stores.redis", function(real, o)
      -- The block is OpenResty's; this process is not nginx, so the loop is cqueues'.
      assert.equal("ngx", o.socket)
      o.socket = "cqueues"
      made = real.new(o)
      return made
    end)
    run_block(readme_block("### RedisStore for event loops: `honeymoon_session.stores.redis`"),
      "README event-loop RedisStore", { require = stand_in_require })
    assert.equal("record", made.format)
    assert.equal("sess:", made.prefix)
    assert.equal(32, made.cfg.pool_size)
    assert.equal(60000, made.cfg.pool_idle)
  end)

  it("the SharedDictStore block makes a store that keeps a session across requests (a fake dict)", function()
    local saved = rawget(_G, "ngx")
    _G.ngx = FakeDict.ngx({ "sessions" })
    local ok, err = pcall(function()
      local store
      local stand_in_require = require_with("honeymoon_session.stores.shared_dict", function(real, o)
        store = real.new(o)
        return store
      end)
      run_block(readme_block("### SharedDictStore (nginx, several workers)"), "README SharedDictStore",
        { require = stand_in_require })
      assert.equal(ngx.shared.sessions, store.dict)
      assert.equal("sess:", store.prefix)
      local core = hs.core({ secret = "s", store = store })
      local s, id = core:load(nil)
      s.cart = { items = { 1, 2 } }
      local line = assert(core:commit(s)[1])
      assert.is_string(ngx.shared.sessions:get("sess:" .. id))
      local again = core:load("honeymoon.sid=" .. line:match("^honeymoon%.sid=([^;]*)"))
      assert.same({ items = { 1, 2 } }, again.cart)
    end)
    _G.ngx = saved
    assert(ok, err)
  end)

  it("the OpenResty half starts the session ngx.var.http_cookie names and finishes into ngx.header", function()
    local block = readme_block("### lua-http and OpenResty")
    local openresty_half = assert(block:match("\n(%-%- OpenResty.*)$"), "no OpenResty part")
    local real = require("honeymoon_session.adapters.openresty")
    local saved = rawget(_G, "ngx")
    local fake = FakeDict.ngx({ "sessions" })
    local function request(cookie)
      fake.var, fake.ctx, fake.header, fake.headers_sent = { http_cookie = cookie, scheme = "http" }, {}, {}, false
      return fake
    end
    _G.ngx = fake
    local ok, err = pcall(function()
      -- Another request of the same app (the block's secret) logs in first.
      local writer = real.new({ secret = "…" })
      request(nil)
      local s, id = writer:start()
      s.userId = 7
      writer:finish(s)
      local pair = fake.header["Set-Cookie"]:match("^([^;]*)")
      -- The default store keeps the app's sessions under its cookie name.
      assert.is_string(fake.shared.sessions:get("sess@honeymoon.sid:" .. id))

      -- rolling: a session the block leaves as it found it still sends its cookie, so there is
      -- a line to look at.
      local stand_in_require = require_with("honeymoon_session.adapters.openresty", function(adapter, o)
        o.rolling = true
        return adapter.new(o)
      end)
      request(pair)
      run_block(openresty_half, "README OpenResty", { require = stand_in_require })
      assert.equal(pair, fake.header["Set-Cookie"]:match("^([^;]*)"), "the same session, found again")
    end)
    _G.ngx = saved
    assert(ok, err)
  end)
end)

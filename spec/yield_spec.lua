-- Stores written in Lua are called from Lua, so they may yield (as cosocket and cqueues stores
-- do): a request whose store yields is suspended and resumed by the server's scheduler, and
-- two such requests interleave without mixing their sessions.
local hs = require("honeymoon_session")
local App = require("examples.framework.app")
local TableStore = require("spec.support.table_store")
local Interpreter = require("spec.support.interpreter")

---A table store whose every method yields once before answering, like a network store
---waiting on its socket. `log` records the order of calls.
local function yielding_store(log)
  local inner = TableStore.new()
  local store = {}
  for _, name in ipairs({ "get", "set", "destroy", "touch", "exists", "all", "length", "clear" }) do
    store[name] = function(_, ...)
      log[#log + 1] = name
      coroutine.yield(name)
      return inner[name](inner, ...)
    end
  end
  return store, inner
end

---Runs `app:handle(req)` in a coroutine; returns a stepper that resumes it once and reports
---whether it finished, and its response when it did.
local function start(app, req)
  if not Interpreter.yields_across_pcall then pending(Interpreter.NO_YIELD_IN_PCALL) end
  local co = coroutine.create(function() return app:handle(req) end)
  local response
  return function()
    local ok, r = coroutine.resume(co)
    assert(ok, r)
    if coroutine.status(co) == "dead" then response = r end
    return response
  end
end

local function drive(step)
  for _ = 1, 100 do
    local r = step()
    if r then return r end
  end
  error("the request did not finish in 100 steps")
end

local function cookie_of(r)
  local line = (r.headers["set-cookie"] or {})[1]
  return line and line:match("^([^;]*)")
end

describe("a store written in Lua that yields", function()
  local log, store, app

  before_each(function()
    log = {}
    store = yielding_store(log)
    app = App.new()
    app:use(hs.session({ secret = "yield-secret", store = store }))
    app:get("/inc", function(req, res)
      req.session.n = (req.session.n or 0) + 1
      res:text(tostring(req.session.n))
    end)
    app:get("/who", function(req, res) res:text(tostring(req.session.who)) end)
    for _, name in ipairs({ "alice", "bob" }) do
      app:get("/login-" .. name, function(req, res)
        req.session:regenerate()
        req.session.who = name
        res:text("ok")
      end)
    end
  end)

  it("suspends the request at each store call and finishes it when resumed", function()
    local r = drive(start(app, { method = "GET", path = "/inc", headers = {} }))
    assert.equal("1", r.body)
    local cookie = assert(cookie_of(r))
    log = {}
    local step = start(app, { method = "GET", path = "/inc", headers = { cookie = cookie } })
    assert.is_nil(step()) -- suspended inside store:get
    r = drive(step)
    assert.equal("2", r.body)
  end)

  it("keeps two interleaved requests' sessions apart", function()
    local a = cookie_of(drive(start(app, { method = "GET", path = "/login-alice", headers = {} })))
    local b = cookie_of(drive(start(app, { method = "GET", path = "/login-bob", headers = {} })))
    local sa = start(app, { method = "GET", path = "/who", headers = { cookie = a } })
    local sb = start(app, { method = "GET", path = "/who", headers = { cookie = b } })
    local ra, rb
    for _ = 1, 100 do -- alternate one resume each, as an event loop would
      ra = ra or sa()
      rb = rb or sb()
      if ra and rb then break end
    end
    assert.equal("alice", ra.body)
    assert.equal("bob", rb.body)
  end)
end)

describe("the native crossings", function()
  it("return exactly the values they promise, call after call", function()
    local core = hs.core({ secret = "x" })
    local ctx = core.ctx
    local s = core:load(nil)
    s.k = "v"
    local header = assert(core:_commit(s)):match("^([^;]*)")
    for _ = 1, 1000 do
      -- id, data, flash, shadow, meta, snapshot, version, and for this flat session copy, n
      assert.equal(9, select("#", ctx.load(header)))
      assert.equal(1, select("#", ctx.load("other=1")))
      assert.equal(1, select("#", ctx.id()))
      local loaded = core:load(header)
      assert.equal(4, select("#", ctx.commit("stored", loaded:getId(), loaded, nil, nil,
        getmetatable(loaded).snap, 0, nil)))
    end
  end)

  it("raise plain strings, never error objects", function()
    local ctx = hs.core({ secret = "x" }).ctx
    local ok, err = pcall(ctx.commit, "no such state", "id", {}, nil, nil, nil, 0, nil)
    assert.is_false(ok)
    assert.equal("string", type(err))
    assert.matches("^honeymoon_session: ", err)
    ok, err = pcall(ctx.commit, "stored", "id", { f = print }, nil, nil, nil, 0, nil)
    assert.is_false(ok)
    assert.equal("honeymoon_session: session value f is a function; sessions hold only nil, booleans, numbers, strings and tables of them", err)
  end)
end)

-- Every path of the session API with a store whose every method yields (with and without merge,
-- with and without the stale grace, with an owner index): none may try to yield across a C
-- call, and each must still do its job.
describe("every session path over a store that yields", function()
  local METHODS = { "get", "set", "destroy", "touch", "exists", "all", "length", "clear", "sessionsOf", "destroyAll" }

  local function yielding(with_merge)
    local inner = TableStore.new()
    local store, yields = {}, { n = 0 }
    for _, name in ipairs(METHODS) do
      store[name] = function(_, ...)
        coroutine.yield(name)
        yields.n = yields.n + 1
        return inner[name](inner, ...)
      end
    end
    if with_merge then
      function store.merge(_, id, changed, removed, ttl)
        coroutine.yield("merge")
        yields.n = yields.n + 1
        local current = inner:get(id)
        if current == nil then return false end
        for k, v in pairs(changed) do current[k] = v end
        for _, k in ipairs(removed) do current[k] = nil end
        inner:set(id, current, ttl)
        return true
      end
    end
    return store, yields
  end

  for _, with_merge in ipairs({ false, true }) do
    for _, grace in ipairs({ 10, 0 }) do
      it(("merge: %s, staleGrace: %d"):format(tostring(with_merge), grace), function()
        if not Interpreter.yields_across_pcall then pending(Interpreter.NO_YIELD_IN_PCALL) end
        local store, yields = yielding(with_merge)
        local core = hs.core({ secret = "yield-secret", store = store, staleGrace = grace, index = "uid" })
        -- One request in a coroutine, resumed until done; its cookie (or the one it came with).
        local function request(cookie, handler)
          local before = yields.n
          local co = coroutine.create(function()
            local s = core:load(cookie)
            handler(s)
            return core:commit(s)
          end)
          local ok, lines = coroutine.resume(co)
          while ok and coroutine.status(co) ~= "dead" do ok, lines = coroutine.resume(co) end
          assert(ok, lines)
          assert.is_true(yields.n > before, "the request reached the store")
          return lines[1] and lines[1]:match("^([^;]*)") or cookie
        end
        local c = request(nil, function(s) s.n = 1 end)
        c = request(c, function(s) s.n = s.n + 1 end)
        request(c, function(s) assert.equal(2, s.n); s:touch() end)
        request(c, function(s) s:flash("m", "hi") end)
        request(c, function(s) assert.equal("hi", s:getFlash("m")) end)
        request(c, function(s)
          s.x = 1
          assert.is_true(s:reload())
          assert.is_nil(s.x)
        end)
        request(c, function(s) s.y = 2; assert.is_true(s:save()) end)
        c = request(c, function(s) s:regenerate(true) end)
        c = request(c, function(s) s.uid = "u1"; assert.is_true(s:save()); s:regenerate(true) end)
        c = request(c, function(s) assert.equal("u1", s.uid); s:regenerate(true) end)
        request(c, function(s)
          assert.equal(1, #store:sessionsOf("u1"))
          store:destroyAll("u1", s:getId())
        end)
        c = request(c, function(s) assert.equal(2, s.y); s:regenerate(); s.uid = "u2" end)
        request(c, function(s) assert.equal("u2", s.uid); s:destroy() end)
        request(c, function(s) assert.is_nil(s.uid) end)
      end)
    end
  end
end)

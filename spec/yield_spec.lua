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

-- The framework contract's fallbacks, with a bare-bones framework instead of the test app:
-- no raw headers (req:cookie only), no res:append (res:set only), and the lazy session a
-- visitor without our cookie gets.
local hs = require("honeymoon_session")

local SECRET = "middleware-spec"

-- A request that only offers req:cookie(name) (URL-decoded), and a response with set/send.
local function bare(cookie_value)
  local req = { secure = false }
  function req:cookie(name)
    return name == "honeymoon.sid" and cookie_value or nil
  end
  local res = { headers = {} }
  function res:set(k, v) self.headers[k:lower()] = v end
  function res:send(body) self.body = body end
  return req, res
end

local function run(mw, cookie_value, handler)
  local req, res = bare(cookie_value)
  mw(req, res, function() handler(req, res) end)
  return req, res
end

local function value_of(set_cookie)
  return set_cookie and set_cookie:match("^honeymoon%.sid=([^;]*)")
end

describe("the middleware on a framework without raw headers or res:append", function()
  it("reads the cookie through req:cookie and writes Set-Cookie with res:set", function()
    local mw = hs.session({ secret = SECRET })
    local _, res = run(mw, nil, function(req, res) req.session.user = "ann"; res:send("ok") end)
    local sent = value_of(res.headers["set-cookie"])
    assert.truthy(sent)
    -- The framework hands over the decoded value.
    local decoded = sent:gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end)
    local _, res2 = run(mw, decoded, function(req, res) res:send(req.session.user) end)
    assert.equal("ann", res2.body)
  end)

  it("takes req:cookie's value as decoded already: it is not decoded again nor split at ';'", function()
    local mw = hs.session({ secret = SECRET })
    local _, res = run(mw, nil, function(req, res) req.session.user = "ann"; res:send("ok") end)
    local sent = value_of(res.headers["set-cookie"])
    local function user(value)
      return (select(2, run(mw, value, function(req, res) res:send(tostring(req.session.user)) end))).body
    end
    -- The raw header carried `sent` escaped once more (`%253A`): the framework decoded that
    -- to `sent`, which is not the cookie (express-session and the raw-header path refuse it).
    assert.equal("nil", user(sent))
    -- A value that holds a ';' is one value, not several cookies.
    local decoded = sent:gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end)
    assert.equal("nil", user("x; honeymoon.sid=" .. decoded))
    assert.equal("ann", user(decoded))
  end)

  it("commits when the chain returns without sending", function()
    local store = hs.MemoryStore()
    local mw = hs.session({ secret = SECRET, store = store })
    local _, res = run(mw, nil, function(req) req.session.n = 1 end)
    assert.truthy(res.headers["set-cookie"])
    assert.equal(1, store:length())
  end)
end)

describe("two session middlewares on one response", function()
  it("each commits its own session once, before the framework's send runs", function()
    local a = hs.session({ secret = SECRET, name = "a.sid" })
    local b = hs.session({ secret = SECRET, name = "b.sid" })
    local req = { secure = false, headers = {} }
    local res, sent, lines = { headers = {} }, 0, {}
    function res:append(k, v)
      assert.equal(0, sent, "Set-Cookie after the send")
      lines[#lines + 1] = k .. ": " .. v
    end
    function res:send(body) sent = sent + 1; self.body = body end
    local framework_send = res.send
    a(req, res, function()
      local session_a = req.session
      b(req, res, function()
        session_a.who = "a"
        req.session.who = "b"
        res:send("ok")
        res:send("again") -- commits nothing more
      end)
    end)
    assert.equal(2, sent)
    assert.equal(2, #lines)
    assert.matches("^Set%-Cookie: b%.sid=s%%3A", lines[1]) -- the inner hook runs first
    assert.matches("^Set%-Cookie: a%.sid=s%%3A", lines[2])
    -- Each hook, once committed, gives the instance back the send it found there.
    assert.equal(framework_send, res.send)
  end)

  it("mounted twice in one chain: the first's session stands, committed once, as in express-session", function()
    local store = hs.MemoryStore()
    local mw = hs.session({ secret = SECRET, store = store })
    local req = { secure = false, headers = {} }
    local res, sent, lines = { headers = {} }, 0, {}
    function res:append(k, v) lines[#lines + 1] = k .. ": " .. v end
    function res:send(body) sent = sent + 1; self.body = body end
    local first
    mw(req, res, function()
      first = req.session
      mw(req, res, function()
        assert.equal(first, req.session)
        req.session.n = 1
        res:send("ok")
      end)
    end)
    assert.equal(1, sent)
    assert.equal(1, #lines)
    assert.equal(1, store:length())
  end)

  it("a send a later middleware wraps around the hook stays, and the commit runs once, before the framework's send", function()
    local mw = hs.session({ secret = SECRET })
    local req = { secure = false, headers = {} }
    local res, order = { headers = {} }, {}
    function res:append() order[#order + 1] = "cookie" end
    function res:send() order[#order + 1] = "send" end
    local wrapper
    mw(req, res, function()
      local inner = res.send
      wrapper = function(self, ...)
        order[#order + 1] = "wrapper"
        return inner(self, ...)
      end
      res.send = wrapper
      req.session.n = 1
      res:send("ok")
      res:send("again")
    end)
    assert.same({ "wrapper", "cookie", "send", "wrapper", "send" }, order)
    assert.equal(wrapper, res.send)
  end)
end)

describe("req.session unset by the handler", function()
  -- express-session's default (unset = "keep"): a session the handler unset keeps what the
  -- store holds; this request's changes are not saved, and no cookie goes out.
  it("a handler that unsets req.session (nil or false) leaves the store as it was and sends no cookie", function()
    local store = hs.MemoryStore()
    local mw = hs.session({ secret = SECRET, store = store })
    local function request(cookie, handler, send)
      local req = { secure = false, headers = { cookie = cookie } }
      local res, lines = { headers = {} }, {}
      function res:append(k, v) lines[#lines + 1] = v end
      function res:send(body) self.body = body end
      mw(req, res, function()
        handler(req)
        if send then res:send("ok") end
      end)
      return lines
    end
    local lines = request(nil, function(req) req.session.user = "ann" end, true)
    local cookie = assert(lines[1]):match("^([^;]*)")
    local id = store:all()[1]
    local kept
    for _, unset in ipairs({ false, "nil" }) do
      for _, send in ipairs({ true, false }) do
        lines = request(cookie, function(req)
          req.session.user, req.session.note = "eve", "changed"
          kept = req.session
          req.session = unset ~= "nil" and unset or nil
        end, send)
        assert.same({}, lines)
        assert.same({ user = "ann" }, store:get(id))
        -- Committed all the same: the store stays untouched after the request too.
        assert.matches("after the response was committed", select(2, pcall(kept.save, kept)), 1, true)
      end
    end
    -- A new session unset is not stored either.
    assert.same({}, request(nil, function(req) req.session.user = "bob"; req.session:save(); req.session = nil end, true))
    assert.equal(2, store:length(), "save() wrote at once, as it says")
  end)
end)

describe("the lazy session of a visitor without our cookie", function()
  local store, mw
  before_each(function()
    store = hs.MemoryStore()
    mw = hs.session({ secret = SECRET, store = store })
  end)

  it("answers reads and getId without being stored, and req.sessionID matches", function()
    local req, res = run(mw, nil, function(req, res)
      assert.is_nil(req.session.user)
      assert.is_false(req.session:has("user"))
      assert.equal(req.sessionID, req.session:getId())
      assert.matches("^[%w_-]+$", req.sessionID)
      assert.equal(32, #req.sessionID)
      res:send("ok")
    end)
    assert.is_nil(res.headers["set-cookie"])
    assert.equal(0, store:length())
    assert.equal("honeymoon_session.Session", tostring(req.session))
  end)

  it("answers get, has and all for a visitor with nothing stored, and still refuses bad keys", function()
    run(mw, nil, function(req, res)
      assert.equal("light", req.session:get("theme", "light"))
      assert.is_nil(req.session:get("theme"))
      assert.is_false(req.session:has("userId"))
      assert.same({}, req.session:all())
      local ok, err = pcall(req.session.get, req.session, 42)
      assert.is_false(ok)
      assert.matches("session keys must be strings", tostring(err), 1, true)
      req.session.theme = "dark"
      assert.equal("dark", req.session:get("theme", "light"))
      assert.is_true(req.session:has("theme"))
      assert.same({ theme = "dark" }, req.session:all())
      res:send("ok")
    end)
    assert.equal(1, store:length())
  end)

  it("keeps its id when first written, and regenerate moves req.sessionID", function()
    local first, after
    local req = run(mw, nil, function(req, res)
      first = req.sessionID
      req.session.user = "ann"
      assert.equal(first, req.session:getId())
      after = req.session:regenerate(true)
      res:send("ok")
    end)
    assert.not_equal(first, after)
    assert.equal(after, req.sessionID)
    assert.equal("ann", store:get(after).user)
    assert.is_nil(store:get(first))
  end)

  it("is stored untouched under saveUninitialized", function()
    local eager = hs.session({ secret = SECRET, store = store, saveUninitialized = true })
    local req, res = run(eager, nil, function(_, res) res:send("ok") end)
    assert.truthy(res.headers["set-cookie"])
    assert.is_true(store:exists(req.sessionID))
  end)

  it("keeps its own state out of reach: numeric keys are refused like on a native session", function()
    run(mw, nil, function(req, res)
      local id = req.sessionID
      assert.is_nil(req.session[1])
      local ok, err = pcall(function() req.session[1] = "x" end)
      assert.is_false(ok)
      assert.matches("session keys must be strings", tostring(err), 1, true)
      assert.equal(id, req.session:getId())
      res:send("ok")
    end)
  end)

  it("refuses method calls with a dot instead of a colon", function()
    run(mw, nil, function(req, res)
      local ok, err = pcall(req.session.getId, {})
      assert.is_false(ok)
      assert.matches("called with a colon", tostring(err), 1, true)
      ok = pcall(req.session.set, nil, "k", 1)
      assert.is_false(ok)
      -- A table whose metatable is protected (getmetatable answers its __metatable field).
      for _, protected in ipairs({ true, "locked", 0 }) do
        ok, err = pcall(req.session.get, setmetatable({}, { __metatable = protected }), "k")
        assert.is_false(ok)
        assert.matches("honeymoon_session: session methods are called with a colon", tostring(err), 1, true)
      end
      res:send("ok")
    end)
  end)
end)

describe("pairs(req.session)", function()
  local function keys(s)
    local out = {}
    for k, v in pairs(s) do out[#out + 1] = k .. "=" .. tostring(v) end
    table.sort(out)
    return table.concat(out, ",")
  end

  it("walks the data of a lazy session, then of the native one, never the flash messages", function()
    local mw = hs.session({ secret = SECRET })
    local _, res = run(mw, nil, function(req, res)
      assert.equal("", keys(req.session))
      req.session.a = 1
      req.session:set("b", "x")
      req.session:flash("note", "hidden")
      assert.equal("a=1,b=x", keys(req.session))
      res:send("ok")
    end)
    local cookie = value_of(res.headers["set-cookie"]):gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end)
    run(mw, cookie, function(req, res)
      assert.equal("a=1,b=x", keys(req.session))
      res:send("ok")
    end)
  end)
end)

describe("hs.error_message", function()
  it("gives the plain message of an error a native method raised", function()
    local store = hs.MemoryStore()
    local ok, err = pcall(store.set, store, "id", {}, -1)
    assert.is_false(ok)
    local msg = hs.error_message(err)
    assert.equal("string", type(msg))
    assert.matches("^honeymoon_session: MemoryStore ttl must be", msg)
    assert.is_nil(msg:find("stack traceback", 1, true))
  end)

  it("quotes a bad ttl briefly, a tiny number in exponent form", function()
    local store = hs.MemoryStore()
    local ok, err = pcall(store.set, store, "id", {}, 1e-300)
    assert.is_false(ok)
    assert.matches("got 1e%-300$", hs.error_message(err))
  end)

  it("never raises, not even for an error object whose __tostring fails", function()
    local raising = setmetatable({}, { __tostring = function() error("no text") end })
    local ok, msg = pcall(hs.error_message, raising)
    assert.is_true(ok, msg)
    assert.equal("a table error value", msg)
    assert.equal("boom", hs.error_message("boom"))
    assert.equal("nil", hs.error_message(nil))
  end)
end)

describe("hs._record_meta", function()
  it("never raises: what is not a record (nil from a store's lookup, a table) has no bookkeeping", function()
    for _, v in ipairs({ "", "junk", false, {} }) do
      local r = table.pack and table.pack(pcall(hs._record_meta, v)) or { n = 4, pcall(hs._record_meta, v) }
      assert.is_true(r[1], tostring(r[2]))
      assert.is_nil(r[2])
      assert.is_nil(r[3])
      assert.is_nil(r[4])
    end
    local ok, owner = pcall(hs._record_meta, nil)
    assert.is_true(ok, tostring(owner))
    assert.is_nil(owner)
  end)
end)

describe("hs._owner", function()
  it("raises the module's message when the store's or the method's name is missing", function()
    assert.equal("42", hs._owner(42, "MyStore", "sessionsOf"))
    for _, args in ipairs({ { 42 }, { 42, "MyStore" }, { 42, {}, "sessionsOf" } }) do
      local ok, err = pcall(hs._owner, args[1], args[2], args[3])
      assert.is_false(ok)
      assert.equal("honeymoon_session: _owner(value, store, method) takes the store's and the method's names "
        .. "(strings, for its message)", err)
    end
  end)
end)

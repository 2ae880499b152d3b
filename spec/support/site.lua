-- Helpers the specs share: an app with the session middleware, and reading what came back.
local hs = require("honeymoon_session")
local App = require("examples.framework.app")
local Client = require("examples.framework.client")
local assert = require("luassert")

local M = {}

---An app with session middleware (`opts` over `{ secret = secret }`) and routes keyed
---"METHOD /path"; returns the app and a client with a cookie jar.
---@return table app, table client
function M.app_with(secret, opts, routes)
  local o = { secret = secret }
  for k, v in pairs(opts or {}) do o[k] = v end
  local app = App.new()
  app:use(hs.session(o))
  for key, handler in pairs(routes or {}) do
    local method, path = key:match("^(%u+) (/.*)$")
    app:route(method, path, handler)
  end
  return app, Client.new(app)
end

---An app with the session middleware (`opts` over `{ secret = secret, store = default_store }`)
---and the routes the request-level specs share:
---  /login?user=x  stores user=x        /whoami  answers "<user or -> <sessionID>"
---  /logout        destroys the session /run     runs site.handler(req, res)
---@return table site { app, store, handler }
function M.login_site(secret, default_store, opts)
  local o = { secret = secret, store = default_store }
  for k, v in pairs(opts or {}) do o[k] = v end
  local site = { app = App.new(), store = o.store }
  site.app:use(hs.session(o))
  site.app:get("/login", function(req, res)
    req.session.user = req.query.user or "ann"
    res:text(req.sessionID)
  end)
  site.app:get("/whoami", function(req, res)
    res:text((req.session.user or "-") .. " " .. req.sessionID)
  end)
  site.app:get("/logout", function(req, res)
    req.session:destroy()
    res:text("bye")
  end)
  site.app:get("/run", function(req, res) site.handler(req, res) end)
  return site
end

---The Set-Cookie lines of response `r` for cookie `name`.
function M.cookie_lines(r, name)
  local out = {}
  for _, line in ipairs(r.headers["set-cookie"] or {}) do
    if line:sub(1, #name + 1) == name .. "=" then out[#out + 1] = line end
  end
  return out
end

---The one Set-Cookie line of `r` for `name` (fails when there is not exactly one).
function M.cookie_line(r, name)
  local lines = M.cookie_lines(r, name)
  assert.equal(1, #lines, "expected exactly one Set-Cookie line for " .. name)
  return lines[1]
end

---One attribute of a Set-Cookie line (case-insensitive name); true for flags, nil if absent.
function M.attr(line, key)
  for part in line:gmatch(";%s*([^;]+)") do
    local k, v = part:match("^([^=]+)=(.*)$")
    if k and k:lower() == key:lower() then return v end
    if not k and part:lower() == key:lower() then return true end
  end
end

---Runs `fn` in a coroutine up to its first yield (a request paused in its handler); returns a
---function that resumes it to the end and returns what `fn` returned. Specs that need it mark
---themselves pending on Lua 5.1 (Interpreter.yields_across_pcall).
function M.start(fn)
  local co = coroutine.create(fn)
  assert(coroutine.resume(co))
  assert.equal("suspended", coroutine.status(co))
  return function()
    local ok, r = coroutine.resume(co)
    assert(ok, r)
    return r
  end
end

---A table nesting `levels` levels (itself the first): `{ n = { n = … {} } }`.
function M.nested(levels)
  local top = {}
  local cur = top
  for _ = 2, levels do
    cur.n = {}
    cur = cur.n
  end
  return top
end

---A sorted copy of a list.
function M.sorted(list)
  local copy = {}
  for i, v in ipairs(list) do copy[i] = v end
  table.sort(copy)
  return copy
end

---Moves the module's clock and the given clients' jar clocks forward together.
function M.advance(seconds, ...)
  hs._advance_clock(seconds)
  for _, c in ipairs({ ... }) do c:advance(seconds) end
end

return M

-- Run by scripts/install_check.sh with only a luarocks tree on the module paths, from outside the
-- checkout:  <lua> install_check.lua TREE REPO
-- 1. require("honeymoon_session") loads the module installed in TREE (not a build/ copy);
-- 2. every Lua module the rock installed loads with require;
-- 3. the README's Quick start, taken from README.md as it stands, runs in the test framework
--    (examples/framework, HoneyMoon's request/response contract) and serves a login request
--    whose session and flash message reach the next request.
-- Prints "install check ok: ..." or raises.
local tree, repo = assert(arg[1], "usage: install_check.lua TREE REPO"), assert(arg[2])

local function search(name, path) -- package.searchpath, which Lua 5.1 lacks
  for template in path:gmatch("[^;]+") do
    local file = template:gsub("%?", (name:gsub("%.", "/")))
    local f = io.open(file)
    if f then f:close(); return file end
  end
end

-- 1. The native module, from the tree.
local hs = require("honeymoon_session")
local so = search("honeymoon_session", package.cpath)
assert(so and so:sub(1, #tree) == tree, "honeymoon_session loaded from " .. tostring(so) .. ", not from " .. tree)
assert(type(hs.session) == "function" and type(hs.flash) == "function", "the export table lacks session/flash")
assert(hs._advance_clock == nil, "the rock was built with the test-hooks feature")

-- 2. Every installed Lua module (the shell passes their names after TREE and REPO).
local modules = {}
for i = 3, #arg do
  assert(require(arg[i]), arg[i] .. " returned nothing")
  modules[#modules + 1] = arg[i]
end
assert(#modules > 0, "no Lua modules were installed")

-- 3. The README's Quick start.
local readme = assert(io.open(repo .. "/README.md")):read("*a")
local quick = assert(readme:match("\n## Quick start\n.-```lua\n(.-)```"), "README.md has no Quick start block")
package.path = repo .. "/?.lua;" .. package.path -- examples.framework only: the module stays the tree's
local App = require("examples.framework.app")
local Client = require("examples.framework.client")
local app = App.new()
local env = setmetatable({ app = app }, { __index = _G })
local chunk
if setfenv then
  chunk = assert(loadstring(quick, "=README Quick start"))
  setfenv(chunk, env)
else
  chunk = assert(load(quick, "=README Quick start", "t", env))
end
chunk()
app:get("/dashboard", function(req, res)
  res:text(("user %s: %s"):format(tostring(req.session.userId), tostring(req.session:getFlash("success"))))
end)

local c = Client.new(app)
local login = c:post("/login")
assert(login.status == 302 and login.location == "/dashboard", "POST /login answered " .. tostring(login.status))
local set = login.headers["set-cookie"]
set = type(set) == "table" and set[1] or set
assert(set and set:match("^honeymoon%.sid=s%%3A[%w_-]+%.") and set:find("SameSite=Lax", 1, true),
  "login sent no session cookie: " .. tostring(set))
local dash = c:follow(login)
assert(dash.status == 200 and dash.body == "user 42: Welcome back!", "GET /dashboard: " .. tostring(dash.body))
local again = c:get("/dashboard")
assert(again.body == "user 42: nil", "the flash message outlived its read: " .. tostring(again.body))

print(("install check ok: honeymoon_session %s on %s from %s; %s"):format(hs.version,
  rawget(_G, "jit") and jit.version or _VERSION, so, table.concat(modules, ", ")))

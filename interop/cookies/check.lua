-- The Lua side of the cookie differential (interop/cookies.test.mjs): reads the cases
-- interop/cookies/cases.mjs wrote (the file named by the first argument) and, for each, asks
-- honeymoon_session through its core which ids the Cookie header names (the candidates a Lua
-- store is asked for, in order) and which session core:load loads, over a store that holds the
-- case's live ids. Prints "not ok N - …" for a case that differs from express-session's reading
-- (as the cases file states it), and last "cookies: N passed, N failed".
-- Run as: HS_CPATH=build/luajit/?.so luajit interop/cookies/check.lua cases.txt
package.cpath = (os.getenv("HS_CPATH") or "./build/luajit/?.so") .. ";" .. package.cpath
local hs = require("honeymoon_session")

local function unhex(h)
    if h == "-" then return nil end
    return (h:gsub("..", function(x) return string.char(tonumber(x, 16)) end))
end

local function list(field)
    local out = {}
    if field == "-" then return out end
    for h in field:gmatch("[^,]+") do out[#out + 1] = unhex(h) end
    return out
end

local function show(s)
    if s == nil then return "none" end
    return (string.format("%q", s):gsub("\\\n", "\\n"))
end

-- A Lua store that holds exactly the ids it is told are live (or all of them).
local LiveStore = {}
LiveStore.__index = LiveStore
function LiveStore:get(id)
    if self.every or self.live[id] then return { mark = id } end
    return nil
end
function LiveStore:set() end
function LiveStore:destroy() end
function LiveStore:touch() end
function LiveStore:exists(id) return self.every or self.live[id] == true end
function LiveStore:all() return {} end
function LiveStore:length() return 0 end
function LiveStore:clear() end

local cores = {}
local function core_for(name, secrets_field)
    local key = name .. "\0" .. secrets_field
    local c = cores[key]
    if c == nil then
        local store = setmetatable({ live = {} }, LiveStore)
        local secrets = list(secrets_field)
        c = { core = hs.core({ name = name, secret = secrets, store = store, cookie = { secure = true } }), store = store }
        cores[key] = c
    end
    return c
end

local path = assert(arg[1], "usage: check.lua CASES_FILE")
local passed, failed = 0, 0
for line in io.lines(path) do
    local fields = {}
    for f in line:gmatch("[^\t]+") do fields[#fields + 1] = f end
    local n, name, secrets, live, header = fields[2], unhex(fields[3]), fields[4], fields[5], unhex(fields[6])
    local want, want_live = list(fields[7]), unhex(fields[8])
    local c = core_for(name, secrets)
    c.store.every = live == "*"
    c.store.live = {}
    if live ~= "*" then
        for _, id in ipairs(list(live)) do c.store.live[id] = true end
    end
    local problems = {}
    local got = { c.core.ctx.candidates(header) }
    if table.concat(got, ",") ~= table.concat(want, ",") or #got ~= #want then
        local g, w = {}, {}
        for i, v in ipairs(got) do g[i] = show(v) end
        for i, v in ipairs(want) do w[i] = show(v) end
        problems[#problems + 1] = "candidates {" .. table.concat(g, ", ") .. "}, express-session's reading gives {"
            .. table.concat(w, ", ") .. "}"
    end
    local ok, _, id = pcall(c.core.load, c.core, header)
    if not ok then
        problems[#problems + 1] = "core:load raised " .. tostring(_)
    elseif want_live ~= nil and id ~= want_live then
        problems[#problems + 1] = "core:load loaded " .. show(id) .. ", want " .. show(want_live)
    elseif want_live == nil then
        -- A fresh id: none the header named.
        for _, cand in ipairs(got) do
            if id == cand then problems[#problems + 1] = "core:load loaded " .. show(id) .. ", want a fresh id" end
        end
        if type(id) ~= "string" or #id ~= 32 then problems[#problems + 1] = "fresh id " .. show(id) end
    end
    if #problems == 0 then
        passed = passed + 1
    else
        failed = failed + 1
        print(("not ok %s - name %s, header %s: %s"):format(n, show(name), show(header), table.concat(problems, "; ")))
    end
end
print(("cookies: %d passed, %d failed"):format(passed, failed))
os.exit(failed == 0 and passed > 0 and 0 or 1)

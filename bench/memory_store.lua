-- MemoryStore at scale: memory per session against its id + payload, get/set cost as the store
-- grows, and what a request pays while a million sessions expire at once.
-- Usage: lua5.4 bench/memory_store.lua [sessions]   (default 1000000)
local flavour = rawget(_G, "jit") and "luajit" or "lua54"
package.cpath = "./build/" .. flavour .. "/?.so;" .. package.cpath

local hs = require("honeymoon_session")
local clock = hs._monotonic -- wall time: os.clock would miss time spent waiting on Redis
local N = tonumber(arg and arg[1]) or 1000000

local function rss_kib()
    local f = assert(io.open("/proc/self/status"))
    local kib = f:read("*a"):match("VmRSS:%s+(%d+)")
    f:close()
    return tonumber(kib)
end

-- A typical logged-in session; its stored size follows the codec (tag, lengths, values).
local payload = { userId = 12345, username = "alice", role = "admin", theme = "dark" }
local function stored_size(t)
    local size = 2 -- map tag + count
    for k, v in pairs(t) do
        size = size + 2 + #k + (type(v) == "string" and 2 + #v or 9)
    end
    return size
end
local ID_LEN = 32
local function id(i) return ("%032d"):format(i) end

local store = hs.MemoryStore()
local function timed(n, f)
    local t0 = clock()
    for i = 1, n do f(i) end
    return (clock() - t0) / n * 1e6
end

collectgarbage()
local before = rss_kib()
local set_small
for i = 1, N do
    store:set(id(i), payload, 3600)
    if i == 10000 then set_small = timed(20000, function(j) store:set(id(j), payload, 3600) end) end
end
collectgarbage()
local per = (rss_kib() - before) * 1024 / N
local ideal = ID_LEN + stored_size(payload)
print(("honeymoon_session %s on %s, %d sessions"):format(hs.version,
    rawget(_G, "jit") and jit.version or _VERSION, N))
print(("memory per session: %.0f bytes (id %d + payload %d = %d; target <= %d)"):format(
    per, ID_LEN, stored_size(payload), ideal, 2 * ideal))

local get_big = timed(200000, function(i) store:get(id((i * 7919) % N + 1)) end)
local set_big = timed(200000, function(i) store:set(id((i * 7919) % N + 1), payload, 3600) end)
local store2 = hs.MemoryStore()
for i = 1, 10000 do store2:set(id(i), payload, 3600) end
local get_small = timed(200000, function(i) store2:get(id((i * 7919) % 10000 + 1)) end)
print(("get: %.2f us at 10k sessions, %.2f us at %d"):format(get_small, get_big, N))
print(("set: %.2f us at 10k sessions, %.2f us at %d"):format(set_small, set_big, N))
print(("length(): %.2f us"):format(timed(100000, function() store:length() end)))

-- Everything expires at once; requests go on. Each call reclaims at most a few entries.
hs._advance_clock(3601)
local worst, total = 0, 0
for i = 1, 20000 do
    local t0 = clock()
    store:set("fresh" .. i, payload, 3600)
    local dt = clock() - t0
    total = total + dt
    if dt > worst then worst = dt end
end
print(("while %d sessions expire: set %.2f us on average, worst %.0f us"):format(N, total / 20000 * 1e6, worst * 1e6))
local t0 = clock()
local left = store:length()
print(("first length() after: %d live, reclaiming the rest took %.0f ms (once, not per request)"):format(
    left, (clock() - t0) * 1e3))

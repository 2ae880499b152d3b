-- Issue 8.1 with a real fork(): `luajit spec/support/fork_check.lua PORT` (run from the
-- checkout, with build/luajit built). LuaJIT's FFI reaches fork() without a C module; Lua 5.4
-- has no way to, so the spec runs this under LuaJIT on both interpreters.
-- Prints one line: "new_connections=N lua_new_connections=N parent_foreign=N parent_errors=N
-- child_exit=N".
--   new_connections: connections redis accepted for a child's first call of hs.RedisStore
--   (want 1); lua_new_connections: the same for the Lua RedisStore's cqueues pool (want 1);
--   the other counts: reads of the other process's session, errors (want 0).
local ffi = require("ffi")
ffi.cdef [[
int fork(void);
int waitpid(int pid, int *status, int options);
void _exit(int status);
]]
package.cpath = "./build/luajit/?.so;" .. package.cpath
package.path = "./lua/?.lua;" .. package.path
local hs = require("honeymoon_session")

local port = assert(tonumber(arg[1]), "usage: luajit spec/support/fork_check.lua PORT")
local ROUNDS = 300

local store = hs.RedisStore({ url = "redis://127.0.0.1:" .. port, commandTimeout = 1000 })

local function total_connections()
    local p = assert(io.popen("redis-cli -p " .. port .. " INFO stats"))
    local s = p:read("*a")
    p:close()
    return assert(tonumber(s:match("total_connections_received:(%d+)")))
end

local function wait(pid)
    local status = ffi.new("int[1]")
    ffi.C.waitpid(pid, status, 0)
    return math.floor(status[0] / 256) % 256 -- WEXITSTATUS
end

-- Reads and writes its own session ROUNDS times; returns reads of another session, errors.
local function hammer(who)
    local foreign, errors = 0, 0
    for i = 1, ROUNDS do
        local ok, got = pcall(function()
            store:set(who, { who = who, i = i }, 60)
            return store:get(who)
        end)
        if not ok then
            errors = errors + 1
        elseif not got or got.who ~= who then
            foreign = foreign + 1
        end
    end
    return foreign, errors
end

store:set("parent", { who = "parent" }, 60) -- the parent's connection is open from here on

-- 1. A child's first call connects anew instead of writing to the parent's socket.
local before = total_connections()
local pid = ffi.C.fork()
if pid == 0 then
    local ok = pcall(store.exists, store, "parent")
    ffi.C._exit(ok and 0 or 1)
end
wait(pid)
local new_connections = total_connections() - before - 1 -- less our own redis-cli

-- The Lua store on cqueues: its pooled connection stays the parent's too.
local lua_store = require("honeymoon_session.stores.redis").new({
    url = "redis://127.0.0.1:" .. port, socket = "cqueues",
})
lua_store:exists("parent") -- one pooled connection
before = total_connections()
pid = ffi.C.fork()
if pid == 0 then
    local ok = pcall(lua_store.exists, lua_store, "parent")
    ffi.C._exit(ok and 0 or 1)
end
wait(pid)
local lua_new_connections = total_connections() - before - 1
lua_store:exists("parent") -- and the parent's pooled connection still works

-- 2. Parent and child at once, each on its own session: nobody reads the other's.
pid = ffi.C.fork()
if pid == 0 then
    local ok, foreign, errors = pcall(hammer, "child")
    ffi.C._exit(ok and math.min(foreign + errors, 255) or 255)
end
local foreign, errors = hammer("parent")
local child_exit = wait(pid)
print(("new_connections=%d lua_new_connections=%d parent_foreign=%d parent_errors=%d child_exit=%d")
    :format(new_connections, lua_new_connections, foreign, errors, child_exit))

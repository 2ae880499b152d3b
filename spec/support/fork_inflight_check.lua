-- The Lua RedisStore's cqueues pool when fork() comes while a call waits for its reply (a
-- coroutine suspended in the store, another one forking): `luajit
-- spec/support/fork_inflight_check.lua PORT` (from the checkout, with build/luajit built; LuaJIT's
-- FFI reaches fork()). The call's connection was opened by the parent; when it ends in the child,
-- the child must not pool it, or its next call would write to the parent's socket.
-- Prints one line: "child_new_connections=N child_exit=N": connections redis accepted for the
-- child's next call (want 1) and the child's exit status (want 0: its calls worked).
local ffi = require("ffi")
ffi.cdef [[
int fork(void);
int waitpid(int pid, int *status, int options);
void _exit(int status);
]]
package.cpath = "./build/luajit/?.so;" .. package.cpath
package.path = "./lua/?.lua;" .. package.path
local R = require("honeymoon_session")._redis
local cqueues = require("cqueues")

local port = assert(tonumber(arg[1]), "usage: luajit spec/support/fork_inflight_check.lua PORT")
local function cli(args)
    local p = assert(io.popen("redis-cli -p " .. port .. " " .. args .. " 2>&1"))
    local s = p:read("*a")
    p:close()
    return s
end
local function total_connections()
    return assert(tonumber(cli("INFO stats"):match("total_connections_received:(%d+)")))
end

local store = require("honeymoon_session.stores.redis").new({
    url = "redis://127.0.0.1:" .. port, socket = "cqueues", commandTimeout = 5000,
})
-- Writes wait while redis is paused (reads, INFO included, do not): the set below is in flight.
cli("CLIENT PAUSE 1000 WRITE")
local cq = cqueues.new()
local done = false
cq:wrap(function()
    store:set("inflight", R.record({ a = 1 }), 60)
    done = true
end)
for _ = 1, 5 do assert(cq:step(0.01)) end -- sent; its reply is held by the pause
assert(not done, "the set did not wait for the pause")

local pid = ffi.C.fork()
if pid == 0 then
    -- The child ends the call (the parent, in waitpid, never reads that socket), then calls again.
    local ok = pcall(function()
        local deadline = cqueues.monotime() + 10
        while not done and cqueues.monotime() < deadline do assert(cq:step(0.05)) end
        assert(done, "the in-flight set did not finish")
        local before = total_connections()
        assert(store:exists("inflight"))
        local new = total_connections() - before - 1 -- less our own redis-cli
        io.stdout:write("child_new_connections=", new, " ")
        io.stdout:flush()
    end)
    ffi.C._exit(ok and 0 or 1)
end
local status = ffi.new("int[1]")
ffi.C.waitpid(pid, status, 0)
print(("child_exit=%d"):format(math.floor(status[0] / 256) % 256))

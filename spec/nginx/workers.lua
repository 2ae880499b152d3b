-- Test routes beside the nginx demo, for scripts/nginx_workers_check.sh (busted does not load
-- this file). They go through the demo's own OpenResty adapter (examples/demo/openresty.lua:
-- the SharedDictStore on `lua_shared_dict sessions` the demo makes), so they read and write
-- the same sessions as the demo's pages, under the same cookie.
--   GET /t/write?key=K   loads the session, waits 10 ms (so requests on both workers hold the
--                        same version at once), sets session[K] = this worker's pid, commits;
--                        answers "wrote K PID"
--   GET /t/read          the session's data as JSON
--   GET /t/error         a handler error that escapes (nothing catches it): nginx logs it
--   GET /t/error-commit  a nested session value the module refuses at commit (native code
--                        finds it): the module's error escapes finish()
--   GET /t/exec          sets session.before = 1, finishes, then ngx.exec("/t/exec-target"),
--                        which starts the session again (a fresh ngx.ctx), sets after = 1,
--                        finishes and answers the session's data as JSON
local hs = require("honeymoon_session")
local adapter = require("examples.demo.openresty").adapter

local ngx = ngx
local M = {}

function M.write()
    local key = ngx.var.arg_key
    if key == nil or not key:match("^k%d+$") then
        ngx.status = 400
        return ngx.say("key must be k<digits>")
    end
    local session = adapter:start()
    ngx.sleep(0.01)
    local pid = ngx.worker.pid()
    session[key] = pid
    adapter:finish(session)
    ngx.say("wrote ", key, " ", pid)
end

function M.read()
    local session = adapter:start()
    local data = session:all()
    adapter:finish(session)
    ngx.header["Content-Type"] = "application/json"
    ngx.say(hs.json.encode(data))
end

function M.error()
    adapter:start()
    error("a handler failed on purpose (workers check)")
end

function M.error_commit()
    local session = adapter:start()
    session.callback = { f = function() end } -- not storable: commit refuses it, naming the path
    adapter:finish(session)
    ngx.say("not reached")
end

function M.exec()
    local session = adapter:start()
    session.before = 1
    adapter:finish(session) -- before the redirect, as the README says
    return ngx.exec("/t/exec-target")
end

function M.exec_target()
    local session = adapter:start()
    session.after = 1
    adapter:finish(session)
    ngx.header["Content-Type"] = "application/json"
    ngx.say(hs.json.encode(session:all()))
end

return M

-- honeymoon_session for OpenResty / nginx with lua-nginx-module (LuaJIT build of the module).
-- A thin layer over core:load / core:commit: it reads ngx.var.http_cookie and ngx.var.scheme,
-- and adds the Set-Cookie line to ngx.header; every session decision is the core's.
--
-- nginx.conf:
--   lua_package_cpath "/path/to/build/luajit/?.so;;";     -- honeymoon_session.so (LuaJIT)
--   lua_package_path  "/path/to/lua/?.lua;;";             -- this file
--   location / { content_by_lua_block { require("myapp").handle() } }
--
-- myapp.lua (a module, so the adapter and its MemoryStore are made once per worker):
--   local adapter = require("honeymoon_session.adapters.openresty").new({ secret = "...", name = "app.sid" })
--   local M = {}
--   function M.handle()
--       local session = adapter:start()        -- access or content phase
--       session.hits = (session.hits or 0) + 1  -- the same API as req.session
--       adapter:finish(session)                 -- once, BEFORE ngx.say/ngx.print/ngx.redirect/ngx.exit
--       ngx.say("hits ", session.hits)
--   end
--   return M
--
-- start(req) also keeps the session in ngx.ctx.session, so an access_by_lua phase can start it
-- and the content phase can use and finish it (adapter:finish() with no argument finishes
-- ngx.ctx.session). finish appends to a Set-Cookie header set earlier (string or table) instead
-- of replacing it, and returns the list of lines. A store failure raises from finish; respond
-- with a 500 then. Headers can only be set before the response is sent: finish after ngx.say
-- or ngx.flush raises (nginx itself would only log it and drop the cookie).
--
-- The MemoryStore lives in one worker process: with worker_processes > 1 a session written by
-- one worker is unknown to the others, and a reload (new workers) loses them all. Run one worker,
-- or use a store outside the process: RedisStore (its socket I/O blocks the worker's event loop
-- for each round trip) or a Lua store. Store methods are called from native code and must not
-- yield, so a store built on cosockets (ngx.socket.tcp) does not work (yet).
local type = type

local Adapter = {}
Adapter.__index = Adapter

---@param opts_or_core table|userdata session options (as for session()) or a core
local function new(opts_or_core)
    local core = require("honeymoon_session").core(opts_or_core) -- a core comes back as it is
    -- The methods looked up once: a call through the userdata looks them up every time.
    return setmetatable({ core = core, name = core.name, _load = core.load, _commit = core.commit }, Adapter)
end

---Load this request's session (ngx.var.http_cookie; Secure decided by ngx.var.scheme).
---@param req table? optional request table; its sessionID is kept in step
---@return userdata session, string id
function Adapter:start(req)
    local var = ngx.var
    local session, id = self._load(self.core, var.http_cookie, var.scheme == "https", req)
    ngx.ctx.session = session
    return session, id
end

---Commit the session and add its Set-Cookie line (if any) to the response headers.
---@param session userdata? defaults to ngx.ctx.session
---@return string[] lines the Set-Cookie values (0 or 1)
function Adapter:finish(session)
    local ctx = ngx.ctx
    if session == nil then session = ctx.session end
    if session == nil then error("honeymoon_session: finish() without start()", 2) end
    if ngx.headers_sent then
        -- nginx would only log that the header came too late: say so, before storing anything.
        error("honeymoon_session: finish() after the response headers were sent; call it before ngx.say/ngx.print/ngx.flush", 2)
    end
    if ctx.session == session then ctx.session = nil end
    local lines = self._commit(self.core, session)
    local line = lines[1]
    if line ~= nil then
        local header = ngx.header
        local current = header["Set-Cookie"]
        if current == nil then
            header["Set-Cookie"] = line
        elseif type(current) == "table" then
            local all = {}
            for i = 1, #current do all[i] = current[i] end
            all[#all + 1] = line
            header["Set-Cookie"] = all
        else
            header["Set-Cookie"] = { current, line }
        end
    end
    return lines
end

return { new = new }

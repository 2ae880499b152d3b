-- honeymoon_session for OpenResty / nginx with lua-nginx-module (LuaJIT build of the module).
-- A thin layer over core:load / core:commit: it reads ngx.var.http_cookie and ngx.var.scheme,
-- and adds the Set-Cookie line to ngx.header; every session decision is the core's.
--
-- nginx.conf:
--   lua_package_cpath "/path/to/build/luajit/?.so;;";     -- honeymoon_session.so (LuaJIT)
--   lua_package_path  "/path/to/lua/?.lua;;";             -- this file
--   lua_shared_dict   sessions 10m;                       -- the default store (see "The store")
--   location / { content_by_lua_block { require("myapp").handle() } }
--
-- myapp.lua (a module, so the adapter is made once per worker):
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
-- The store. nginx runs several worker processes (`worker_processes auto`), and a request of one
-- user may land on any of them, so the store must be shared by all workers:
--   * By default (no `store` option) the adapter keeps sessions in the lua_shared_dict named
--     "sessions" through SharedDictStore (honeymoon_session.stores.shared_dict), which every
--     worker of this nginx shares and whose merge is atomic across workers. Declare the dict
--     in nginx.conf's http block:   lua_shared_dict sessions 10m;
--     The option `shared_dict = "name"` picks another dict. new() raises, naming the dict, if
--     it is not declared (or outside nginx): it never falls back to a per-worker store, which
--     would log users out whenever a request lands on another worker.
--   * `store = ...` uses that store instead, as session() does: a SharedDictStore with options
--     of your own (prefix, lock timeouts), the Lua RedisStore on cosockets
--     (honeymoon_session.stores.redis, socket = "ngx") to share sessions between several nginx
--     hosts or with Node, or any store written in Lua. Store methods are called from Lua, so a
--     store may yield (cosockets, ngx.sleep). hs.MemoryStore() lives in one worker: only with
--     `worker_processes 1`, and a reload (new workers) loses its sessions. The native
--     hs.RedisStore blocks the worker for each round trip: not here.
--   * Passing a core (require("honeymoon_session").core(opts)) uses the core's store as it is.
-- adapter.store is the store in use (nil for a core's own default MemoryStore).
--
-- start(req) also keeps the session in ngx.ctx.session, so an access_by_lua phase can start it
-- and the content phase can use and finish it (adapter:finish() with no argument finishes the
-- session this adapter started, else ngx.ctx.session). A start() after a finish() in the request
-- (a later phase, or the location an ngx.exec reached: ngx.ctx is emptied, the response
-- headers are kept) loads the session whose cookie that finish() set. Two adapters (two cookie
-- names) in one request each hand back and finish their own; ngx.ctx.session is the latest
-- start()'s. finish appends to a Set-Cookie header set earlier (string or table) instead of
-- replacing it, and returns the list of lines. A store failure raises from finish; respond
-- with a 500 then. Headers can only be set before the response is sent: finish after ngx.say
-- or ngx.flush raises (nginx itself would only log it and drop the cookie). start and finish
-- call the store from Lua, so they may yield: call them from the rewrite, access or content
-- phase (a timer has no request to take a cookie from or send one with). A subrequest sharing
-- the request's ngx.ctx (ngx.location.capture(uri, { ctx = ngx.ctx })) gets the request's
-- session from start(), and its finish() leaves the commit to the request's finish(): a
-- subrequest's response headers never reach the client.
local type, next, pcall, error, getmetatable, setmetatable, rawset, rawget =
    type, next, pcall, error, getmetatable, setmetatable, rawset, rawget
local sub, find = string.sub, string.find
local raw_metatable = debug and debug.getmetatable or getmetatable
local hs = require("honeymoon_session")

local Adapter = {}
Adapter.__index = Adapter

local DEFAULT_DICT = "sessions"

---The options for the core: `opts` without the adapter's own `shared_dict`, and with a
---SharedDictStore on that dict when no store is given. The caller's table is not changed.
---@return table options, any store
local function with_store(opts)
    local dict = opts.shared_dict
    if dict ~= nil and type(dict) ~= "string" then
        error("honeymoon_session: adapters.openresty: shared_dict must be the name of a lua_shared_dict, got a "
            .. type(dict), 3)
    end
    if opts.store ~= nil then
        if dict ~= nil then
            error("honeymoon_session: adapters.openresty: give either store or shared_dict, not both "
                .. "(shared_dict names the dict of the default SharedDictStore)", 3)
        end
        return opts, opts.store
    end
    -- Apps in one nginx share the default dict: each keeps its sessions under its own cookie
    -- name, so one app's all(), sessionsOf or destroyAll never reaches another's sessions. A
    -- name cannot hold "@" or ":", so no prefix of this form starts another, nor does it start
    -- SharedDictStore's own default, "sess:" (a store the app made on the same dict).
    local name = opts.name
    if type(name) ~= "string" then name = hs._default_name end -- a bad name: hs.core names it
    local ok, store = pcall(function()
        return require("honeymoon_session.stores.shared_dict").new({
            dict = dict or DEFAULT_DICT, prefix = "sess@" .. name .. ":",
        })
    end)
    if not ok then
        error("honeymoon_session: adapters.openresty: no store given, and the default one (SharedDictStore, "
            .. "shared by every nginx worker) cannot be made: "
            .. tostring(store):gsub("^honeymoon_session: SharedDictStore: ", "")
            .. "; or pass store = ... (hs.MemoryStore() only with worker_processes 1)", 3)
    end
    -- The copy keeps the metatable, so the engine judges it as it would the caller's table (one
    -- whose fields come through __index is refused); debug.getmetatable: a __metatable field
    -- must not hide it.
    local copy = setmetatable({}, raw_metatable(opts))
    for k, v in next, opts do
        if k ~= "shared_dict" then rawset(copy, k, v) end
    end
    rawset(copy, "store", store)
    return copy, store
end

-- A method called with a dot: say so at the caller's line (the module's one check, shared with
-- the core; honeymoon_session never requires an adapter, so this makes no cycle).
local check_self = hs._colon_check(Adapter, "adapter")

---@param opts_or_core table session options (as for session(), plus shared_dict) or a core
local function new(opts_or_core)
    if opts_or_core == nil then opts_or_core = {} end
    if type(opts_or_core) ~= "table" then
        error("honeymoon_session: adapters.openresty: new takes an options table or a core, got a " .. type(opts_or_core), 2)
    end
    local opts, store = opts_or_core, nil
    if getmetatable(opts_or_core) ~= nil and type(opts_or_core.ctx) == "table" then
        store = opts_or_core.ctx.store -- a core: its store as it is
    else
        if opts_or_core.secret == nil then
            -- session() draws a random secret per process when none is given; under nginx
            -- that is one per worker (and new ones at each reload), so a cookie one worker
            -- signed would be refused by the others: users logged out at random.
            error("honeymoon_session: adapters.openresty needs a secret: without one each nginx worker "
                .. "(and each reload) would sign with a random secret of its own and refuse the others' "
                .. "cookies; pass secret = os.getenv(\"SESSION_SECRET\") (with `env SESSION_SECRET;` in nginx.conf)", 2)
        end
        opts, store = with_store(opts_or_core)
    end
    local core = hs.core(opts) -- a core comes back as it is
    return setmetatable({ core = core, name = core.name, store = store, _load = core.load, _commit = core.commit },
        Adapter)
end

-- ngx.ctx[STARTED][core.ctx]: the session each adapter started in this request. ngx.ctx.session
-- holds only the latest, and two adapters (two cookie names) in one request must each find
-- their own again. A private key: no app's field can collide with it.
local STARTED = {}

---The cookie `name` this request's response already sets (the last Set-Cookie line of that name,
---which a finish() earlier in the request added) as a Cookie header, or nil. An internal
---redirect (ngx.exec, a named location) empties ngx.ctx but keeps the response headers: the
---session finished before it is found again here, not a second new one started beside it (whose
---cookie, sent last, would replace the first's, losing what the first location wrote).
local function sent_cookie(name)
    local lines = ngx.header["Set-Cookie"]
    if lines == nil then return nil end
    local prefix = name .. "="
    local n, found = #prefix, nil
    if type(lines) == "string" then
        if sub(lines, 1, n) == prefix then found = lines end
    else
        for i = 1, #lines do
            if sub(lines[i], 1, n) == prefix then found = lines[i] end
        end
    end
    if found == nil then return nil end
    local stop = find(found, ";", n + 1, true)
    return stop and sub(found, 1, stop - 1) or found
end

---Load this request's session (ngx.var.http_cookie; Secure decided by ngx.var.scheme). Called
---again before finish() (the access phase, then the content phase), it hands back the session
---it started, with what the request wrote to it so far.
---@param req table? optional request table; its sessionID is kept in step
---@return honeymoon_session.Session session, string id
function Adapter:start(req)
    check_self(self, "start")
    self.core._check_req(req, "adapter:start(req)")
    local ctx, key = ngx.ctx, self.core.ctx
    local started = ctx[STARTED]
    local session = started and started[key]
    if session ~= nil then
        local id = session:getId()
        if req ~= nil then req.sessionID = id end
        ctx.session = session
        return session, id
    end
    local var = ngx.var
    -- After a finish() in this request (an earlier phase, or before an internal redirect), its
    -- cookie rather than the request's: checked only then, off the common path.
    local cookie
    -- A subrequest is internal too: is_subrequest is asked only then.
    local internal = ngx.req.is_internal()
    if started ~= nil or internal then cookie = sent_cookie(self.name) end
    if cookie == nil then cookie = var.http_cookie end
    local id
    session, id = self._load(self.core, cookie, var.scheme == "https", req)
    if started == nil then
        started = {}
        ctx[STARTED] = started
    end
    started[key] = session
    -- Marked when a subrequest starts it: finish() commits a session in the request that
    -- started it, whose response is the one its cookie must go out with (see finish).
    if internal and ngx.is_subrequest then started[session] = true end
    ctx.session = session
    return session, id
end

---Commit the session and add its Set-Cookie line (if any) to the response headers.
---@param session honeymoon_session.Session? defaults to ngx.ctx.session
---@return string[] lines the Set-Cookie values (0 or 1)
function Adapter:finish(session)
    check_self(self, "finish")
    local ctx = ngx.ctx
    local started = ctx[STARTED]
    if session == nil then session = started and started[self.core.ctx] or ctx.session end
    if session == nil then error("honeymoon_session: finish() without start()", 2) end
    local key = self.core.ctx
    -- A subrequest that shares the main request's ngx.ctx (ngx.location.capture with ctx =
    -- ngx.ctx) got the main request's session from start(). Its Set-Cookie line would go into
    -- the subrequest's response, which never reaches the client, and the main request's own
    -- finish() would find the session committed: left to that finish(), which sends the cookie
    -- with what both wrote.
    if started ~= nil and started[key] == session and not started[session] and ngx.is_subrequest then
        return {}
    end
    if ngx.headers_sent then
        -- nginx would only log that the header came too late: say so, before storing anything.
        error("honeymoon_session: finish() after the response headers were sent; call it before ngx.say/ngx.print/ngx.flush", 2)
    end
    -- Before the commit: a failed one is not handed out again by start().
    if ctx.session == session then ctx.session = nil end
    if started ~= nil and started[key] == session then started[key], started[session] = nil, nil end
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

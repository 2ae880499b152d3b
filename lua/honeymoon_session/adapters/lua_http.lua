-- honeymoon_session for lua-http's http.server (https://github.com/daurnimator/lua-http).
-- A thin layer over core:load / core:commit: it only moves the Cookie header in and the
-- Set-Cookie lines out; every session decision is the core's.
--
--   local adapter = require("honeymoon_session.adapters.lua_http").new({ secret = "...", name = "app.sid" })
--   -- (or .new(core) with a core from require("honeymoon_session").core(opts))
--
--   onstream = function(server, stream)
--       local req_headers = assert(stream:get_headers())
--       local session = adapter:load(req_headers, stream:checktls())
--       session.hits = (session.hits or 0) + 1             -- the same API as req.session
--       local res_headers = require("http.headers").new()
--       res_headers:append(":status", "200")
--       adapter:commit(session, res_headers)              -- exactly once, before write_headers
--       assert(stream:write_headers(res_headers, false))
--       assert(stream:write_chunk("hits " .. session.hits, true))
--   end
--
-- load(headers, secure, req): every "cookie" header line, joined with "; " (HTTP/2 clients may
-- split the header into several lines); `secure` (is the connection HTTPS: any value but nil
-- and false, so stream:checktls()'s TLS object will do) only matters for
-- cookie.secure = "auto"; `req` is an optional table whose sessionID the core keeps current.
-- commit(session, headers) appends the Set-Cookie line, if any, to lua-http response headers
-- and returns the list of lines. A store failure raises from commit; send a 500 then. Add the
-- app's own cookies with append too: an upsert("set-cookie", ...) after commit replaces the
-- session's line (the store then holds a session whose cookie the browser never got).
--
-- lua-http is Lua 5.1-packaged on Debian (/usr/share/lua/5.1) but pure Lua: on Lua 5.4 append
-- "/usr/share/lua/5.1/?.lua;/usr/share/lua/5.1/?/init.lua" to package.path. This file does not
-- require lua-http itself: anything with get_as_sequence/get and append works.
local concat, type, error, setmetatable = table.concat, type, error, setmetatable
local hs = require("honeymoon_session")

local Adapter = {}
Adapter.__index = Adapter

-- A method called with a dot: say so at the caller's line (the module's one check, shared with
-- the core; honeymoon_session never requires an adapter, so this makes no cycle).
local check_self = hs._colon_check(Adapter, "adapter")

---@param opts_or_core honeymoon_session.Options|honeymoon_session.Core session options (as for session()) or a core
local function new(opts_or_core)
    if opts_or_core ~= nil and type(opts_or_core) ~= "table" then
        error("honeymoon_session: adapters.lua_http: new takes an options table or a core, got a " .. type(opts_or_core), 2)
    end
    local core = hs.core(opts_or_core) -- a core comes back as it is
    -- The methods looked up once: a call through the core finds them on its metatable every time.
    return setmetatable({ core = core, name = core.name, _load = core.load, _commit = core.commit }, Adapter)
end

---The request's Cookie header: all "cookie" lines joined with "; ", or nil.
---@param headers table lua-http headers object
---@return string|nil
local function cookie_header(headers)
    if headers == nil then return nil end
    if headers.get_as_sequence then
        local seq = headers:get_as_sequence("cookie")
        if seq.n == 0 then return nil end
        if seq.n == 1 then return seq[1] end
        return concat(seq, "; ", 1, seq.n)
    end
    return headers:get("cookie")
end

---@param headers table lua-http request headers (stream:get_headers())
---@param secure boolean? the request came over HTTPS
---@param req table? optional request table; its sessionID is kept in step
---@return honeymoon_session.Session session, string id
function Adapter:load(headers, secure, req)
    check_self(self, "load")
    if headers ~= nil and (type(headers) ~= "table" and type(headers) ~= "userdata"
            or (headers.get_as_sequence == nil and type(headers.get) ~= "function")) then
        error("honeymoon_session: adapter:load(headers): headers must be lua-http request headers "
            .. "(stream:get_headers()), got a " .. type(headers) .. (type(headers) == "table" and " without get" or ""), 2)
    end
    self.core._check_req(req, "adapter:load(headers, secure, req)")
    -- core:load takes any true value as HTTPS (stream:checktls() returns the TLS object).
    local session, id = self._load(self.core, cookie_header(headers), secure, req)
    return session, id
end

---@param session honeymoon_session.Session the session load returned
---@param headers table? lua-http response headers to append "set-cookie" to
---@return string[] lines the Set-Cookie values (0 or 1)
function Adapter:commit(session, headers)
    check_self(self, "commit")
    -- Checked before the commit: once the store is written, a failure here would lose the
    -- cookie that goes with it.
    if headers ~= nil and (type(headers) ~= "table" and type(headers) ~= "userdata"
            or type(headers.append) ~= "function") then
        error("honeymoon_session: adapter:commit(session, headers): headers must be lua-http response headers "
            .. "(an object with append), got a " .. type(headers) .. (type(headers) == "table" and " without append" or ""), 2)
    end
    local lines = self._commit(self.core, session)
    if headers ~= nil then
        -- never_index: HTTP/2 must not put the session cookie in the HPACK table.
        for i = 1, #lines do headers:append("set-cookie", lines[i], true) end
    end
    return lines
end

return { new = new, cookie_header = cookie_header }

-- honeymoon_session.stores.redis: RedisStore for event loops. Sessions in Redis (or Valkey) in
-- connect-redis's format, like the native hs.RedisStore, but the socket I/O is Lua's, so every
-- call yields to the server's event loop instead of blocking it:
--
--   socket = "ngx"      OpenResty cosockets (ngx.socket.tcp), with nginx's keepalive pool
--   socket = "cqueues"  cqueues sockets (lua-http), with a small pool per process
--
-- The bytes are Rust's: the redis crate packs each command and parses each reply, and the
-- stored JSON is made and merged exactly as the native store does (hs._redis).
--
--   local store = require("honeymoon_session.stores.redis").new({
--       url = "redis://:password@127.0.0.1:6379/0", -- db and password in the URL; no TLS here
--       prefix = "sess:",
--       socket = "ngx",                             -- default: "ngx" inside OpenResty, else "cqueues"
--       pool = { size = 32, idle = 60000 },         -- idle connections kept, and for how long (ms)
--       connectTimeout = 2000, commandTimeout = 2000, -- ms
--   })
--
-- It is a store in "record" format (store.format == "record"): get returns the module's record
-- encoding and a version (the JSON it loaded); merge applies a patch to that version with one
-- compare-and-set script (EVALSHA, EVAL once if the server lacks it), retrying a lost race. A
-- read costs one round trip (GET), a write one more; a fresh connection first has its AUTH and
-- SELECT answered (one more round trip, once per connection). Failures raise plain strings:
--   honeymoon_session: RedisStore:get failed: Connection refused (redis at 127.0.0.1:6379/0)
--
-- The owner index ("log out everywhere", the session option `index`): a session whose record
-- names an owner is listed in a sorted set `indexPrefix .. owner` (default "owner:" .. prefix)
-- by the same script that writes it; sessionsOf(owner) and destroyAll(owner, exceptId) read
-- and clear it with one script each. The scripts are the native store's (hs._redis).
local hs = require("honeymoon_session")
local R = hs._redis
if not R then
    error("honeymoon_session: stores.redis needs the module built with its redis feature", 2)
end

local type, tostring, error, pcall, setmetatable = type, tostring, error, pcall, setmetatable
local sub, find, format, match = string.sub, string.find, string.format, string.match
local pack, decode, encode, merge, ttl_of = R.pack, R.decode, R.encode, R.merge, R.ttl
local touch_assumes, touch_found, TOUCH_ATTEMPTS = R.touch_assumes, R.touch_found, R.TOUCH_ATTEMPTS
local replies, now_ms, listed = R.replies, R.now, R.listed
local owner_arg = hs._owner

local CAS, CAS_SHA, MERGE_ATTEMPTS, merge_backoff = R.CAS, R.CAS_SHA, R.MERGE_ATTEMPTS, R.merge_backoff
local TOUCH, TOUCH_SHA = R.TOUCH, R.TOUCH_SHA
local SET_LISTED, SET_LISTED_SHA = R.SET_LISTED, R.SET_LISTED_SHA
local SESSIONS_OF, SESSIONS_OF_SHA = R.SESSIONS_OF, R.SESSIONS_OF_SHA
local DESTROY_ALL, DESTROY_ALL_SHA = R.DESTROY_ALL, R.DESTROY_ALL_SHA

-- The plain message of an error raised by native code (an mlua error value) or by Lua.
local function plain(e)
    if type(e) == "string" then return e end
    local s = tostring(e)
    s = s:gsub("^runtime error: ", "")
    local cut = find(s, "\nstack traceback:", 1, true)
    if cut then s = sub(s, 1, cut - 1) end
    return s
end

-- Backends: acquire() -> conn | nil, why; conn:send(bytes) -> true | nil, why, closed;
-- conn:receive() -> bytes | nil, why, closed; conn:release(); conn:close(). `closed` says the
-- server closed the connection (a pooled one may have been, by a restart: retried once).
-- pause(seconds): a short wait that lets the loop run other requests meanwhile.

local function timed_out(ms) return format("timed out after %d ms", ms) end

local function ngx_backend(cfg)
    local ngx = ngx
    local tcp = ngx.socket.tcp
    local connect_opts = { pool = cfg.pool_name, pool_size = cfg.pool_size }
    -- A cosocket takes an IPv6 address in brackets (the url's brackets are gone from cfg.host).
    local host = find(cfg.host, ":", 1, true) and "[" .. cfg.host .. "]" or cfg.host
    local Conn = {}
    Conn.__index = Conn
    local function why(err, ms)
        if err == "timeout" then return timed_out(ms), false end
        if err == "closed" then return "the server closed the connection", true end
        return tostring(err), err == "connection reset by peer" or err == "broken pipe"
    end
    function Conn:send(bytes)
        local ok, err = self.sock:send(bytes)
        if ok then return true end
        return nil, why(err, cfg.command_timeout)
    end
    function Conn:receive()
        local data, err = self.sock:receiveany(65536)
        if data then return data end
        return nil, why(err, cfg.command_timeout)
    end
    function Conn:release()
        self.sock:setkeepalive(cfg.pool_idle, cfg.pool_size)
    end
    function Conn:close()
        self.sock:close()
    end
    local B = {}
    -- Where ngx.sleep cannot yield (from inside a C call), no wait: the caller only retries.
    function B.pause(seconds) pcall(ngx.sleep, seconds) end
    function B.acquire()
        -- nginx has no cosocket where a request cannot yield (init, init_worker, set, header
        -- and body filters, log): tcp() raises "API disabled in the context of log_by_lua*",
        -- behind this file's name and line. Say where the store can be called instead.
        local made, sock, err = pcall(tcp)
        if not made then
            local context = match(plain(sock), "API disabled in the context of (%S+)")
            if not context then return nil, plain(sock) end
            return nil, "nginx allows no cosocket in " .. context .. "; call the store (an adapter's start and "
                .. "finish) from rewrite_by_lua, access_by_lua or content_by_lua, or from a timer"
        end
        if not sock then return nil, tostring(err) end
        sock:settimeouts(cfg.connect_timeout, cfg.command_timeout, cfg.command_timeout)
        local ok
        ok, err = sock:connect(host, cfg.port, connect_opts)
        if not ok then
            if err == "timeout" then return nil, timed_out(cfg.connect_timeout) end
            return nil, tostring(err)
        end
        return setmetatable({ sock = sock, fresh = sock:getreusedtimes() == 0 }, Conn)
    end
    return B
end

-- Idle cqueues connections, per process and pool name: { gen =, n =, [i] = conn }.
local cqueues_pools = {}

local function cqueues_backend(cfg)
    local ok, socket = pcall(require, "cqueues.socket")
    if not ok then
        error("honeymoon_session: RedisStore socket \"cqueues\" needs cqueues (require failed: "
            .. plain(socket) .. ")", 3)
    end
    local errno = require("cqueues.errno")
    local monotime, sleep = require("cqueues").monotime, require("cqueues").sleep
    local ETIMEDOUT, ECONNRESET, EPIPE = errno.ETIMEDOUT, errno.ECONNRESET, errno.EPIPE
    local connect_s = cfg.connect_timeout / 1000
    local idle_s = cfg.pool_idle / 1000
    local function returned(_, _, err) return err end -- socket errors are returned, never raised
    local function why(err, ms)
        if err == nil then return "the server closed the connection", true end
        if err == ETIMEDOUT then return timed_out(ms), false end
        return errno.strerror(err) or ("error " .. tostring(err)), err == ECONNRESET or err == EPIPE
    end
    local Conn = {}
    Conn.__index = Conn
    -- The timeouts and the pool size are those of the store that acquired the connection
    -- (`self.cfg`, set by acquire), not of the one that opened it: stores with the same address
    -- share a pool.
    function Conn:send(bytes)
        local c = self.cfg
        local done, err = self.sock:xwrite(bytes, "bn", c.command_timeout / 1000)
        if done then return true end
        return nil, why(err, c.command_timeout)
    end
    function Conn:receive()
        local c = self.cfg
        local data, err = self.sock:xread(-65536, "b", c.command_timeout / 1000)
        if data then return data end
        return nil, why(err, c.command_timeout)
    end
    local function pool()
        local gen = R.generation()
        local p = cqueues_pools[cfg.pool_name]
        -- A pool filled in another process (before fork) is dropped, not closed: closing only
        -- releases our copy of each descriptor, but nothing here may write to those sockets.
        if not p or p.gen ~= gen then
            p = { gen = gen, n = 0 }
            cqueues_pools[cfg.pool_name] = p
        end
        return p
    end
    function Conn:release()
        local p = pool()
        if p.gen == self.gen and p.n < self.cfg.pool_size then
            p.n = p.n + 1
            p[p.n] = self
            self.since = monotime()
        else
            self.sock:close()
        end
    end
    function Conn:close()
        self.sock:close()
    end
    local B = {}
    B.pause = sleep
    function B.acquire()
        local p = pool()
        local now = monotime()
        while p.n > 0 do
            local c = p[p.n]
            p[p.n] = nil
            p.n = p.n - 1
            if now - c.since < idle_s then
                c.fresh, c.cfg = false, cfg
                return c
            end
            c.sock:close()
        end
        local made, sock = pcall(socket.connect, { host = cfg.host, port = cfg.port, nodelay = true })
        if not made then return nil, plain(sock) end
        sock:onerror(returned)
        sock:setmode("b", "b")
        local connected, err = sock:connect(connect_s)
        if not connected then
            sock:close()
            return nil, (why(err, cfg.connect_timeout))
        end
        return setmetatable({ sock = sock, fresh = true, gen = p.gen, cfg = cfg }, Conn)
    end
    return B
end

local Store = {}
Store.__index = Store

-- A method called with a dot (store.get(id)) would fail inside it on the id: say so at the
-- caller's line.
local function dotted(method)
    error("honeymoon_session: store methods are called with a colon: store:" .. method .. "(...)", 3)
end

-- A value's type as messages name it: "nil", "a number".
local function kind(v)
    local t = type(v)
    return t == "nil" and "nil" or "a " .. t
end

-- `why` may quote a server's reply, which may quote the password (Redis quotes an unknown
-- command's arguments: a server without AUTH answers it so): any part of it is left out.
local function fail(self, method, why)
    why = plain(why)
    local redact = self.cfg.redact
    if redact then why = redact(why) end
    error(format("honeymoon_session: RedisStore:%s failed: %s (redis at %s)",
        method, why, self.cfg.address), 0)
end

-- Reads `n` replies: values and error replies by position; or nil, why, closed.
local function read(conn, n)
    local r = replies()
    local values, errs = {}, {}
    local got, chunk = 0, nil
    while got < n do
        local done, v, e = r:take(chunk)
        chunk = nil
        if done then
            got = got + 1
            values[got], errs[got] = v, e
        elseif done == false then
            local data, why, closed = conn:receive()
            if not data then return nil, why, closed end
            chunk = data
        else
            return nil, v, false
        end
    end
    return values, errs
end

-- Sends `payload` and reads `n` replies: values, errors; or nil, why, closed.
local function talk(conn, payload, n)
    local sent, why, closed = conn:send(payload)
    if not sent then return nil, why, closed end
    return read(conn, n)
end

-- A fresh connection's AUTH and SELECT, answered before anything else is sent: Redis runs
-- pipelined commands whatever the replies before them were, so a command behind a refused
-- AUTH or SELECT would still run, as the default user or in database 0 (another app's
-- sessions, under the same prefix). One round trip per new connection. Raises on failure.
local function hello(self, method, conn)
    local cfg = self.cfg
    local ran, values, errs = pcall(talk, conn, cfg.hello, cfg.hello_count)
    if not ran then values, errs = nil, values end
    if not values then
        conn:close()
        fail(self, method, errs)
    end
    for i = 1, cfg.hello_count do
        if errs[i] then
            conn:close()
            local what = (i == 1 and cfg.auth) and "AUTH" or "SELECT " .. cfg.db
            fail(self, method, "redis refused " .. what .. ": " .. errs[i])
        end
    end
end

-- Whether one of `n` error replies is READONLY: the server is a replica now.
local function read_only(errs, n)
    for i = 1, n do
        local e = errs[i]
        if e ~= nil and find(e, "^READONLY") then return true end
    end
    return false
end

-- Sends packed commands and reads their `n` replies over a pooled connection. Any failure
-- closes the connection (it may hold a late reply). A pooled connection the server closed (a
-- restart closes them all) is replaced, at most until a fresh connection was tried: every
-- command here is idempotent. So is one a replica answered READONLY: after a failover the old
-- primary keeps its clients as a replica, and a host name comes to name the new primary, which
-- only a new connection reaches; a busy pool would keep the old ones, and fail every write,
-- for as long as it stays busy. Such a connection is closed and the command (which wrote
-- nothing) sent again, at most until a fresh connection answered (its READONLY is the reply).
local function exchange(self, method, packed, n)
    local cfg, backend = self.cfg, self.backend
    local last = cfg.pool_size + 1
    for attempt = 1, last do
        local got, conn, why = pcall(backend.acquire)
        if not got then fail(self, method, conn) end
        if not conn then fail(self, method, why) end
        if conn.fresh and cfg.hello then hello(self, method, conn) end
        local ran, values, errs, closed = pcall(talk, conn, packed, n)
        if not ran then values, errs, closed = nil, values, false end -- raised: not retried
        if values then
            if not read_only(errs, n) then
                conn:release()
                return values, errs
            end
            conn:close()
            if attempt == last or conn.fresh then return values, errs end
        else
            why = errs
            conn:close()
            if attempt == last or conn.fresh or not closed then fail(self, method, why) end
        end
    end
end

-- One command: its reply, or raises (an error reply too).
local function command(self, method, packed)
    local values, errs = exchange(self, method, packed, 1)
    if errs[1] then fail(self, method, errs[1]) end
    return values[1]
end

-- Runs a script by its SHA-1 (EVALSHA), sending it whole (EVAL) once when the server lacks it
-- (a restart, SCRIPT FLUSH); `...` is numkeys, the keys, the arguments. Its reply, or raises.
local function script(self, method, src, sha, ...)
    local values, errs = exchange(self, method, pack("EVALSHA", sha, ...), 1)
    local err = errs[1]
    if err and find(err, "^NOSCRIPT") then return command(self, method, pack("EVAL", src, ...)) end
    if err then fail(self, method, err) end
    return values[1]
end

-- What a GET answered: the stored JSON, or nil. Anything else (from a proxy or a broken server)
-- fails here, naming the store, rather than as a bad argument inside the JSON reader.
local function stored(self, method, raw)
    if raw ~= nil and type(raw) ~= "string" then
        fail(self, method, "redis answered GET with " .. kind(raw) .. ", not a string or nil")
    end
    return raw
end

local function key(self, method, id)
    if type(id) ~= "string" then
        fail(self, method, "a session id is a string, got " .. kind(id))
    end
    return self.prefix .. id
end

---@param id string
---@param max_size? integer the session's maxSize: a stored session larger than that as a record is refused before it is all parsed (default 4 MiB)
---@return string|nil record, string|nil version (the stored JSON)
function Store:get(id, max_size)
    if type(self) ~= "table" then dotted("get") end
    local raw = stored(self, "get", command(self, "get", pack("GET", key(self, "get", id))))
    if raw == nil then return nil end
    local record, why = decode(raw, max_size)
    -- false: an id regenerate retired whose grace is over (a Node app kept the key alive).
    if record == false then return nil end
    if not record then fail(self, "get", why) end
    return record, raw
end

---@return string version
function Store:set(id, record, ttl, life)
    if type(self) ~= "table" then dotted("set") end
    local k = key(self, "set", id)
    if type(record) ~= "string" then fail(self, "set", "a record is a string, got " .. kind(record)) end
    local json, ex, owner = encode(record, ttl, life)
    if not json then fail(self, "set", ex) end
    if owner == nil then
        command(self, "set", pack("SET", k, json, "EX", ex))
    else -- the write and its owner index entry in one step
        script(self, "set", SET_LISTED, SET_LISTED_SHA, 2, k, self.index_prefix .. owner,
            json, ex, id, now_ms(), self.prefix)
    end
    return json
end

---@param max_size? integer as for get, for the stored version it merges into and the merged session; without it, the maxSize the patch carries (a commit's patch carries the session's), else 4 MiB
---@return boolean written, string|nil version, table|nil kept the lifetime the session keeps (and was written with) where the patch assumed another
function Store:merge(id, patch, ttl, version, life, max_size)
    if type(self) ~= "table" then dotted("merge") end
    local k = key(self, "merge", id)
    if type(patch) ~= "string" then fail(self, "merge", "a patch is a string, got " .. kind(patch)) end
    local base = version
    if base == nil then
        base = stored(self, "merge", command(self, "merge", pack("GET", k)))
        if base == nil then return false end
    end
    for attempt = 1, MERGE_ATTEMPTS do
        if attempt > 1 then
            -- Lost the race to another writer: wait a random while (up to 1, 2, 4, 8, then
            -- 16 ms; from the OS's random source, not math.random, whose state nginx's workers
            -- share from their fork), yielding to the loop, so writers that keep colliding (nginx's
            -- workers, several processes) spread out instead of retrying in lockstep until one
            -- gives up; then merge onto what is stored by then, not onto the value the lost race
            -- returned, which the others have most likely overwritten during the wait.
            self.backend.pause(merge_backoff(attempt - 1))
            base = stored(self, "merge", command(self, "merge", pack("GET", k)))
            if base == nil then return false end
        end
        -- `kept`: another request changed the session's lifetime since this one loaded it, and
        -- the merge leaves it alone; the JSON and `ex` are that lifetime's.
        local json, ex, sha, owner, kept = merge(base, patch, ttl, life, max_size)
        if json == false then return false end -- an id regenerate retired: never written again
        if not json then fail(self, "merge", ex) end
        local reply
        if owner == nil then
            reply = script(self, "merge", CAS, CAS_SHA, 1, k, sha, json, ex)
        else -- the merged session names an owner: the same script lists it there
            reply = script(self, "merge", CAS, CAS_SHA, 2, k, self.index_prefix .. owner,
                sha, json, ex, id, now_ms(), self.prefix)
        end
        if reply == 1 then return true, json, kept end
        if reply == 0 then return false end
        if reply ~= 2 then fail(self, "merge", "unexpected reply " .. tostring(reply)) end
    end
    fail(self, "merge", MERGE_ATTEMPTS .. " concurrent writes to the session won every race; giving up "
        .. "(this request's changes are not stored; the client may retry)")
end

function Store:destroy(id)
    if type(self) ~= "table" then dotted("destroy") end
    command(self, "destroy", pack("DEL", key(self, "destroy", id)))
end

---@param assumed? string a session's touch: the lifetime the commit assumed (see src/lifetime.rs)
---@return boolean alive false when gone, or an id regenerate retired (its grace must not grow)
---@return table|nil kept the lifetime the session keeps, and was refreshed for, where it is not the one assumed
function Store:touch(id, ttl, life, assumed)
    if type(self) ~= "table" then dotted("touch") end
    local k = key(self, "touch", id)
    local ex, why = ttl_of(ttl, life)
    if not ex then fail(self, "touch", why) end
    -- A session's touch refreshes only while Redis holds the lifetime it assumed; where another
    -- request changed it since this one loaded the session, it touches again for the one the
    -- session keeps (the last try checks nothing).
    local age, created
    if assumed ~= nil then age, created = touch_assumes(assumed) end
    local own_ex, kept = ex, nil
    for attempt = 1, TOUCH_ATTEMPTS do
        -- A session that names an owner is seen now in its owner's index (the script reads it).
        local reply
        if age ~= nil and attempt < TOUCH_ATTEMPTS then
            reply = script(self, "touch", TOUCH, TOUCH_SHA, 1, k, ex, self.index_prefix, id, now_ms(), self.prefix,
                age, created)
        else
            reply = script(self, "touch", TOUCH, TOUCH_SHA, 1, k, ex, self.index_prefix, id, now_ms(), self.prefix)
        end
        if type(reply) ~= "table" then
            if reply == 1 then return true, kept end
            return false
        end
        if reply[1] ~= 2 then fail(self, "touch", "unexpected reply") end
        local kept_ex
        kept, kept_ex, age, created = touch_found(assumed, reply[2], reply[3])
        if type(kept_ex) == "string" then fail(self, "touch", kept_ex) end -- nil, why
        ex = kept_ex or own_ex
    end
end

---The live sessions whose record names `owner` (the session option `index`'s field), most
---recently seen first, without ids regenerate retired. Drops from the index what is gone.
---@param owner string|integer
---@return { id: string, created: integer?, lastSeen: integer }[] times in seconds since the epoch
function Store:sessionsOf(owner)
    if type(self) ~= "table" then dotted("sessionsOf") end
    owner = owner_arg(owner, "RedisStore", "sessionsOf")
    local reply = script(self, "sessionsOf", SESSIONS_OF, SESSIONS_OF_SHA, 1, self.index_prefix .. owner,
        self.prefix, owner)
    if type(reply) ~= "table" then fail(self, "sessionsOf", "unexpected reply " .. tostring(reply)) end
    local list, why = listed(reply)
    if not list then fail(self, "sessionsOf", why) end
    return list
end

---Deletes every session of `owner` (ids regenerate retired too) but `except`, atomically.
---@param owner string|integer
---@param except? string the id to keep (the current session's)
---@return integer deleted
function Store:destroyAll(owner, except)
    if type(self) ~= "table" then dotted("destroyAll") end
    owner = owner_arg(owner, "RedisStore", "destroyAll")
    local index = self.index_prefix .. owner
    if except ~= nil and type(except) ~= "string" then
        error("honeymoon_session: RedisStore:destroyAll: the id to keep must be a session id (a string) or nil, got a "
            .. type(except), 2)
    end
    local n
    if except == nil then -- no trailing nil: R.pack would take it for an argument
        n = script(self, "destroyAll", DESTROY_ALL, DESTROY_ALL_SHA, 1, index, self.prefix, owner)
    else
        n = script(self, "destroyAll", DESTROY_ALL, DESTROY_ALL_SHA, 1, index, self.prefix, owner, except)
    end
    -- A proxy or a broken server may answer anything: the caller is promised a count.
    if type(n) ~= "number" then
        fail(self, "destroyAll", "unexpected reply: " .. kind(n) .. ", not the number of sessions deleted")
    end
    return n
end

---@return boolean
function Store:exists(id)
    if type(self) ~= "table" then dotted("exists") end
    return command(self, "exists", pack("EXISTS", key(self, "exists", id))) == 1
end

-- Walks every key under the prefix (or matching `pattern`) with SCAN (never KEYS), as bytes,
-- calling each(keys) with the keys not seen before: SCAN may return a key twice (the table
-- shrank between two calls), which connect-redis also drops.
local function scan(self, method, each, pattern)
    local cursor, seen = "0", {}
    repeat
        local reply = command(self, method, pack("SCAN", cursor, "MATCH", pattern or self.pattern, "COUNT", 1000))
        if type(reply) ~= "table" or type(reply[1]) ~= "string" or type(reply[2]) ~= "table" then
            fail(self, method, "unexpected reply to SCAN")
        end
        cursor = reply[1]
        local keys, fresh = reply[2], {}
        for i = 1, #keys do
            local k = keys[i]
            if not seen[k] then
                seen[k] = true
                fresh[#fresh + 1] = k
            end
        end
        each(fresh)
    until cursor == "0"
end

---@return string[] ids
function Store:all()
    if type(self) ~= "table" then dotted("all") end
    local ids, n, from = {}, 0, #self.prefix + 1
    scan(self, "all", function(keys)
        for i = 1, #keys do
            n = n + 1
            ids[n] = sub(keys[i], from)
        end
    end)
    return ids
end

---@return integer
function Store:length()
    if type(self) ~= "table" then dotted("length") end
    local n = 0
    scan(self, "length", function(keys) n = n + #keys end)
    return n
end

---Deletes every session of this store, and its owner index.
function Store:clear()
    if type(self) ~= "table" then dotted("clear") end
    local doomed = {}
    local function collect(keys)
        for i = 1, #keys do doomed[#doomed + 1] = keys[i] end
    end
    scan(self, "clear", collect)
    scan(self, "clear", collect, self.cfg.index_pattern)
    local unpack = table.unpack or unpack
    for i = 1, #doomed, 500 do
        command(self, "clear", pack("DEL", unpack(doomed, i, math.min(i + 499, #doomed))))
    end
end

local M = {}

---@param opts? table url, prefix, indexPrefix, socket, pool, connectTimeout, commandTimeout
function M.new(opts)
    if opts ~= nil and type(opts) ~= "table" then
        error("honeymoon_session: RedisStore takes an options table or nothing, got a " .. type(opts), 2)
    end
    local ok, cfg = pcall(R.config, opts)
    if not ok then error(plain(cfg), 2) end
    local socket = cfg.socket
    if socket == nil then
        socket = (type(ngx) == "table" and type(ngx.socket) == "table") and "ngx" or "cqueues"
    end
    if socket == "ngx" and not (type(ngx) == "table" and type(ngx.socket) == "table") then
        error("honeymoon_session: RedisStore socket \"ngx\" needs OpenResty (ngx.socket.tcp)", 2)
    end
    local store = setmetatable({
        format = "record",
        staleAware = true, -- merge and touch refuse a record regenerate retired
        socket = socket,
        prefix = cfg.prefix,
        pattern = cfg.pattern,
        index_prefix = cfg.index_prefix,
        cfg = cfg,
    }, Store)
    store.backend = socket == "ngx" and ngx_backend(cfg) or cqueues_backend(cfg)
    return store
end

return M

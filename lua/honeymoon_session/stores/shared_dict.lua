-- SharedDictStore: sessions in an nginx `lua_shared_dict`, so every worker of one nginx sees
-- the same sessions without Redis. A store written in Lua in "record" format: it keeps the
-- module's binary record (a Lua string) as the dict value, under `prefix .. id`, with the
-- session's TTL as the dict entry's expiry.
--
-- nginx.conf (http block):   lua_shared_dict sessions 10m;
--   local store = require("honeymoon_session.stores.shared_dict").new({ dict = "sessions" })
--
-- Semantics worth knowing (README: "SharedDictStore"):
-- * get and set are one dict call each; destroy, touch and exists one or two.
-- * merge is atomic across workers: the dict has no compare-and-set, so merge takes a short
--   per-session lock (a `dict:add` of a lock key with an expiry), reads, applies the patch
--   natively and writes back with `dict:replace`, which refuses a session that was destroyed
--   or expired meanwhile. Nothing in the locked section yields, so it lasts microseconds; a
--   request that finds the lock taken waits with ngx.sleep (1 ms, doubling up to 16 ms) for at
--   most `lock_timeout` seconds. The lock expires after `lock_exptime` seconds on its own, so
--   a worker that dies holding it wedges that session for at most that long (one stalled in
--   the locked section for longer than that loses the guarantee: keep it well above any stall).
-- * A full dict evicts: nginx frees the least recently used entries to make room (`forcible`),
--   and each evicted session is a user logged out. The store logs a warning when that happens
--   (at most once a minute per worker); size the dict for the sessions you keep.
-- * set is not locked: a whole write is last-writer-wins against a concurrent merge.
-- * The dict lives as long as the nginx master: sessions survive a reload (HUP), not a restart.
local type, tostring, error, pcall, setmetatable, next = type, tostring, error, pcall, setmetatable, next
local format, sub, byte = string.format, string.sub, string.byte
local min = math.min

-- Lock keys start with a NUL byte, so no session key (prefix .. id, prefixes may not start
-- with NUL) is ever taken for one, and all/length/clear skip them with one byte test.
local LOCK = "\0lock:"
local NUL = 0

-- Phases where ngx.sleep may yield. Elsewhere (init, init_worker, set, header/body filter,
-- log, balancer) a contended lock is retried in a short bounded spin instead.
local YIELDABLE = {
    rewrite = true, access = true, content = true, timer = true, preread = true,
    ssl_cert = true, ssl_session_fetch = true, ssl_client_hello = true,
}
-- How long a spin may hold the worker (seconds) where it cannot sleep: the lock is held for
-- microseconds, so this is plenty unless its holder died (then we fail rather than block).
local SPIN_LIMIT = 0.01
local FIRST_STEP, MAX_STEP = 0.001, 0.016
local WARN_EVERY = 60 -- seconds between two eviction warnings of one worker

-- Filled on first use: requiring the module from inside honeymoon_session's own loader (an
-- adapter picking this store by default) must not recurse.
local merge_patch, error_message, retired

---@class honeymoon_session.SharedDictStoreOptions
---@field dict? string name of the lua_shared_dict, default "sessions"
---@field prefix? string prefix of this store's keys, default "sess:"; "" if the dict holds only sessions
---@field lock_exptime? number seconds after which a held merge lock frees itself, default 1
---@field lock_timeout? number seconds a merge waits for the lock before failing, default 2

---@class honeymoon_session.SharedDictStore
---@field format "record"
---@field name string the lua_shared_dict's name
---@field dict table the ngx.shared dict itself
---@field prefix string
local Store = {}
Store.__index = Store
Store.format = "record"

---@param self honeymoon_session.SharedDictStore
---@param method string
---@param why string
local function fail(self, method, why)
    error(format("honeymoon_session: SharedDictStore:%s failed: %s (lua_shared_dict %s)",
        method, why, self.name), 0)
end

-- What a failed dict write returned, in words a user can act on.
local function why(err)
    if err == "no memory" then
        return "no memory: the dict is full even after evicting its least recently used entries; make it larger"
    end
    return tostring(err)
end

-- A write succeeded by evicting other entries: sessions (users) were dropped. Say so, rarely.
local function evicted(self)
    local now = ngx.now()
    if now - self._warned < WARN_EVERY then return end
    self._warned = now
    ngx.log(ngx.WARN, "honeymoon_session: lua_shared_dict ", self.name, " is full: storing a session ",
        "evicted the least recently used entries, and each evicted session is a user logged out; ",
        "make the dict larger")
end

---Takes the merge lock of one session key, waiting (bounded) if another worker holds it.
---@param self honeymoon_session.SharedDictStore
---@param lock_key string
local function lock(self, lock_key)
    local dict, exptime = self.dict, self._lock_exptime
    local ok, err, forcible = dict:add(lock_key, true, exptime)
    if ok then
        if forcible then evicted(self) end -- room for the lock was made by dropping a session
        return
    end
    if err ~= "exists" then fail(self, "merge", "cannot take the session lock: " .. why(err)) end
    -- Contended: another worker is inside its few microseconds of merge (or died in them).
    local ngx = ngx
    local phase = ngx.get_phase()
    local can_sleep = YIELDABLE[phase]
    local now, update_time, sleep = ngx.now, ngx.update_time, ngx.sleep
    update_time()
    local limit = can_sleep and self._lock_timeout or min(self._lock_timeout, SPIN_LIMIT)
    local deadline, step = now() + limit, FIRST_STEP
    repeat
        if can_sleep then
            -- Fails only when a C function stands between here and the request's coroutine (a
            -- gsub or sort callback): store methods are to be called from Lua, as any store that
            -- yields must be. We hold no lock yet, so failing leaves nothing behind.
            local slept, err = pcall(sleep, step)
            if not slept then
                fail(self, "merge", "the session is locked by another request, and ngx.sleep cannot wait for it: "
                    .. tostring(err))
            end
            step = min(step * 2, MAX_STEP)
        end
        ok, err, forcible = dict:add(lock_key, true, exptime)
        if ok then
            if forcible then evicted(self) end
            return
        end
        if err ~= "exists" then fail(self, "merge", "cannot take the session lock: " .. why(err)) end
        update_time()
    until now() >= deadline
    if can_sleep then
        fail(self, "merge", format("the session stayed locked by another request for %g s (lock_timeout)", limit))
    end
    fail(self, "merge", format("the session is locked by another request, and ngx.sleep cannot wait in the %s phase, "
        .. "so it spun %g s; merge from a yieldable phase (rewrite, access, content, timer)", phase, limit))
end

---The stored record of a session, or nil when there is none (or it expired).
---@param id string
---@return string? record
function Store:get(id)
    local record, err = self.dict:get(self.prefix .. id)
    if record == nil and err ~= nil then fail(self, "get", err) end
    return record
end

---Stores a whole session for `ttl` seconds (last writer wins; see merge for concurrent writes).
---@param id string
---@param record string
---@param ttl number seconds
function Store:set(id, record, ttl)
    local ok, err, forcible = self.dict:set(self.prefix .. id, record, ttl)
    if not ok then fail(self, "set", why(err)) end
    if forcible then evicted(self) end
end

---Applies a commit's patch to the stored session atomically across workers and refreshes its
---TTL. Returns false, writing nothing, when the session is gone (destroyed or expired).
---@param id string
---@param patch string
---@param ttl number seconds
---@return boolean written
function Store:merge(id, patch, ttl)
    local dict, key = self.dict, self.prefix .. id
    local lock_key = LOCK .. key
    lock(self, lock_key)
    -- From here to the unlock nothing yields: another request of this worker cannot run, and
    -- other workers wait on the lock.
    local current = dict:get(key)
    if current == nil then
        dict:delete(lock_key)
        return false
    end
    if not merge_patch then
        local hs = require("honeymoon_session")
        merge_patch, error_message = hs._merge_patch, hs.error_message
    end
    local merged_ok, merged = pcall(merge_patch, current, patch)
    if not merged_ok then
        dict:delete(lock_key)
        fail(self, "merge", error_message(merged))
    end
    if merged == false then -- an id regenerate retired: never written again
        dict:delete(lock_key)
        return false
    end
    -- replace, not set: a session destroyed (or expired) since the get stays gone.
    local ok, err, forcible = dict:replace(key, merged, ttl)
    dict:delete(lock_key)
    if not ok then
        if err == "not found" then return false end
        fail(self, "merge", why(err))
    end
    if forcible then evicted(self) end
    return true
end

---@param id string
function Store:destroy(id)
    self.dict:delete(self.prefix .. id)
end

---Refreshes the TTL. False when the session is gone.
---@param id string
---@param ttl number seconds
---@return boolean
function Store:touch(id, ttl)
    local dict, key = self.dict, self.prefix .. id
    -- dict:expire also revives an entry that expired but is not yet freed, so check first. Both
    -- calls judge expiry by this worker's cached clock, which does not move between them.
    local left = dict:ttl(key)
    if left == nil or left < 0 then return false end
    -- An id regenerate retired keeps its short grace: not refreshed, and no cookie goes out.
    if not retired then retired = require("honeymoon_session")._retired end
    local record = dict:get(key)
    if record == nil or retired(record) then return false end
    local ok, err = dict:expire(key, ttl)
    if ok then return true end
    if err == "not found" then return false end -- destroyed (or reclaimed) in between
    fail(self, "touch", err)
end

---@param id string
---@return boolean
function Store:exists(id)
    -- ttl reads the entry's expiry without copying its value (negative: expired, not yet freed).
    local left = self.dict:ttl(self.prefix .. id)
    return left ~= nil and left >= 0
end

-- Calls f(id, key) for every live session key of this store. get_keys(0) holds the dict's
-- mutex over the whole walk, blocking every worker's dict calls meanwhile: all, length and
-- clear are for administration, not for requests.
local function each(self, f)
    local keys = self.dict:get_keys(0)
    local prefix = self.prefix
    local n = #prefix
    for i = 1, #keys do
        local key = keys[i]
        if byte(key, 1) ~= NUL and (n == 0 or sub(key, 1, n) == prefix) then f(sub(key, n + 1), key) end
    end
end

---The ids of the live sessions of this store.
---@return string[]
function Store:all()
    local ids, count = {}, 0
    each(self, function(id)
        count = count + 1
        ids[count] = id
    end)
    return ids
end

---The number of live sessions of this store (walks the dict: O(entries)).
---@return integer
function Store:length()
    local count = 0
    each(self, function() count = count + 1 end)
    return count
end

---Removes every session of this store (only keys under its prefix).
function Store:clear()
    local dict = self.dict
    each(self, function(_, key) dict:delete(key) end)
end

local OPTIONS = { dict = "string", prefix = "string", lock_exptime = "number", lock_timeout = "number" }

local function bad(message)
    error("honeymoon_session: SharedDictStore: " .. message, 0)
end

---A store over the lua_shared_dict `opts.dict`. Raises at once, naming the problem, on a bad
---option, an undeclared dict, or outside nginx.
---@param opts? honeymoon_session.SharedDictStoreOptions
---@return honeymoon_session.SharedDictStore
local function new(opts)
    if opts == nil then opts = {} end
    if type(opts) ~= "table" then bad("options must be a table, got " .. type(opts)) end
    for k, v in next, opts do
        local want = OPTIONS[k]
        if want == nil then
            bad(format("unknown option %s (options: dict, prefix, lock_exptime, lock_timeout)", tostring(k)))
        end
        if type(v) ~= want then bad(format("%s must be a %s, got %s", k, want, type(v))) end
    end
    local name, prefix = opts.dict or "sessions", opts.prefix or "sess:"
    local lock_exptime, lock_timeout = opts.lock_exptime or 1, opts.lock_timeout or 2
    if byte(prefix, 1) == NUL then bad("prefix must not start with a NUL byte (lock keys do)") end
    if not (lock_exptime > 0 and lock_exptime < 1 / 0) then bad("lock_exptime must be a positive number of seconds") end
    if not (lock_timeout >= 0 and lock_timeout < 1 / 0) then bad("lock_timeout must be a number of seconds >= 0") end
    local ngx = rawget(_G, "ngx")
    local shared = type(ngx) == "table" and ngx.shared
    if not shared then
        bad("not running under nginx with the Lua module (there is no ngx.shared); "
            .. "outside nginx use MemoryStore or RedisStore")
    end
    local dict = shared[name]
    if dict == nil then
        bad(format("no lua_shared_dict named %q: declare it in nginx.conf's http block, e.g. "
            .. "`lua_shared_dict %s 10m;`", name, name))
    end
    return setmetatable({
        format = "record", -- also on the instance: a rawget or a copy of the fields sees it
        staleAware = true, -- merge and touch refuse a record regenerate retired
        dict = dict,
        name = name,
        prefix = prefix,
        _lock_exptime = lock_exptime,
        _lock_timeout = lock_timeout,
        _warned = -WARN_EVERY,
    }, Store)
end

return { new = new }

-- SharedDictStore: sessions in an nginx `lua_shared_dict`, so every worker of one nginx sees
-- the same sessions without Redis. A store written in Lua in "record" format: it keeps the
-- module's binary record (a Lua string) as the dict value, under `prefix .. id`, with the
-- session's TTL as the dict entry's expiry.
--
-- nginx.conf (http block):   lua_shared_dict sessions 10m;
--   local store = require("honeymoon_session.stores.shared_dict").new({ dict = "sessions" })
--
-- Semantics worth knowing (README: "SharedDictStore"):
-- * get is one dict call; set of a new id one (more for a session that names an owner: see the
--   owner index below; and over a stored id, below); destroy, touch and exists one or two.
-- * merge is atomic across workers: the dict has no compare-and-set, so merge takes a short
--   per-session lock (a `dict:add` of a lock key with an expiry), reads, applies the patch
--   natively and writes back with `dict:replace`, which refuses a session that was destroyed
--   or expired meanwhile. Nothing in the session's locked section yields, so it lasts
--   microseconds (an owner's list lock, which a login merge and destroyAll take first, is held
--   across their waits for session locks); a
--   request that finds the lock taken waits with ngx.sleep (1 ms, doubling up to 16 ms) for at
--   most `lock_timeout` seconds. The lock expires after `lock_exptime` seconds on its own, so
--   a worker that dies holding it wedges that session for at most that long (one stalled in
--   the locked section for longer than that loses the guarantee: keep it well above any stall).
-- * A full dict evicts: nginx frees the least recently used entries to make room (`forcible`),
--   and each evicted session is a user logged out. The store logs a warning when that happens
--   (at most once a minute per worker); size the dict for the sessions you keep. A write that
--   finds no memory even then has lost the entry's old value (nginx frees it first): merge, set
--   and the owner's list put it back (put_back).
-- * set of a new id (the engine's whole writes) is a dict:add, not locked; a set over a stored
--   id (a direct caller's) takes the session's merge lock, to put back what it held if the
--   write fails. Either way a whole write is last-writer-wins against a concurrent merge.
-- * The dict lives as long as the nginx master: sessions survive a reload (HUP), not a restart.
-- * The owner index ("log out everywhere", the session option `index`): per owner, one entry
--   listing its session ids (`"\0owner:" .. prefix .. owner`), changed under its own lock when
--   a session joins it (a whole write, or a merge that changed the owner), before the record is
--   written and under the same lock (a session is never stored unlisted); per session that
--   names an owner, one entry with when the store last wrote or touched it (`"\0seen:" .. key`),
--   living as long as the session. Membership is a hint: sessionsOf and destroyAll check each
--   session's own record (a logout changes its owner without touching the list) and drop what
--   is gone or owned by someone else; writes drop up to PRUNE_PER_WRITE gone ids.
local type, tostring, error, pcall, setmetatable, next = type, tostring, error, pcall, setmetatable, next
local getmetatable, rawget = getmetatable, rawget
local format, sub, byte, find, gsub, concat = string.format, string.sub, string.byte, string.find, string.gsub, table.concat
local min, max, floor, sort, random = math.min, math.max, math.floor, table.sort, math.random

-- Lock keys start with a NUL byte, so no session key (prefix .. id, prefixes may not start
-- with NUL) is ever taken for one, and all/length/clear skip them with one byte test. So do
-- the owner index's entries.
local LOCK = "\0lock:"
-- A session's merge lock: "\0m" and the last MERGE_LOCK_ID bytes of its id (72 random bits),
-- not the whole key: nginx hashes and compares a key byte by byte on every dict call, and a
-- lock's add + delete cost 358 ns with the 43-byte key, 159 with an 18-byte one. The end, not
-- the start: ids made in sequence differ there. Two sessions that share a lock only take
-- turns (a waiter sleeps 1 ms or more). Only ids of this module's shape (32 characters, as
-- express-session's too) are cut: any other id (a Node app's genid UUID, whose version-1 form
-- ends in the same node field for every id a process makes; a store method called directly)
-- locks its whole key, so two stores whose keys meet lock alike.
local MERGE_LOCK = "\0m"
local MERGE_LOCK_ID = 12
local ID_LEN = 32
local SEEN = "\0seen:"
local OWNER = "\0owner:"
local NUL = 0
-- Ids an owner's list drops per write when their session is gone (the list stays bounded by
-- the owner's live sessions without a sweep).
local PRUNE_PER_WRITE = 4
-- The longest TTL (100 years, the engine's limit), and the one when none is given.
local MAX_TTL, DAY = 3153600000, 86400

-- Owner lock tokens (destroyAll, a merge that changes the owner): this worker's pid (0
-- outside nginx's workers) and a count.
local tokens = 0
local function worker_pid()
    local n = rawget(_G, "ngx")
    local w = n and n.worker
    return w and w.pid and w.pid() or 0
end

-- Phases where ngx.sleep may yield. Elsewhere (init, init_worker, set, header/body filter,
-- log, balancer) a contended lock is retried in a short bounded spin instead.
local YIELDABLE = {
    server_rewrite = true, rewrite = true, access = true, content = true, timer = true, preread = true,
    ssl_cert = true, ssl_session_fetch = true, ssl_client_hello = true,
}
-- How long a spin may hold the worker (seconds) where it cannot sleep: the lock is held for
-- microseconds, so this is plenty unless its holder died (then we fail rather than block).
local SPIN_LIMIT = 0.01
local FIRST_STEP, MAX_STEP = 0.001, 0.016
local WARN_EVERY = 60 -- seconds between two eviction warnings of one worker

-- Filled on first use: requiring the module from inside honeymoon_session's own loader (an
-- adapter picking this store by default) must not recurse.
local merge_patch, error_message, record_meta, now_ms, owner_arg, shown

local function natives()
    local hs = require("honeymoon_session")
    merge_patch, error_message, record_meta = hs._merge_patch, hs.error_message, hs._record_meta
    now_ms, owner_arg, shown = hs._now_ms, hs._owner, hs._shown
end

-- A value for a message, as the native errors show one (hs._shown).
local function show(v)
    if not shown then natives() end
    return shown(v)
end

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

-- A method called with a dot (store.get(id)) would fail inside it on the id: say so at the
-- caller's line.
local function dotted(method)
    error("honeymoon_session: store methods are called with a colon: store:" .. method .. "(...)", 3)
end

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

---Takes the lock of one session key (a merge) or owner list, waiting (bounded) if another
---worker holds it.
---@param self honeymoon_session.SharedDictStore
---@param method string the store method, for errors
---@param lock_key string
---@param value? string what the lock holds (default true): a token its holder can recognise
local function lock(self, method, lock_key, value)
    local dict, exptime = self.dict, self._lock_exptime
    value = value or true
    -- The dict counts the expiry from the worker's cached clock, which stops while a handler
    -- runs without yielding: after a long one (a password hash), a lock taken on the stale
    -- clock would already be past its expiry for the other workers.
    ngx.update_time()
    local ok, err, forcible = dict:add(lock_key, value, exptime)
    if ok then
        if forcible then evicted(self) end -- room for the lock was made by dropping a session
        return
    end
    if err ~= "exists" then fail(self, method, "cannot take the session lock: " .. why(err)) end
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
            -- yields must be. A caller that holds another lock (an owner's) frees it when this
            -- raises.
            local slept, err = pcall(sleep, step)
            if not slept then
                fail(self, method, "the session is locked by another request, and ngx.sleep cannot wait for it: "
                    .. tostring(err))
            end
            step = min(step * 2, MAX_STEP)
        end
        ok, err, forcible = dict:add(lock_key, value, exptime)
        if ok then
            if forcible then evicted(self) end
            return
        end
        if err ~= "exists" then fail(self, method, "cannot take the session lock: " .. why(err)) end
        update_time()
    until now() >= deadline
    if can_sleep then
        fail(self, method, format("the session stayed locked by another request for %g s (lock_timeout)", limit))
    end
    fail(self, method, format("the session is locked by another request, and ngx.sleep cannot wait in the %s phase, "
        .. "so it spun %g s; call the store from a yieldable phase (server_rewrite, rewrite, access, content, timer)", phase, limit))
end

---The key of session `id`'s merge lock (see MERGE_LOCK); `key` is its dict key.
local function merge_lock(id, key)
    if #id == ID_LEN then return MERGE_LOCK .. sub(id, -MERGE_LOCK_ID) end
    return LOCK .. key
end

-- The owner index. An owner's list is its ids, each followed by a NUL byte.

---@return string[]
local function members(list)
    local ids, n, pos = {}, 0, 1
    if type(list) ~= "string" then return ids end
    while true do
        local stop = find(list, "\0", pos, true)
        if not stop then return ids end
        n = n + 1
        ids[n] = sub(list, pos, stop - 1)
        pos = stop + 1
    end
end

---Whether the session stored under `key` is live (nginx treats an expired entry as absent).
local function alive(dict, key)
    local left = dict:ttl(key)
    return left ~= nil and left >= 0
end

---Puts back `old`, what `key` held before a write that failed: nginx frees an entry's old
---value before it allocates a new one of another size, so a write that finds no memory, even
---after evicting, has deleted the entry. Returns the failed write's reason, saying whether
---the old value is kept.
local function put_back(self, key, old, exptime, err)
    local ok, _, forcible = self.dict:set(key, old, exptime)
    if not ok then return why(err) .. "; what it held could not be put back either, and is gone" end
    if forcible then evicted(self) end
    return why(err)
end

---Replaces an owner's list (deletes it when empty), keeping it alive at least `exptime` s.
---`old` is the list as read under the lock: kept if the write fails.
local function write_list(self, okey, ids, exptime, old)
    local dict = self.dict
    if #ids == 0 then
        dict:delete(okey)
        return
    end
    local ok, err, forcible = dict:set(okey, concat(ids, "\0") .. "\0", exptime)
    if not ok then
        if old == nil then return why(err) end
        return put_back(self, okey, old, exptime, err)
    end
    if forcible then evicted(self) end
end

---How long an owner's list must still live: what it has left, else (it just expired) as long
---as its longest-lived session.
local function list_ttl(dict, okey, prefix, ids)
    local left = dict:ttl(okey)
    if left and left > 0 then return left end
    local most = 0.001
    for i = 1, #ids do
        local t = dict:ttl(prefix .. ids[i])
        if t and t > most then most = t end
    end
    return most
end

---Adds session `id` to the list `okey`, whose lock the caller holds; the list lives at least
---as long as this session, and drops up to PRUNE_PER_WRITE gone ids. Returns why a write
---failed, or nil.
local function enlist(self, okey, id, ttl)
    local dict, prefix = self.dict, self.prefix
    -- Nothing here yields: the lock is held for microseconds.
    local list = dict:get(okey)
    local ids = members(list)
    local kept, n, found, total = {}, 0, false, #ids
    -- The members checked for pruning start at a random place: live but idle sessions at the
    -- front must not stop gone ones further on from ever being dropped.
    local start = total > PRUNE_PER_WRITE and random(total) or 1
    for i = 1, total do
        local m = ids[i]
        local keep = true
        if m == id then
            found = true
        elseif (i - start) % total < PRUNE_PER_WRITE then
            keep = alive(dict, prefix .. m)
        end
        if keep then
            n = n + 1
            kept[n] = m
        end
    end
    if not found then
        n = n + 1
        kept[n] = id
    end
    local left = dict:ttl(okey)
    if not found or n < #ids or left == nil or (left > 0 and left < ttl) then
        -- Twice the session's TTL: the list's time left counts down from here, and each owned
        -- merge or touch relists (under the owner lock) once it is below the session's; with the
        -- slack that is once per TTL, not on every request.
        return write_list(self, okey, kept, max(left or 0, min(2 * ttl, MAX_TTL)), list)
    end
end

---Lists session `id` under `owner` (enlist under the list's own lock).
local function list(self, method, owner, id, ttl)
    local okey = OWNER .. self.prefix .. owner
    local lock_key = LOCK .. okey
    lock(self, method, lock_key)
    local err = enlist(self, okey, id, ttl)
    self.dict:delete(lock_key)
    if err then fail(self, method, err) end
end

---Whether `id` is on the list `ids` (the list entry's value).
local function member(ids, id)
    if type(ids) ~= "string" then return false end
    local entry = id .. "\0"
    return sub(ids, 1, #entry) == entry or find(ids, "\0" .. entry, 1, true) ~= nil
end

---Keeps session `id` on its owner's list, and the list alive as long as the session, which a
---write or touch just gave `ttl` seconds: a session kept alive by merges and touches (rolling)
---must stay listed after the login that listed it, or destroyAll would miss it. An id missing
---from the list (a list evicted from a full dict) is listed again. The dict:get moves the list
---to the front of the dict's least-recently-used order with its busy session (dict:ttl does
---not), so a full dict does not evict the list before the sessions it names.
local function keep_listed(self, method, owner, id, ttl)
    local dict, okey = self.dict, OWNER .. self.prefix .. owner
    local ids = dict:get(okey)
    local left = dict:ttl(okey)
    if left == nil or (left > 0 and left < ttl) or not member(ids, id) then
        -- After the session's write, which stands: a listing that fails here (its lock held
        -- too long elsewhere, a full dict) is logged, not raised, and the session's next merge
        -- or touch lists it.
        local ok, err = pcall(list, self, method, owner, id, ttl)
        if not ok then
            ngx.log(ngx.WARN, "honeymoon_session: SharedDictStore:", method, ": the session was written, ",
                "but not listed under its owner this time (its next write or touch lists it): ", tostring(err))
        end
    end
end

-- A session's TTL: whole seconds from 1 to the engine's limit (100 years), as the other stores
-- take it. The dict reads an expiry of 0 as "never" and rounds one under a millisecond down
-- to 0, and raises a bare error of its own for a negative one; nil means a day, as for the
-- other stores.

---@return number ttl
local function ttl_arg(self, method, ttl)
    if ttl == nil then return DAY end
    if type(ttl) == "number" and ttl >= 1 and ttl <= MAX_TTL and floor(ttl) == ttl then return ttl end
    -- A number as the native stores' message shows it (1e300, NaN; not tostring's 1e+300).
    fail(self, method, "ttl must be a whole number of seconds from 1 to 3153600000, got "
        .. (type(ttl) == "number" and show(ttl) or "a " .. type(ttl)))
end

---Notes that the store wrote or touched the session under `key` now (its lastSeen). Unlike the
---record's and the owner list's writes, this one cannot lose what the entry held to "no memory":
---nginx rewrites a value of the same size in place, and lastSeen is always a number (8 bytes).
---Its first write may find no memory; the session is written by then, and its lastSeen reads as
---its creation time until a later write or touch.
local function seen(self, key, ttl)
    local ok, _, forcible = self.dict:set(SEEN .. key, now_ms(), ttl)
    if ok and forcible then evicted(self) end
end

---The stored record of a session, or nil when there is none (or it expired).
---@param id string
---@return string? record
function Store:get(id)
    if type(self) ~= "table" then dotted("get") end
    local record, err = self.dict:get(self.prefix .. id)
    if record == nil and err ~= nil then fail(self, "get", err) end
    return record
end

-- How often a merge that changes the session's owner, or a set over a stored id that names
-- one, starts over because the owner's list lock expired (lock_exptime) while it waited for
-- the session's lock.
local OWNER_ATTEMPTS = 4

---Writes session `id`'s whole record under `key`. Returns why the write failed (nil: it did),
---and whether room was made by evicting; raises when the session's lock is not had in time.
---Called holding an owner's list lock (`owner_lock`, taken with `token`), it writes nothing
---and returns `nil, false, true` when that lock expired while it waited for the session's:
---another worker may have rewritten the list meanwhile, and the caller starts over.
---A new id (the engine's only whole writes) is one dict:add. An id that is stored (a direct
---caller's overwrite) is written under the session's merge lock, and what it held is put back
---if the write finds no memory (nginx frees the old value first): a failed write is not a
---logout, and a destroy from another worker in between still deletes it (destroy deletes again
---under that lock), as for merge.
local function write(self, id, key, record, ttl, owner_lock, token)
    local dict = self.dict
    local ok, err, forcible = dict:add(key, record, ttl)
    if ok then return nil, forcible end
    -- Nothing was stored there: a failure loses nothing.
    if err ~= "exists" then return why(err) end
    local lock_key = merge_lock(id, key)
    lock(self, "set", lock_key)
    -- Nothing yields from here to the unlock.
    if owner_lock ~= nil and dict:get(owner_lock) ~= token then
        dict:delete(lock_key)
        return nil, false, true
    end
    local old, left = dict:get(key), dict:ttl(key)
    ok, err, forcible = dict:set(key, record, ttl)
    if not ok then
        if old == nil then
            err = why(err) -- destroyed or expired while the lock was awaited
        else
            -- The time it had left. This store writes no session without an expiry, so a 0
            -- (which the dict also answers for "never") is its last millisecond.
            err = put_back(self, key, old, left ~= nil and left > 0 and left or 0.001, err)
        end
        forcible = false
    end
    dict:delete(lock_key)
    return err, forcible
end

---Frees an owner lock a merge or set took (when `held`), unless it expired and another took it since.
---Returns nil: the caller holds no owner lock any more. (Not a closure in merge: creating one
---stops LuaJIT from compiling the hot path.)
local function unlock_owner(dict, held, owner_lock, token)
    if held ~= nil and dict:get(owner_lock) == token then dict:delete(owner_lock) end
    return nil
end

---Stores a whole session for `ttl` seconds (last writer wins; see merge for concurrent writes).
---A session whose record names an owner is listed under it. A write that fails keeps what the
---id held.
---@param id string
---@param record string
---@param ttl? integer seconds, from 1 (default a day)
---@param life? table the session's lifetime; `life.owner` the owner the record names
function Store:set(id, record, ttl, life)
    if type(self) ~= "table" then dotted("set") end
    ttl = ttl_arg(self, "set", ttl)
    local dict, key = self.dict, self.prefix .. id
    if not record_meta then natives() end
    local owner
    if life ~= nil then owner = life.owner else owner = record_meta(record) end -- called directly
    local err, forcible
    if owner == nil then
        err, forcible = write(self, id, key, record, ttl)
        if err ~= nil then fail(self, "set", err) end
    else
        -- Listed first, and written under the list's lock: a session is never stored unlisted
        -- (if listing fails, nothing is written), and another worker's sessionsOf or
        -- destroyAll cannot drop the new id from the list (its record not there yet) before
        -- the write lands. Nothing here yields, but for the wait for the session's lock (an
        -- overwrite), taken after the owner's as destroyAll and merge take them.
        -- The owner lock is taken with a token, as merge's: the wait for the session's lock can
        -- outlast its lock_exptime, and then set starts over, and frees no lock it lost.
        local okey = OWNER .. self.prefix .. owner
        local lock_key = LOCK .. okey
        tokens = tokens + 1
        local token = worker_pid() .. ":" .. tokens
        local lost, attempts = true, 0
        while lost do
            if attempts == OWNER_ATTEMPTS then
                fail(self, "set", format("the owner's list lock expired (lock_exptime) while the set waited for the "
                    .. "session's lock, %d times; giving up (nothing was written): raise the store's lock_exptime "
        .. "above the longest a merge of one session may wait", OWNER_ATTEMPTS))
            end
            attempts = attempts + 1
            lock(self, "set", lock_key, token)
            err, lost = enlist(self, okey, id, ttl), false
            local written, raised = true, nil
            if err == nil then
                written, err, forcible, lost = pcall(write, self, id, key, record, ttl, lock_key, token)
                if not written then raised, err, lost = err, nil, false end
            end
            unlock_owner(dict, true, lock_key, token)
            if raised ~= nil then error(raised, 0) end
        end
        if err ~= nil then fail(self, "set", err) end
    end
    if forcible then evicted(self) end
    if owner ~= nil then seen(self, key, ttl) end
end

---Applies a commit's patch to the stored session atomically across workers and refreshes its
---TTL. Returns false, writing nothing, when the session is gone (destroyed or expired).
---A merge that gives the session a new owner lists it there first, holding the owner's list
---lock and then the session's (destroyAll's order), so neither a failed listing nor a
---destroyAll between the listing and the write leaves the session stored unlisted.
---@param id string
---@param patch string
---@param ttl? integer seconds, from 1 (default a day)
---@return boolean written
---@return nil version
---@return table|nil kept the lifetime the session keeps, and was written for instead of `ttl`, where another request changed it since the commit's load
function Store:merge(id, patch, ttl)
    if type(self) ~= "table" then dotted("merge") end
    ttl = ttl_arg(self, "merge", ttl)
    local dict, key = self.dict, self.prefix .. id
    local lock_key = merge_lock(id, key)
    if not merge_patch then natives() end
    -- The owner whose list lock this merge holds (nil: none), that lock's key and its token:
    -- waiting for the session's lock can outlast the owner lock's lock_exptime.
    local held, owner_lock, token
    for _ = 1, OWNER_ATTEMPTS do
        if held == nil then
            lock(self, "merge", lock_key)
        else
            local locked, err = pcall(lock, self, "merge", lock_key)
            if not locked then
                held = unlock_owner(dict, held, owner_lock, token)
                error(err, 0)
            end
        end
        -- From here to the unlock nothing yields: another request of this worker cannot run,
        -- and other workers wait on the lock.
        if held ~= nil and dict:get(owner_lock) ~= token then
            -- The owner lock expired while we waited: start over, taking both again.
            dict:delete(lock_key)
            held = nil
        else
            local current = dict:get(key)
            if current == nil then
                dict:delete(lock_key)
                held = unlock_owner(dict, held, owner_lock, token)
                return false
            end
            -- merged, the owner it names and whether this merge changed it, and the lifetime
            -- the session keeps where another request changed it since the commit's load
            local merged_ok, merged, owner, changed, kept = pcall(merge_patch, current, patch)
            if not merged_ok then
                dict:delete(lock_key)
                held = unlock_owner(dict, held, owner_lock, token)
                -- One prefix: the message is this module's own ("honeymoon_session: ...").
                fail(self, "merge", (gsub(error_message(merged), "^honeymoon_session: ", "")))
            end
            if merged == false then -- an id regenerate retired: never written again
                dict:delete(lock_key)
                held = unlock_owner(dict, held, owner_lock, token)
                return false
            end
            -- Written with the kept lifetime's TTL here, under the lock, and returned: no touch
            -- after the merge, which a third request's lifetime could land before.
            local life_ttl = kept ~= nil and kept.ttl or ttl
            if changed and owner ~= nil and owner ~= held then
                -- Joining `owner`: its list lock comes before the session's, as in destroyAll,
                -- so drop the session's, take the owner's, and start over.
                dict:delete(lock_key)
                held = unlock_owner(dict, held, owner_lock, token)
                tokens = tokens + 1
                held, owner_lock, token = owner, LOCK .. OWNER .. self.prefix .. owner, worker_pid() .. ":" .. tokens
                lock(self, "merge", owner_lock, token)
            else
                local listed = held ~= nil and owner == held
                local err, ok, refused, forcible
                if listed then err = enlist(self, OWNER .. self.prefix .. owner, id, life_ttl) end
                if err == nil then
                    -- replace, not set: a session destroyed (or expired) since the get stays gone.
                    ok, refused, forcible = dict:replace(key, merged, life_ttl)
                    -- A failed replace (no memory) has deleted the session: put it back as
                    -- loaded, with the TTL the merge would have given it.
                    if not ok and refused ~= "not found" then err = put_back(self, key, current, life_ttl, refused) end
                end
                dict:delete(lock_key)
                held = unlock_owner(dict, held, owner_lock, token)
                if err ~= nil then fail(self, "merge", err) end
                if not ok then return false end
                if forcible then evicted(self) end
                if owner ~= nil then
                    seen(self, key, life_ttl)
                    if not listed then keep_listed(self, "merge", owner, id, life_ttl) end
                end
                return true, nil, kept
            end
        end
    end
    fail(self, "merge", format("the owner's list lock expired (lock_exptime) while the merge waited for the "
        .. "session's lock, %d times; giving up (nothing was written): raise the store's lock_exptime "
        .. "above the longest a merge of one session may wait", OWNER_ATTEMPTS))
end

---@param id string
function Store:destroy(id)
    if type(self) ~= "table" then dotted("destroy") end
    local dict, key = self.dict, self.prefix .. id
    dict:delete(key)
    dict:delete(SEEN .. key)
    -- A merge in flight that lost the session to "no memory" puts it back under its lock
    -- (put_back): delete again once that lock is ours, or the put-back would undo this logout.
    -- Uncontended, the lock is free at once. Without it (a holder that died, a full dict) the
    -- delete above stands: a live merge's put-back is the only thing that could undo it.
    local lock_key = merge_lock(id, key)
    if pcall(lock, self, "destroy", lock_key) then
        dict:delete(key)
        dict:delete(lock_key)
    end
end

---Refreshes the TTL. False when the session is gone. A session's touch (`assumed`, the
---lifetime the commit assumed) refreshes it for the lifetime the record keeps, where another
---request changed it since this one loaded the session (also during the touch), and returns
---that one.
---@param id string
---@param ttl? integer seconds, from 1 (default a day)
---@param life? table the session's lifetime (unused here)
---@param assumed? string the lifetime the commit assumed
---@return boolean
---@return table|nil kept
function Store:touch(id, ttl, life, assumed)
    if type(self) ~= "table" then dotted("touch") end
    ttl = ttl_arg(self, "touch", ttl)
    local dict, key = self.dict, self.prefix .. id
    -- dict:expire also revives an entry that expired but is not yet freed, so check first:
    -- dict:get answers nil for it. Both calls judge expiry by this worker's cached clock,
    -- which does not move between them.
    local record = dict:get(key)
    if record == nil then return false end
    -- An id regenerate retired keeps its short grace: not refreshed, and no cookie goes out.
    if not record_meta then natives() end
    local owner, _, stale, kept = record_meta(record, assumed)
    if stale ~= nil then return false end
    local given = ttl
    if kept ~= nil then ttl = kept.ttl end
    local ok, err = dict:expire(key, ttl)
    if not ok then
        if err == "not found" then return false end -- destroyed (or reclaimed) in between
        fail(self, "touch", err)
    end
    -- Lock-free, so another worker's merge may have landed between the get and the expire.
    -- If that merge was regenerate retiring this id, the expire just gave it the full TTL:
    -- put its grace back, and send no cookie. (A merge after the expire sets its own TTL.)
    -- If that merge stored another lifetime (a third request's remember me), the expire gave
    -- the older one's TTL: give the session the lifetime it keeps now.
    local now_record = dict:get(key)
    if now_record ~= record and now_record ~= nil then
        local _, _, retired_until, now_kept = record_meta(now_record, assumed)
        if retired_until ~= nil then
            local left = (retired_until - now_ms()) / 1000
            -- expire(key, 0) would mean "never": a grace that is over ends now.
            if left >= 0.001 then dict:expire(key, left) else dict:delete(key) end
            return false
        end
        local now_ttl = now_kept ~= nil and now_kept.ttl or given
        if now_ttl ~= ttl then
            ok, err = dict:expire(key, now_ttl)
            if not ok then
                if err == "not found" then return false end
                fail(self, "touch", err)
            end
        end
        ttl, kept = now_ttl, now_kept
    end
    if owner ~= nil then
        seen(self, key, ttl)
        keep_listed(self, "touch", owner, id, ttl)
    end
    return true, kept
end

---The live sessions whose record names `owner` (the session option `index`'s field), most
---recently seen first, without ids regenerate retired. Drops from the list what is gone.
---@param owner string|integer
---@return { id: string, created: integer?, lastSeen: integer }[] times in seconds since the epoch
function Store:sessionsOf(owner)
    if type(self) ~= "table" then dotted("sessionsOf") end
    if not owner_arg then natives() end
    owner = owner_arg(owner, "SharedDictStore", "sessionsOf")
    local dict, prefix = self.dict, self.prefix
    local okey = OWNER .. prefix .. owner
    local lock_key = LOCK .. okey
    lock(self, "sessionsOf", lock_key)
    local list = dict:get(okey)
    local ids = members(list)
    local kept, k, out, n, at = {}, 0, {}, 0, {}
    for i = 1, #ids do
        local id = ids[i]
        local record = dict:get(prefix .. id)
        local o, created, stale
        if record ~= nil then o, created, stale = record_meta(record) end
        if o == owner then
            k = k + 1
            kept[k] = id
            if stale == nil then
                local ms = dict:get(SEEN .. prefix .. id) or created or 0
                n = n + 1
                out[n] = { id = id, created = created and floor(created / 1000), lastSeen = floor(ms / 1000) }
                at[out[n]] = ms
            end
        end
    end
    local err
    if k < #ids then err = write_list(self, okey, kept, list_ttl(dict, okey, prefix, kept), list) end
    dict:delete(lock_key)
    if err then fail(self, "sessionsOf", err) end
    sort(out, function(a, b)
        if at[a] ~= at[b] then return at[a] > at[b] end
        return a.id > b.id
    end)
    return out
end

---Deletes every session of `owner` (ids regenerate retired too) but `except`; returns how many
---it deleted.
---@param owner string|integer
---@param except? string the id to keep (the current session's)
---@return integer deleted
function Store:destroyAll(owner, except)
    if type(self) ~= "table" then dotted("destroyAll") end
    if not owner_arg then natives() end
    owner = owner_arg(owner, "SharedDictStore", "destroyAll")
    if except ~= nil and type(except) ~= "string" then
        error("honeymoon_session: SharedDictStore:destroyAll: the id to keep must be a session id (a string) or nil, got a "
            .. type(except), 2)
    end
    local dict, prefix = self.dict, self.prefix
    local okey = OWNER .. prefix .. owner
    local lock_key = LOCK .. okey
    -- A token, so this call knows whether the lock is still its own: the waits on session
    -- locks below can outlast the owner lock's lock_exptime.
    tokens = tokens + 1
    local token = worker_pid() .. ":" .. tokens
    lock(self, "destroyAll", lock_key, token)
    local ids = members(dict:get(okey))
    local n, keep = 0, nil
    for i = 1, #ids do
        local id = ids[i]
        local key = prefix .. id
        if id == except then
            local record = dict:get(key)
            if record ~= nil and record_meta(record) == owner then keep = id end
        else
            -- Under the session's merge lock: a merge that changes its owner (a logout, another
            -- login) must not land between the check and the delete. A merge waiting on the lock
            -- then finds the session gone (dict:replace) and writes nothing.
            local session_lock = merge_lock(id, key)
            local locked, err = pcall(lock, self, "destroyAll", session_lock)
            if not locked then
                if dict:get(lock_key) == token then dict:delete(lock_key) end
                error(err, 0)
            end
            local record = dict:get(key)
            if record ~= nil and record_meta(record) == owner then
                dict:delete(key)
                dict:delete(SEEN .. key)
                n = n + 1
            end
            dict:delete(session_lock)
        end
    end
    -- The owner lock expired during a wait: take it again, so that no other worker's write lands
    -- between the read and the write of the list below (nothing there yields).
    if dict:get(lock_key) ~= token then lock(self, "destroyAll", lock_key, token) end
    -- The list as it is now, less the ids handled here that are not the owner's now: those
    -- this call deleted, and those it spared as someone else's. One of those another worker
    -- logged in as this owner while the lock was not this call's stays listed, as does any id
    -- it listed meanwhile.
    local handled = {}
    for i = 1, #ids do
        if ids[i] ~= keep then handled[ids[i]] = true end
    end
    local left, kept = {}, false
    local list = dict:get(okey)
    local now = members(list)
    for i = 1, #now do
        local id = now[i]
        local stays = not handled[id]
        if not stays then
            local record = dict:get(prefix .. id)
            stays = record ~= nil and record_meta(record) == owner
        end
        if stays then left[#left + 1] = id end
        if id == keep then kept = true end
    end
    -- The kept session stays listed, also when the list expired or was evicted meanwhile.
    if keep and not kept then left[#left + 1] = keep end
    local err = write_list(self, okey, left, list_ttl(dict, okey, prefix, left), list)
    dict:delete(lock_key)
    if err then fail(self, "destroyAll", err) end
    return n
end

---@param id string
---@return boolean
function Store:exists(id)
    if type(self) ~= "table" then dotted("exists") end
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
    if type(self) ~= "table" then dotted("all") end
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
    if type(self) ~= "table" then dotted("length") end
    local count = 0
    each(self, function() count = count + 1 end)
    return count
end

---Removes every session of this store (only keys under its prefix), and its owner index.
function Store:clear()
    if type(self) ~= "table" then dotted("clear") end
    local dict, prefix = self.dict, self.prefix
    local n = #prefix
    local seen_keys, owner_keys = SEEN .. prefix, OWNER .. prefix
    local keys = dict:get_keys(0)
    for i = 1, #keys do
        local key = keys[i]
        if byte(key, 1) ~= NUL then
            if n == 0 or sub(key, 1, n) == prefix then dict:delete(key) end
        elseif sub(key, 1, #seen_keys) == seen_keys or sub(key, 1, #owner_keys) == owner_keys then
            dict:delete(key)
        end
    end
end

local OPTIONS = { dict = "string", prefix = "string", lock_exptime = "number", lock_timeout = "number" }

local function bad(message)
    error("honeymoon_session: SharedDictStore: " .. message, 0)
end

-- An option's key for a message, as the native setup errors show one: a string quoted and
-- escaped by the module (hs._shown: control characters as \u{1b}, bytes that are not UTF-8 as
-- U+FFFD; not %q, which leaves Lua 5.1's control bytes raw), anything else as an index ([1]).
local function key_text(k)
    if not shown then natives() end
    if type(k) == "string" then return shown(k) end
    return "[" .. shown(k) .. "]"
end


---A store over the lua_shared_dict `opts.dict`. Raises at once, naming the problem, on a bad
---option, an undeclared dict, or outside nginx.
---@param opts? honeymoon_session.SharedDictStoreOptions
---@return honeymoon_session.SharedDictStore
local function new(opts)
    if opts == nil then opts = {} end
    -- Values shown as the native setup errors show them (hs._shown; loaded only on an error).
    if type(opts) ~= "table" then bad("options must be a table, got " .. show(opts)) end
    -- Checked by key with `next`, as session()'s options are read raw: fields inherited through
    -- __index would go unchecked (a defaults table), so such a table is refused, as there.
    local mt = getmetatable(opts)
    if type(mt) == "table" and rawget(mt, "__index") ~= nil then
        bad("options must be a plain table, got a table whose metatable has __index (its inherited "
            .. "fields would be ignored); copy the values into a plain table")
    end
    for k, v in next, opts do
        local want = OPTIONS[k]
        if want == nil then
            bad(format("unknown option %s (options: dict, prefix, lock_exptime, lock_timeout)", key_text(k)))
        end
        if type(v) ~= want then bad(format("%s must be a %s, got %s", k, want, show(v))) end
    end
    local name, prefix = opts.dict or "sessions", opts.prefix or "sess:"
    local lock_exptime, lock_timeout = opts.lock_exptime or 1, opts.lock_timeout or 2
    if byte(prefix, 1) == NUL then bad("prefix must not start with a NUL byte (lock keys do)") end
    -- The dict keeps expiry in whole milliseconds, where 0 means never: a lock that never
    -- frees itself would outlive a worker that died holding it. nginx turns seconds into
    -- milliseconds in a 64-bit integer, so a huge expiry is garbage (never, in practice): the
    -- top is a TTL's (MAX_TTL).
    if not (lock_exptime >= 0.001 and lock_exptime <= MAX_TTL) then
        bad("lock_exptime must be a number of seconds from 0.001 to 3153600000 (the dict counts whole milliseconds), got "
            .. show(lock_exptime))
    end
    if not (lock_timeout >= 0 and lock_timeout < 1 / 0) then
        bad("lock_timeout must be a number of seconds from 0, got " .. show(lock_timeout))
    end
    local ngx = rawget(_G, "ngx")
    local shared = type(ngx) == "table" and ngx.shared
    if not shared then
        bad("not running under nginx with the Lua module (there is no ngx.shared); "
            .. "outside nginx use MemoryStore or RedisStore")
    end
    local dict = shared[name]
    if dict == nil then
        if not shown then natives() end
        -- The example names the dict as it is, or quoted as the message does when it holds
        -- anything that needs escaping.
        local quoted = shown(name)
        bad(format("no lua_shared_dict named %s: declare it in nginx.conf's http block, e.g. "
            .. "`lua_shared_dict %s 10m;`", quoted, quoted == '"' .. name .. '"' and name or quoted))
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

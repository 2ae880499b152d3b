-- The SharedDictStore's contract, checked inside nginx (scripts/shared_dict_check.sh starts it
-- with two workers and `lua_shared_dict sessions 10m`; busted does not load this file). Records
-- and patches are real: session tables encoded by the module (hs._record_patch), patches
-- applied by its own merge (hs._merge_patch, through the store).
--   GET /contract            every contract case; one line each, "ok NAME" or "not ok NAME: why"
--   GET /init                what init_by_lua saw (the store outside a request, no sleep)
--   GET /set-phase           a contended merge in set_by_lua (no ngx.sleep there)
--   GET /setup?id=ID         stores an empty session ID (ttl 300)
--   GET /merge?id=ID&key=K&n=N   N merges into ID, each adding one key K.1..K.N; answers the worker pid
--   GET /get?id=ID           "hit PID" or "miss PID"
--   GET /check?id=ID&keys=K1,K2&n=N   whether ID holds K.1..K.N for every K, and nothing else
local hs = require("honeymoon_session")
local SharedDictStore = require("honeymoon_session.stores.shared_dict")

local M = {}

local function record(t)
    local _, r = hs._record_patch({}, t)
    return r
end

-- The patch a request that loaded `before` and left `after` commits.
local function patch(before, after)
    local _, _, p = hs._record_patch(before, after)
    return p
end

local function store(opts)
    return SharedDictStore.new(opts or { dict = "sessions", prefix = "t:" })
end

local function eq(got, want, what)
    if got ~= want then
        error(string.format("%s: got %s, want %s", what, tostring(got), tostring(want)), 2)
    end
end

local function raises(f, pattern, what)
    local ok, err = pcall(f)
    if ok then error(what .. ": did not raise", 2) end
    if type(err) ~= "string" then error(what .. ": raised a " .. type(err) .. ", not a string", 2) end
    if not err:find(pattern) then error(what .. ": raised " .. err, 2) end
    return err
end

local function elapsed(f)
    ngx.update_time()
    local t0 = ngx.now()
    local a, b = f()
    ngx.update_time()
    return ngx.now() - t0, a, b
end

-- The key of session `id`'s merge lock (SharedDictStore's MERGE_LOCK, for an id of the module's
-- 32 characters): held here to play a merge in flight in another worker.
local function merge_lock(id)
    assert(#id == 32, "a merge lock of the short form needs a 32-character id")
    return "\0m" .. id:sub(-12)
end

-- Ids of the module's length (32 characters), unique and differing at the end.
local ids = 0
local function new_id()
    ids = ids + 1
    local s = string.format("id%d-%d-%d", ngx.worker.pid(), ngx.now() * 1000, ids)
    return string.rep("x", 32 - #s) .. s
end

-- A session as the middleware would hold it: nested tables, numbers, bytes, flash bookkeeping.
local SESSION = {
    userId = 42,
    name = "alice",
    cart = { items = { "apple", "pear" }, total = 3.5 },
    bytes = "\0\1\255",
    __flash = { success = { "Welcome back!" } },
}

local cases = {}
local function case(name, f) cases[#cases + 1] = { name = name, f = f } end

case("format is the field \"record\", on the instance", function()
    local s = store()
    eq(s.format, "record", "store.format")
    eq(rawget(s, "format"), "record", "rawget(store, 'format')")
end)

case("get of an unknown id is nil", function()
    eq(store():get(new_id()), nil, "get")
end)

case("set then get returns the record byte for byte; exists", function()
    local s, id, r = store(), new_id(), record(SESSION)
    eq(s:exists(id), false, "exists before set")
    s:set(id, r, 60, {})
    eq(s:get(id), r, "get")
    eq(s:exists(id), true, "exists")
    local ttl = ngx.shared.sessions:ttl("t:" .. id)
    assert(ttl > 58 and ttl <= 60, "dict ttl " .. ttl)
end)

case("set replaces the whole session", function()
    local s, id = store(), new_id()
    s:set(id, record(SESSION), 60)
    s:set(id, record({ other = true }), 60)
    eq(s:get(id), record({ other = true }), "get")
end)

case("merge applies a patch: changed, added, removed and nested keys", function()
    local s, id = store(), new_id()
    s:set(id, record(SESSION), 60)
    local after = {
        userId = 43, name = "alice", bytes = "\0\1\255", cart = { items = { "apple" }, total = 1.25 },
        lastSeen = "today", __flash = nil,
    }
    eq(s:merge(id, patch(SESSION, after), 60, nil, {}), true, "merge")
    eq(s:get(id), record(after), "merged record")
end)

case("two patches made from the same version keep both requests' keys", function()
    local s, id = store(), new_id()
    local base = { user = "alice" }
    s:set(id, record(base), 60)
    eq(s:merge(id, patch(base, { user = "alice", a = 1 }), 60), true, "merge a")
    eq(s:merge(id, patch(base, { user = "alice", b = 2 }), 60), true, "merge b")
    eq(s:get(id), record({ user = "alice", a = 1, b = 2 }), "both keys")
    -- The same key: the last merge wins.
    eq(s:merge(id, patch(base, { user = "bob" }), 60), true, "merge user")
    eq(s:get(id), record({ user = "bob", a = 1, b = 2 }), "last writer")
end)

case("merge refreshes the TTL", function()
    local s, id = store(), new_id()
    s:set(id, record(SESSION), 5)
    s:merge(id, patch(SESSION, { x = 1 }), 300)
    local ttl = ngx.shared.sessions:ttl("t:" .. id)
    assert(ttl > 290, "ttl after merge " .. ttl)
end)

case("set, merge and touch refuse a ttl the dict would read as never expiring, or raise on itself", function()
    local s, id, fresh = store(), new_id(), new_id()
    s:set(id, record({}), 60)
    local function refused(method, ttl, f)
        local err = raises(f, "^honeymoon_session: SharedDictStore:", method .. " " .. ttl)
        eq(err, ("honeymoon_session: SharedDictStore:%s failed: ttl must be a whole number of seconds from 1 to "
            .. "3153600000, got %s (lua_shared_dict sessions)"):format(method, tostring(ttl)), method .. " " .. ttl)
    end
    for _, ttl in ipairs({ 0, 0.0004, -5, 1.5 }) do
        refused("set", ttl, function() s:set(fresh, record({}), ttl) end)
        refused("merge", ttl, function() s:merge(id, patch({}, { a = 1 }), ttl) end)
        refused("touch", ttl, function() s:touch(id, ttl) end)
    end
    eq(s:get(fresh), nil, "nothing written")
    local left = ngx.shared.sessions:ttl("t:" .. id)
    assert(left > 0 and left <= 60, "dict ttl " .. tostring(left))
    s:destroy(id)
end)

case("merge of an unknown id is false and writes nothing", function()
    local s, id = store(), new_id()
    eq(s:merge(id, patch({}, { a = 1 }), 60), false, "merge")
    eq(s:get(id), nil, "get")
    eq(s:exists(id), false, "exists")
    eq(ngx.shared.sessions:get(merge_lock(id)), nil, "lock left behind")
end)

case("destroy: gone, and a later merge does not bring it back", function()
    local s, id = store(), new_id()
    s:set(id, record(SESSION), 60)
    s:destroy(id)
    eq(s:get(id), nil, "get after destroy")
    eq(s:exists(id), false, "exists after destroy")
    eq(s:merge(id, patch(SESSION, { a = 1 }), 60), false, "merge after destroy")
    eq(s:touch(id, 60), false, "touch after destroy")
    eq(s:get(id), nil, "get after merge and touch")
    s:destroy(id) -- destroying twice is fine
end)

case("an id regenerate retired (__meta.stale) is never merged into nor touched", function()
    local s, id = store(), new_id()
    local retired = { user = "alice", __meta = { stale = 1 } }
    s:set(id, record(retired), 60)
    eq(s:merge(id, patch(retired, { user = "alice", __meta = { stale = 1 }, late = 1 }), 60), false, "merge")
    eq(s:touch(id, 600), false, "touch")
    eq(s:get(id), record(retired), "the retired record is unchanged")
end)

case("touch refreshes the TTL of a live session; false for an unknown one", function()
    local s, id = store(), new_id()
    s:set(id, record(SESSION), 5)
    eq(s:touch(id, 300), true, "touch")
    local ttl = ngx.shared.sessions:ttl("t:" .. id)
    assert(ttl > 290, "ttl after touch " .. ttl)
    eq(s:touch(new_id(), 60), false, "touch unknown")
end)

-- Request A loads a session, request B sets its lifetime (remember me) and commits, then A
-- writes or touches it: the merge and the touch keep B's lifetime in the dict, and A's commit
-- gives the session that lifetime, dict TTL and cookie (the engine's, through this store).
case("the lifetime race: A's write or touch after B set remember me keeps the month, TTL and cookie", function()
    local MONTH = 30 * 86400
    for _, a in ipairs({ "write", "touch" }) do
        local core = hs.core({ secret = "race", store = store(), ttl = 60 })
        local first = core:load(nil)
        first.user = "ann"
        local id = first:getId()
        local cookie = core:commit(first)[1]:match("^([^;]+)")
        local mine, theirs = core:load(cookie), core:load(cookie)
        theirs.cookie.maxAge = MONTH * 1000
        core:commit(theirs)
        if a == "write" then mine.n = 1 else mine:touch() end
        local line = core:commit(mine)[1]
        eq(line and line:match("Max%-Age=(%d+)"), tostring(MONTH), a .. ": A's cookie")
        local left = ngx.shared.sessions:ttl("t:" .. id)
        assert(left > MONTH - 10, a .. ": dict ttl " .. tostring(left))
    end
end)

case("an expired session is gone for get, exists, touch and merge, and stays gone", function()
    local s, id = store(), new_id()
    -- Written straight into the dict: the store takes whole seconds, the dict milliseconds.
    ngx.shared.sessions:set("t:" .. id, record(SESSION), 0.05)
    ngx.sleep(0.12)
    -- dict:expire alone would revive the entry (it is expired, not yet freed): touch must not.
    eq(s:touch(id, 60), false, "touch")
    eq(s:exists(id), false, "exists")
    eq(s:get(id), nil, "get")
    eq(s:merge(id, patch({}, { a = 1 }), 60), false, "merge")
    eq(s:get(id), nil, "get after touch and merge")
end)

case("all, length and clear see only this store's prefix, never lock keys", function()
    local dict = ngx.shared.sessions
    local a = store({ dict = "sessions", prefix = "a:" })
    local b = store({ dict = "sessions", prefix = "b:" })
    a:clear(); b:clear()
    dict:set("foreign", "x")
    a:set("one", record({ n = 1 }), 60)
    a:set("two", record({ n = 2 }), 60)
    b:set("three", record({ n = 3 }), 60)
    dict:add("\0lock:a:one", true, 5) -- a merge in flight (a short id locks its whole key)
    dict:add(merge_lock("one-of-an-engine-id-of-32-charss"), true, 5) -- and one of an engine id
    local all = a:all()
    table.sort(all)
    eq(table.concat(all, ","), "one,two", "a:all()")
    eq(a:length(), 2, "a:length()")
    eq(b:length(), 1, "b:length()")
    a:clear()
    eq(a:length(), 0, "a:length() after clear")
    eq(b:get("three"), record({ n = 3 }), "b's session after a:clear()")
    eq(dict:get("foreign"), "x", "foreign key after a:clear()")
    dict:delete("\0lock:a:one")
    dict:delete(merge_lock("one-of-an-engine-id-of-32-charss"))
    b:clear()
    dict:delete("foreign")
end)

case("prefix \"\": all() returns ids and skips lock keys", function()
    local dict = ngx.shared.other
    dict:flush_all()
    local s = store({ dict = "other", prefix = "" })
    s:set("x", record({}), 60)
    dict:add("\0lock:x", true, 5)
    dict:add(merge_lock("x-of-an-engine-id-of-32-chars-xx"), true, 5)
    eq(table.concat(s:all(), ","), "x", "all()")
    eq(s:length(), 1, "length()")
    s:clear()
    eq(s:length(), 0, "length() after clear")
    eq(dict:get("\0lock:x"), true, "clear leaves a lock in flight alone")
    eq(dict:get(merge_lock("x-of-an-engine-id-of-32-chars-xx")), true, "clear leaves a merge lock in flight alone")
    dict:flush_all()
end)

case("a bad patch raises a plain store error and releases the lock", function()
    local s, id = store(), new_id()
    s:set(id, record(SESSION), 60)
    raises(function() s:merge(id, "not a patch", 60) end,
        "^honeymoon_session: SharedDictStore:merge failed: merge_patch: not a patch this module wrote %(lua_shared_dict sessions%)$",
        "bad patch")
    eq(ngx.shared.sessions:get(merge_lock(id)), nil, "lock left behind")
    local t = elapsed(function() return s:merge(id, patch(SESSION, { a = 1 }), 60) end)
    assert(t < 0.05, "the next merge waited " .. t .. " s")
    eq(s:get(id), record({ a = 1 }), "next merge")
end)

case("a held lock: merge waits (ngx.sleep) and proceeds when it frees itself", function()
    local s, id = store(), new_id()
    s:set(id, record({}), 60)
    -- A worker that died inside its merge: its lock expires on its own (here after 0.2 s).
    -- The dict dates the expiry by nginx's cached clock: refreshed first, so the wait below
    -- measures the 0.2 s and not also however stale the cache was.
    ngx.update_time()
    ngx.shared.sessions:add(merge_lock(id), true, 0.2)
    local t, ok = elapsed(function() return s:merge(id, patch({}, { a = 1 }), 60) end)
    eq(ok, true, "merge")
    assert(t > 0.15 and t < 1, "waited " .. t .. " s")
    eq(s:get(id), record({ a = 1 }), "merged")
end)

case("a lock taken after a handler ran long without yielding still holds for the other workers", function()
    -- The dict dates a lock's expiry by the worker's cached clock, which stood still while the
    -- handler ran: taken on that stale clock, a 10 ms lock would be over already for a worker
    -- whose clock is fresh, and its merge would run inside this one's.
    local s, id = store({ dict = "sessions", prefix = "t:", lock_exptime = 0.01 }), new_id()
    s:set(id, record({}), 60)
    local dict, lock_key = ngx.shared.sessions, merge_lock(id)
    local add, other = dict.add, nil
    rawset(dict, "add", function(d, key, ...)
        local ok, err, forcible = add(d, key, ...)
        if key == lock_key and other == nil then
            ngx.update_time() -- another worker's clock
            other = add(d, key, true, 0.01)
        end
        return ok, err, forcible
    end)
    ngx.update_time()
    local t0 = os.clock()
    while os.clock() - t0 < 0.03 do end -- a handler busy for 30 ms (a password hash)
    local ok, err = pcall(s.merge, s, id, patch({}, { a = 1 }), 60)
    rawset(dict, "add", nil)
    eq(ok, true, "merge: " .. tostring(err))
    eq(other, false, "another worker took the merge's lock while it was held")
end)

case("a held lock past lock_timeout: merge fails plainly, writes nothing", function()
    local s, id = store({ dict = "sessions", prefix = "t:", lock_timeout = 0.05 }), new_id()
    s:set(id, record({}), 60)
    ngx.shared.sessions:add(merge_lock(id), true, 5)
    local t = elapsed(function()
        raises(function() s:merge(id, patch({}, { a = 1 }), 60) end,
            "^honeymoon_session: SharedDictStore:merge failed: the session stayed locked by another request for 0%.05 s %(lock_timeout%) %(lua_shared_dict sessions%)$",
            "timeout")
    end)
    -- ngx.now() is epoch seconds in a double, where a millisecond step is off by up to 2.4e-7
    -- (one ulp at 1.7e9): a wait of exactly 50 ms can measure 0.04999995.
    assert(t >= 0.05 - 1e-6 and t < 0.5, "failed after " .. t .. " s")
    eq(s:get(id), record({}), "unchanged")
    ngx.shared.sessions:delete(merge_lock(id))
end)

case("an id shorter than 12 bytes locks its whole key", function()
    local s, id = store({ dict = "sessions", prefix = "t:", lock_timeout = 0.05 }), "short"
    s:set(id, record({}), 60)
    ngx.shared.sessions:add("\0lock:t:" .. id, true, 5)
    raises(function() s:merge(id, patch({}, { a = 1 }), 60) end,
        "^honeymoon_session: SharedDictStore:merge failed: the session stayed locked by another request",
        "held whole-key lock")
    ngx.shared.sessions:delete("\0lock:t:" .. id)
    eq(s:merge(id, patch({}, { a = 1 }), 60), true, "merge once free")
    eq(ngx.shared.sessions:get("\0lock:t:" .. id), nil, "lock left behind")
    s:destroy(id)
end)

case("a held lock across a C call boundary: a plain error, the lock's holder undisturbed", function()
    local s, id = store(), new_id()
    s:set(id, record({}), 60)
    ngx.shared.sessions:add(merge_lock(id), true, 5)
    local err
    -- gsub's callback is a C boundary: ngx.sleep cannot yield out of it.
    ("x"):gsub("x", function() _, err = pcall(s.merge, s, id, patch({}, { a = 1 }), 60) end)
    eq(ngx.shared.sessions:get(merge_lock(id)), true, "the holder's lock")
    ngx.shared.sessions:delete(merge_lock(id))
    assert(type(err) == "string" and err:find("^honeymoon_session: SharedDictStore:merge failed: the session is locked by "
        .. "another request, and ngx.sleep cannot wait for it: .*yield across .* %(lua_shared_dict sessions%)$"),
        "error: " .. tostring(err))
    eq(s:get(id), record({}), "unchanged")
    -- Without contention the same call works: the lock is free at once, nothing sleeps.
    local ok
    ("x"):gsub("x", function() ok = s:merge(id, patch({}, { a = 1 }), 60) end)
    eq(ok, true, "uncontended merge across a C boundary")
    ngx.sleep(0.005) -- past the failed sleep's timer: the check's log scan would show trouble
end)

case("a record larger than the dict: set fails with \"no memory\", naming the dict", function()
    local s = store({ dict = "tiny", prefix = "" })
    raises(function() s:set(new_id(), string.rep("x", 200 * 1024), 60) end,
        "^honeymoon_session: SharedDictStore:set failed: no memory: the dict is full even after evicting its least "
        .. "recently used entries; make it larger %(lua_shared_dict tiny%)$",
        "oversized set")
end)

case("a full dict evicts the least recently used sessions (forcible), and says so in the log", function()
    local dict = ngx.shared.tiny
    dict:flush_all(); dict:flush_expired()
    local s = store({ dict = "tiny", prefix = "" })
    local value = record({ blob = string.rep("y", 900) })
    local n = 200 -- well over what a 64k zone holds at ~1 KB per session
    for i = 1, n do s:set("s" .. i, value, 60) end
    eq(s:get("s" .. n), value, "the newest session")
    eq(s:get("s1"), nil, "the oldest session (evicted)")
    assert(s:length() < n, "nothing was evicted")
    s:clear()
end)

case("a merge that finds no memory for the grown session fails and keeps the session as it was", function()
    -- nginx frees an entry's old value before it allocates one of another size: a write that
    -- then finds no memory, even after evicting, has deleted the entry. A dict full of small
    -- sessions, and one of them growing past what evicting 30 of them frees.
    local dict = ngx.shared.tiny
    dict:flush_all(); dict:flush_expired()
    local s = store({ dict = "tiny", prefix = "" })
    local before = { user = "alice", pad = string.rep("p", 100) }
    local value, n = record(before), 0
    repeat
        n = n + 1
        local ok, err, forcible = dict:set(string.format("%032d", n), value, 60)
        assert(ok, err)
    until forcible
    local id = string.format("%032d", n) -- the newest: the last one eviction would take
    local after = { user = "alice", pad = before.pad, photo = string.rep("b", 30000) }
    raises(function() s:merge(id, patch(before, after), 60) end,
        "^honeymoon_session: SharedDictStore:merge failed: no memory: the dict is full even after evicting",
        "merge of a grown session into a full dict")
    eq(s:get(id), value, "the session after the failed merge")
    eq(dict:get(merge_lock(id)), nil, "lock left behind")
    -- The next request's merge, which fits, goes through.
    eq(s:merge(id, patch(before, { user = "bob", pad = before.pad }), 60), true, "a merge that fits")
    eq(s:get(id), record({ user = "bob", pad = before.pad }), "merged")
    dict:flush_all(); dict:flush_expired()
end)

case("a set over a stored id that finds no memory fails and keeps the session as it was", function()
    -- The engine sets new ids only; a direct caller may overwrite one. nginx frees the old
    -- value before it allocates the new one, so a write that finds no memory even after
    -- evicting had deleted the session (a logout), reporting only "no memory".
    local dict = ngx.shared.tiny
    dict:flush_all(); dict:flush_expired()
    local s = store({ dict = "tiny", prefix = "" })
    local value, n = record({ user = "alice", pad = string.rep("p", 100) }), 0
    repeat
        n = n + 1
        local ok, err, forcible = dict:set(string.format("%032d", n), value, 60)
        assert(ok, err)
    until forcible
    local id = string.format("%032d", n) -- the newest: the last one eviction would take
    local left = dict:ttl(id)
    raises(function() s:set(id, record({ user = "alice", photo = string.rep("b", 30000) }), 600) end,
        "^honeymoon_session: SharedDictStore:set failed: no memory: the dict is full even after evicting its least "
        .. "recently used entries; make it larger %(lua_shared_dict tiny%)$",
        "set of a grown session over a stored id in a full dict")
    eq(s:get(id), value, "the session after the failed set")
    local kept = dict:ttl(id)
    assert(kept and kept <= left and kept > left - 5, "its time left: " .. tostring(kept) .. ", was " .. tostring(left))
    eq(dict:get(merge_lock(id)), nil, "lock left behind")
    -- A write that fits goes through, and one over a new id too.
    s:set(id, record({ user = "bob" }), 60)
    eq(s:get(id), record({ user = "bob" }), "a set that fits")
    dict:flush_all(); dict:flush_expired()
end)

case("a logout that lands while a set puts back a session it lost to \"no memory\" stays a logout", function()
    -- As for merge (below): the put-back happens under the session's merge lock, which destroy
    -- takes for its second delete. The other worker is a light thread started inside the
    -- failing write.
    local dict = ngx.shared.sessions
    local s, id = store(), new_id()
    s:set(id, record({ user = "alice" }), 60)
    local set, other = dict.set, nil
    rawset(dict, "set", function(d, key, ...)
        if key == "t:" .. id and other == nil then
            d:delete(key)
            other = ngx.thread.spawn(function() return s:destroy(id) end)
            return false, "no memory", false
        end
        return set(d, key, ...)
    end)
    local ok, err = pcall(s.set, s, id, record({ user = "alice", more = "x" }), 60)
    rawset(dict, "set", nil)
    eq(ok, false, "the set that found no memory")
    assert(err:find("no memory", 1, true), err)
    assert(other, "the other worker's destroy ran")
    local done, why = ngx.thread.wait(other)
    eq(done, true, "the destroy: " .. tostring(why))
    eq(s:get(id), nil, "the session after the logout")
    eq(dict:get(merge_lock(id)), nil, "lock left behind")
end)

case("a logout that lands while a merge puts back a session it lost to \"no memory\" stays a logout", function()
    -- A merge whose replace found no memory (nginx deleted the entry first) puts the session back.
    -- A destroy from another worker between the two would be undone by that put-back; destroy
    -- therefore deletes again under the session's merge lock. The other worker is a light thread
    -- started inside the failing replace, while the merge holds the lock.
    local dict = ngx.shared.sessions
    local s, id = store(), new_id()
    local before = { user = "alice" }
    s:set(id, record(before), 60)
    local replace, other = dict.replace, nil
    rawset(dict, "replace", function(d, key)
        if key == "t:" .. id then
            d:delete(key)
            other = ngx.thread.spawn(function() return s:destroy(id) end)
            return false, "no memory", false
        end
        return replace(d, key)
    end)
    local ok, err = pcall(s.merge, s, id, patch(before, { user = "alice", more = "x" }), 60)
    rawset(dict, "replace", nil)
    eq(ok, false, "the merge that found no memory")
    assert(err:find("no memory", 1, true), err)
    assert(other, "the other worker's destroy ran")
    local done, why = ngx.thread.wait(other)
    eq(done, true, "the destroy: " .. tostring(why))
    eq(s:get(id), nil, "the session after the logout")
    eq(dict:get(merge_lock(id)), nil, "lock left behind")
end)

-- The owner index ("log out everywhere"): what the engine hands a record store when the session
-- option `index` is set, a record with __meta.owner and the owner in `life`.
local function owned(owner, data)
    local t = { __meta = { owner = owner, created = 1700000000000 } }
    for k, v in pairs(data or {}) do t[k] = v end
    return record(t)
end

case("the owner index survives a full dict while its sessions are busy (touched), so destroyAll finds them", function()
    local dict = ngx.shared.tiny
    dict:flush_all(); dict:flush_expired()
    local s, owner = store({ dict = "tiny", prefix = "" }), "owner-busy"
    local a, b = new_id(), new_id()
    s:set(a, owned(owner), 60, { owner = owner })
    s:set(b, owned(owner), 60, { owner = owner })
    local value = record({ blob = string.rep("y", 900) })
    -- Well over what the 64k zone holds, while the owner's sessions are refreshed (rolling).
    for i = 1, 200 do
        s:set("filler" .. i, value, 60)
        eq(s:touch(a, 60), true, "touch a")
        eq(s:touch(b, 60), true, "touch b")
    end
    eq(#s:sessionsOf(owner), 2, "both sessions still listed")
    eq(s:destroyAll(owner), 2, "both ended")
    s:clear()
end)

case("the owner index: sessionsOf lists an owner's sessions, lastSeen follows writes and touches", function()
    local s, owner = store(), "owner-" .. new_id()
    local a, b, c = new_id(), new_id(), new_id()
    s:set(a, owned(owner), 60, { owner = owner })
    s:set(b, owned(owner), 60) -- called directly: the owner comes from the record
    s:set(c, owned("someone else"), 60, { owner = "someone else" })
    local list = s:sessionsOf(owner)
    eq(#list, 2, "two sessions")
    eq(list[1].created, 1700000000, "created, in seconds")
    assert(list[1].lastSeen >= ngx.time() - 1, "lastSeen in seconds: " .. tostring(list[1].lastSeen))
    -- A touch, then a merge that logs one out (its __meta goes).
    ngx.sleep(1.01)
    eq(s:touch(a, 60), true, "touch")
    eq(s:sessionsOf(owner)[1].id, a, "the touched session first")
    eq(s:merge(a, patch({ __meta = { owner = owner } }, {}), 60), true, "logout merge")
    list = s:sessionsOf(owner)
    eq(#list, 1, "after a logout")
    eq(list[1].id, b, "the other session")
    eq(s:sessionsOf(tostring(owner) .. "x")[1], nil, "another owner")
end)

case("the owner index: destroyAll ends an owner's sessions but the one kept, retired ids too", function()
    local s, owner = store(), "owner-" .. new_id()
    local keep, other, retired = new_id(), new_id(), new_id()
    s:set(keep, owned(owner), 60, { owner = owner })
    s:set(other, owned(owner), 60, { owner = owner })
    s:set(retired, record({ __meta = { owner = owner, stale = 1 } }), 60, { owner = owner })
    eq(#s:sessionsOf(owner), 2, "the retired id is not listed")
    eq(s:destroyAll(owner, keep), 2, "destroyed")
    eq(s:get(other), nil, "other")
    eq(s:get(retired), nil, "retired")
    eq(s:sessionsOf(owner)[1].id, keep, "kept")
    eq(s:destroyAll(owner), 1, "then the last one")
    eq(ngx.shared.sessions:get("\0owner:t:" .. owner), nil, "the owner's list is gone")
end)

case("the owner index: a list write that finds no memory keeps the list as it was", function()
    -- nginx frees the list's old value before it allocates the longer one (the case above shows
    -- it on a real dict); which write runs out depends on nginx's slab pages, so the dict's set
    -- is made to fail here as nginx's does: the entry deleted, then "no memory". A lost list
    -- would hide the owner's other sessions from destroyAll until each is written again.
    local dict = ngx.shared.sessions
    local s, owner = store(), "owner-" .. new_id()
    local a, b, c = new_id(), new_id(), new_id()
    s:set(a, owned(owner), 60, { owner = owner })
    s:set(b, owned(owner), 60, { owner = owner })
    -- The next `armed` writes of the list fail (one: the old value's own room is free again
    -- after the failed write, so putting it back works).
    local okey, set, armed = "\0owner:t:" .. owner, dict.set, 0
    local function failing(d, key, ...)
        if key == okey and armed > 0 then
            armed = armed - 1
            d:delete(key)
            return false, "no memory", false
        end
        return set(d, key, ...)
    end
    rawset(dict, "set", failing)
    armed = 1
    local ok, err = pcall(s.set, s, c, owned(owner), 60, { owner = owner })
    rawset(dict, "set", nil)
    eq(ok, false, "a login whose listing found no memory")
    assert(err:find("no memory", 1, true), err)
    eq(s:get(c), nil, "the session whose listing failed was not stored")
    eq(#s:sessionsOf(owner), 2, "the owner's other sessions still listed")
    -- sessionsOf and destroyAll shorten the list: the same there.
    s:destroy(a)
    rawset(dict, "set", failing)
    armed = 1
    ok, err = pcall(s.sessionsOf, s, owner)
    rawset(dict, "set", nil)
    eq(ok, false, "sessionsOf whose pruning found no memory")
    eq(err, "honeymoon_session: SharedDictStore:sessionsOf failed: no memory: the dict is full even after evicting "
        .. "its least recently used entries; make it larger (lua_shared_dict sessions)", "its error")
    local list = dict:get(okey)
    assert(list and list:find(b, 1, true), "the list after the failed pruning names b")
    -- When the old list cannot be put back either, the error says it is gone.
    rawset(dict, "set", failing)
    armed = 2
    ok, err = pcall(s.sessionsOf, s, owner)
    rawset(dict, "set", nil)
    eq(ok, false, "sessionsOf whose pruning and putting back found no memory")
    assert(err:find("; what it held could not be put back either, and is gone (lua_shared_dict sessions)", 1, true), err)
    s:set(a, owned(owner), 60, { owner = owner }) -- lists a and b's owner again, with a only
    eq(s:destroyAll(owner), 1, "destroyAll finds what the list names now")
    s:destroy(b)
end)

case("the owner index: a touch in a dict with no room left keeps and updates lastSeen", function()
    -- A dict write loses the old value to "no memory" only when it needs room of another size
    -- (nginx frees the old value first). lastSeen is always a number (8 bytes), rewritten in
    -- place, so its write cannot lose it. Pinned in a dict with no room left at all (safe_add
    -- never evicts): a new entry of lastSeen's size is refused there.
    local dict = ngx.shared.tiny
    dict:flush_all(); dict:flush_expired()
    local s, owner, id = store({ dict = "tiny", prefix = "" }), "owner-full", new_id()
    s:set(id, owned(owner), 60, { owner = owner })
    local seen_key = "\0seen:" .. id
    local before = dict:get(seen_key)
    assert(type(before) == "number", "lastSeen after the set: " .. tostring(before))
    -- No room: large entries, then entries of the lastSeen entry's own size.
    local n, err = 0, nil
    repeat n = n + 1; _, err = dict:safe_add("big" .. n, string.rep("f", 1000), 60) until err
    eq(err, "no memory", "filling with large entries")
    repeat
        n = n + 1
        _, err = dict:safe_add("\0seen:" .. string.format("%032d", n), 1, 60)
    until err
    eq(err, "no memory", "filling with lastSeen-sized entries")
    ngx.sleep(0.002) -- the module's clock moves on
    eq(s:touch(id, 60), true, "touch")
    local after = dict:get(seen_key)
    assert(type(after) == "number" and after > before,
        "lastSeen after the touch: " .. tostring(after) .. ", was " .. tostring(before))
    -- (Not sessionsOf: its lock would evict, and the check counts eviction warnings.)
    local list = dict:get("\0owner:" .. owner)
    assert(list and list:find(id, 1, true), "still listed")
    dict:flush_all(); dict:flush_expired()
end)

case("the owner index: destroy leaves no entry of the session behind (its lastSeen neither)", function()
    -- A leftover lastSeen entry would hold dict memory for the rest of the session's TTL.
    local dict = ngx.shared.sessions
    local s, owner, id = store(), "owner-" .. new_id(), new_id()
    s:set(id, owned(owner), 60, { owner = owner })
    eq(s:sessionsOf(owner)[1].id, id, "listed, with its lastSeen")
    s:destroy(id)
    for _, key in ipairs(dict:get_keys(0)) do
        if key:find(id, 1, true) then error("left behind: " .. key:gsub("%z", "\\0")) end
    end
end)

case("the owner index: a session kept alive by merges alone stays listed past its list's first lifetime", function()
    -- Rolling sessions whose requests all write (each commit a merge, no touch): the list
    -- written at login lives as long as the session did then, and must follow it, or
    -- destroyAll would miss the session.
    local s, owner, id = store(), "owner-" .. new_id(), new_id()
    local data = { __meta = { owner = owner, created = 1700000000000 } }
    s:set(id, owned(owner), 1, { owner = owner })
    -- The list as a login that set a short lifetime left it: 0.3 s from here.
    eq(ngx.shared.sessions:expire("\0owner:t:" .. owner, 0.3), true, "the list's lifetime shortened")
    eq(s:merge(id, patch(data, { __meta = data.__meta, n = 1 }), 60), true, "merge")
    ngx.sleep(0.5)
    local list = s:sessionsOf(owner)
    eq(list[1] and list[1].id, id, "listed after the merges kept it alive")
    eq(s:destroyAll(owner), 1, "destroyAll finds it")
    eq(s:exists(id), false, "ended")
end)

case("the owner index: a login merge while the owner's list is locked elsewhere waits, or fails writing nothing", function()
    local s, owner = store({ dict = "sessions", prefix = "t:", lock_timeout = 0.05 }), "owner-" .. new_id()
    local id, owner_lock = new_id(), "\0lock:\0owner:t:" .. owner
    local anon, login = { cart = 1 }, { cart = 1, __meta = { owner = owner, created = 1700000000000 } }
    s:set(id, record(anon), 60)
    -- Another worker inside sessionsOf or destroyAll of the owner, past lock_timeout.
    ngx.update_time()
    ngx.shared.sessions:add(owner_lock, true, 0.2)
    raises(function() s:merge(id, patch(anon, login), 60, nil, { owner = owner }) end,
        "^honeymoon_session: SharedDictStore:merge failed: the session stayed locked by another request for 0%.05 s",
        "login merge under a held owner lock")
    eq(s:get(id), record(anon), "the login was written without being listed")
    -- Held for less than lock_timeout: the merge waits for it, then lists and writes.
    ngx.sleep(0.25)
    ngx.update_time()
    ngx.shared.sessions:add(owner_lock, true, 0.02)
    eq(s:merge(id, patch(anon, login), 60, nil, { owner = owner }), true, "login merge")
    eq(s:sessionsOf(owner)[1].id, id, "listed")
    eq(s:destroyAll(owner), 1, "destroyAll")
    eq(s:get(id), nil, "ended")
end)

case("the owner index: a set over a stored id that waits past its owner lock's lock_exptime takes it again", function()
    -- As merge: set holds the owner's list lock while it waits for the session's lock (a merge
    -- in flight in another worker), and that wait can outlast lock_exptime. Meanwhile another
    -- worker takes the free owner lock and rewrites the list (destroyAll drops an id whose
    -- stored record names someone else, as this one's does until the set lands).
    local s, owner = store({ dict = "sessions", prefix = "t:", lock_exptime = 0.05 }), "owner-" .. new_id()
    local dict, id = ngx.shared.sessions, new_id()
    local okey = "\0owner:t:" .. owner
    local owner_lock = "\0lock:" .. okey
    s:set(id, record({ cart = 1 }), 60) -- stored, no owner yet
    ngx.update_time()
    assert(dict:add(merge_lock(id), true, 0.2), "the session's lock was free")
    local took, seen
    local other = ngx.thread.spawn(function()
        ngx.sleep(0.1) -- the set's owner lock (0.05 s) has expired by now
        ngx.update_time()
        took = dict:add(owner_lock, "another worker", 1)
        dict:delete(okey)
        ngx.sleep(0.2) -- the session's lock freed meanwhile (at 0.2 s)
        seen = dict:get(owner_lock)
        dict:delete(owner_lock)
    end)
    s:set(id, owned(owner), 60, { owner = owner })
    assert(ngx.thread.wait(other))
    eq(took, true, "the other worker took the expired owner lock")
    eq(seen, "another worker", "the other worker's owner lock, after the set")
    local listed = s:sessionsOf(owner)[1]
    eq(listed and listed.id, id, "the session, stored naming its owner, is listed under it")
    eq(s:destroyAll(owner), 1, "destroyAll finds it")
end)

case("constructor: unknown dict, bad options", function()
    raises(function() SharedDictStore.new({ dict = "nope" }) end,
        "^honeymoon_session: SharedDictStore: no lua_shared_dict named \"nope\": declare it in nginx.conf's http block, "
        .. "e%.g%. `lua_shared_dict nope 10m;`$", "unknown dict")
    raises(function() SharedDictStore.new({ dict = "sessions", ttl = 5 }) end,
        '^honeymoon_session: SharedDictStore: unknown option "ttl"', "unknown option")
    raises(function() SharedDictStore.new({ dict = 5 }) end,
        "^honeymoon_session: SharedDictStore: dict must be a string, got 5$", "dict type")
    raises(function() SharedDictStore.new({ prefix = "\0x" }) end, "prefix must not start with a NUL byte", "prefix")
    raises(function() SharedDictStore.new({ lock_exptime = 0 }) end,
        "lock_exptime must be a number of seconds from 0%.001 to 3153600000 %(the dict counts whole milliseconds%), got 0$", "lock_exptime")
    -- The dict rounds 0.5 ms down to 0, which would be a lock that never expires.
    raises(function() SharedDictStore.new({ lock_exptime = 0.0005 }) end, "from 0%.001 to .*, got 0%.0005$", "lock_exptime below 1 ms")
    eq(type(SharedDictStore.new({ lock_exptime = 0.001 })), "table", "lock_exptime of 1 ms")
    raises(function() SharedDictStore.new({ lock_timeout = -1 }) end, "lock_timeout must be a number of seconds from 0, got %-1$", "lock_timeout")
    eq(SharedDictStore.new().name, "sessions", "default dict")
    eq(SharedDictStore.new().prefix, "sess:", "default prefix")
end)

function M.contract()
    local passed, failed = 0, 0
    for _, c in ipairs(cases) do
        local ok, err = pcall(c.f)
        if ok then
            passed = passed + 1
            ngx.say("ok ", c.name)
        else
            failed = failed + 1
            ngx.say("not ok ", c.name, ": ", tostring(err))
        end
    end
end

-- init_by_lua: no request, no ngx.sleep; an uncontended merge needs neither. The outcome is
-- left in the dict for GET /init.
function M.init()
    local ok, err = pcall(function()
        local s = store({ dict = "sessions", prefix = "init:" })
        s:set("a", record({ x = 1 }), 60)
        assert(s:merge("a", patch({ x = 1 }, { x = 1, y = 2 }), 60) == true, "merge")
        assert(s:get("a") == record({ x = 1, y = 2 }), "merged record")
        assert(s:merge("gone", patch({}, { y = 2 }), 60) == false, "merge of a gone session")
        s:clear()
    end)
    ngx.shared.sessions:set("init-result", ok and "ok" or tostring(err))
end

-- set_by_lua: a non-yieldable phase. A held lock makes merge spin (bounded) and fail plainly.
function M.set_phase()
    local s, id = store(), new_id()
    s:set(id, record({}), 60)
    ngx.shared.sessions:add(merge_lock(id), true, 5)
    local t, ok, err = elapsed(function() return pcall(s.merge, s, id, patch({}, { a = 1 }), 60) end)
    ngx.shared.sessions:delete(merge_lock(id))
    s:destroy(id)
    if ok then return "not ok: merge succeeded under a held lock" end
    if not err:find("^honeymoon_session: SharedDictStore:merge failed: the session is locked by another request, "
        .. "and ngx.sleep cannot wait in the set phase, so it spun 0%.01 s") then
        return "not ok: " .. err
    end
    if t > 0.2 then return "not ok: spun " .. t .. " s" end
    return "ok"
end

-- server_rewrite_by_lua: a phase where ngx.sleep may wait. A lock held 50 ms makes merge wait
-- for it, not spin and fail.
function M.server_rewrite_phase()
    local s, id = store(), new_id()
    s:set(id, record({}), 60)
    -- Timed from before the add: the lock frees itself 50 ms after it, so a merge that waits
    -- cannot end sooner, even if this worker is descheduled between the add and the merge
    -- (timed from after the add, such a pause shortened the wait seen and failed the check).
    local t, ok, err = elapsed(function()
        ngx.shared.sessions:add(merge_lock(id), true, 0.05)
        return pcall(s.merge, s, id, patch({}, { a = 1 }), 60)
    end)
    local got = s:get(id)
    s:destroy(id)
    if not ok then ngx.say("not ok: ", err) elseif t < 0.03 then ngx.say("not ok: no wait (", t, " s)")
    elseif got ~= record({ a = 1 }) then ngx.say("not ok: not merged") else ngx.say("ok") end
    return ngx.exit(200)
end

local shared = SharedDictStore.new({ dict = "sessions", prefix = "c:" })

function M.setup()
    shared:set(ngx.var.arg_id, record({ user = "alice" }), 300)
    ngx.say("ok")
end

-- Each request loaded the session as { user = "alice" } and adds its own keys, one merge each.
function M.merge()
    local id, key, n = ngx.var.arg_id, ngx.var.arg_key, tonumber(ngx.var.arg_n) or 1
    local base = { user = "alice" }
    for i = 1, n do
        local after = { user = "alice", [key .. "." .. i] = i }
        if not shared:merge(id, patch(base, after), 300) then
            ngx.status = 500
            ngx.say("gone")
            return
        end
    end
    ngx.say("merged ", ngx.worker.pid())
end

function M.get()
    ngx.say(shared:get(ngx.var.arg_id) == record({ user = "alice" }) and "hit " or "miss ", ngx.worker.pid())
end

function M.check()
    local want = { user = "alice" }
    local n = tonumber(ngx.var.arg_n)
    for key in ngx.var.arg_keys:gmatch("[^,]+") do
        for i = 1, n do want[key .. "." .. i] = i end
    end
    local got = shared:get(ngx.var.arg_id)
    if got == record(want) then
        ngx.say("ok")
        return
    end
    -- Which keys are missing: merge an empty change onto what is stored, key by key.
    local missing = 0
    for k in pairs(want) do
        local probe = { [k] = want[k] }
        local _, _, p = hs._record_patch({}, probe)
        if hs._merge_patch(got or record({}), p) ~= got then missing = missing + 1 end
    end
    ngx.say("not ok: ", missing, " of the keys are missing or different")
end

-- Figures for the report, never asserted: µs per call, on a 5-key session, in this worker.
function M.bench()
    local s, id = store({ dict = "sessions", prefix = "sess:" }), "bench" .. ngx.worker.pid()
    local session = { userId = 42, name = "alice", role = "admin", cart = { 1, 2, 3 }, visits = 7 }
    local r, p = record(session), patch(session, { userId = 42, name = "alice", role = "admin", cart = { 1, 2, 3 }, visits = 8 })
    s:set(id, r, 300)
    local n = 100000
    local function time(f)
        local t0 = os.clock()
        for _ = 1, n do f() end
        return (os.clock() - t0) / n * 1e6
    end
    -- What the engine hands the store with each write (no `index` option: no owner).
    local life = { ttl = 300, maxAge = 300, path = "/", httpOnly = true, secure = false, sameSite = "Lax" }
    local get = time(function() return s:get(id) end)
    -- The engine's whole writes are of new ids; a direct caller's over a stored id takes the
    -- session's lock (one dict call more than a merge's get).
    local over = time(function() s:set(id, r, 300, life) end)
    local merge = time(function() s:merge(id, p, 300, nil, life) end)
    local touch = time(function() s:touch(id, 300, life) end)
    s:destroy(id)
    -- New ids (10,000, 32 bytes each, as the engine's) and the dict's free pages before and
    -- after them: the memory per session.
    local dict, m = ngx.shared.sessions, 10000
    local ids = {}
    for i = 1, m do ids[i] = string.format("%032d", i) end
    local free = dict:free_space()
    local t0 = os.clock()
    for i = 1, m do s:set(ids[i], r, 300, life) end
    local set = (os.clock() - t0) / m * 1e6
    local per = (free - dict:free_space()) / m
    for i = 1, m do s:destroy(ids[i]) end
    ngx.say(string.format("get %.2f us, set %.2f us (%.2f over a stored id), merge %.2f us, touch %.2f us "
        .. "(%d-byte record, CPU time); %d bytes of dict per session", get, set, over, merge, touch, #r, per))
end

return M

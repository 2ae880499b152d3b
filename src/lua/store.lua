-- The Lua side of store I/O: runs the engine's commit decision and, for a store written in
-- Lua, calls its methods here, where they may yield (cosockets, cqueues). A native store's
-- work happens inside the engine's own call. Embedded in the module; receives nothing, returns
-- the functions session.lua and core.lua use.
local type, error, tostring, next, rawget, pcall = type, error, tostring, next, rawget, pcall
local getmetatable, setmetatable = getmetatable, setmetatable

local M = {}

-- Commit flags (src/engine.rs).
local MUST_SAVE, COOKIE_DUE, SECURE, SAVE_NOW, RETIRE, TOUCH, FINAL = 1, 2, 4, 8, 16, 32, 64
M.SAVE_NOW, M.RETIRE, M.FINAL = SAVE_NOW, RETIRE, FINAL

---A plain message from whatever a store raised (a string, or an error object). A table without
---__tostring says its `message` field (a common shape of error objects) rather than its
---address; an object whose __tostring raises or returns no string is named by its type.
local function reason(err)
    if type(err) == "string" then return err end
    if type(err) == "table" then
        -- Read raw, as tostring reads it; a protected metatable (not a table) goes to tostring.
        local mt = getmetatable(err)
        if mt == nil or (type(mt) == "table" and rawget(mt, "__tostring") == nil) then
            local text = rawget(err, "message")
            return type(text) == "string" and text or "a table error value without a message field"
        end
    end
    local ok, text = pcall(tostring, err)
    if ok and type(text) == "string" then return text end
    return "a " .. type(err) .. " error value"
end

-- Raises what store method `name` failed with, in our shape.
local function failed(name, err)
    local why = reason(err)
    if why:find("^honeymoon_session: %S+ failed: ") then error(why, 0) end
    -- A message of this module's own (hs._merge_patch inside a store's merge): one prefix.
    error("honeymoon_session: store:" .. name .. " failed: " .. why:gsub("^honeymoon_session: ", ""), 0)
end

-- The methods whose result the module ignores: for them `false, message` is a failure too
-- (ngx.shared.DICT's set answers so); elsewhere `false` is an answer (gone, absent).
local result_ignored = { set = true, destroy = true }

-- What pcall returned from store method `name`: its results, or its error in our shape. A
-- store may also report a failure the way most Lua I/O libraries do (lua-resty-redis, LuaSQL,
-- pgmoon, ngx.shared.DICT): nil and a message, instead of raising. Taken for success, that
-- would report a session saved, and send its cookie, when the store kept nothing, or a logout
-- done when the session lives on.
local function returned(name, ok, ...)
    if not ok then failed(name, (...)) end
    local first, err = ...
    if type(err) == "string" and (first == nil or (first == false and result_ignored[name])) then
        failed(name, err)
    end
    return ...
end

---Calls store method `name`, turning its error into `honeymoon_session: store:<name> failed: …`.
---A store of this module's own (SharedDictStore, the Lua RedisStore) already raises that shape,
---naming itself: its message passes unchanged. (No table for the results: this runs for every
---get and write of a Lua store.)
---@param ctx table the core's context
local function call(ctx, name, ...)
    local store = ctx.store
    return returned(name, pcall(store[name], store, ...))
end

local function wrong(name, what, got)
    error("honeymoon_session: store:" .. name .. " failed: it returned "
        .. (got == nil and "nil" or "a " .. type(got)) .. "; it must return " .. what, 0)
end

---The Lua store's checked methods: a wrong return type is an error naming the method.
function M.get(ctx, id)
    local value, version
    if ctx.record then
        value, version = call(ctx, "get", id, ctx.max_size)
    else
        value, version = call(ctx, "get", id)
    end
    local want = ctx.record and "string" or "table"
    if value ~= nil and type(value) ~= want then
        wrong("get", ctx.record and "a record string or nil" or "a table or nil", value)
    end
    if version ~= nil and type(version) ~= "string" then wrong("get", "a string version (or nothing) second", version) end
    return value, version
end

function M.exists(ctx, id)
    local alive = call(ctx, "exists", id)
    if type(alive) ~= "boolean" then wrong("exists", "a boolean", alive) end
    return alive
end

local floor = math.floor
local MAX_SECONDS = 3153600000 -- 100 years, the options' bound (options.rs)

-- A whole number of seconds within the options' bounds, or `false` where `may_be_false`.
local function seconds(v, may_be_false)
    if v == false then return may_be_false end
    return type(v) == "number" and v >= 1 and v <= MAX_SECONDS and floor(v) == v
end

-- A lifetime a store kept for a session (`{ ttl =, maxAge =, originalMaxAge = }`, seconds, as
-- hs._merge_patch and hs._record_meta make it), or nil for anything that is not a table. A
-- table is checked: its maxAge becomes the cookie's (a missing or NaN one would send a
-- browser-session cookie, a huge one a Max-Age past any date).
local function lifetime(name, kept)
    if type(kept) ~= "table" then return nil end
    local field, v
    if not seconds(kept.ttl, false) then
        field, v = "ttl", kept.ttl
    elseif not seconds(kept.maxAge, true) then
        field, v = "maxAge", kept.maxAge
    elseif kept.originalMaxAge ~= nil and not seconds(kept.originalMaxAge, true) then
        field, v = "originalMaxAge", kept.originalMaxAge
    else
        return kept
    end
    local t = type(v)
    local shown = v ~= v and "NaN" or (t == "number" or t == "boolean" or v == nil) and tostring(v) or "a " .. t
    error("honeymoon_session: store:" .. name .. " failed: it returned a lifetime whose " .. field .. " is " .. shown
        .. "; a lifetime is { ttl =, maxAge =, originalMaxAge = } in whole seconds from 1 to " .. MAX_SECONDS
        .. " (maxAge and originalMaxAge may be false, originalMaxAge nil), as hs._record_meta returns it", 0)
end

-- touch may return nothing (done: the store cannot tell) or a boolean (false: gone); after
-- true, a store that refreshed the session for the lifetime it keeps rather than `ttl` (it
-- found another in the record, with hs._record_meta(record, assumed)) returns that one.
local function touch(ctx, id, ttl, life, assumed)
    local alive, kept = call(ctx, "touch", id, ttl, life, assumed)
    if alive == nil then return true end
    if type(alive) ~= "boolean" then wrong("touch", "a boolean or nothing", alive) end
    if alive then return true, lifetime("touch", kept) end
    return false
end

-- The commits whose patch a record store is merging, by patch, for hs._merge_patch
-- (src/lua/exports.lua) to note on the commit's own state (`m.kept_notes[patch]`) the lifetime
-- the merged session keeps where that is not the one the commit assumed (another request
-- changed it since this one loaded the session). A patch that carries the commit's assumption
-- (every merge's but one whose request set the lifetime itself) also carries a number no other
-- patch has; one that does not (two such may be equal) is never noted for. By patch, not by
-- the running coroutine: a store may call hs._merge_patch from a coroutine of its own (its
-- I/O), for several requests' patches in turn, or twice for one (the last call counts). Weak
-- values: the state lives as long as its request, so the entry (and the note, on the state) of
-- a request abandoned while the store's merge yields (a client gone, a killed light thread)
-- goes with it. A merge that finds the lifetime assumed allocates nothing here.
local merging = setmetatable({}, { __mode = "v" })
M.merging = merging

-- A merge: `written, version, kept, applied`. A record store that merged with hs._merge_patch
-- wrote the session with `ttl`, whatever it keeps (`applied` false); one of this module's own
-- that writes the lifetime the session keeps itself (SharedDictStore, the Lua RedisStore)
-- returns it after the version (`applied` true). `m` is the session's state.
local function merge(ctx, id, a, b, version, ttl, life, m)
    if ctx.record then
        local store = ctx.store
        merging[a] = m
        local ran, ok, v, kept = pcall(store.merge, store, id, a, ttl, version, life, ctx.max_size)
        -- Read before anything can raise: nothing of this merge outlives the commit.
        merging[a] = nil
        local noted
        local notes = m.kept_notes
        if notes ~= nil then
            noted = notes[a]
            notes[a] = nil
        end
        returned("merge", ran, ok, v)
        if type(ok) ~= "boolean" then wrong("merge", "a boolean", ok) end
        -- As get and set: the version is handed back to the next merge of the request.
        if v ~= nil and type(v) ~= "string" then wrong("merge", "true and a string version (or nothing)", v) end
        kept = lifetime("merge", kept)
        if kept ~= nil then return ok, v, kept, true end
        return ok, v, noted, false
    end
    local ok = call(ctx, "merge", id, a, b, ttl)
    if type(ok) ~= "boolean" then wrong("merge", "a boolean", ok) end
    return ok
end

---The lifetime handed to a Lua store with one write: the config's (`ctx.life`), or a copy
---with this session's own TTL, cookie lifetime (and the same before absoluteTimeout capped
---it) and owner; under `cookie.secure = "auto"`, with `https`, the request's side of it.
local function life_of(ctx, ttl, max_age, owner, original, https)
    local base = ctx.life
    local auto = base.secure == "auto"
    if ttl == base.ttl and max_age == base.maxAge and owner == nil and original == max_age and not auto then
        return base
    end
    local life = {}
    for k, v in next, base do life[k] = v end
    life.ttl, life.maxAge, life.owner = ttl, max_age, owner
    if original ~= max_age then life.originalMaxAge = original end
    if auto then life.https = https == true end
    return life
end

---Whether the store still holds session `id` and regenerate has not retired it. Asked before
---a write or touch of a Lua store that does not refuse retired records itself (`staleAware`),
---so a request that loaded the session before the retirement neither writes it back nor
---sends its cookie over the new one. With `assumed` (the commit's), also the lifetime the
---stored session keeps where that is not the one the commit assumed; and what the store holds.
local function writable(ctx, id, assumed)
    local current = M.get(ctx, id)
    if current == nil then return false end
    local retired, kept = ctx.inspect(ctx.engine, current, assumed)
    return not retired, kept, current
end

---The session keeps another lifetime than this commit assumed (another request changed it
---since this one loaded the session; the merge or touch kept it): the store's TTL follows it,
---refreshed here unless the store did (`applied`), and so does the cookie. Returns the line
---and the state: "gone" when the session went meanwhile (no cookie then).
local function keep(ctx, m, id, line, state, kept, applied, owner)
    if not applied then
        -- A touch after the store's merge, which wrote this commit's TTL. It assumes the
        -- lifetime the merge found (`kept.assumed`, opaque): a third request may have stored
        -- another since, which the read before the touch of a store that is not staleAware
        -- (that read also keeps a retired id's grace from growing), or the store's own
        -- hs._record_meta(record, assumed) in its touch, finds; the session then keeps that
        -- one. The touch is handed the assumption either way (after the read, the lifetime it
        -- found), so a touch that asks catches a write between the read and itself too.
        local newer, alive
        if not ctx.stale_aware then
            alive, newer = writable(ctx, id, kept.assumed)
            if not alive then return nil, "gone" end
            if newer ~= nil then kept = newer end
        end
        local life = life_of(ctx, kept.ttl, kept.maxAge, owner, kept.originalMaxAge, m.secure)
        alive, newer = touch(ctx, id, kept.ttl, life, kept.assumed)
        if not alive then return nil, "gone" end
        if newer ~= nil then kept = newer end
    end
    if line ~= nil then line = ctx.engine:cookie_line(id, kept.maxAge, m.secure == true) end
    return line, state
end

---Whether a table store's own `merge` of this commit may run: the store still holds session
---`id`, regenerate has not retired it, and what it holds with this commit's changes (`patch`)
---is within maxSize. The module never sees what such a merge builds, and stored past maxSize
---the session could not be loaded again (every request with its cookie would fail until its
---TTL ran out); a record store's merge checks this itself, atomically (`_merge_patch`). Raises
---`store:merge failed: the session would be N bytes merged ...` when it would be larger. The
---get is not atomic with the merge: another request's merge landing between the two can still
---take the session past maxSize.
---With `assumed` (the commit's), also the lifetime the stored session keeps, as `writable`,
---whose read serves both. Last, where the changes rewrite `__meta`, the bookkeeping the
---merged session holds by every other store's rule (nil: left alone; false: none).
local function mergeable(ctx, id, patch, assumed)
    local alive, kept, current = writable(ctx, id, assumed)
    if not alive then return false end
    local fits, got = ctx.merge_fits(ctx.engine, current, patch)
    if not fits then failed("merge", got) end
    return true, kept, got
end

---A table store's merge of changes `set` and `removed` that rewrite `__meta`: the store writes
---`set.__meta` whole, so it is handed `meta`, the bookkeeping every other store's merge leaves
---(src/codec/meta.rs, `merged`): a field this request did not change (a login or logout, a
---lifetime remember me set) as another request stored it since, read just before (not atomic
---with the merge, as the size check is not). `false`: no `__meta` at all.
local function merged_meta(set, removed, meta)
    local n, at = #removed, nil
    for i = 1, n do
        if removed[i] == "__meta" then at = i end
    end
    if meta then
        set.__meta = meta
        if at ~= nil then
            removed[at] = removed[n]
            removed[n] = nil
        end
    else
        set.__meta = nil
        if at == nil then removed[n + 1] = "__meta" end
    end
end

---Runs the engine's commit for session `s` (its state `m`); performs a Lua store's part.
---@return string|nil line the Set-Cookie line, if any
function M.commit(s, m, flags)
    local ctx = m.ctx
    if m.secure then flags = flags + SECURE end
    if m.must_save then flags = flags + MUST_SAVE end
    if m.cookie_due then flags = flags + COOKIE_DUE end
    if m.touch then flags = flags + TOUCH end
    local index = ctx.index
    local line, state, snap, version, op, a, b, ttl, max_age, owner, original, assumed, patch =
        ctx.commit(m.state, m.id, s, m.flash_new, m.shadow, m.snap, flags, m.ver, m.meta,
            index and rawget(s, index))
    if op ~= nil then
        local id = m.id
        local life = life_of(ctx, ttl, max_age, owner, original, m.secure)
        -- The lifetime the store keeps for the session where it is not the one this commit
        -- assumed (`assumed`, nil where the commit writes its own), and whether the store
        -- refreshed the session for it already.
        local kept, applied
        if op == "merge" and not ctx.record then
            -- A table store's own merge: read first (staleAware or not), for its size; the read
            -- also tells what lifetime the session keeps.
            local alive, meta
            alive, kept, meta = mergeable(ctx, id, patch, assumed)
            if not alive then
                op, state, line, snap = nil, "gone", nil, nil
            elseif meta ~= nil then
                merged_meta(a, b, meta)
            end
        elseif op == "replace" or (op ~= "set" and not ctx.stale_aware) then
            -- A store without merge writes whole sessions with set, which refuses nothing: it
            -- is read first even when it says it is staleAware (that vouches for merge and
            -- touch). The read tells a touch what lifetime the session keeps (`assumed` is nil
            -- for the others: a record store's merge learns it from the merge itself,
            -- hs._merge_patch, and a whole write stores this request's).
            local alive
            alive, kept = writable(ctx, id, assumed)
            if not alive then op, state, line, snap = nil, "gone", nil, nil end
        end
        if op == "set" then
            version = call(ctx, "set", id, a, ttl, life)
            if not ctx.record then
                version = nil
            elseif version ~= nil and type(version) ~= "string" then
                wrong("set", "a string version or nothing", version)
            end
        elseif op == "merge" then
            local ok, v, k, done = merge(ctx, id, a, b, m.ver, ttl, life, m)
            if ok then
                version = v
                if ctx.record then kept, applied = k, done end
            else
                state, line, snap = "gone", nil, nil
            end
        elseif op == "replace" then
            -- A store without merge: the whole session, once `writable` found it still there
            -- (writes of other requests to other keys are lost; the README says so).
            call(ctx, "set", id, a, ttl, life)
        elseif op == "touch" then
            local alive
            if kept ~= nil then
                -- The read found another lifetime stored: refreshed for that one.
                alive = touch(ctx, id, kept.ttl, life_of(ctx, kept.ttl, kept.maxAge, owner, kept.originalMaxAge, m.secure))
            else
                alive, kept = touch(ctx, id, ttl, life, assumed)
            end
            applied = true
            if not alive then state, line = "gone", nil end
        end
        if kept ~= nil and state == "stored" then
            line, state = keep(ctx, m, id, line, state, kept, applied, owner)
            if state == "gone" then snap = nil end
        end
    end
    m.state, m.touch = state, nil
    if snap ~= nil then m.snap, m.ver = snap, version end
    if m.moved_from ~= nil and state == "stored" and not M.settle(s, m) then return nil end
    return line
end

---Ends a stored session's id (`m`, its state): retired (readable, with its stored data, for the
---stale grace; see Engine::retire) when `retire`, else deleted. Whether the store still held
---it (a Lua store is asked with `exists` first only when `ask`; see M.destroy).
---@return boolean held
function M.retire_or_destroy(s, m, retire, ask)
    if retire then
        M.commit(s, m, RETIRE)
        return m.state == "stored"
    end
    return M.destroy(m, ask)
end

---The old id of a move (session.lua's regenerate(true) of an owned session), once the new id
---is stored: retired (readable for the stale grace) or deleted. If the store no longer holds
---it, the session ended meanwhile (destroyAll, a logout elsewhere, expiry) and the new id
---goes too: a destroyAll between the two writes finds one or the other. A store error leaves
---the move pending, so the next commit of the session tries again.
---@return boolean alive false: the session is gone, and no cookie goes out
function M.settle(s, m)
    local from = m.moved_from
    -- A second try (the first raised, and the handler went on): the old id may since have
    -- gone by the app's own destroyAll(owner, getId()), which spared the new id. Whether the
    -- session lives is then the new id's to say: this commit just wrote it.
    local retry = from.tried
    from.tried = true
    local old = { ctx = m.ctx, id = from.id, state = "stored", snap = from.snap, ver = from.ver, secure = m.secure }
    local alive = M.retire_or_destroy(s, old, from.retire, true)
    m.moved_from = nil
    if alive and from.retire then M.retired(m, from.id) end
    if alive or retry then return true end
    M.destroy(m)
    m.state, m.snap, m.ver = "gone", nil, nil
    return false
end

---Notes an id this request retired: it still reads the data it held for the stale grace, so a
---destroy() or a data-dropping regenerate() later in the request deletes it too (drop_moved).
---A list: each regenerate(true) of the request retires one.
function M.retired(m, id)
    local list = m.retired_from
    if list == nil then
        m.retired_from = { id }
    else
        list[#list + 1] = id
    end
end

---Deletes the old id of a move (pending after a store error) and the ids this request retired:
---the data they hold was dropped after all (destroy(), regenerate()).
function M.drop_moved(m)
    local from = m.moved_from
    if from ~= nil then
        M.destroy({ ctx = m.ctx, id = from.id })
        m.moved_from = nil
    end
    -- Each id leaves the list once deleted: after a store error, a retried destroy() still
    -- knows the rest.
    local retired = m.retired_from
    if retired ~= nil then
        for i = #retired, 1, -1 do
            M.destroy({ ctx = m.ctx, id = retired[i] })
            retired[i] = nil
        end
        m.retired_from = nil
    end
end

---What a Lua store's get returned, decoded: `data, flash, shadow, meta, snapshot`; nothing
---past absoluteTimeout or a retired id's grace; `false, message` when it cannot be adopted.
local function adopt(ctx, stored)
    if type(stored) == "string" then return ctx.adopt(stored) end
    return ctx.adopt_table(ctx.engine, stored)
end

local function checked(data, flash, shadow, meta, snap)
    if data == false then
        error("honeymoon_session: store:get failed: " .. flash:gsub("^honeymoon_session: ", ""), 0)
    end
    return data, flash, shadow, meta, snap
end

---The session `id` as the store holds it now (for session:reload()): `data, flash, shadow,
---meta, snapshot, version`, or nothing when the store no longer holds it.
function M.reload(ctx, id)
    if ctx.native then
        local data, flash, shadow, meta, snap, version = ctx.reload(ctx.engine, id)
        if data == nil then return nil end
        checked(data, flash, shadow, meta, snap)
        return data, flash, shadow, meta, snap, version
    end
    local stored, version = M.get(ctx, id)
    if stored == nil then return nil end
    local data, flash, shadow, meta, snap = checked(adopt(ctx, stored))
    if data == nil then
        call(ctx, "destroy", id) -- past its absolute timeout or its grace
        return nil
    end
    return data, flash, shadow, meta, snap, version
end

---Removes the session's id from the store. With `ask`, returns whether a live session was
---there (a native store answers atomically; a Lua store is asked with `exists` first).
function M.destroy(m, ask)
    local ctx = m.ctx
    if ctx.native then
        local existed, err = ctx.destroy(ctx.engine, m.id)
        if existed == nil then error(err, 0) end
        return existed
    end
    local existed = ask and M.exists(ctx, m.id) or false
    call(ctx, "destroy", m.id)
    return existed
end

---The first of the candidate ids the store holds (each looked up once, in order), with what
---it holds; else a fresh id. Walks the engine's results without a table.
local function first_live(ctx, id, ...)
    if id == nil then return ctx.id() end
    local stored, version = M.get(ctx, id)
    if stored ~= nil then
        local data, flash, shadow, meta, snap = checked(adopt(ctx, stored))
        if data ~= nil then return id, data, flash, shadow, meta, snap, version end
        call(ctx, "destroy", id) -- past its absolute timeout or its grace: never adopted again
    end
    return first_live(ctx, ...)
end

---The session named by a Cookie header: for a native store one engine call; for a Lua store
---the engine's candidates are looked up here (each once). Returns the engine's values.
function M.load(ctx, header)
    if ctx.native then
        return ctx.load(header)
    end
    if header ~= nil then return first_live(ctx, ctx.candidates(header)) end
    return ctx.id()
end

return M

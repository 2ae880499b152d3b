-- The server adapters: lua_http with real lua-http header objects (no sockets), openresty with
-- a fake `ngx` table. Both are thin layers over core:load/core:commit, so these specs check the
-- plumbing (which header goes in, which lines come out, where), not session semantics.
if _VERSION ~= "Lua 5.1" then
    -- Debian ships lua-http (pure Lua) for 5.1 only; on 5.2 to 5.4 it runs from the 5.1 share dir.
    package.path = package.path .. ";/usr/share/lua/5.1/?.lua;/usr/share/lua/5.1/?/init.lua"
end

local hs = require("honeymoon_session")
local lua_http = require("honeymoon_session.adapters.lua_http")
local openresty = require("honeymoon_session.adapters.openresty")
local has_http, http_headers = pcall(require, "http.headers")
local FakeDict = require("spec.support.fake_dict")

local OPTS = { secret = "adapter-secret", name = "app.sid", cookie = { sameSite = "Lax", secure = "auto" } }

local function opts(extra)
    local t = { store = hs.MemoryStore() }
    for k, v in pairs(OPTS) do t[k] = v end
    for k, v in pairs(extra or {}) do t[k] = v end
    return t
end

-- "app.sid=s%3A...; Path=/; ..." -> "app.sid=s%3A..."
local function pair(line) return (line:match("^([^;]*)")) end

-- A store whose writes fail, for the error path.
local function failing_store()
    local s = {}
    for _, m in ipairs({ "get", "destroy", "touch", "exists", "all", "length", "clear" }) do
        s[m] = function() return nil end
    end
    s.set = function() error("disk full") end
    return s
end

describe("adapters.lua_http", function()
    if not has_http then
        pending("lua-http (Debian lua-http) is not installed: " .. tostring(http_headers))
        return
    end

    local function request(...)
        local h = http_headers.new()
        h:append(":method", "GET")
        h:append(":path", "/")
        for _, line in ipairs({ ... }) do h:append("cookie", line) end
        return h
    end

    local function response()
        local h = http_headers.new()
        h:append(":status", "200")
        return h
    end

    it("builds a core from options, or takes a core as it is", function()
        local a = lua_http.new(opts())
        assert.equal(getmetatable(hs.core(opts())), getmetatable(a.core))
        assert.equal("app.sid", a.name)
        local core = hs.core(opts())
        assert.equal(core, lua_http.new(core).core)
    end)

    it("raises the core's option errors", function()
        assert.has_error(function() lua_http.new({ secret = "x", cookie = { sameSite = "lax " } }) end,
            'honeymoon_session: cookie.sameSite must be "Strict", "Lax", "None" or false, got "lax "')
    end)

    it("sends no set-cookie for an untouched new session", function()
        local a = lua_http.new(opts())
        local session, id = a:load(request())
        assert.equal(session:getId(), id)
        local res = response()
        assert.same({}, a:commit(session, res))
        assert.is_false(res:has("set-cookie"))
    end)

    it("appends exactly one set-cookie to the response headers and returns it", function()
        local a = lua_http.new(opts())
        local session = a:load(request())
        session.userId = 1
        local res = response()
        local lines = a:commit(session, res)
        assert.equal(1, #lines)
        local seq = res:get_as_sequence("set-cookie")
        assert.equal(1, seq.n)
        assert.equal(lines[1], seq[1])
        local prefix = "app.sid=s%3A" .. session:getId() .. "."
        assert.equal(prefix, seq[1]:sub(1, #prefix))
        assert.matches("; HttpOnly", seq[1], 1, true)
        assert.matches("; SameSite=Lax", seq[1], 1, true)
        assert.equal("200", res:get(":status"), "other headers untouched")
    end)

    it("reads the session back from the cookie header of the next request", function()
        local a = lua_http.new(opts())
        local s1 = a:load(request())
        s1.username = "Alice"
        local line = a:commit(s1, response())[1]
        local s2, id2 = a:load(request(pair(line)))
        assert.equal(s1:getId(), id2)
        assert.equal("Alice", s2.username)
        assert.same({}, a:commit(s2, response()), "unchanged, not rolling: no cookie")
    end)

    it("joins several cookie header lines with '; ' (HTTP/2 cookie crumbs)", function()
        local a = lua_http.new(opts())
        local s1 = a:load(request())
        s1.n = 7
        local line = a:commit(s1, response())[1]
        local h = request("theme=dark", pair(line), "other=1")
        assert.equal("theme=dark; " .. pair(line) .. "; other=1", lua_http.cookie_header(h))
        local s2 = a:load(h)
        assert.equal(7, s2.n)
    end)

    it("has no cookie header for a request without one, or without headers", function()
        assert.is_nil(lua_http.cookie_header(request()))
        assert.is_nil(lua_http.cookie_header(nil))
        local session = lua_http.new(opts()):load(nil)
        assert.equal(32, #session:getId())
    end)

    it("passes secure through: Secure exactly on HTTPS with cookie.secure = 'auto'", function()
        local a = lua_http.new(opts())
        local s = a:load(request(), true)
        s.x = 1
        assert.matches("; Secure", a:commit(s, response())[1], 1, true)
        s = a:load(request(), false)
        s.x = 1
        assert.not_matches("; Secure", a:commit(s, response())[1], 1, true)
        s = a:load(request()) -- nil means plain http
        s.x = 1
        assert.not_matches("; Secure", a:commit(s, response())[1], 1, true)
    end)

    it("keeps req.sessionID in step when given a request table", function()
        local a = lua_http.new(opts())
        local req = {}
        local s, id = a:load(request(), false, req)
        assert.equal(id, req.sessionID)
        local new_id = s:regenerate(false)
        assert.equal(new_id, req.sessionID)
        assert.matches(new_id, a:commit(s, response())[1], 1, true)
    end)

    it("commits once: a second commit appends nothing", function()
        local a = lua_http.new(opts())
        local s = a:load(request())
        s.x = 1
        local res = response()
        assert.equal(1, #a:commit(s, res))
        assert.same({}, a:commit(s, res))
        assert.equal(1, res:get_as_sequence("set-cookie").n)
    end)

    it("works without response headers (returns the lines only)", function()
        local a = lua_http.new(opts())
        local s = a:load(request())
        s.x = 1
        assert.equal(1, #a:commit(s))
    end)

    it("sends a clearing cookie after destroy()", function()
        local a = lua_http.new(opts())
        local s1 = a:load(request())
        s1.userId = 1
        local line = a:commit(s1, response())[1]
        local s2 = a:load(request(pair(line)))
        s2:destroy()
        local res = response()
        a:commit(s2, res)
        assert.matches("^app%.sid=;", res:get("set-cookie"))
        assert.matches("Max-Age=0", res:get("set-cookie"), 1, true)
    end)

    it("says so at the caller's line when a method is called with a dot", function()
        local a = lua_http.new(opts())
        for _, call in ipairs({
            function() a.load(request()) end,
            function() a.commit(a:load(request()), response()) end,
        }) do
            local ok, err = pcall(call)
            assert.is_false(ok)
            assert.matches("^spec/adapters_spec%.lua:%d+: honeymoon_session: adapter methods are called with a colon: adapter:%a+%(%.%.%.%)$", err)
        end
    end)

    it("refuses options that are not a table, at the caller's line", function()
        for _, bad in ipairs({ "x", 5, true }) do
            local ok, err = pcall(function() lua_http.new(bad) end)
            assert.is_false(ok)
            assert.matches("^spec/adapters_spec%.lua:%d+: honeymoon_session: adapters.lua_http: new takes an options table or a core, got a " .. type(bad) .. "$", err)
        end
    end)

    it("refuses request headers it cannot read, at the caller's line", function()
        local a = lua_http.new(opts())
        local ok, err = pcall(function() a:load({ cookie = "app.sid=x" }) end)
        assert.is_false(ok)
        assert.equal("honeymoon_session: adapter:load(headers): headers must be lua-http request headers "
            .. "(stream:get_headers()), got a table without get", err:gsub("^[^:]+:%d+: ", ""), nil)
        assert.matches("^spec/adapters_spec%.lua:%d+: ", err)
        ok, err = pcall(function() a:load(request(), false, "req") end)
        assert.is_false(ok)
        assert.matches("^spec/adapters_spec%.lua:%d+: honeymoon_session: adapter:load%(headers, secure, req%): req must be a table", err)
    end)

    -- Checked before the store is written: after it, the cookie for that write would be lost.
    it("refuses response headers without append before committing anything", function()
        local store = hs.MemoryStore()
        local a = lua_http.new(opts({ store = store }))
        local s, id = a:load(request())
        s.x = 1
        local ok, err = pcall(a.commit, a, s, {})
        assert.is_false(ok)
        assert.matches("headers must be lua-http response headers (an object with append), got a table without append", err, 1, true)
        assert.is_false(store:exists(id), "nothing stored")
        local res = response()
        assert.equal(1, #a:commit(s, res), "the session can still be committed")
        assert.is_true(store:exists(id))
        assert.equal(1, res:get_as_sequence("set-cookie").n)
    end)

    it("takes any true value as HTTPS (stream:checktls() returns the TLS object)", function()
        local a = lua_http.new(opts()) -- cookie.secure = "auto"
        for _, secure in ipairs({ true, {}, "tls" }) do
            local s = a:load(request(), secure)
            s.x = 1
            assert.matches("; Secure", a:commit(s)[1], 1, true)
        end
        for _, secure in ipairs({ false, nil }) do
            local s = a:load(request(), secure)
            s.x = 1
            assert.is_nil(a:commit(s)[1]:find("Secure", 1, true))
        end
    end)

    it("raises a store failure from commit and appends no set-cookie", function()
        local a = lua_http.new(opts({ store = failing_store() }))
        local s = a:load(request())
        s.x = 1
        local res = response()
        local ok, err = pcall(a.commit, a, s, res)
        assert.is_false(ok)
        assert.matches("store:set failed", tostring(err), 1, true)
        assert.matches("disk full", tostring(err), 1, true)
        assert.is_false(res:has("set-cookie"))
    end)
end)

describe("adapters.openresty", function()
    local saved

    -- Just what the adapter touches: ngx.var, ngx.ctx, ngx.header, ngx.headers_sent,
    -- ngx.req.is_internal (true once the test sets ngx.internal: an internal redirect).
    local function fake_ngx(cookie, scheme)
        local ngx
        ngx = { var = { http_cookie = cookie, scheme = scheme or "http" }, ctx = {}, header = {},
                headers_sent = false, req = { is_internal = function() return ngx.internal == true end } }
        _G.ngx = ngx
        return ngx
    end

    before_each(function() saved = rawget(_G, "ngx") end)
    after_each(function() _G.ngx = saved end)

    it("start() reads ngx.var.http_cookie and keeps the session in ngx.ctx", function()
        local a = openresty.new(opts())
        local ngx = fake_ngx(nil)
        local s1, id = a:start()
        assert.equal(s1, ngx.ctx.session)
        assert.equal(s1:getId(), id)
        s1.userId = 1
        a:finish(s1)
        local line = ngx.header["Set-Cookie"]
        assert.equal("string", type(line))
        local prefix = "app.sid=s%3A" .. id .. "."
        assert.equal(prefix, line:sub(1, #prefix))

        ngx = fake_ngx("theme=dark; " .. pair(line))
        local s2, id2 = a:start()
        assert.equal(id, id2)
        assert.equal(1, s2.userId)
    end)

    it("finish() without an argument finishes ngx.ctx.session (access phase -> content phase)", function()
        local a = openresty.new(opts())
        local ngx = fake_ngx(nil)
        a:start()
        ngx.ctx.session.x = 1
        local lines = a:finish()
        assert.equal(1, #lines)
        assert.equal(lines[1], ngx.header["Set-Cookie"])
        assert.is_nil(ngx.ctx.session)
    end)

    -- The access phase starts the session, the content phase starts it again: a second start()
    -- made a new session from the cookie, and what the first phase wrote was lost.
    it("start() again in the same request hands back the session it started, until finish()", function()
        local a = openresty.new(opts())
        local ngx = fake_ngx(nil)
        local s1, id1 = a:start()
        s1.fromAccess = true
        local req = {}
        local s2, id2 = a:start(req)
        assert.equal(s1, s2)
        assert.equal(id1, id2)
        assert.equal(id1, req.sessionID)
        s2.fromContent = true
        local line = a:finish()[1]
        ngx = fake_ngx(pair(line))
        local s3 = a:start()
        assert.is_true(s3.fromAccess)
        assert.is_true(s3.fromContent)
        -- Another adapter's session in ngx.ctx (another cookie name) is not handed out as this one's.
        local other = openresty.new(opts({ name = "other.sid" }))
        local s4 = other:start()
        assert.are_not.equal(s3, s4)
        assert.equal(s4, ngx.ctx.session)
        -- Nor is something else the app put there.
        ngx.ctx.session = setmetatable({}, { __index = function() error("read") end })
        assert.are_not.equal(ngx.ctx.session, (a:start()))
    end)

    -- finish(), then ngx.exec to a location that starts the session again: nginx empties
    -- ngx.ctx but keeps the response headers. start() made a second new session from the
    -- request's cookie (none), whose line came last and replaced the first's in the browser:
    -- what the first location wrote was lost.
    it("start() after finish() and an internal redirect loads the session finished before it", function()
        local a = openresty.new(opts())
        local other = openresty.new(opts({ name = "admin.sid" }))
        local ngx = fake_ngx("theme=dark")
        local s1, id1 = a:start()
        s1.before = 1
        a:finish()
        ngx.ctx, ngx.internal = {}, true -- ngx.exec("/target")
        local s2, id2 = a:start()
        assert.equal(id1, id2)
        assert.equal(1, s2.before)
        s2.after = 1
        a:finish()
        -- Another cookie name is not taken for it.
        assert.are_not.equal(id1, select(2, other:start()))
        -- Both writes are in the session the browser keeps (the last line of the name).
        local lines = ngx.header["Set-Cookie"]
        local last = type(lines) == "table" and lines[#lines] or lines
        ngx = fake_ngx(pair(last))
        local s3, id3 = a:start()
        assert.equal(id1, id3)
        assert.equal(1, s3.before)
        assert.equal(1, s3.after)
    end)

    it("start() after finish() in an earlier phase of the request loads that session", function()
        local a = openresty.new(opts())
        fake_ngx(nil)
        local s1, id1 = a:start() -- access phase
        s1.x = 1
        a:finish()
        local s2, id2 = a:start() -- content phase
        assert.equal(id1, id2)
        assert.equal(1, s2.x)
    end)

    -- Two adapters in one request (two cookie names: an app and its admin area): ngx.ctx.session
    -- holds only the latest started, so the first adapter's second start() made a new session
    -- from the cookie and dropped what the access phase wrote, and its finish() without an
    -- argument took the other adapter's session.
    it("two adapters in one request each hand back and finish their own session", function()
        local a = openresty.new(opts())
        local b = openresty.new(opts({ name = "admin.sid" }))
        local ngx = fake_ngx(nil)
        -- The access phase starts both.
        local sa, ida = a:start()
        local sb, idb = b:start()
        sa.fromAccess, sb.fromAccess = "a", "b"
        -- The content phase starts them again, in the other order.
        local sb2, idb2 = b:start()
        local sa2, ida2 = a:start()
        assert.equal(sa, sa2)
        assert.equal(ida, ida2)
        assert.equal(sb, sb2)
        assert.equal(idb, idb2)
        assert.equal(sa, ngx.ctx.session, "ngx.ctx.session is the session the latest start() handed out")
        local la = a:finish()[1]
        local lb = b:finish()[1]
        assert.matches("^app%.sid=", la)
        assert.matches("^admin%.sid=", lb)
        assert.is_nil(ngx.ctx.session)
        fake_ngx(pair(la) .. "; " .. pair(lb))
        assert.equal("a", a:start().fromAccess)
        assert.equal("b", b:start().fromAccess)
    end)

    it("sets no header for an untouched new session", function()
        local a = openresty.new(opts())
        local ngx = fake_ngx(nil)
        assert.same({}, a:finish((a:start())))
        assert.is_nil(ngx.header["Set-Cookie"])
    end)

    it("appends to a Set-Cookie header set earlier, string or table", function()
        local a = openresty.new(opts())
        local ngx = fake_ngx(nil)
        ngx.header["Set-Cookie"] = "a=1"
        local s = a:start()
        s.x = 1
        local line = a:finish(s)[1]
        assert.same({ "a=1", line }, ngx.header["Set-Cookie"])

        ngx = fake_ngx(nil)
        local earlier = { "a=1", "b=2" }
        ngx.header["Set-Cookie"] = earlier
        s = a:start()
        s.x = 1
        line = a:finish(s)[1]
        assert.same({ "a=1", "b=2", line }, ngx.header["Set-Cookie"])
        assert.same({ "a=1", "b=2" }, earlier, "assigns a new table, as ngx.header needs")
    end)

    it("uses ngx.var.scheme for Secure with cookie.secure = 'auto'", function()
        local a = openresty.new(opts())
        fake_ngx(nil, "https")
        local s = a:start()
        s.x = 1
        assert.matches("; Secure", a:finish(s)[1], 1, true)
        fake_ngx(nil, "http")
        s = a:start()
        s.x = 1
        assert.not_matches("; Secure", a:finish(s)[1], 1, true)
    end)

    it("keeps req.sessionID in step when given a request table", function()
        local a = openresty.new(opts())
        fake_ngx(nil)
        local req = {}
        local s, id = a:start(req)
        assert.equal(id, req.sessionID)
        assert.equal(s:regenerate(false), req.sessionID)
    end)

    it("raises when finish() comes without start()", function()
        local a = openresty.new(opts())
        fake_ngx(nil)
        assert.has_error(function() a:finish() end, "honeymoon_session: finish() without start()")
    end)

    it("raises, and stores nothing, when the headers were already sent", function()
        local store = hs.MemoryStore()
        local a = openresty.new(opts({ store = store }))
        local ngx = fake_ngx(nil)
        local s = a:start()
        s.x = 1
        ngx.headers_sent = true
        local ok, err = pcall(a.finish, a, s)
        assert.is_false(ok)
        assert.matches("after the response headers were sent", tostring(err), 1, true)
        assert.equal(0, store:length())
        assert.is_nil(ngx.header["Set-Cookie"])
    end)

    it("raises a store failure from finish and sets no header", function()
        local a = openresty.new(opts({ store = failing_store() }))
        local ngx = fake_ngx(nil)
        local s = a:start()
        s.x = 1
        local ok, err = pcall(a.finish, a, s)
        assert.is_false(ok)
        assert.matches("store:set failed", tostring(err), 1, true)
        assert.is_nil(ngx.header["Set-Cookie"])
    end)

    describe("the store", function()
        -- Just what SharedDictStore.new looks at (ngx.shared[name]) and what its get/set use
        -- (set writes a new id with add).
        local function fake_dict()
            local data = {}
            return {
                get = function(_, k) return data[k] end,
                set = function(_, k, v) data[k] = v; return true end,
                add = function(_, k, v)
                    if data[k] ~= nil then return false, "exists" end
                    data[k] = v
                    return true
                end,
                data = data,
            }
        end
        local function without_store(extra)
            local t = {}
            for k, v in pairs(OPTS) do t[k] = v end
            for k, v in pairs(extra or {}) do t[k] = v end
            return t
        end

        it("is a SharedDictStore on the lua_shared_dict 'sessions' by default", function()
            local ngx = fake_ngx(nil)
            ngx.shared = { sessions = fake_dict() }
            local given = without_store()
            local a = openresty.new(given)
            assert.equal(ngx.shared.sessions, a.store.dict)
            assert.equal("record", a.store.format)
            assert.is_nil(given.store, "the caller's options table is left as it was")
            local s, id = a:start()
            s.userId = 7
            a:finish(s)
            assert.is_string(ngx.shared.sessions.data["sess@app.sid:" .. id], "stored in the dict, under its cookie name")
            -- Another adapter (another worker) over the same dict reads it.
            fake_ngx(pair(ngx.header["Set-Cookie"])).shared = ngx.shared
            local other = openresty.new(without_store())
            assert.equal(7, other:start().userId)
        end)

        it("shared_dict names another dict", function()
            local ngx = fake_ngx(nil)
            ngx.shared = { sessions = fake_dict(), app = fake_dict() }
            local a = openresty.new(without_store({ shared_dict = "app" }))
            assert.equal(ngx.shared.app, a.store.dict)
        end)

        it("raises at new(), naming the dict, when it is not declared; never falls back to a per-worker store", function()
            fake_ngx(nil).shared = {}
            local ok, err = pcall(openresty.new, without_store())
            assert.is_false(ok)
            assert.is_string(err)
            assert.matches('^honeymoon_session: adapters%.openresty: no store given, and the default one %(SharedDictStore, shared by every nginx worker%) cannot be made: no lua_shared_dict named "sessions": declare it', err)
            assert.matches("lua_shared_dict sessions 10m;", err, 1, true)
            assert.matches("hs.MemoryStore() only with worker_processes 1", err, 1, true)
            ok, err = pcall(openresty.new, without_store({ shared_dict = "app" }))
            assert.matches('no lua_shared_dict named "app"', err, 1, true)
        end)

        -- The adapter copies the options to add its store: inherited ones must not be lost.
        it("refuses options that inherit fields through __index, as the engine does", function()
            fake_ngx(nil).shared = { sessions = fake_dict() }
            for _, mt in ipairs({ {}, { __metatable = "locked" } }) do
                mt.__index = without_store({ name = "app.sid" })
                local ok, err = pcall(openresty.new, setmetatable({}, mt))
                assert.is_false(ok)
                assert.equal("honeymoon_session: the options must be a plain table, got a table whose metatable has "
                    .. "__index (its inherited fields would be ignored); copy the values into a plain table", err)
            end
        end)

        -- session() draws a random secret per process without one: under nginx, one per worker.
        it("needs a secret, unless given a core", function()
            fake_ngx(nil).shared = { sessions = fake_dict() }
            for _, given in ipairs({ { name = "app.sid" }, { store = hs.MemoryStore() } }) do
                local ok, err = pcall(function() openresty.new(given) end)
                assert.is_false(ok)
                assert.matches("^spec/adapters_spec%.lua:%d+: honeymoon_session: adapters%.openresty needs a secret: "
                    .. "without one each nginx worker %(and each reload%) would sign with a random secret", err)
            end
            local ok, err = pcall(openresty.new)
            assert.is_false(ok)
            assert.matches("needs a secret", err, 1, true)
            local core = hs.core({ store = hs.MemoryStore() })
            assert.equal(core, openresty.new(core).core)
        end)

        -- Two apps in one nginx (two server blocks) share the default dict.
        it("keeps each cookie name's sessions apart in the default dict", function()
            -- What the owner index needs of ngx and a dict, and what the adapter reads.
            local ngx = FakeDict.ngx({ "sessions" })
            ngx.var, ngx.ctx, ngx.header, ngx.headers_sent = { scheme = "http" }, {}, {}, false
            _G.ngx = ngx
            local a = openresty.new(without_store({ name = "a.sid", index = "userId" }))
            local b = openresty.new(without_store({ name = "b.sid", index = "userId", secret = "b-secret" }))
            local sb, id = b:start()
            sb.userId = 1
            b:finish(sb)
            assert.is_string(ngx.shared.sessions:get("sess@b.sid:" .. id))
            assert.equal("sess@a.sid:", a.store.prefix)
            assert.same({}, a.store:sessionsOf(1))
            assert.equal(0, a.store:destroyAll(1))
            assert.equal(1, #b.store:sessionsOf(1), "b's session is still there")
            -- The default name when none is given.
            local d = openresty.new({ secret = "s" })
            assert.equal("sess@" .. d.name .. ":", d.store.prefix)
            -- Nor does a store the app made on the same dict with SharedDictStore's default
            -- prefix ("sess:") list them.
            local own = require("honeymoon_session.stores.shared_dict").new({ dict = "sessions" })
            assert.same({}, own:all())
        end)

        it("says so at the caller's line when a method is called with a dot", function()
            fake_ngx(nil).shared = { sessions = fake_dict() }
            local a = openresty.new(without_store())
            local s = a:start()
            for _, call in ipairs({ function() a.start() end, function() a.finish(s) end }) do
                local ok, err = pcall(call)
                assert.is_false(ok)
                assert.matches("^spec/adapters_spec%.lua:%d+: honeymoon_session: adapter methods are called with a colon: adapter:%a+%(%.%.%.%)$", err)
            end
            assert.equal(s, ngx.ctx.session, "a dot call leaves ngx.ctx as it was")
            local ok, err = pcall(function() a:start("req") end)
            assert.is_false(ok)
            assert.matches("^spec/adapters_spec%.lua:%d+: honeymoon_session: adapter:start%(req%): req must be a table", err)
        end)

        it("refuses options that are not a table, at the caller's line", function()
            fake_ngx(nil).shared = { sessions = fake_dict() }
            for _, bad in ipairs({ "x", 5, true }) do
                local ok, err = pcall(function() openresty.new(bad) end)
                assert.is_false(ok)
                assert.matches("^spec/adapters_spec%.lua:%d+: honeymoon_session: adapters.openresty: new takes an options table or a core, got a " .. type(bad) .. "$", err)
            end
        end)

        it("raises outside nginx when no store is given", function()
            _G.ngx = nil
            local ok, err = pcall(openresty.new, without_store())
            assert.is_false(ok)
            assert.matches("not running under nginx", err, 1, true)
        end)

        it("uses a given store as it is, and refuses store and shared_dict together", function()
            fake_ngx(nil).shared = { sessions = fake_dict() }
            local store = hs.MemoryStore()
            local a = openresty.new(opts({ store = store }))
            assert.equal(store, a.store)
            local ok, err = pcall(openresty.new, opts({ shared_dict = "sessions" }))
            assert.is_false(ok)
            assert.matches("give either store or shared_dict, not both", err, 1, true)
            ok, err = pcall(openresty.new, without_store({ shared_dict = 1 }))
            assert.matches("shared_dict must be the name of a lua_shared_dict, got a number", err, 1, true)
        end)

        it("a core keeps its own store", function()
            local store = hs.MemoryStore()
            local a = openresty.new(hs.core(opts({ store = store })))
            assert.equal(store, a.store)
        end)
    end)

    it("shares one core between adapters: a cookie from one is read by the other", function()
        local core = hs.core(opts())
        local ngx = fake_ngx(nil)
        local s = openresty.new(core):start()
        s.from = "nginx"
        local line = openresty.new(core):finish(s)[1]
        local h = http_headers and has_http and http_headers.new()
        if h then
            h:append("cookie", pair(line))
            assert.equal("nginx", lua_http.new(core):load(h).from)
        end
        assert.equal(ngx.header["Set-Cookie"], line)
    end)
end)

-- The core under the adapters makes the same check with its own name.
describe("core", function()
    it("says so at the caller's line when a method is called with a dot", function()
        local core = hs.core(opts())
        local s = core:load(nil, false)
        for _, call in ipairs({
            function() core.load(nil, false) end,
            function() core.fresh() end,
            function() core.commit(s) end,
        }) do
            local ok, err = pcall(call)
            assert.is_false(ok)
            assert.matches("^spec/adapters_spec%.lua:%d+: honeymoon_session: core methods are called with a colon: "
                .. "core:%a+%(%.%.%.%)$", err)
        end
    end)
end)

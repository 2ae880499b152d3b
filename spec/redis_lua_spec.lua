-- The Lua RedisStore (honeymoon_session.stores.redis) on cqueues sockets against a real
-- redis-server: the record-store contract, connect-redis's stored form shared with the native
-- store and with Node, compare-and-set merges under concurrency, failures as plain messages,
-- and proof that its calls yield to the event loop.
local Interpreter = require("spec.support.interpreter")
local Child = require("spec.support.child")
if not Interpreter.yields_across_pcall then
    describe("Lua RedisStore (cqueues)", function()
        pending("its socket calls yield inside the store's pcall: " .. Interpreter.NO_YIELD_IN_PCALL)
    end)
    return
end

local hs = require("honeymoon_session")
local R = hs._redis
local LuaRedis = require("honeymoon_session.stores.redis")
local RedisServer = require("scripts.lib.redis_server")
local SlowProxy = require("spec.support.slow_proxy")
local cqueues = require("cqueues")

local unpack = table.unpack or unpack

-- What the engine hands a record store: the session config's lifetime.
local LIFE = { ttl = 3600, maxAge = 600, path = "/", httpOnly = true, secure = false, sameSite = "Strict" }

local server

lazy_setup(function() server = RedisServer.start() end)
lazy_teardown(function() server:close() end)
before_each(function() server:cli("FLUSHALL") end)

-- Runs each function as a coroutine of one cqueues loop (socket calls there yield) until all
-- have returned; returns the first one's results, or raises the first error.
local function in_loop(...)
    local cq = cqueues.new()
    local fns, results, pending, failure = { ... }, {}, select("#", ...), nil
    for i, fn in ipairs(fns) do
        cq:wrap(function()
            local r = { pcall(fn, cq) }
            if r[1] then results[i] = { unpack(r, 2) } elseif not failure then failure = r[2] end
            pending = pending - 1
        end)
    end
    local deadline = cqueues.monotime() + 20
    while pending > 0 and not failure do
        local ok, err = cq:step(0.05)
        if not ok then error(err, 0) end
        assert(cqueues.monotime() < deadline, "the loop did not finish in 20 s")
    end
    if failure then error(failure, 0) end
    return unpack(results[1] or {})
end

local function new(opts)
    opts = opts or {}
    opts.url = opts.url or server.url
    opts.socket = "cqueues"
    return LuaRedis.new(opts)
end

local function raw(key) return (server:cli("GET", key):gsub("\n$", "")) end

describe("the event-loop RedisStore: a method called with a dot", function()
    it("says so, in the module's shape, for every method", function()
        require("spec.support.dotted")(LuaRedis.new({ url = "redis://127.0.0.1:1", socket = "cqueues" }))
    end)
end)

local function caught(f, ...)
    local ok, err = pcall(f, ...)
    assert.is_false(ok, "expected an error")
    assert.equal("string", type(err), "errors are plain strings")
    return err
end

describe("Lua RedisStore (cqueues): the record-store contract", function()
    it("is a store in record format", function()
        local s = new()
        assert.equal("record", s.format)
        for _, m in ipairs({ "get", "set", "merge", "destroy", "touch", "exists", "all", "length", "clear" }) do
            assert.equal("function", type(s[m]), m)
        end
    end)

    it("get: nil for an unknown id; after set, the record and the stored JSON as version", function()
        in_loop(function()
            local s = new()
            assert.is_nil(s:get("nobody"))
            local version = s:set("a1", R.record({ user = "ann", n = 3, cart = { 1, 2 } }), 3600, LIFE)
            local record, v = s:get("a1")
            assert.equal(version, v)
            assert.same({ user = "ann", n = 3, cart = { 1, 2 } }, R.data(record))
        end)
    end)

    it("set writes connect-redis's form: prefix..id, JSON with the cookie object, TTL of the cookie", function()
        in_loop(function()
            new({ prefix = "app:" }):set("a2", R.record({ userId = 42 }), 3600, LIFE)
        end)
        local doc = hs.json.decode(raw("app:a2"))
        assert.equal(42, doc.userId)
        assert.equal(600000, doc.cookie.originalMaxAge)
        assert.matches("^%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%d%.%d%d%dZ$", doc.cookie.expires)
        assert.equal("strict", doc.cookie.sameSite)
        assert.is_true(doc.cookie.httpOnly)
        assert.is_false(doc.cookie.secure)
        local ttl = tonumber(server:cli("TTL", "app:a2"))
        assert.is_true(ttl > 590 and ttl <= 600, "ttl " .. tostring(ttl))
    end)

    it("writes the same JSON as the native RedisStore for the same session and lifetime", function()
        local data = { s = "é", i = 7, f = 0.5, t = { a = true, list = { "x", "y" } } }
        in_loop(function() new():set("lua", R.record(data), 120) end)
        hs.RedisStore({ url = server.url }):set("native", data, 120)
        local strip = function(j) return (j:gsub('"expires":"[^"]*"', "")) end
        assert.equal(strip(raw("sess:native")), strip(raw("sess:lua")))
        -- Redis rounds a TTL to whole seconds, and a moment passes between the two writes.
        local native, lua = tonumber(server:cli("PTTL", "sess:native")), tonumber(server:cli("PTTL", "sess:lua"))
        assert.is_true(native > 110000 and native <= 120000 and math.abs(native - lua) < 5000,
            ("PTTL native %s, lua %s"):format(tostring(native), tostring(lua)))
    end)

    it("without a lifetime (called directly) keeps express-session's default cookie and a day", function()
        in_loop(function() new():set("d", R.record({ a = 1 })) end)
        local doc = hs.json.decode(raw("sess:d"))
        assert.equal(86400000, doc.cookie.originalMaxAge)
        assert.is_nil(doc.cookie.sameSite)
        assert.equal("/", doc.cookie.path)
    end)

    it("merge applies a patch onto the version it was given and returns the new version", function()
        in_loop(function()
            local s = new()
            local before = R.record({ a = 1, b = 2, gone = true })
            local v1 = s:set("m1", before, 3600, LIFE)
            local patch = R.patch(before, R.record({ a = 10, b = 2, c = "new" }))
            local written, v2 = s:merge("m1", patch, 3600, v1, LIFE)
            assert.is_true(written)
            local record, v = s:get("m1")
            assert.equal(v2, v)
            assert.same({ a = 10, b = 2, c = "new" }, R.data(record))
        end)
    end)

    it("merge without a version loads the current one first", function()
        in_loop(function()
            local s = new()
            local before = R.record({ a = 1 })
            s:set("m2", before, 3600, LIFE)
            assert.is_true((s:merge("m2", R.patch(before, R.record({ a = 1, z = 26 })), 3600, nil, LIFE)))
            assert.same({ a = 1, z = 26 }, R.data((s:get("m2"))))
        end)
    end)

    it("merge keeps the keys a Node app wrote: values, order and float bits", function()
        local node = '{"passport":{"user":"u-123","roles":[],"meta":{}},"half":0.1,"lua":1,'
            .. '"cookie":{"originalMaxAge":600000,"expires":"2030-01-01T00:00:00.000Z","httpOnly":true,"path":"/"}}'
        server:cli("SET", "sess:node", node, "EX", 600)
        in_loop(function()
            local s = new()
            local record, version = s:get("node")
            local data = R.data(record)
            assert.equal("u-123", data.passport.user)
            data.lua = data.lua + 1
            assert.is_true((s:merge("node", R.patch(record, R.record(data)), 3600, version, LIFE)))
        end)
        local after = raw("sess:node")
        assert.matches('^{"passport":{"user":"u%-123","roles":%[%],"meta":{}},"half":0.1,"lua":2,', after)
    end)

    it("two concurrent merges of different keys from one version both survive", function()
        local base = R.record({ base = 1 })
        local version
        in_loop(function() version = new():set("c1", base, 3600, LIFE) end)
        local s = new()
        local function writer(key)
            return function()
                assert.is_true((s:merge("c1", R.patch(base, R.record({ base = 1, [key] = key })), 3600, version, LIFE)))
            end
        end
        in_loop(writer("x"), writer("y"))
        local data = R.data((in_loop(function() return s:get("c1") end)))
        assert.same({ base = 1, x = "x", y = "y" }, data)
    end)

    it("a destroyed session is not written back: merge returns false and writes nothing", function()
        in_loop(function()
            local s = new()
            local before = R.record({ userId = 1 })
            local version = s:set("dead", before, 3600, LIFE)
            s:destroy("dead")
            assert.is_false(s:merge("dead", R.patch(before, R.record({ userId = 1, late = true })), 3600, version, LIFE))
            assert.is_false(s:merge("dead", R.patch(before, R.record({ late = true })), 3600, nil, LIFE))
            assert.is_false(s:exists("dead"))
        end)
        assert.equal("0", server:cli("EXISTS", "sess:dead"):match("%d"))
    end)

    it("touch refreshes the TTL from the cookie's lifetime, and is false for a gone session", function()
        in_loop(function()
            local s = new()
            s:set("t1", R.record({ a = 1 }), 60)
            assert.is_true(s:touch("t1", 3600, LIFE))
            assert.is_false(s:touch("nobody", 3600, LIFE))
            assert.is_true(s:touch("t1", 5000))
        end)
        local ttl = tonumber(server:cli("TTL", "sess:t1"))
        assert.is_true(ttl > 4990 and ttl <= 5000, "ttl " .. tostring(ttl))
    end)

    it("exists, all, length and clear see exactly the keys under the prefix", function()
        server:cli("SET", "other:x", "{}")
        server:cli("SET", "sess*x", "{}") -- a glob character right after the prefix's stem
        in_loop(function()
            local s = new()
            for i = 1, 25 do s:set("id" .. i, R.record({ i = i }), 60) end
            assert.is_true(s:exists("id7"))
            assert.is_false(s:exists("id99"))
            assert.equal(25, s:length())
            local ids = s:all()
            table.sort(ids)
            assert.equal(25, #ids)
            assert.equal("id1", ids[1])
            s:clear()
            assert.equal(0, s:length())
        end)
        assert.equal("1", server:cli("EXISTS", "other:x"):match("%d"))
        assert.equal("1", server:cli("EXISTS", "sess*x"):match("%d"))
    end)

    -- Redis documents that SCAN may return a key more than once (the table shrank between two
    -- calls): a server whose two pages both hold sess:b. connect-redis counts it once too.
    it("a key SCAN returns twice is one session to all and length", function()
        local socket = require("cqueues.socket")
        local PAGES = {
            ["0"] = "*2\r\n$1\r\n7\r\n*2\r\n$6\r\nsess:a\r\n$6\r\nsess:b\r\n",
            ["7"] = "*2\r\n$1\r\n0\r\n*2\r\n$6\r\nsess:b\r\n$6\r\nsess:c\r\n",
        }
        local listener = socket.listen("127.0.0.1", 0)
        assert(listener:listen())
        local _, _, port = listener:localname()
        local ids, n
        in_loop(function()
            local s = new({ url = "redis://127.0.0.1:" .. port })
            ids = s:all()
            n = s:length()
        end, function()
            local client = listener:accept()
            client:setmode("b", "b")
            -- Each request is one SCAN command (the store waits for its reply); its cursor is
            -- the argument after SCAN.
            for _ = 1, 4 do
                local request = client:xread(-65536, "b")
                local cursor = request:match("SCAN\r\n%$%d+\r\n(%d+)\r\n")
                assert(client:xwrite(PAGES[cursor], "bn"))
            end
        end)
        listener:close()
        table.sort(ids)
        assert.same({ "a", "b", "c" }, ids)
        assert.equal(3, n)
    end)

    it("keys under the prefix that are not UTF-8 are ids as bytes; clear leaves nothing behind", function()
        server:cli("SET", "sess:\255\254", "{}")
        server:cli("SET", "sess:ok", "{}")
        in_loop(function()
            local s = new()
            local ids = s:all()
            table.sort(ids)
            assert.same({ "ok", "\255\254" }, ids)
            assert.equal(2, s:length())
            assert.is_true(s:exists("\255\254"))
            s:clear()
        end)
        assert.equal("0", server:cli("DBSIZE"):match("%d+"))
    end)

    it("refuses a session key named cookie, and data JSON cannot carry, naming the store", function()
        in_loop(function()
            local s = new()
            local err = caught(s.set, s, "k", R.record({ cookie = 1 }), 60)
            assert.matches("RedisStore:set failed: the session key \"cookie\"", err, 1, true)
            err = caught(s.set, s, "k", R.record({ bad = "\255" }), 60)
            assert.matches("not UTF-8", err, 1, true)
            err = caught(s.set, s, "k", "not a record", 60)
            assert.matches("RedisStore:set failed: the session record is not one this module encoded", err, 1, true)
            err = caught(s.merge, s, "k", "junk", 60, "{}")
            assert.matches("RedisStore:merge failed: the patch is not one this module wrote", err, 1, true)
            err = caught(s.set, s, "k", R.record({}), 0)
            assert.matches("ttl must be a whole number of seconds", err, 1, true)
            err = caught(s.get, s, nil)
            assert.matches("RedisStore:get failed: a session id is a string, got nil", err, 1, true)
            err = caught(s.get, s, 42)
            assert.matches("RedisStore:get failed: a session id is a string, got a number", err, 1, true)
            err = caught(s.set, s, "k", false, 60)
            assert.matches("RedisStore:set failed: a record is a string, got a boolean", err, 1, true)
            err = caught(s.merge, s, "k", {}, 60, "{}")
            assert.matches("RedisStore:merge failed: a patch is a string, got a table", err, 1, true)
        end)
    end)

    it("a stored value that is not JSON fails the read, naming the store and address", function()
        server:cli("SET", "sess:junk", "not json")
        in_loop(function()
            local s = new()
            local err = caught(s.get, s, "junk")
            assert.matches("^honeymoon_session: RedisStore:get failed: the stored session is not JSON", err)
            assert.matches("(redis at 127.0.0.1:" .. server.port .. "/0)", err, 1, true)
        end)
    end)
end)

describe("Lua RedisStore (cqueues): connections", function()
    it("selects the database in the URL on fresh connections only, pipelined with the first command", function()
        local s = new({ url = server.url .. "/3" })
        in_loop(function() s:set("db3", R.record({ a = 1 }), 60) end)
        assert.equal("1", server:cli("-n", 3, "EXISTS", "sess:db3"):match("%d"))
        assert.equal("0", server:cli("EXISTS", "sess:db3"):match("%d"))
        -- The pooled connection already has its database: later calls send just the command.
        local commands = server:client_commands(function()
            assert.is_true(s:exists("db3"))
            assert.is_true(s:exists("db3"))
        end)
        assert.same({ "EXISTS", "EXISTS" }, commands)
    end)

    it("a read costs one command (GET), a write one more (EVALSHA)", function()
        local s = new()
        local before = R.record({ n = 1 })
        local version = s:set("rt", before, 60, LIFE)
        s:merge("rt", R.patch(before, R.record({ n = 2 })), 60, version, LIFE) -- script loaded
        local record, v
        local commands = server:client_commands(function()
            record, v = s:get("rt")
            s:merge("rt", R.patch(record, R.record({ n = 3 })), 60, v, LIFE)
        end)
        assert.same({ "GET", "EVALSHA" }, commands)
    end)

    it("a server without the script (restart, SCRIPT FLUSH) gets it by EVAL once", function()
        local s = new()
        local before = R.record({ n = 1 })
        local version = s:set("ns", before, 60, LIFE)
        server:cli("SCRIPT", "FLUSH")
        local commands = server:client_commands(function()
            assert.is_true((s:merge("ns", R.patch(before, R.record({ n = 2 })), 60, version, LIFE)))
        end)
        assert.same({ "EVALSHA", "EVAL" }, commands)
        assert.same({ n = 2 }, R.data((s:get("ns"))))
    end)

    it("reuses pooled connections, and replaces one the server closed (restart)", function()
        local s = new({ url = server.url .. "/5" }) -- its own pool: no other spec's connections
        in_loop(function()
            for i = 1, 20 do s:set("p" .. i, R.record({ i = i }), 60) end
        end)
        local list = server:cli("CLIENT", "LIST")
        local _, in_db5 = list:gsub("db=5", "")
        assert.equal(1, in_db5, "one pooled connection: " .. list)
        -- Three at once: three pooled connections, all of which the restart closes.
        local function exists() return s:exists("p1") end
        in_loop(exists, exists, exists)
        server:restart()
        in_loop(function()
            assert.is_nil(s:get("p1")) -- no persistence: gone, but the store works again
            s:set("again", R.record({ a = 1 }), 60)
        end)
        assert.equal("1", server:cli("-n", 5, "EXISTS", "sess:again"):match("%d"))
    end)

    it("a refused SELECT runs nothing after it (no write or delete in database 0)", function()
        server:cli("SET", "sess:victim", "{}")
        local s = new({ url = "redis://127.0.0.1:" .. server.port .. "/99" })
        in_loop(function()
            assert.matches("redis refused SELECT 99", caught(s.set, s, "x", R.record({ a = 1 }), 60), 1, true)
            assert.matches("redis refused SELECT 99", caught(s.destroy, s, "victim"), 1, true)
        end)
        assert.equal("0", server:cli("EXISTS", "sess:x"):match("%d"))
        assert.equal("1", server:cli("EXISTS", "sess:victim"):match("%d"))
    end)

    it("a pooled connection keeps the timeout of the store that takes it, not of the one that opened it", function()
        local cq = cqueues.new()
        local port = SlowProxy.start(cq, server.port, 0.3)
        local url = "redis://127.0.0.1:" .. port .. "/7"
        local patient, hasty = new({ url = url, commandTimeout = 1000 }), new({ url = url, commandTimeout = 100 })
        local err, done = nil, false
        cq:wrap(function()
            patient:exists("warm") -- opens the connection the pool then holds
            local ok, e = pcall(hasty.exists, hasty, "x")
            err, done = (not ok) and e or "no error", true
        end)
        local deadline = cqueues.monotime() + 10
        while not done and cqueues.monotime() < deadline do assert(cq:step(0.05)) end
        assert.matches("RedisStore:exists failed: timed out after 100 ms", err, 1, true)
    end)

    it("keeps at most pool.size idle connections", function()
        local cq = cqueues.new()
        local port = SlowProxy.start(cq, server.port, 0.05)
        local slow = new({ url = "redis://127.0.0.1:" .. port .. "/6", pool = { size = 2 } })
        local done = 0
        for i = 1, 5 do
            cq:wrap(function() slow:exists("x" .. i); done = done + 1 end)
        end
        local deadline = cqueues.monotime() + 10
        while done < 5 and cqueues.monotime() < deadline do assert(cq:step(0.05)) end
        assert.equal(5, done)
        -- Five connections were open at once (each selected db 6); two are kept, three closed.
        local in_db6
        for _ = 1, 50 do
            assert(cq:step(0.01))
            _, in_db6 = server:cli("CLIENT", "LIST"):gsub("db=6", "")
            if in_db6 == 2 then break end
        end
        assert.equal(2, in_db6)
    end)

    it("does not hand out a connection idle longer than pool.idle: it is closed, and a fresh one opened", function()
        -- The server (its timeout) or a firewall may have dropped a connection left idle that
        -- long; a fresh connection selects its database again, so SELECT shows which one served.
        -- (One idle less than pool.idle is reused: "selects the database ... fresh connections only".)
        local s = new({ url = server.url .. "/4", pool = { idle = 100 } })
        s:exists("warm")
        os.execute("sleep 0.3")
        assert.same({ "SELECT", "EXISTS" }, server:client_commands(function() s:exists("a") end))
        local _, in_db4 = server:cli("CLIENT", "LIST"):gsub("db=4", "")
        assert.equal(1, in_db4, "the idle connection was closed")
    end)

    -- A failover behind a host name: the server the pooled connections reach is made a replica
    -- (it keeps its clients and answers every write READONLY), and a new connection reaches the
    -- new primary. The pooled connections stayed, failing every write until they idled out,
    -- which a busy pool never does.
    it("a write answered READONLY (a failover) is sent again on a new connection; that one is not pooled", function()
        local primary = RedisServer.start()
        local target = server.port
        local ok, err = pcall(in_loop, function(cq)
            local port = SlowProxy.start(cq, function() return target end, 0)
            local s = new({ url = "redis://127.0.0.1:" .. port .. "/5", pool = { size = 2 } })
            s:set("a", R.record({ n = 1 }), 60) -- to `server`, and pooled
            server:cli("REPLICAOF", "127.0.0.1", 1) -- `server` is a replica now
            target = primary.port -- the name reaches the new primary
            s:set("a", R.record({ n = 2 }), 60)
            assert.equal(2, R.data((s:get("a"))).n)
        end)
        server:cli("REPLICAOF", "NO", "ONE")
        local on_primary = primary:cli("-n", 5, "EXISTS", "sess:a")
        primary:close()
        assert(ok, err)
        assert.equal("1", on_primary:match("%d"))
    end)

    it("a call in flight across fork() ends in the child without pooling the parent's connection", function()
        -- Under LuaJIT (its FFI reaches fork()), on every interpreter, as in redis_hardening_spec.
        local p = assert(io.popen("luajit spec/support/fork_inflight_check.lua " .. server.port .. " 2>&1"))
        local out = p:read("*a")
        p:close()
        local counts = {}
        for k, v in out:gmatch("([%w_]+)=(%d+)") do counts[k] = tonumber(v) end
        assert.same({ child_new_connections = 1, child_exit = 0 }, counts, out)
    end)
end)

describe("Lua RedisStore (cqueues): failures are plain messages naming store, method and address", function()
    -- A server (a proxy, a broken one) that answers GET with an array: get and merge handed it
    -- to the JSON reader, which raised "bad argument #1: error converting Lua table to string"
    -- with a traceback and a line of stores/redis.lua. (GET renamed away and SMEMBERS named GET:
    -- a real server that answers so.)
    it("a GET answered with something that is not a string or nil", function()
        local odd = RedisServer.start({ args = "--rename-command GET REALGET --rename-command SMEMBERS GET" })
        local ok, failure = pcall(function()
            odd:cli("SADD", "sess:x", "{}")
            local s = new({ url = odd.url })
            local where = " (redis at 127.0.0.1:" .. odd.port .. "/0)"
            in_loop(function()
                assert.equal("honeymoon_session: RedisStore:get failed: redis answered GET with a table, not a "
                    .. "string or nil" .. where, caught(s.get, s, "x"))
                assert.equal("honeymoon_session: RedisStore:merge failed: redis answered GET with a table, not a "
                    .. "string or nil" .. where,
                    caught(s.merge, s, "x", R.patch(R.record({}), R.record({ a = 1 })), 60, nil, LIFE))
            end)
        end)
        odd:close()
        assert(ok, failure)
    end)

    -- destroyAll handed any reply on as its count. (EVALSHA renamed away and MGET named
    -- EVALSHA: it answers the script's arguments with an array of nils.)
    it("a destroyAll answered with something that is not a count", function()
        local odd = RedisServer.start({ args = "--rename-command EVALSHA REALEVALSHA --rename-command MGET EVALSHA" })
        local ok, failure = pcall(function()
            local s = new({ url = odd.url })
            local want = "honeymoon_session: RedisStore:destroyAll failed: unexpected reply: a table, not the number "
                .. "of sessions deleted (redis at 127.0.0.1:" .. odd.port .. "/0)"
            in_loop(function()
                assert.equal(want, caught(s.destroyAll, s, "alice"))
                assert.equal(want, caught(s.destroyAll, s, "alice", "keep-this-id"))
            end)
        end)
        odd:close()
        assert(ok, failure)
    end)

    it("a closed port", function()
        local s = new({ url = "redis://127.0.0.1:1", connectTimeout = 500 })
        in_loop(function()
            local err = caught(s.get, s, "x")
            assert.equal("honeymoon_session: RedisStore:get failed: Connection refused (redis at 127.0.0.1:1/0)", err)
            err = caught(s.merge, s, "x", R.patch(R.record({}), R.record({ a = 1 })), 60, nil, LIFE)
            assert.matches("^honeymoon_session: RedisStore:merge failed: .*%(redis at 127.0.0.1:1/0%)$", err)
        end)
    end)

    describe("with a password", function()
        local locked
        lazy_setup(function() locked = RedisServer.start({ password = "s3cret-pw" }) end)
        lazy_teardown(function() locked:close() end)

        it("the right password (and a database) works", function()
            local s = new({ url = "redis://:s3cret-pw@127.0.0.1:" .. locked.port .. "/2" })
            in_loop(function()
                s:set("pw", R.record({ a = 1 }), 60)
                assert.same({ a = 1 }, R.data((s:get("pw"))))
            end)
        end)

        it("a wrong password says redis refused AUTH, never showing the password", function()
            local s = new({ url = "redis://:wrong-pw-123@127.0.0.1:" .. locked.port })
            in_loop(function()
                local err = caught(s.get, s, "x")
                assert.matches("^honeymoon_session: RedisStore:get failed: redis refused AUTH: WRONGPASS", err)
                assert.equal(" (redis at 127.0.0.1:" .. locked.port .. "/0)", err:sub(-#(" (redis at 127.0.0.1:" .. locked.port .. "/0)")))
                assert.is_nil(err:find("wrong-pw-123", 1, true))
            end)
        end)

        it("a refused AUTH runs nothing after it (no write as the default user)", function()
            -- A password to a server without one is refused; the default user could still write.
            local s = new({ url = "redis://:spare-pw@127.0.0.1:" .. server.port .. "/1" })
            in_loop(function()
                local err = caught(s.set, s, "y", R.record({ a = 1 }), 60)
                assert.matches("redis refused AUTH", err, 1, true)
            end)
            assert.equal("0", server:cli("-n", 1, "EXISTS", "sess:y"):match("%d"))
        end)

        -- Redis quotes an unknown command's first arguments (up to 128 bytes) in its error
        -- reply: a server with AUTH renamed away (rename-command), or a proxy without it,
        -- answers the AUTH with the password in it, which "redis refused AUTH: …" showed.
        it("a server that quotes the password in its refusal: the message leaves it out", function()
            local bare = RedisServer.start({ args = "--rename-command AUTH ''" })
            local where = " (redis at 127.0.0.1:" .. bare.port .. "/0)"
            local ok, failure = pcall(function()
                -- Short, and longer than what Redis quotes (it quotes a part).
                for _, pw in ipairs({ "Zq8vKx3Wm7pLq", ("Hk2rT9wQ"):rep(20), "pw" }) do
                    for _, user in ipairs({ "", "alice" }) do
                        local s = new({ url = "redis://" .. user .. ":" .. pw .. "@127.0.0.1:" .. bare.port .. "/0" })
                        in_loop(function()
                            local err = caught(s.get, s, "x")
                            assert.equal(1, err:find("honeymoon_session: RedisStore:get failed: redis refused AUTH: ERR "
                                .. "unknown command 'AUTH'", 1, true), err)
                            assert.equal(where, err:sub(-#where), err)
                            for i = 1, math.max(1, #pw - 3) do
                                assert.is_nil(err:find(pw:sub(i, i + 3), 1, true), "the password is in: " .. err)
                            end
                        end)
                    end
                end
            end)
            bare:close()
            assert(ok, failure)
        end)

        -- A password shorter than 4 bytes is left out only where it is quoted whole: its bytes
        -- elsewhere are as likely the message's own ("on" in "Connection refused").
        it("a short password leaves the rest of a message as it is", function()
            local s = new({ url = "redis://:on@127.0.0.1:1/0" })
            in_loop(function()
                assert.equal("honeymoon_session: RedisStore:get failed: Connection refused (redis at 127.0.0.1:1/0)",
                    caught(s.get, s, "x"))
            end)
        end)

        it("no password says what redis said (NOAUTH)", function()
            local s = new({ url = "redis://127.0.0.1:" .. locked.port })
            in_loop(function()
                local err = caught(s.exists, s, "x")
                assert.matches("^honeymoon_session: RedisStore:exists failed: NOAUTH", err)
            end)
        end)
    end)

    it("a command that takes too long says it timed out after N ms", function()
        local s = new({ commandTimeout = 150 })
        in_loop(function() s:exists("warm") end)
        -- 3 s: the get below must reach redis (and time out after 150 ms) while it is still
        -- paused, also when this process is descheduled for a while after redis-cli returns.
        server:cli("CLIENT", "PAUSE", 3000, "ALL")
        in_loop(function()
            local err = caught(s.get, s, "x")
            assert.equal("honeymoon_session: RedisStore:get failed: timed out after 150 ms (redis at 127.0.0.1:"
                .. server.port .. "/0)", err)
        end)
        server:cli("PING") -- answered when the pause ends: redis holds every command till then
        in_loop(function() assert.is_nil(s:get("x")) end) -- the timed-out connection was dropped
    end)

    it("bad options fail at construction as plain strings", function()
        local cases = {
            { { url = "rediss://127.0.0.1" }, "only the blocking hs.RedisStore" },
            { { url = "rediss://:S3cretPW@127.0.0.1" }, "only the blocking hs.RedisStore" },
            { { url = "redis+unix:///tmp/r.sock?pass=S3cretPW" }, "is not a TCP address" },
            { { url = "http://127.0.0.1" }, "url is not a Redis URL" },
            { { uri = "redis://x" }, 'unknown option "uri"' },
            { { pool = { max = 3 } }, 'unknown option "pool.max"' },
            { { pool = { size = 0 } }, "pool.size must be a whole number of connections from 1 to 1048576" },
            { { pool = { size = 2 ^ 31 - 1 } }, "pool.size must be a whole number of connections from 1 to 1048576 "
                .. "(kept idle per worker), got 2147483647" },
            { { pool = { size = 1.5 } }, "got 1.5" },
            { { commandTimeout = -1 }, "commandTimeout must be" },
            { { socket = "epoll" }, "socket must be \"ngx\" or \"cqueues\"" },
            { { socket = "ngx" }, "needs OpenResty" },
        }
        for _, case in ipairs(cases) do
            local err = caught(LuaRedis.new, case[1])
            assert.matches("^honeymoon_session: RedisStore ", err)
            assert.matches(case[2], err, 1, true)
            assert.is_nil(err:find("S3cretPW", 1, true), "the password is in: " .. err)
        end
    end)
end)

describe("Lua RedisStore (cqueues) yields to the event loop", function()
    it("two coroutines with Redis behind a slow path interleave, and the loop keeps running", function()
        in_loop(function() new():set("y", R.record({ a = 1 }), 60) end)
        local cq = cqueues.new()
        local port = SlowProxy.start(cq, server.port, 0.2)
        local s = new({ url = "redis://127.0.0.1:" .. port })
        local events, ticks, finished = {}, 0, 0
        local function reader(name)
            return function()
                events[#events + 1] = name .. " start"
                local record = s:get("y")
                assert.same({ a = 1 }, R.data(record))
                events[#events + 1] = name .. " end"
                finished = finished + 1
            end
        end
        cq:wrap(reader("A"))
        cq:wrap(reader("B"))
        cq:wrap(function()
            while finished < 2 do ticks = ticks + 1; cqueues.sleep(0.01) end
        end)
        local deadline = cqueues.monotime() + 10
        while finished < 2 and cqueues.monotime() < deadline do
            local ok, err = cq:step(0.05)
            assert(ok, err)
        end
        assert.equal(2, finished)
        -- Each started while the other waited for its reply: both calls yielded.
        assert.matches(" start$", events[1])
        assert.matches(" start$", events[2])
        assert.is_true(ticks >= 5, "the loop ran other coroutines while both waited: " .. ticks .. " ticks")
    end)

    it("concurrent merges through the slow path still both survive", function()
        local base = R.record({ base = 1 })
        local version
        in_loop(function() version = new():set("slow", base, 3600, LIFE) end)
        local cq = cqueues.new()
        local port = SlowProxy.start(cq, server.port, 0.05)
        local s = new({ url = "redis://127.0.0.1:" .. port })
        local done = 0
        for _, key in ipairs({ "p", "q", "r" }) do
            cq:wrap(function()
                assert.is_true((s:merge("slow", R.patch(base, R.record({ base = 1, [key] = true })), 3600, version, LIFE)))
                done = done + 1
            end)
        end
        local deadline = cqueues.monotime() + 10
        while done < 3 and cqueues.monotime() < deadline do assert(cq:step(0.05)) end
        assert.equal(3, done)
        local data = R.data((in_loop(function() return new():get("slow") end)))
        assert.same({ base = 1, p = true, q = true, r = true }, data)
    end)
end)

-- Many writers of one session at once, in several processes (as nginx's workers are): a merge
-- that lost the compare-and-set backs off a short random while, yielding to the loop, before it
-- tries again, so writers that keep colliding spread out instead of one of them losing
-- MERGE_ATTEMPTS races in a row and giving up. (In one cqueues loop the retries run in the
-- order the losers heard back, which is fair already; processes are not.)
describe("Lua RedisStore (cqueues): merges under sustained contention", function()
    -- The waits come from the OS's random source (the blocking store's), not math.random:
    -- nginx's workers share one math.random state from their fork, and would wait alike.
    it("waits up to 1, 2, 4, 8, then 16 ms after each lost race, whatever math.random says", function()
        local backoff = require("honeymoon_session")._redis.merge_backoff
        for _, case in ipairs({ { 1, 0.001 }, { 2, 0.002 }, { 3, 0.004 }, { 5, 0.016 }, { 100, 0.016 } }) do
            local lost, window, seen, distinct = case[1], case[2], {}, 0
            for _ = 1, 50 do
                math.randomseed(42) -- the same state every time
                local w = backoff(lost)
                assert.is_true(w >= 0 and w < window, lost .. " lost: " .. w)
                if not seen[w] then seen[w], distinct = true, distinct + 1 end
            end
            assert.is_true(distinct > 1, "the waits after " .. lost .. " lost races are all alike")
        end
    end)

    -- One process: `writers` coroutines, each merging `rounds` keys of its own into session
    -- "busy" (loaded each time, so each merge starts from what it read). They start when the
    -- key "go" appears, so the processes overlap. Prints "errors N first-error".
    local CHILD = [[
local cqueues = require("cqueues")
local R = require("honeymoon_session")._redis
local Redis = require("honeymoon_session.stores.redis")
local url, tag, writers, rounds = %q, %q, %d, %d
local cq, errors, first = cqueues.new(), 0, ""
for w = 1, writers do
    cq:wrap(function()
        local s = Redis.new({ url = url, socket = "cqueues" })
        local deadline = cqueues.monotime() + 10
        while not s:exists("go") and cqueues.monotime() < deadline do cqueues.sleep(0.002) end
        for r = 1, rounds do
            local record, version = s:get("busy")
            local data = R.data(record)
            data[tag .. "." .. w .. "." .. r] = true
            local ok, err = pcall(s.merge, s, "busy", R.patch(record, R.record(data)), 600, version)
            if not ok then errors = errors + 1; first = first ~= "" and first or tostring(err) end
        end
    end)
end
assert(cq:loop())
print("errors " .. errors .. " " .. first)
]]

    it("4 processes of 6 coroutines, each merging 20 keys of its own into one session: all persist", function()
        local processes, writers, rounds = 4, 6, 20
        in_loop(function() new():set("busy", R.record({}), 600) end)
        local children = {}
        local started = cqueues.monotime()
        for p = 1, processes do
            children[p] = Child.start(CHILD:format(server.url, "p" .. p, writers, rounds))
        end
        os.execute("sleep 0.3") -- every child connected and waiting
        server:cli("SET", "sess:go", "1")
        local outs = {}
        for p, c in ipairs(children) do outs[p] = c.wait() end
        local took = cqueues.monotime() - started
        for p, out in ipairs(outs) do assert.equal("errors 0 \n", out, "process " .. p) end
        local data = R.data((in_loop(function() return new():get("busy") end)))
        local n = 0
        for _ in pairs(data) do n = n + 1 end
        assert.equal(processes * writers * rounds, n)
        assert.is_true(took < 15, "the writers took " .. took .. " s")
    end)
end)

describe("Lua RedisStore (cqueues) under session(): the engine's record-store path", function()
    local App = require("examples.framework.app")
    local Client = require("examples.framework.client")

    local function site(store, opts)
        local app = App.new()
        opts = opts or {}
        opts.secret, opts.store = "lua-redis-secret", store
        app:use(hs.session(opts))
        app:get("/login", function(req, res) req.session.userId = 42; res:text("in") end)
        app:get("/read", function(req, res) res:text(tostring(req.session.userId)) end)
        app:get("/set", function(req, res) req.session[req.query.k] = req.query.k; res:text("ok") end)
        app:get("/logout", function(req, res) req.session:destroy(); res:text("out") end)
        return app, Client.new(app)
    end

    local function id_of(client)
        local v = client:cookie("honeymoon.sid")
        return v and v:match("^s%%3A([^.]+)%.")
    end

    it("a stored session larger than maxSize is refused before it is all parsed, for get and merge", function()
        local app, c = site(new(), { maxSize = 10000 })
        in_loop(function() c:get("/login") end)
        local id = id_of(c)
        -- What a Node app could leave there; the text after the arrays is not JSON, so an error
        -- naming maxSize shows the parse stopped early.
        server:cli("SET", "sess:" .. id, '{"x":[' .. ("[],"):rep(20000) .. "not json", "EX", 600)
        in_loop(function() assert.equal(500, c:get("/read").status) end)
        assert.matches("RedisStore:get failed: the stored session is more than maxSize (10000 bytes)",
            tostring(app.last_error), 1, true)
        -- The store's merge reads the current version too: handed the same limit.
        local st = new()
        local err = caught(in_loop, function()
            return st:merge(id, R.patch(R.record({}), R.record({ a = 1 })), 60, nil, nil, 10000)
        end)
        assert.matches("more than maxSize (10000 bytes)", err, 1, true)
    end)

    it("merge called directly without maxSize honours the limit the engine's patch carries", function()
        -- The patch a commit hands merge carries the session's maxSize (as hs._merge_patch and
        -- the native store honour it); a direct call without the sixth argument used 4 MiB,
        -- storing a session that every load under that maxSize refuses.
        local st = new()
        local merge, patch = st.merge, nil
        st.merge = function(self, id, p, ...)
            patch = p
            return merge(self, id, p, ...)
        end
        local _, c = site(st, { maxSize = 1000 })
        in_loop(function()
            c:get("/login")
            assert.equal("ok", c:get("/set?k=" .. string.rep("b", 300)).body) -- a merge
        end)
        assert.is_string(patch, "the engine merged")
        local big = R.record({ a = string.rep("a", 600) })
        local err = caught(in_loop, function()
            st:set("big", big, 60, LIFE)
            return merge(st, "big", patch, 60, nil, LIFE)
        end)
        assert.matches("^honeymoon_session: RedisStore:merge failed: the session would be %d+ bytes merged with what "
            .. "other requests stored since this one loaded it, more than maxSize %(1000 bytes%); nothing was "
            .. "stored %(redis at 127%.0%.0%.1:%d+/0%)$", err)
        assert.same({ a = string.rep("a", 600) }, R.data((in_loop(function() return st:get("big") end))))
        -- A maxSize passed explicitly is the limit, as the engine passes it.
        assert.is_true((in_loop(function() return merge(st, "big", patch, 60, nil, LIFE, 4096) end)))
    end)

    it("stores connect-redis's form with the config's cookie, reads it back, destroys it", function()
        local _, c = site(new(), { ttl = 3600, cookie = { maxAge = 600, sameSite = "Strict" } })
        in_loop(function()
            assert.equal("in", c:get("/login").body)
            assert.equal("42", c:get("/read").body)
        end)
        local id = id_of(c)
        local doc = hs.json.decode(raw("sess:" .. id))
        assert.equal(42, doc.userId)
        assert.equal(600000, doc.cookie.originalMaxAge)
        assert.equal("strict", doc.cookie.sameSite)
        local ttl = tonumber(server:cli("TTL", "sess:" .. id))
        assert.is_true(ttl > 590 and ttl <= 600, "ttl " .. tostring(ttl))
        in_loop(function() assert.equal("out", c:get("/logout").body) end)
        assert.equal("0", server:cli("EXISTS", "sess:" .. id):match("%d"))
    end)

    it("a session's own lifetime (30 days, or a browser-session cookie) is the cookie object and the TTL", function()
        local app, c = site(new(), { ttl = 3600 })
        app:get("/remember", function(req, res) req.session.cookie.maxAge = 30 * 86400 * 1000; res:text("") end)
        app:get("/browser", function(req, res) req.session.cookie.maxAge = false; res:text("") end)
        in_loop(function()
            c:get("/login")
            local line = c:get("/remember").headers["set-cookie"][1]
            assert.matches("Max%-Age=2592000", line)
        end)
        local id = id_of(c)
        assert.equal(2592000000, hs.json.decode(raw("sess:" .. id)).cookie.originalMaxAge)
        local ttl = tonumber(server:cli("TTL", "sess:" .. id))
        assert.is_true(ttl > 2591990 and ttl <= 2592000, "ttl " .. tostring(ttl))
        in_loop(function()
            local line = c:get("/browser").headers["set-cookie"][1]
            assert.is_nil(line:match("Max%-Age"))
            assert.is_nil(line:match("Expires"))
        end)
        assert.equal(hs.json.null, hs.json.decode(raw("sess:" .. id)).cookie.originalMaxAge)
        ttl = tonumber(server:cli("TTL", "sess:" .. id))
        assert.is_true(ttl > 3590 and ttl <= 3600, "a browser-session cookie's key lives ttl: " .. tostring(ttl))
    end)

    it("regenerate retires the old id: its old data only, a write through it refused, no cookie", function()
        local app, c = site(new(), { rolling = true })
        app:get("/regen", function(req, res) req.session:regenerate(true); req.session.role = "admin"; res:text("") end)
        local old_id, parallel
        in_loop(function()
            c:get("/login")
            old_id = id_of(c)
            parallel = Client.new(app)
            parallel:set_cookie("honeymoon.sid", c:cookie("honeymoon.sid"))
            c:get("/regen")
            assert.equal("42", parallel:get("/read").body)
            local r = parallel:get("/set?k=late")
            assert.is_nil(r.headers["set-cookie"])
        end)
        local old = hs.json.decode(raw("sess:" .. old_id))
        assert.is_nil(old.late)
        assert.is_nil(old.role)
        assert.is_number(old.__meta.stale)
        local ttl = tonumber(server:cli("TTL", "sess:" .. old_id))
        assert.is_true(ttl > 0 and ttl <= 10, "the old id lives the 10 s grace: " .. tostring(ttl))
        assert.equal("admin", hs.json.decode(raw("sess:" .. id_of(c))).role)
    end)

    -- express-session refreshes (touch: EXPIRE with its own lifetime) or rewrites an id it
    -- serves, retired or not: past the grace the id must be gone for Lua, not read-only for as
    -- long as Node keeps it (regenerate on a retired id stores nothing: no login).
    it("an id regenerate retired that a Node app kept alive is gone past the grace; a login works", function()
        local app, c = site(new(), { staleGrace = 5 })
        app:get("/relogin", function(req, res) req.session:regenerate(); req.session.userId = 7; res:text("") end)
        local old_id, old_cookie
        in_loop(function()
            c:get("/login")
            old_id, old_cookie = id_of(c), c:cookie("honeymoon.sid")
            c:get("/relogin")
        end)
        assert.is_number(hs.json.decode(raw("sess:" .. old_id)).__meta.stale)
        server:cli("EXPIRE", "sess:" .. old_id, 86400) -- Node's touch during the grace
        local late = Client.new(app)
        late:set_cookie("honeymoon.sid", old_cookie)
        in_loop(function() assert.equal("42", late:get("/read").body, "read during the grace") end)
        hs._advance_clock(6)
        in_loop(function()
            assert.equal("nil", late:get("/read").body, "past the grace the retired data is not read")
            local r = late:get("/relogin")
            assert.is_table(r.headers["set-cookie"], "the login's cookie goes out")
            assert.are_not.equal(old_id, id_of(late))
            assert.equal("7", late:get("/read").body)
        end)
    end)

    it("a read-only request costs one command (GET), a write one more (EVALSHA)", function()
        local _, c = site(new())
        c:get("/login")
        c:get("/set?k=warm") -- the script is loaded
        local read = server:client_commands(function() assert.equal("42", c:get("/read").body) end)
        assert.same({ "GET" }, read)
        local write = server:client_commands(function() c:get("/set?k=a") end)
        assert.same({ "GET", "EVALSHA" }, write)
    end)

    it("two requests on one session, interleaved through a slow path, both keep their key", function()
        local _, first = site(new())
        in_loop(function() first:get("/login") end)
        local cookie = first:cookie("honeymoon.sid")
        local cq = cqueues.new()
        local port = SlowProxy.start(cq, server.port, 0.1)
        local app = site(new({ url = "redis://127.0.0.1:" .. port }))
        local events, done = {}, 0
        for _, k in ipairs({ "x", "y" }) do
            cq:wrap(function()
                local client = Client.new(app)
                client:set_cookie("honeymoon.sid", cookie)
                events[#events + 1] = k .. " start"
                local r = client:get("/set?k=" .. k)
                assert.equal(200, r.status)
                events[#events + 1] = k .. " end"
                done = done + 1
            end)
        end
        local deadline = cqueues.monotime() + 10
        while done < 2 and cqueues.monotime() < deadline do assert(cq:step(0.05)) end
        assert.equal(2, done)
        assert.matches(" start$", events[2]) -- both were in flight at once
        local doc = hs.json.decode(raw("sess:" .. id_of(first)))
        assert.equal("x", doc.x)
        assert.equal("y", doc.y)
        assert.equal(42, doc.userId)
    end)
end)

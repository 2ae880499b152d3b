-- Issue 8, the RedisStore items: 8.1 a connection made before fork() is never used by a child
-- (a real fork, and nginx workers forked from a master that called the store in init_by_lua),
-- 8.9 timeouts say "timed out after N ms" with store, method and address, 8.12 keys under the
-- prefix that are not UTF-8 are ids as bytes for all, length and clear. Each fails on the
-- code before the fix.
local hs = require("honeymoon_session")
local RedisServer = require("scripts.lib.redis_server")
local Nginx = require("spec.support.nginx")

local server

lazy_setup(function() server = RedisServer.start() end)
lazy_teardown(function() server:close() end)
before_each(function() server:cli("FLUSHALL") end)

local function message(err) return hs.error_message and hs.error_message(err) or tostring(err) end

describe("RedisStore across fork() (8.1)", function()
    it("a child's first call opens its own connection; parent and child never read each other's session", function()
        -- Under LuaJIT (its FFI reaches fork()); Lua 5.4 has no fork() without a C module, so
        -- both interpreters run this check as a LuaJIT child over build/luajit.
        local p = assert(io.popen("luajit spec/support/fork_check.lua " .. server.port .. " 2>&1"))
        local out = p:read("*a")
        p:close()
        local counts = {}
        for k, v in out:gmatch("([%w_]+)=(%d+)") do counts[k] = tonumber(v) end
        assert.same({ new_connections = 1, lua_new_connections = 1, parent_foreign = 0, parent_errors = 0,
            child_exit = 0 }, counts, out)
    end)

    it("nginx, 4 workers, the store called in init_by_lua (the master): no request reads another's session", function()
        assert.is_true(Nginx.available(), "nginx with libnginx-mod-http-lua (scripts/setup.sh)")
        local nginx = Nginx.start({
            workers = 4,
            http = ([[
    init_by_lua_block {
        store = require("honeymoon_session").RedisStore({ url = "%s", commandTimeout = 1000 })
        store:exists("opened-in-the-master")
    }]]):format(server.url),
            locations = [[
        location /me {
            content_by_lua_block {
                local u = ngx.var.arg_u
                store:set("u" .. u, { user = u }, 60)
                local got = store:get("u" .. u)
                ngx.say("me ", u, " ", got and got.user or "nil")
            }
        }]],
        })
        -- 400 requests, 8 at a time (curl's URL glob, one process).
        local ok, out = pcall(nginx.shell, nginx,
            "curl -s -m 20 -Z --parallel-max 8 \"$URL/me?u=[1-400]\" 2>/dev/null")
        local log = nginx:errors()
        nginx:stop()
        assert.is_true(ok, out)
        local right, wrong = 0, 0
        for u, got in out:gmatch("me (%d+) (%w+)") do
            if u == got then right = right + 1 else wrong = wrong + 1 end
        end
        assert.equal(0, wrong, "requests that read another user's session")
        assert.equal(400, right, "requests answered with their own session\n" .. log:sub(1, 2000))
    end)
end)

describe("RedisStore timeouts (8.9)", function()
    it("say timed out after N ms, naming the store, the method and the address", function()
        local store = hs.RedisStore({ url = server.url, commandTimeout = 150 })
        store:exists("warm") -- connected: the timeout is the command's
        -- 3 s: the get below must reach redis (and time out after 150 ms) while it is still
        -- paused, also when this process is descheduled for a while after redis-cli returns.
        server:cli("CLIENT", "PAUSE", 3000, "ALL")
        local ok, err = pcall(store.get, store, "x")
        assert.is_false(ok)
        assert.matches("honeymoon_session: RedisStore:get failed: timed out after 150 ms (redis at 127.0.0.1:"
            .. server.port .. "/0)", message(err), 1, true)
        server:cli("PING") -- answered when the pause ends: redis holds every command till then
        assert.is_nil(store:get("x")) -- and the timed-out connection was replaced
    end)
end)

-- Both RedisStores refuse at construction what would otherwise fail later, or quietly: a timeout
-- nginx's cosockets refuse ("bad timeout value" on every call), and prefix "" (every key of the
-- database a session to all, length and clear, the owner index's keys too).
describe("RedisStore options refused at construction", function()
    local LuaRedis = require("honeymoon_session.stores.redis")
    local function refused(opts)
        local errs = {}
        for name, new in pairs({ native = hs.RedisStore, lua = LuaRedis.new }) do
            local o = { url = server.url, socket = name == "lua" and "cqueues" or nil }
            for k, v in pairs(opts) do o[k] = v end
            local ok, err = pcall(new, o)
            assert.is_false(ok, name .. " took the options")
            errs[name] = message(err)
        end
        return errs
    end

    it("a timeout of 2^31 ms or more, naming the option and the range", function()
        local function want(key, got)
            return "honeymoon_session: RedisStore " .. key .. " must be a whole number of milliseconds from 1 to "
                .. "2147483647 (about 24.8 days), got " .. got
        end
        for key, v in pairs({ connectTimeout = 3000000000, commandTimeout = 2 ^ 31 }) do
            for name, err in pairs(refused({ [key] = v })) do
                assert.equal(want(key, string.format("%d", v)), err, name)
            end
        end
        assert.equal(want("pool.idle", "1099511627776"), refused({ pool = { idle = 2 ^ 40 } }).lua)
        -- A huge number is shown in exponent form, not as its 301 digits.
        for name, err in pairs(refused({ commandTimeout = 1e300 })) do
            assert.equal(want("commandTimeout", "1e300"), err, name)
        end
        -- The largest is taken, and works.
        local store = hs.RedisStore({ url = server.url, connectTimeout = 2147483647, commandTimeout = 2147483647 })
        assert.is_false(store:exists("x"))
    end)

    it("an unknown option, its key quoted and escaped (a trailing space, a newline show)", function()
        for name, err in pairs(refused({ ["prefix "] = "s:" })) do
            assert.equal(1, err:find('honeymoon_session: RedisStore got the unknown option "prefix "; known', 1, true),
                name .. ": " .. err)
        end
        for name, err in pairs(refused({ ["url\n"] = "x" })) do
            assert.truthy(err:find('unknown option "url\\n"; known', 1, true), name .. ": " .. err)
        end
        for name, err in pairs(refused({ "redis://127.0.0.1" })) do
            assert.truthy(err:find("unknown option [1]; known", 1, true), name .. ": " .. err)
        end
        assert.truthy(refused({ pool = { ["size "] = 1 } }).lua:find('unknown option "pool.size "; known', 1, true))
        local ok, err = pcall(hs.RedisStore, { url = "rediss://127.0.0.1", tls = { ["ca "] = "x" } })
        assert.is_false(ok)
        assert.truthy(message(err):find('unknown option "tls.ca "; known are tls.ca', 1, true), message(err))
    end)

    -- A password holding #, ? or / that is not percent-encoded ends the url's host there: the
    -- url parser took "1234" for a port and the user name for the host, so every error named
    -- "redis at user:1234/0" (part of the password) and the store looked the user name up as a
    -- host name. Refused, showing neither.
    it("a url whose password holds an unencoded #, ? or /, without showing it", function()
        for _, url in ipairs({ "redis://user:1234#abcd@127.0.0.1/0", "REDIS://:1234?abcd@127.0.0.1/0",
            "redis://user:1234/abcd@127.0.0.1:6379/0" }) do
            for name, err in pairs(refused({ url = url })) do
                assert.equal(1, err:find("honeymoon_session: RedisStore url has an @ after its host: "
                    .. "a password holding #, ? or / must be percent-encoded (%23, %3F, %2F)", 1, true),
                    name .. ": " .. err)
                assert.is_nil(err:find("1234", 1, true), name .. ": " .. err)
                assert.is_nil(err:find("abcd", 1, true), name .. ": " .. err)
            end
        end
    end)

    -- redis://host:6379?db=3 (the form redis-py reads) chose database 0, quietly: all, length
    -- and clear then took another app's sessions for this one's. A query parameter the store
    -- does not read is refused, named (never with its value).
    it("a url query parameter the store does not read, naming it but not its value", function()
        for _, case in ipairs({ { "?db=3", "db" }, { "/2?password=S3cretPW", "password" },
            { "?protocol=resp3&timeout=5", "timeout" }, { "?S3cret%21PW", nil } }) do
            for name, err in pairs(refused({ url = server.url .. case[1] })) do
                local want = case[2] and ("honeymoon_session: RedisStore url has the query parameter "
                    .. case[2] .. ", which this store does not read (it takes protocol only; the database is "
                    .. "the url's path: redis://host:6379/3)")
                    or ("honeymoon_session: RedisStore url has a query parameter this store does not read "
                    .. "(it takes protocol only; the database is the url's path: redis://host:6379/3)")
                assert.equal(want, err, name)
            end
        end
        -- protocol is read (the blocking store speaks RESP3 with it), and the path's database.
        for _, q in ipairs({ "/2?protocol=resp3", "/0?protocol=2", "" }) do
            assert.is_false(hs.RedisStore({ url = server.url .. q }):exists("x"))
            LuaRedis.new({ url = server.url .. q, socket = "cqueues" })
        end
    end)

    -- The redis crate takes any integer for the database: a negative one built a store that
    -- failed only at its first call (SELECT -1), at request time.
    it("a url with a negative database, at construction", function()
        for _, url in ipairs({ server.url:gsub("/%d+$", "") .. "/-1", "redis+unix:///tmp/r.sock?db=-3" }) do
            local want = "honeymoon_session: RedisStore url's database must be 0 or more (the url's path: "
                .. "redis://host:6379/3), got " .. url:match("(%-%d+)$")
            if url:find("unix", 1, true) then
                local ok, err = pcall(hs.RedisStore, { url = url })
                assert.is_false(ok, url)
                assert.equal(want, message(err), url)
            else
                for name, err in pairs(refused({ url = url })) do assert.equal(want, err, name) end
            end
        end
    end)

    -- The redis crate reads rediss://…#insecure as "do not verify the server's certificate";
    -- the README promises the server is always verified.
    it("a url with a #fragment (#insecure would turn off the certificate check)", function()
        for _, url in ipairs({ "rediss://127.0.0.1:6380/0#insecure", server.url .. "#x" }) do
            for name, err in pairs(refused({ url = url })) do
                assert.equal("honeymoon_session: RedisStore url has a #fragment, which this store does not take "
                    .. "(the redis crate reads #insecure as: do not verify the server's certificate; a password "
                    .. "holding # must be percent-encoded as %23)", err, name)
            end
        end
    end)

    -- redis://alice@host (a user, no password) sent no AUTH at all: the store connected as the
    -- default user, with the default user's rights, where the url asked for alice's.
    it("a url naming a user without a password, naming neither", function()
        for _, url in ipairs({ "redis://alice@127.0.0.1:6379/0", "redis://alice:@127.0.0.1:6379/0" }) do
            for name, err in pairs(refused({ url = url })) do
                assert.equal("honeymoon_session: RedisStore url names a user but no password: the store "
                    .. "authenticates only with a password (redis://user:password@host:6379/0); without one "
                    .. "it would connect as the default user", err, name)
            end
        end
        -- A password without a user (AUTH password, as the default user) is taken; the event-loop
        -- store connects at its first call, the blocking one at once (and fails to, here).
        LuaRedis.new({ url = "redis://:pw@127.0.0.1:1/0", socket = "cqueues" })
        local _, err = pcall(hs.RedisStore, { url = "redis://:pw@127.0.0.1:1/0", connectTimeout = 200 })
        assert.is_nil(message(err):find("names a user", 1, true), message(err))
    end)

    -- A unix socket url (the blocking store's only; the event-loop store is TCP only) carries its
    -- credentials in the query, ?user=&pass=, which is all the redis crate reads: a user without
    -- pass, a user and password in the url's authority, or ?password= (dropped as an unknown
    -- parameter) sent no AUTH, and the store connected as the default user.
    it("a unix socket url that would connect as the default user", function()
        local user = "honeymoon_session: RedisStore url names a user but no password: the store authenticates "
            .. "only with a password (redis+unix:///path?user=name&pass=password); without one it would "
            .. "connect as the default user"
        for url, want in pairs({
            ["redis+unix:///tmp/r.sock?user=alice"] = user,
            ["unix:///tmp/r.sock?db=2&user=alice&pass="] = user,
            ["redis+unix://alice:pw@localhost/tmp/r.sock"] = "honeymoon_session: RedisStore url has a user or "
                .. "password before the socket's path, which a unix socket url does not read; give them as "
                .. "?user=name&pass=password",
            ["valkey+unix:///tmp/r.sock?user=alice&password=S3cretPW"] = "honeymoon_session: RedisStore url has "
                .. "the query parameter password, which this store does not read (a unix socket url takes db, "
                .. "user, pass and protocol)",
            ["unix:///tmp/r.sock?S3cret%21PW"] = "honeymoon_session: RedisStore url has a query parameter this "
                .. "store does not read (a unix socket url takes db, user, pass and protocol)",
        }) do
            local ok, err = pcall(hs.RedisStore, { url = url })
            assert.is_false(ok, url)
            assert.equal(want, message(err), url)
        end
        -- What the crate reads is taken (the store connects at its first call).
        for _, url in ipairs({ "redis+unix:///tmp/r.sock?user=alice&pass=pw&db=2&protocol=resp3",
            "unix:///tmp/r.sock?pass=pw", "valkey+unix:///tmp/r.sock" }) do
            hs.RedisStore({ url = url })
        end
    end)

    it("an empty prefix, with or without an indexPrefix of its own", function()
        for _, opts in ipairs({ { prefix = "" }, { prefix = "", indexPrefix = "idx:" } }) do
            for name, err in pairs(refused(opts)) do
                assert.equal(1, err:find("honeymoon_session: RedisStore prefix must not be empty: ", 1, true),
                    name .. ": " .. err)
            end
        end
    end)
end)

-- Many processes writing one session at once (a pre-forking server's workers): a merge that lost
-- the compare-and-set waits a short random while before it tries again, so the writers spread out
-- instead of one of them losing every race in a row and giving up (the request's write lost).
describe("RedisStore merges under sustained contention", function()
    -- One process: `rounds` requests on one session, each adding a key of its own (a merge).
    -- Starts when the key "go" appears, so the processes overlap. Prints "errors N first-error".
    local CHILD = [[
local hs = require("honeymoon_session")
local url, cookie, tag, rounds = %q, %q, %q, %d
local store = hs.RedisStore({ url = url })
local core = hs.core({ secret = "contention-secret", store = store })
local deadline = os.time() + 10
while not store:exists("go") and os.time() < deadline do end
local errors, first = 0, ""
for r = 1, rounds do
    local s = core:load(cookie)
    s[tag .. "." .. r] = true
    local ok, err = pcall(core.commit, core, s)
    if not ok then errors = errors + 1; first = first ~= "" and first or tostring(err) end
end
print("errors " .. errors .. " " .. first)
]]

    it("16 processes, each adding 50 keys of its own to one session: all persist", function()
        local processes, rounds = 16, 50
        local Child = require("spec.support.child")
        local core = hs.core({ secret = "contention-secret", store = hs.RedisStore({ url = server.url }) })
        local s = core:load(nil)
        s.base = true
        local cookie = core:commit(s)[1]:match("^([^;]*)")
        local children = {}
        local started = os.time()
        for p = 1, processes do
            children[p] = Child.start(CHILD:format(server.url, cookie, "p" .. p, rounds))
        end
        os.execute("sleep 0.5") -- every child started and waiting
        server:cli("SET", "sess:go", "1")
        local outs = {}
        for p, c in ipairs(children) do outs[p] = c.wait() end
        local took = os.time() - started
        for p, out in ipairs(outs) do assert.equal("errors 0 \n", out, "process " .. p) end
        local n = 0
        for k, v in pairs(core:load(cookie)) do
            if k:match("^p%d+%.%d+$") and v == true then n = n + 1 end
        end
        assert.equal(processes * rounds, n)
        assert.is_true(took < 30, "the writers took " .. took .. " s")
    end)
end)

describe("RedisStore keys that are not UTF-8 (8.12)", function()
    it("are ids as bytes to all and length, and clear leaves nothing behind", function()
        local store = hs.RedisStore({ url = server.url })
        store:set("ok", { a = 1 }, 60)
        server:cli("SET", "sess:\255\254", "{}")
        server:cli("SET", "sess:caf\233", "{}")
        local ids = store:all()
        table.sort(ids)
        assert.same({ "caf\233", "ok", "\255\254" }, ids)
        assert.equal(3, store:length())
        assert.is_true(store:exists("\255\254"))
        store:destroy("caf\233")
        assert.equal(2, store:length())
        store:clear()
        assert.equal("0", server:cli("DBSIZE"):match("%d+"))
    end)
end)

-- A part of `secret` of 4 bytes or more (or all of a shorter one) that `text` holds, or nil.
local function leaked(text, secret)
    local n = math.min(4, #secret)
    for i = 1, #secret - n + 1 do
        if text:find(secret:sub(i, i + n - 1), 1, true) then return secret:sub(i, i + n - 1) end
    end
end

-- Redis quotes an unknown command's first arguments in its error reply ("ERR unknown command
-- 'HELLO', with args beginning with: '3' 'AUTH' 'alice' '<password>'"), up to 128 bytes of
-- them: a server where AUTH or HELLO is renamed away (rename-command), or a proxy that lacks
-- them, answers the store's connection setup with the password in it. The store named the
-- reply as it came.
describe("RedisStore errors never show the password, also where the server quotes it", function()
    local bare
    lazy_setup(function() bare = RedisServer.start({ args = "--rename-command AUTH '' --rename-command HELLO ''" }) end)
    lazy_teardown(function() bare:close() end)

    it("a refused HELLO (RESP3) or AUTH (RESP2) of the connection setup", function()
        local where = " (redis at 127.0.0.1:" .. bare.port .. "/0)"
        -- Short, and longer than the 128 bytes Redis quotes (so it quotes a part).
        for _, pw in ipairs({ "Zq8vKx3Wm7pLq", ("Hk2rT9wQ"):rep(20), "pw" }) do
            for _, query in ipairs({ "?protocol=resp3", "" }) do
                local url = "redis://alice:" .. pw .. "@127.0.0.1:" .. bare.port .. "/0" .. query
                local store = hs.RedisStore({ url = url, connectTimeout = 2000 })
                local ok, err = pcall(store.get, store, "x")
                assert.is_false(ok, url)
                err = message(err)
                assert.equal(1, err:find("honeymoon_session: RedisStore:get failed: ", 1, true), err)
                assert.equal(where, err:sub(-#where), err)
                assert.is_nil(leaked(err, pw), "the password is in: " .. err)
            end
        end
    end)
end)

-- After a long username, Redis's 128 bytes of quoted arguments end 1 to 3 bytes into the
-- password: a start too short to be told from the message's own bytes, except that it is quoted.
describe("RedisStore errors after a long username", function()
    local bare
    lazy_setup(function() bare = RedisServer.start({ args = "--rename-command AUTH '' --rename-command HELLO ''" }) end)
    lazy_teardown(function() bare:close() end)

    it("leave out the password's quoted start however short", function()
        local pw = "Zq8vKx3Wm7pLq"
        -- HELLO's arguments before the username take 11 bytes of the quote ('3' 'AUTH' ), AUTH's
        -- none; the redis crate words a refused AUTH itself, without the server's quote.
        for _, case in ipairs({ { "?protocol=resp3", 11, true }, { "", 0, false } }) do
            for shown = 1, 3 do
                local user = ("u"):rep(128 - case[2] - 3 - shown)
                local url = "redis://" .. user .. ":" .. pw .. "@127.0.0.1:" .. bare.port .. "/0" .. case[1]
                local store = hs.RedisStore({ url = url, connectTimeout = 2000 })
                local ok, err = pcall(store.get, store, "x")
                assert.is_false(ok, url)
                err = message(err)
                if case[3] then assert.truthy(err:find("'" .. user .. "' '<password>'", 1, true), err) end
                assert.is_nil(err:find("'" .. pw:sub(1, shown) .. "'", 1, true), err)
            end
        end
    end)
end)

-- A unix socket url carries its password in the query (?pass=): one holding an unencoded & ends
-- there, and the rest of it is the name of the next parameter, which the message named.
describe("RedisStore unix socket url whose password holds an unencoded &", function()
    it("is refused without naming the rest of the password as a parameter", function()
        local LuaRedis = require("honeymoon_session.stores.redis")
        for _, url in ipairs({ "redis+unix:///tmp/r.sock?pass=abc&Wk9pLm2z", "unix:///tmp/r.sock?user=bob&pass=q&Wk9pLm2z",
            "unix:///tmp/r.sock?pass=q&db=1&Wk9pLm2z" }) do
            local ok, err = pcall(hs.RedisStore, { url = url })
            assert.is_false(ok, url)
            err = message(err)
            assert.equal("honeymoon_session: RedisStore url has a query parameter after pass= this store does not "
                .. "read (a password holding & must be percent-encoded as %26; a unix socket url takes db, user, pass "
                .. "and protocol)", err)
            -- The event-loop store refuses a unix socket; it checks the url the same way first.
            ok, err = pcall(LuaRedis.new, { url = url, socket = "cqueues" })
            assert.is_false(ok, url)
            assert.is_nil(leaked(message(err), "Wk9pLm2z"), "the password is in: " .. message(err))
        end
    end)
end)

-- The lua-http adapter behind a real http.server on a loopback port, driven by lua-http's own
-- client over HTTP/1.1, cleartext HTTP/2 and HTTPS: what a client sees, where adapters_spec.lua
-- hands header objects over by hand. Server and client run in one cqueues controller.
if _VERSION ~= "Lua 5.1" then
    -- Debian ships lua-http (pure Lua) for 5.1 only; on 5.2 to 5.4 it runs from the 5.1 share dir.
    package.path = package.path .. ";/usr/share/lua/5.1/?.lua;/usr/share/lua/5.1/?/init.lua"
end

local hs = require("honeymoon_session")
local lua_http = require("honeymoon_session.adapters.lua_http")
local has_http, http_server = pcall(require, "http.server")

describe("adapters.lua_http behind http.server", function()
    if not has_http then
        pending("lua-http (Debian lua-http) is not installed: " .. tostring(http_server))
        return
    end
    local cqueues = require("cqueues")
    local condition = require("cqueues.condition")
    local http_client = require("http.client")
    local http_headers = require("http.headers")
    local http_tls = require("http.tls")

    -- A self-signed certificate for 127.0.0.1, made here (no file, nothing to expire).
    local function server_tls_context()
        local pkey, x509, x509_name = require("openssl.pkey"), require("openssl.x509"), require("openssl.x509.name")
        local key = pkey.new({ type = "EC", curve = "prime256v1" })
        local name = x509_name.new()
        name:add("CN", "127.0.0.1")
        local cert = x509.new()
        cert:setVersion(3)
        cert:setSerial(1)
        cert:setSubject(name)
        cert:setIssuer(name)
        cert:setPublicKey(key)
        local now = os.time()
        cert:setLifetime(now - 60, now + 3600)
        cert:sign(key)
        local ctx = http_tls.new_server_context()
        assert(ctx:setCertificate(cert))
        assert(ctx:setPrivateKey(key))
        return ctx
    end

    -- The app: GET /inc?key=K sets session[K] = true; with &wait=1 it then says it has loaded
    -- (state.loaded) and waits until a request with &signal=1 has committed (state.go), so it
    -- commits last. Answers the session's data as JSON and whether the stream was TLS. Waits are
    -- bounded (5 s): a missed signal fails the test instead of hanging it.
    local function start_server(cq, tls, state)
        local store = hs.MemoryStore()
        local adapter = lua_http.new({ secret = "lua-http-server", name = "lh.sid", store = store,
            cookie = { secure = "auto" } })
        state.loaded_cond, state.go_cond, state.errors = condition.new(), condition.new(), {}
        local server = assert(http_server.listen({
            host = "127.0.0.1", port = 0, tls = tls, ctx = tls and server_tls_context() or nil,
            onstream = function(_, stream)
                local req = assert(stream:get_headers())
                local path = req:get(":path")
                local session = adapter:load(req, stream:checktls())
                session[path:match("key=(%w+)")] = true
                if path:find("wait=1", 1, true) then
                    state.loaded = true
                    state.loaded_cond:signal()
                    if not state.go then state.go_cond:wait(5) end
                end
                local res = http_headers.new()
                res:append(":status", "200")
                adapter:commit(session, res)
                if path:find("signal=1", 1, true) then
                    state.go = true
                    state.go_cond:signal()
                end
                assert(stream:write_headers(res, false))
                assert(stream:write_chunk(hs.json.encode({ data = session:all(), tls = stream:checktls() ~= nil }), true))
            end,
            onerror = function(_, _, op, err) state.errors[#state.errors + 1] = tostring(op) .. ": " .. tostring(err) end,
        }))
        assert(server:listen())
        local _, _, port = server:localname()
        cq:wrap(function() assert(server:loop()) end)
        return server, port
    end

    -- One GET on a new connection; `cookies` are sent as separate cookie fields.
    local function get(port, path, opts, cookies)
        local client_ctx
        if opts.tls then
            client_ctx = http_tls.new_client_context()
            client_ctx:setVerify(require("openssl.ssl.context").VERIFY_NONE)
        end
        local conn = assert(http_client.connect({ host = "127.0.0.1", port = port, tls = opts.tls == true,
            ctx = client_ctx, version = opts.version }, 5))
        local stream = assert(conn:new_stream())
        local req = http_headers.new()
        req:append(":method", "GET")
        req:append(":scheme", opts.tls and "https" or "http")
        req:append(":authority", "127.0.0.1")
        req:append(":path", path)
        for _, c in ipairs(cookies or {}) do req:append("cookie", c) end
        assert(stream:write_headers(req, true))
        local res = assert(stream:get_headers(5))
        local body = assert(stream:get_body_as_string(5))
        conn:close()
        local lines = {}
        for name, value in res:each() do
            if name == "set-cookie" then lines[#lines + 1] = value end
        end
        return hs.json.decode(body), lines, conn.version
    end

    -- Runs `fn(port)` in a controller beside a server; stops the server when fn ends or fails.
    local function with_server(tls, fn)
        local cq, state = cqueues.new(), {}
        local server, port = start_server(cq, tls, state)
        local ok, err = false, "did not finish in 30 s"
        cq:wrap(function()
            -- lua-http's own pcall: Lua 5.1's cannot yield, and fn waits on sockets.
            ok, err = require("http.util").yieldable_pcall(fn, port, cq, state)
            server:close()
        end)
        local looped, loop_err = cq:loop(30)
        server:close()
        assert(ok, err)
        assert(looped, loop_err)
        assert.same({}, state.errors, "server errors")
    end

    local function pair(line) return line and line:match("^([^;]*)") end

    for _, version in ipairs({ 1.1, 2 }) do
        it("joins the cookie fields of one request (HTTP/" .. version .. ")", function()
            with_server(false, function(port)
                local body, lines, used = get(port, "/inc?key=a", { version = version })
                assert.equal(version, used)
                assert.equal(1, #lines)
                assert.is_nil(lines[1]:find("Secure", 1, true), lines[1])
                body = get(port, "/inc?key=b", { version = version }, { "theme=dark", pair(lines[1]), "x=1" })
                assert.same({ a = true, b = true }, body.data)
            end)
        end)
    end

    for _, version in ipairs({ 1.1, 2 }) do
        it("sets Secure with cookie.secure = 'auto' over HTTPS, as stream:checktls() says (HTTP/" .. version .. ")", function()
            with_server(true, function(port)
                local body, lines, used = get(port, "/inc?key=a", { tls = true, version = version })
                assert.equal(version, used)
                assert.is_true(body.tls)
                assert.matches("; Secure", lines[1], 1, true)
                body = get(port, "/inc?key=b", { tls = true, version = version }, { "theme=dark", pair(lines[1]) })
                assert.same({ a = true, b = true }, body.data)
            end)
        end)
    end

    it("keeps what two requests of one session wrote while one of them waited", function()
        with_server(false, function(port, cq, state)
            local _, lines = get(port, "/inc?key=first", {})
            local cookie = pair(lines[1])
            local waited
            local done = condition.new()
            cq:wrap(function()
                waited = get(port, "/inc?key=slow&wait=1", {}, { cookie })
                done:signal()
            end)
            if not state.loaded then state.loaded_cond:wait(5) end
            assert.is_true(state.loaded, "the slow request did not load its session")
            -- The slow request has loaded the session and waits; this one writes and commits.
            local quick = get(port, "/inc?key=quick&signal=1", {}, { cookie })
            assert.same({ first = true, quick = true }, quick.data)
            if waited == nil then done:wait(5) end
            assert.is_not_nil(waited, "the waiting request did not finish")
            assert.same({ first = true, quick = true, slow = true }, get(port, "/inc?key=first", {}, { cookie }).data)
        end)
    end)
end)

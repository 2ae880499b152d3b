-- A throwaway redis-server on a loopback port, for specs and benchmarks: start() returns a handle with its
-- url, cli(...) to run redis-cli against it, age(prefix, seconds) to pull every TTL earlier
-- (time passing, without sleeping), restart() and stop().
local M = {}

local sh = require("scripts.lib.shell").output

local Server = {}
Server.__index = Server

---@param opts? { tls: boolean, password: string, args: string } tls: serve TLS only, with a
---self-signed certificate (server.ca); password: require it (requirepass; cli() sends it); args:
---more redis-server arguments, as shell words (e.g. "--rename-command AUTH ''")
---@return table server
function M.start(opts)
    local tls = opts and opts.tls
    local password = opts and opts.password
    local args = opts and opts.args
    local dir = sh("mktemp -d"):gsub("%s+$", "")
    local ca
    if tls then
        -- A throwaway authority, and a server certificate it signs for 127.0.0.1.
        ca = dir .. "/ca.pem"
        local f = assert(io.open(dir .. "/ext.cnf", "w"))
        f:write("subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n")
        f:close()
        sh(("cd %s && openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=test-ca -keyout ca.key -out ca.pem"
            .. " && openssl req -newkey rsa:2048 -nodes -subj /CN=127.0.0.1 -keyout key.pem -out server.csr"
            .. " && openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 1"
            .. " -extfile ext.cnf -out cert.pem"):format(dir))
    end
    math.randomseed(os.time() + tonumber(tostring({}):match("0x(%x+)") or "0", 16) % 100000)
    for _ = 1, 20 do
        local port = math.random(20000, 45000)
        local s = setmetatable({ dir = dir, port = port, tls = tls, ca = ca, password = password, args = args,
            url = (tls and "rediss" or "redis") .. "://127.0.0.1:" .. port }, Server)
        if s:launch() then return s end
    end
    error("could not start redis-server on a free loopback port")
end

local function execute_ok(cmd)
    local r = os.execute(cmd)
    return r == true or r == 0 -- Lua 5.2+ and LuaJIT with 5.2 compat give true; 5.1 gives 0
end

-- Whether process pid still runs. A zombie counts as gone: the server outlives the shell that
-- started it, and its new parent may be slow (or fail) to reap it, which kill -0 cannot tell.
local function alive(pid)
    local f = io.open("/proc/" .. pid .. "/stat")
    if f then
        local stat = f:read("*l") or ""
        f:close()
        return stat:match("^%d+ %(.*%) (%a)") ~= "Z"
    end
    return execute_ok("kill -0 " .. pid .. " 2>/dev/null")
end

-- Sends signal sig to pid and waits (up to seconds) until it has exited.
local function signal_and_wait(pid, sig, seconds)
    os.execute(("kill -%s %s 2>/dev/null"):format(sig, pid))
    for _ = 1, seconds * 50 do
        if not alive(pid) then return true end
        os.execute("sleep 0.02")
    end
    return not alive(pid)
end

-- Ends the server this handle started, by its pid: TERM (redis shuts down; --save '' so it
-- has nothing to write), KILL if it has not gone in 5 s. Raises if it outlives both.
function Server:kill()
    local pid = self.server_pid
    if not pid then return end
    if not signal_and_wait(pid, "TERM", 5) and not signal_and_wait(pid, "KILL", 2) then
        error("redis-server (pid " .. pid .. ", port " .. self.port .. ") did not exit")
    end
    self.server_pid = nil
end

function Server:launch()
    local listen = ("--port %d"):format(self.port)
    if self.tls then
        listen = ("--port 0 --tls-port %d --tls-cert-file %s/cert.pem --tls-key-file %s/key.pem "
            .. "--tls-ca-cert-file %s --tls-auth-clients no"):format(self.port, self.dir, self.dir, self.ca)
    end
    if self.password then listen = listen .. " --requirepass '" .. self.password .. "'" end
    if self.args then listen = listen .. " " .. self.args end
    -- In the background rather than --daemonize, so its pid is known at once: a launch that
    -- fails (port taken, or not answering in time) kills what it started, and a late server
    -- cannot outlive the spec on a port nobody stops.
    self.server_pid = assert(sh(("redis-server %s --bind 127.0.0.1 --save '' --appendonly no "
        .. "--dir %s --logfile %s/redis.log </dev/null >/dev/null 2>&1 & echo $!"):format(listen, self.dir, self.dir))
        :match("(%d+)"), "could not start redis-server")
    for _ = 1, 100 do
        if not alive(self.server_pid) then break end -- it could not bind (or start) on this port
        -- The PONG must come from the server started here: on a port another live server
        -- holds, this one fails to bind while the other answers.
        if self:cli("PING"):match("PONG") then
            if self:cli("INFO", "server"):match("process_id:(%d+)") == self.server_pid then return true end
            break
        end
        os.execute("sleep 0.02")
    end
    self:kill()
    return false
end

---The pid of the redis-server this handle started (nil once stopped).
function Server:pid()
    return self.server_pid
end

-- redis-cli with this server's address, TLS and password.
function Server:cli_command()
    local tls = self.tls and ("--tls --cacert " .. self.ca .. " ") or ""
    if self.password then tls = tls .. "--no-auth-warning -a '" .. self.password .. "' " end
    return ("redis-cli %s-p %d"):format(tls, self.port)
end

function Server:cli(...)
    local args = {}
    for i, a in ipairs({ ... }) do args[i] = "'" .. tostring(a):gsub("'", "'\\''") .. "'" end
    return sh(("%s --raw %s"):format(self:cli_command(), table.concat(args, " ")))
end

local AGE = [[
for _, k in ipairs(redis.call('KEYS', ARGV[2] .. '*')) do
  local t = redis.call('PTTL', k)
  if t > 0 then
    local n = t - tonumber(ARGV[1])
    if n <= 0 then redis.call('DEL', k) else redis.call('PEXPIRE', k, n) end
  end
end
return 1]]

---Lets `seconds` pass for every key under `prefix`.
function Server:age(prefix, seconds)
    self:cli("EVAL", AGE, 0, math.floor(seconds * 1000), prefix)
end

---The commands clients sent while `fn` ran, in order (commands run by scripts are not
---round trips and are left out), from MONITOR.
---Raises when MONITOR does not start, or does not show the end marker, within 5 s: a list
---cut short would pass for "fewer round trips".
function Server:client_commands(fn)
    local out = os.tmpname()
    local monitor = sh(("%s MONITOR > %s 2>&1 & echo $!"):format(self:cli_command(), out)):match("(%d+)")
    local function read()
        local f = io.open(out)
        local text = f and f:read("*a") or ""
        if f then f:close() end
        return text
    end
    -- Waits (5 s at most, less if redis-cli has exited) until the output matches pattern;
    -- returns it, or nil.
    local function await(pattern)
        for _ = 1, 500 do
            local text = read()
            if text:match(pattern) then return text end
            if not (monitor and alive(monitor)) then return read():match(pattern) and read() end
            os.execute("sleep 0.01")
        end
    end
    local function finish(err)
        if monitor then os.execute("kill " .. monitor .. " 2>/dev/null") end
        local text = read()
        os.remove(out)
        if err then error(err .. " (its output: " .. text:sub(1, 200) .. ")", 3) end
        return text
    end
    if not await("^OK") then finish("client_commands: MONITOR on port " .. self.port .. " did not start (redis-cli exited, or 5 s passed)") end
    local ok, err = pcall(fn)
    if not ok then
        finish()
        error(err, 0)
    end
    self:cli("PING", "monitor-end")
    if not await('"monitor%-end"') then
        finish("client_commands: MONITOR on port " .. self.port .. " did not show the end marker (redis-cli exited, or 5 s passed)")
    end
    local text = finish()
    local commands = {}
    for line in text:gmatch("[^\n]+") do
        local name = line:match('^%d+%.%d+ %[%d+ [%d%.]+:%d+%] "(%w+)"')
        if name and not line:match('"monitor%-end"') then commands[#commands + 1] = name:upper() end
    end
    return commands
end

---Stops the server by its pid and waits until it has exited.
function Server:stop()
    self:kill()
end

function Server:restart()
    self:stop()
    assert(self:launch(), "redis-server did not come back on port " .. self.port)
end

function Server:close()
    self:stop()
    os.execute("rm -rf '" .. self.dir .. "'")
end

return M

-- A throwaway redis-server on a loopback port, for specs and benchmarks: start() returns a handle with its
-- url, cli(...) to run redis-cli against it, age(prefix, seconds) to pull every TTL earlier
-- (time passing, without sleeping), restart() and stop().
local M = {}

local sh = require("scripts.lib.shell").output

local Server = {}
Server.__index = Server

---@param opts? { tls: boolean, password: string } tls: serve TLS only, with a self-signed
---certificate (server.ca); password: require it (requirepass; cli() sends it)
---@return table server
function M.start(opts)
    local tls = opts and opts.tls
    local password = opts and opts.password
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
        local s = setmetatable({ dir = dir, port = port, tls = tls, ca = ca, password = password,
            url = (tls and "rediss" or "redis") .. "://127.0.0.1:" .. port }, Server)
        if s:launch() then return s end
    end
    error("could not start redis-server on a free loopback port")
end

function Server:launch()
    local listen = ("--port %d"):format(self.port)
    if self.tls then
        listen = ("--port 0 --tls-port %d --tls-cert-file %s/cert.pem --tls-key-file %s/key.pem "
            .. "--tls-ca-cert-file %s --tls-auth-clients no"):format(self.port, self.dir, self.dir, self.ca)
    end
    if self.password then listen = listen .. " --requirepass '" .. self.password .. "'" end
    os.execute(("redis-server %s --bind 127.0.0.1 --save '' --appendonly no --daemonize yes "
        .. "--dir %s --pidfile %s/redis.pid --logfile %s/redis.log"):format(listen, self.dir, self.dir, self.dir))
    for _ = 1, 100 do
        -- The PONG must come from the server started here: on a port another live server
        -- holds, this one fails to bind while the other answers.
        if self:cli("PING"):match("PONG") then return self:cli("INFO", "server"):match("process_id:(%d+)") == self:pid() end
        os.execute("sleep 0.02")
    end
    return false
end

---The pid redis-server wrote to its pidfile (nil before it did).
function Server:pid()
    local f = io.open(self.dir .. "/redis.pid")
    if not f then return nil end
    local pid = f:read("*l")
    f:close()
    return pid and pid:match("^%s*(%d+)")
end

function Server:cli(...)
    local args = {}
    for i, a in ipairs({ ... }) do args[i] = "'" .. tostring(a):gsub("'", "'\\''") .. "'" end
    local tls = self.tls and ("--tls --cacert " .. self.ca .. " ") or ""
    if self.password then tls = tls .. "--no-auth-warning -a '" .. self.password .. "' " end
    return sh(("redis-cli %s-p %d --raw %s"):format(tls, self.port, table.concat(args, " ")))
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
function Server:client_commands(fn)
    local out = os.tmpname()
    os.execute(("redis-cli -p %d MONITOR > %s 2>&1 & echo $! > %s.pid"):format(self.port, out, out))
    for _ = 1, 100 do
        local f = io.open(out)
        local text = f and f:read("*a") or ""
        if f then f:close() end
        if text:match("OK") then break end
        os.execute("sleep 0.01")
    end
    fn()
    self:cli("PING", "monitor-end")
    local text
    for _ = 1, 100 do
        local f = assert(io.open(out))
        text = f:read("*a")
        f:close()
        if text:match('"monitor%-end"') then break end
        os.execute("sleep 0.01")
    end
    os.execute(("kill $(cat %s.pid) 2>/dev/null; rm -f %s %s.pid"):format(out, out, out))
    local commands = {}
    for line in text:gmatch("[^\n]+") do
        local name = line:match('^%d+%.%d+ %[%d+ [%d%.]+:%d+%] "(%w+)"')
        if name and not line:match('"monitor%-end"') then commands[#commands + 1] = name:upper() end
    end
    return commands
end

function Server:stop()
    self:cli("SHUTDOWN", "NOSAVE")
    for _ = 1, 100 do
        if not self:cli("PING"):match("PONG") then break end
        os.execute("sleep 0.02")
    end
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

-- A throwaway nginx (lua-nginx-module, the LuaJIT build of the module) on a loopback port, for
-- specs: start({ workers =, http =, locations = }) writes a config into a temp dir and starts
-- nginx; the handle has url, get(path) (curl), errors() (its error log) and stop(), which kills
-- the master by the PID in its pid file and waits for it to go.
--   http: lines inside http {} (init_by_lua_block...); locations: lines inside server {}.
local M = {}

local sh = require("scripts.lib.shell").output

local ROOT = sh("pwd"):gsub("%s+$", "")

-- os.execute's success on every interpreter (LuaJIT returns the status number).
local function succeeds(cmd)
    local r = os.execute(cmd)
    return r == true or r == 0
end

local CONF = [[
load_module /usr/lib/nginx/modules/ndk_http_module.so;
load_module /usr/lib/nginx/modules/ngx_http_lua_module.so;
@USER@
master_process on;
worker_processes @WORKERS@;
pid @PREFIX@/nginx.pid;
error_log @PREFIX@/error.log warn;
events { worker_connections 256; }
http {
    access_log off;
    default_type text/plain;
    client_body_temp_path @PREFIX@/tmp/body;
    proxy_temp_path @PREFIX@/tmp/proxy;
    fastcgi_temp_path @PREFIX@/tmp/fastcgi;
    uwsgi_temp_path @PREFIX@/tmp/uwsgi;
    scgi_temp_path @PREFIX@/tmp/scgi;
    lua_package_path "@ROOT@/?.lua;@ROOT@/lua/?.lua;;";
    lua_package_cpath "@ROOT@/build/luajit/?.so;;";
@HTTP@
    server {
        listen 127.0.0.1:@PORT@;
@LOCATIONS@
    }
}
]]

local Nginx = {}
Nginx.__index = Nginx

---Whether nginx with the Lua module is installed (scripts/setup.sh installs both).
function M.available()
    return sh("command -v nginx") ~= "" and io.open("/usr/lib/nginx/modules/ngx_http_lua_module.so") ~= nil
end

function M.start(opts)
    local dir = sh("mktemp -d"):gsub("%s+$", "")
    os.execute("mkdir -p '" .. dir .. "/tmp'")
    -- Started by root, nginx would run its workers as nobody, who may not read this checkout.
    local user = sh("id -u"):match("^0") and "user root root;" or ""
    math.randomseed(os.time() + tonumber(tostring({}):match("0x(%x+)") or "0", 16) % 100000)
    for _ = 1, 10 do
        local port = math.random(20000, 45000)
        local conf = CONF:gsub("@(%u+)@", {
            USER = user, WORKERS = tostring(opts.workers or 1), PREFIX = dir, ROOT = ROOT,
            HTTP = opts.http or "", LOCATIONS = opts.locations or "", PORT = tostring(port),
        })
        local f = assert(io.open(dir .. "/nginx.conf", "w"))
        f:write(conf)
        f:close()
        local n = setmetatable({ dir = dir, port = port, url = "http://127.0.0.1:" .. port }, Nginx)
        os.execute(("nginx -e '%s/stderr.log' -p '%s' -c '%s/nginx.conf' >/dev/null 2>&1"):format(dir, dir, dir))
        for _ = 1, 100 do
            local f = io.open(dir .. "/nginx.pid")
            local pid = f and f:read("*n")
            if f then f:close() end
            if pid then
                n.pid = pid
                break
            end
            os.execute("sleep 0.05")
        end
        if n.pid then
            for _ = 1, 100 do
                if n:get("/"):match("^%d%d%d") ~= "000" then return n end
                os.execute("sleep 0.05")
            end
            n:stop()
        end
    end
    error("could not start nginx: " .. sh("cat '" .. dir .. "/stderr.log' '" .. dir .. "/error.log'"))
end

---"CODE BODY" of one GET (CODE 000: no answer).
function Nginx:get(path)
    return sh(("curl -s -m 5 -o - -w '\\n%%{http_code}' '%s%s'"):format(self.url, path))
        :gsub("^(.-)\n(%d+)$", "%2 %1")
end

---Runs `cmd` with $URL set to this server's address; returns its output.
function Nginx:shell(cmd)
    return sh("URL='" .. self.url .. "'; " .. cmd)
end

function Nginx:errors()
    return sh("cat '" .. self.dir .. "/error.log' 2>/dev/null")
end

function Nginx:stop()
    if self.pid then
        os.execute("kill " .. self.pid .. " 2>/dev/null")
        for _ = 1, 100 do
            if not succeeds("kill -0 " .. self.pid .. " 2>/dev/null") then break end
            os.execute("sleep 0.05")
        end
        self.pid = nil
    end
    os.execute("rm -rf '" .. self.dir .. "'")
end

return M

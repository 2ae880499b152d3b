-- Shell commands for the test and bench helpers (scripts/lib/redis_server.lua,
-- spec/support/nginx.lua): output(cmd) runs cmd and returns what it printed, stderr included.
local M = {}

---@param cmd string a shell command
---@return string output its stdout and stderr
function M.output(cmd)
    local p = assert(io.popen("(" .. cmd .. ") 2>&1"))
    local out = p:read("*a")
    p:close()
    return out
end

return M

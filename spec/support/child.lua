-- Runs Lua code in a fresh interpreter of the running flavour (lua5.1 to lua5.4, or luajit), with this
-- checkout's module on its paths: for cases that may kill the process (memory limits, a dead
-- stderr), so a failure is a reported exit status instead of the spec run dying.
--
--   local r = Child.run([[ print(require("honeymoon_session").version) ]], {
--     setup = "ulimit -v 1000000",  -- bash run in the child's shell before the interpreter
--     stderr = "2>&-",              -- redirection of the interpreter's stderr (default: kept apart)
--     env = "--default-signal=PIPE" -- options of env(1) for the interpreter
--   })
--   r.stdout, r.stderr, r.status    -- status: the exit code, 128 + N for signal N (bash's $?)

local M = {}

M.interpreter = require("spec.support.interpreter").command

local function quote(s)
  return "'" .. s:gsub("'", "'\\''") .. "'"
end

local function slurp(path)
  local f = io.open(path, "rb")
  if not f then return "" end
  local s = f:read("*a")
  f:close()
  return s
end

---@param source string Lua code; `require("honeymoon_session")` finds this checkout's build
---@param opts? {setup?: string, stderr?: string, env?: string}
---@return {stdout: string, stderr: string, status: integer}
function M.run(source, opts)
  opts = opts or {}
  local src, err = os.tmpname(), os.tmpname()
  local f = assert(io.open(src, "w"))
  f:write(("package.cpath = %q\npackage.path = %q\n"):format(package.cpath, package.path), source)
  f:close()
  local stderr = opts.stderr or ("2>" .. quote(err))
  local script = table.concat({
    opts.setup or ":",
    ("env %s %s %s %s"):format(opts.env or "", M.interpreter, quote(src), stderr),
    'echo "<exit $?>"',
  }, "\n")
  local p = assert(io.popen("bash -c " .. quote(script) .. " 2>/dev/null"))
  local out = p:read("*a")
  p:close()
  local result = { stderr = slurp(err) }
  os.remove(src)
  os.remove(err)
  local body, status = out:match("^(.*)<exit (%d+)>\n?$")
  result.stdout, result.status = body or out, tonumber(status) or -1
  return result
end

---Starts Lua code as `run` does, without waiting for it: several children run at once (writers
---racing on one store). `wait()` returns what it printed, stdout and stderr together.
---@param source string
---@return {wait: fun(): string}
function M.start(source)
  local src = os.tmpname()
  local f = assert(io.open(src, "w"))
  f:write(("package.cpath = %q\npackage.path = %q\n"):format(package.cpath, package.path), source)
  f:close()
  local pipe = assert(io.popen(M.interpreter .. " " .. quote(src) .. " 2>&1"))
  return {
    wait = function()
      local out = pipe:read("*a")
      pipe:close()
      os.remove(src)
      return out
    end,
  }
end

---Bash that opens fd 5 as the write end of a pipe whose reader has already exited, for
---`stderr = "2>&5"`: every write to it fails with EPIPE (and raises SIGPIPE).
--- A fifo opened for reading and writing, then for writing, then its only reader closed: no
---process and no race.
M.DEAD_PIPE = table.concat({
  'fifo=$(mktemp -u) && mkfifo "$fifo"',
  'exec 6<>"$fifo"',
  'exec 5>"$fifo"',
  "exec 6<&-",
  'rm -f "$fifo"',
}, "\n")

return M

-- Issue 8 (hardening): one describe per item, each failing on the code before its fix. Cases
-- that may kill the process (memory limits, a dead stderr) run in a child interpreter
-- (spec/support/child.lua), so a crash is a reported exit status.

local hs = require("honeymoon_session")
local App = require("examples.framework.app")
local Client = require("examples.framework.client")
local TableStore = require("spec.support.table_store")
local Child = require("spec.support.child")

local SECRET = "issue-8-secret"
local NAME = "honeymoon.sid"

-- Runs fn(...) expecting it to raise; returns the error as a string.
local function error_of(fn, ...)
  local ok, err = pcall(fn, ...)
  assert.is_false(ok, "expected an error")
  return tostring(err)
end

local function contains(needle, haystack)
  assert.matches(needle, haystack, 1, true)
end

---------------------------------------------------------------------------
-- 8.3 A warning never fails, whatever stderr is
---------------------------------------------------------------------------

describe("8.3 the no-secret warning", function()
  -- Without a secret, session() warns on stderr; then a session must work as ever.
  local SCRIPT = [[
    local hs = require("honeymoon_session")
    local ok, err = pcall(hs.session, {})
    print(ok and "session() ok" or ("session() failed: " .. tostring(err)))
    local core = hs.core({})
    local s = core:load(nil)
    s.n = 1
    local line = core:commit(s)[1]
    print(line and "committed" or "no cookie")
  ]]

  local function check(r)
    assert.equal(0, r.status, "exit status " .. r.status .. "; stdout: " .. r.stdout)
    contains("session() ok", r.stdout)
    contains("committed", r.stdout)
  end

  it("is written once to a working stderr", function()
    local r = Child.run(SCRIPT)
    check(r)
    local _, n = r.stderr:gsub("no secret given", "")
    assert.equal(1, n, r.stderr)
  end)

  it("does not fail session() when stderr is closed (2>&-)", function()
    check(Child.run(SCRIPT, { stderr = "2>&-" }))
  end)

  it("does not fail session() when stderr is a pipe nobody reads, with SIGPIPE ignored (nginx)", function()
    check(Child.run(SCRIPT, { setup = Child.DEAD_PIPE, stderr = "2>&5", env = "--ignore-signal=PIPE" }))
  end)

  it("does not kill the process when stderr is a pipe nobody reads, under SIGPIPE's default", function()
    check(Child.run(SCRIPT, { setup = Child.DEAD_PIPE, stderr = "2>&5", env = "--default-signal=PIPE" }))
  end)

  it("(the harness) a plain write to that pipe does kill the process, so the cases above mean something", function()
    local r = Child.run([[io.stderr:write("x\n") io.stderr:flush() print("survived")]],
      { setup = Child.DEAD_PIPE, stderr = "2>&5", env = "--default-signal=PIPE" })
    assert.equal(128 + 13, r.status)
  end)
end)


-- A stand-in for OpenResty's ngx.shared.DICT and the few ngx functions the SharedDictStore
-- uses, so busted can drive that store outside nginx (scripts/shared_dict_check.sh runs it in a
-- real nginx). Entries expire by the module's clock (hs._now_ms, moved by hs._advance_clock), as
-- a dict's entries expire by nginx's. One worker, no contention: a lock taken twice is a bug in
-- the store, and ngx.sleep says so.
--
--   local FakeDict = require("spec.support.fake_dict")
--   local ngx = FakeDict.ngx({ "sessions" })   -- then _G.ngx = ngx while the store runs
local hs = require("honeymoon_session")

local M = {}

local function now() return hs._now_ms() / 1000 end

local Dict = {}
Dict.__index = Dict

function M.new()
  return setmetatable({ entries = {} }, Dict)
end

-- The entry under key, nil when absent or expired (an expired one is freed here).
local function live(self, key)
  local e = self.entries[key]
  if e and e.expires ~= 0 and e.expires <= now() then
    self.entries[key] = nil
    e = nil
  end
  return e
end

local function put(self, key, value, exptime)
  local expires = (exptime and exptime > 0) and now() + exptime or 0
  self.entries[key] = { value = value, expires = expires }
  return true, nil, false
end

function Dict:get(key)
  local e = live(self, key)
  return e and e.value
end

function Dict:set(key, value, exptime)
  if value == nil then
    self.entries[key] = nil
    return true, nil, false
  end
  return put(self, key, value, exptime)
end
Dict.safe_set = Dict.set

function Dict:add(key, value, exptime)
  if live(self, key) then return false, "exists", false end
  return put(self, key, value, exptime)
end

function Dict:replace(key, value, exptime)
  if not live(self, key) then return false, "not found", false end
  return put(self, key, value, exptime)
end

function Dict:delete(key)
  self.entries[key] = nil
end

---Seconds left (0: never expires), or nil, "not found".
function Dict:ttl(key)
  local e = live(self, key)
  if not e then return nil, "not found" end
  if e.expires == 0 then return 0 end
  return e.expires - now()
end

function Dict:expire(key, exptime)
  local e = live(self, key)
  if not e then return nil, "not found" end
  e.expires = (exptime and exptime > 0) and now() + exptime or 0
  return true
end

function Dict:get_keys(max)
  local keys = {}
  for key in pairs(self.entries) do
    if live(self, key) then keys[#keys + 1] = key end
    if max and max > 0 and #keys >= max then break end
  end
  return keys
end

---An `ngx` table with a fake dict under each name.
function M.ngx(names)
  local shared = {}
  for _, name in ipairs(names) do shared[name] = M.new() end
  return {
    shared = shared,
    now = now,
    update_time = function() end,
    get_phase = function() return "content" end,
    sleep = function() error("fake_dict: a lock was contended; one worker never contends", 2) end,
    log = function() end,
    WARN = 5,
    req = { is_internal = function() return false end },
  }
end

return M

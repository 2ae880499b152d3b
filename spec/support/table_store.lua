-- A plain Lua-table session store: the eight store methods (get, set, destroy, touch, exists,
-- all, length, clear) in pure Lua, for store conformance specs. Entries expire by a clock that
-- can be injected, so specs can let time pass without sleeping:
--
--   local now = 0
--   local store = TableStore.new({ clock = function() return now end })
--   now = now + 3600 -- an hour later
--
-- Data are deep-copied on the way in and out, so neither the caller's table nor a returned
-- table aliases what the store holds. It has no merge(), so a session gets full set() writes.

local type, pairs, setmetatable = type, pairs, setmetatable

local DEFAULT_TTL = 86400

local function copy(v)
  if type(v) ~= "table" then return v end
  local t = {}
  for k, x in pairs(v) do t[copy(k)] = copy(x) end
  return t
end

---@class TableStore
---@field now fun(): number  the clock, in seconds
---@field rows table<string, {data: table, expires_at: number}>
local TableStore = {}
TableStore.__index = TableStore

---@param opts? {clock?: fun(): number}
---@return TableStore
function TableStore.new(opts)
  return setmetatable({ now = opts and opts.clock or os.time, rows = {} }, TableStore)
end

-- The row for `id` if it has not expired; an expired row is dropped.
local function live(self, id)
  local row = self.rows[id]
  if row and row.expires_at <= self.now() then
    self.rows[id] = nil
    row = nil
  end
  return row
end

function TableStore:get(id)
  local row = live(self, id)
  return row and copy(row.data)
end

function TableStore:set(id, data, ttl)
  self.rows[id] = { data = copy(data), expires_at = self.now() + (ttl or DEFAULT_TTL) }
end

function TableStore:destroy(id)
  self.rows[id] = nil
end

---Refreshes a live entry's expiry; returns whether there was one.
function TableStore:touch(id, ttl)
  local row = live(self, id)
  if not row then return false end
  row.expires_at = self.now() + (ttl or DEFAULT_TTL)
  return true
end

function TableStore:exists(id)
  return live(self, id) ~= nil
end

function TableStore:all()
  local ids = {}
  for id in pairs(self.rows) do -- live() may clear the field; Lua allows that mid-traversal
    if live(self, id) then ids[#ids + 1] = id end
  end
  return ids
end

function TableStore:length()
  return #self:all()
end

function TableStore:clear()
  self.rows = {}
end

return TableStore

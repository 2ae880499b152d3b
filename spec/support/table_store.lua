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
--
-- It is also the reference custom store for "log out everywhere" (the session option `index`):
-- the optional methods sessionsOf(owner) and destroyAll(owner, exceptId). The module hands the
-- owner to set() inside the data, as `data.__meta.owner` (a string: a number field is rendered
-- in decimal), with `data.__meta.created` (ms since the epoch) and, on an id regenerate retired,
-- `data.__meta.stale`. The store keeps owner -> ids beside its rows, changed with each row.

local type, pairs, ipairs, next, setmetatable = type, pairs, ipairs, next, setmetatable
local floor, format, sort = math.floor, string.format, table.sort

local DEFAULT_TTL = 86400

local function copy(v)
  if type(v) ~= "table" then return v end
  local t = {}
  for k, x in pairs(v) do t[copy(k)] = copy(x) end
  return t
end

-- The bookkeeping the module keeps in a session's data (or nil).
local function meta_of(data)
  local meta = type(data) == "table" and data.__meta
  return type(meta) == "table" and meta or nil
end

local function owner_of(data)
  local meta = meta_of(data)
  return meta and meta.owner
end

---@class TableStore
---@field now fun(): number  the clock, in seconds
---@field rows table<string, {data: table, expires_at: number, seen: number}>
---@field owners table<string, table<string, true>>  owner -> its ids
local TableStore = {}
TableStore.__index = TableStore

---@param opts? {clock?: fun(): number}
---@return TableStore
function TableStore.new(opts)
  return setmetatable({ now = opts and opts.clock or os.time, rows = {}, owners = {} }, TableStore)
end

local function unlist(self, owner, id)
  local ids = self.owners[owner]
  if ids == nil then return end
  ids[id] = nil
  if next(ids) == nil then self.owners[owner] = nil end
end

-- Drops a row and its place in the owner index.
local function drop(self, id)
  local row = self.rows[id]
  if row == nil then return end
  self.rows[id] = nil
  local owner = owner_of(row.data)
  if owner ~= nil then unlist(self, owner, id) end
end

-- The row for `id` if it has not expired; an expired row is dropped.
local function live(self, id)
  local row = self.rows[id]
  if row and row.expires_at <= self.now() then
    drop(self, id)
    row = nil
  end
  return row
end

function TableStore:get(id)
  local row = live(self, id)
  return row and copy(row.data)
end

function TableStore:set(id, data, ttl)
  local now = self.now()
  local old = self.rows[id]
  local before, owner = old and owner_of(old.data), owner_of(data)
  self.rows[id] = { data = copy(data), expires_at = now + (ttl or DEFAULT_TTL), seen = now }
  -- A logout (no owner now) or another user's login takes the id off the old owner's list.
  if before ~= nil and before ~= owner then unlist(self, before, id) end
  if owner ~= nil then
    local ids = self.owners[owner]
    if ids == nil then
      ids = {}
      self.owners[owner] = ids
    end
    ids[id] = true
  end
end

function TableStore:destroy(id)
  drop(self, id)
end

---Refreshes a live entry's expiry; returns whether there was one.
function TableStore:touch(id, ttl)
  local row = live(self, id)
  if not row then return false end
  local now = self.now()
  row.expires_at = now + (ttl or DEFAULT_TTL)
  row.seen = now
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
  self.owners = {}
end

-- An owner as the app names it (req.session.userId): a number is rendered in decimal, as the
-- module renders it into __meta.owner.
local function owner_key(owner)
  if type(owner) == "number" then return format("%d", owner) end
  return owner
end

---The live sessions of `owner`, most recently written or touched first, without ids regenerate
---retired.
---@return {id: string, created: integer?, lastSeen: integer}[] times in seconds since the epoch
function TableStore:sessionsOf(owner)
  owner = owner_key(owner)
  local out = {}
  for id in pairs(self.owners[owner] or {}) do -- live() may clear the field mid-traversal
    local row = live(self, id)
    local meta = row and meta_of(row.data)
    if meta and meta.owner == owner and meta.stale == nil then
      out[#out + 1] = {
        id = id,
        created = meta.created and floor(meta.created / 1000),
        lastSeen = floor(row.seen),
        seen = row.seen,
      }
    end
  end
  sort(out, function(a, b)
    if a.seen ~= b.seen then return a.seen > b.seen end
    return a.id > b.id
  end)
  for _, s in ipairs(out) do s.seen = nil end
  return out
end

---Deletes every session of `owner` (ids regenerate retired included) but `except`; returns how
---many live ones it deleted.
---@return integer
function TableStore:destroyAll(owner, except)
  owner = owner_key(owner)
  local n = 0
  for id in pairs(self.owners[owner] or {}) do
    if id ~= except then
      if live(self, id) then n = n + 1 end
      drop(self, id)
    end
  end
  return n
end

return TableStore

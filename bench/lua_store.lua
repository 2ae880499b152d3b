-- A record store written in Lua over a plain table, the shape of SharedDictStore without
-- nginx: records are the engine's strings, merge applies the engine's patch with
-- hs._merge_patch, and a retired id (regenerate's stale grace) is refused by merge and touch.
-- For bench/overhead.lua's "lua" mode: what a request costs when the store is driven from Lua.
-- Like a lua_shared_dict that is full, it keeps the CAP most recently created sessions and
-- drops the oldest: the bench's login rows create hundreds of thousands, and a Lua heap that
-- grows with them would make every later row measure the garbage collector walking it.
-- Not for production (no expiry).
local hs = require("honeymoon_session")
local CAP = 10000

local Store = {}
Store.__index = Store
Store.format = "record"
Store.staleAware = true -- merge and touch refuse a retired record themselves

function Store.new() return setmetatable({ rows = {}, ring = {}, made = 0 }, Store) end

function Store:get(id) return self.rows[id] end

function Store:set(id, record)
    local rows = self.rows
    if rows[id] == nil then
        local made = self.made + 1
        local slot = made % CAP
        local oldest = self.ring[slot]
        if oldest ~= nil then rows[oldest] = nil end
        self.ring[slot], self.made = id, made
    end
    rows[id] = record
end
function Store:destroy(id) self.rows[id] = nil end
function Store:exists(id) return self.rows[id] ~= nil end

function Store:merge(id, patch)
    local current = self.rows[id]
    if current == nil then return false end
    local merged = hs._merge_patch(current, patch)
    if merged == false then return false end -- retired by regenerate
    self.rows[id] = merged
    return true
end

function Store:touch(id)
    local current = self.rows[id]
    if current == nil then return false end
    local _, _, stale = hs._record_meta(current)
    return stale == nil
end

function Store:all()
    local out = {}
    for id in pairs(self.rows) do out[#out + 1] = id end
    return out
end

function Store:length()
    local n = 0
    for _ in pairs(self.rows) do n = n + 1 end
    return n
end

function Store:clear() self.rows, self.ring, self.made = {}, {}, 0 end

return Store

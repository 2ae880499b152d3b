-- The "Custom Store Example" from the sessions spec page (/work/shared/spec/sessions.md),
-- copied unchanged except that `json` is the module's own codec. `db` is spec/support/db.lua.
-- It expects a table created as:
--   CREATE TABLE sessions (id TEXT PRIMARY KEY, data TEXT, expires_at INTEGER)
-- Sessions are stored as JSON, so it carries only what JSON can: UTF-8 strings, string keys
-- (integer keys come back as strings unless the table is a 1..n array) and no 1 vs 1.0.
local json = require("honeymoon_session").json

local DatabaseStore = {}
DatabaseStore.__index = DatabaseStore

function DatabaseStore.new(db)
    return setmetatable({ db = db }, DatabaseStore)
end

function DatabaseStore:get(id)
    local row = self.db:query_row(
        "SELECT data FROM sessions WHERE id = ? AND expires_at > ?",
        id, os.time()
    )
    if row then
        return json.decode(row.data)
    end
    return nil
end

function DatabaseStore:set(id, data, ttl)
    local expires = os.time() + ttl
    self.db:execute(
        "INSERT OR REPLACE INTO sessions (id, data, expires_at) VALUES (?, ?, ?)",
        id, json.encode(data), expires
    )
end

function DatabaseStore:destroy(id)
    self.db:execute("DELETE FROM sessions WHERE id = ?", id)
end

function DatabaseStore:touch(id, ttl)
    self.db:execute(
        "UPDATE sessions SET expires_at = ? WHERE id = ?",
        os.time() + ttl, id
    )
end

function DatabaseStore:exists(id)
    local row = self.db:query_row(
        "SELECT 1 FROM sessions WHERE id = ? AND expires_at > ?",
        id, os.time()
    )
    return row ~= nil
end

function DatabaseStore:all()
    local rows = self.db:query("SELECT id FROM sessions WHERE expires_at > ?", os.time())
    local ids = {}
    for _, row in ipairs(rows) do
        ids[#ids + 1] = row.id
    end
    return ids
end

function DatabaseStore:length()
    local row = self.db:query_row(
        "SELECT COUNT(*) as count FROM sessions WHERE expires_at > ?", os.time()
    )
    return row.count
end

function DatabaseStore:clear()
    self.db:execute("DELETE FROM sessions")
end

return DatabaseStore

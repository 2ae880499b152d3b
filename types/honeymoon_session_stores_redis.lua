---@meta honeymoon_session.stores.redis
-- LuaLS type stub for lua/honeymoon_session/stores/redis.lua: RedisStore for event loops
-- (OpenResty cosockets or cqueues sockets), in record format. Documentation only.

---@class honeymoon_session.LuaRedisOptions
---@field url? string redis://[[user]:password@]host[:port][/db], default redis://127.0.0.1:6379 (no TLS)
---@field prefix? string key prefix, default "sess:"
---@field indexPrefix? string the owner index's keys, default "owner:" .. prefix
---@field socket? "ngx"|"cqueues" default "ngx" inside OpenResty, else "cqueues"
---@field pool? { size?: integer, idle?: integer } idle connections kept (32; 1 to 1048576) and for how long (ms, 60000)
---@field connectTimeout? integer ms, default 2000
---@field commandTimeout? integer ms, default 2000

---The session config's lifetime, as the engine hands it to a record store (with this session's
---own ttl, maxAge and owner where they differ from the config's).
---@class honeymoon_session.Life
---@field ttl integer seconds
---@field maxAge integer|false cookie lifetime in seconds; false: a browser-session cookie
---@field originalMaxAge? integer maxAge before absoluteTimeout capped it (set only when it differs)
---@field path string
---@field httpOnly boolean
---@field secure boolean|"auto"
---@field sameSite "Strict"|"Lax"|"None"|false
---@field domain? string
---@field partitioned? true set only when cookie.partitioned is true
---@field priority? "Low"|"Medium"|"High" set only when cookie.priority is
---@field owner? string the owner the session names (the session option `index`)
---@field https? boolean under cookie.secure = "auto" only: whether this request came over HTTPS (what express-session stores as cookie.secure)

---The lifetime a store keeps for a session where it is not the one a commit assumed (another
---request changed it since this one loaded the session): what hs._merge_patch notes, what
---hs._record_meta(record, assumed) returns fourth, what a store's touch returns after true.
---@class honeymoon_session.Kept
---@field ttl integer the store TTL, seconds
---@field maxAge integer|false the cookie's Max-Age in seconds; false: a browser-session cookie
---@field originalMaxAge integer|false maxAge before absoluteTimeout capped it
---@field assumed? string from hs._merge_patch only: this lifetime as the opaque assumption the commit's touch after the merge hands the store

---@class honeymoon_session.LuaRedisStore
---@field format "record"
local Store = {}
---@param id string
---@param max_size? integer the session's maxSize: a larger stored session is refused before it is all parsed (default 4 MiB)
---@return string|nil record, string|nil version
function Store:get(id, max_size) end
---@param id string
---@param record string
---@param ttl? integer
---@param life? honeymoon_session.Life
---@return string version
function Store:set(id, record, ttl, life) end
---@param id string
---@param patch string
---@param ttl? integer
---@param version? string
---@param life? honeymoon_session.Life
---@param max_size? integer as for get, for the stored version it merges into and the merged session; without it, the maxSize the patch carries (a commit's patch carries the session's), else 4 MiB
---@return boolean written, string|nil version, honeymoon_session.Kept|nil kept the lifetime the session keeps, and was written with, where the patch assumed another
function Store:merge(id, patch, ttl, version, life, max_size) end
---@param id string
function Store:destroy(id) end
---@param id string
---@param ttl? integer
---@param life? honeymoon_session.Life
---@param assumed? string a session's touch: the lifetime its commit assumed (opaque); the session is refreshed for the one Redis holds
---@return boolean alive
---@return honeymoon_session.Kept|nil kept the lifetime it refreshed for, where another than the one assumed was stored
function Store:touch(id, ttl, life, assumed) end
---@param id string
---@return boolean
function Store:exists(id) end
---@return string[]
function Store:all() end
---@return integer
function Store:length() end
function Store:clear() end
---@param owner string|integer
---@return honeymoon_session.OwnedSession[] sessions most recently seen first
function Store:sessionsOf(owner) end
---@param owner string|integer
---@param exceptId? string
---@return integer deleted
function Store:destroyAll(owner, exceptId) end

local M = {}
---@param opts? honeymoon_session.LuaRedisOptions
---@return honeymoon_session.LuaRedisStore
function M.new(opts) end

return M

---@meta honeymoon_session
-- LuaLS type stub for the native module (point "Lua.workspace.library" at this folder).
-- Documentation only: the module itself is honeymoon_session.so.

---@class honeymoon_session.CookieOptions
---@field path? string default "/"
---@field httpOnly? boolean default true
---@field secure? boolean|"auto" default false
---@field sameSite? "Strict"|"Lax"|"None"|false default "Lax"
---@field maxAge? integer|false seconds (1 to 3153600000), overriding ttl for the cookie only; false: a browser-session cookie (no Max-Age, no Expires; the store still keeps ttl)
---@field domain? string
---@field partitioned? boolean default false; adds Partitioned (CHIPS), requires secure = true
---@field priority? "Low"|"Medium"|"High"|"low"|"medium"|"high"|false any case; adds Priority=

---@class honeymoon_session.Options
---@field name? string cookie name, default "honeymoon.sid"; "__Host-", "__Secure-", "__Http-" and "__Host-Http-" names need cookie.secure = true ("__Host-" also path "/" and no domain; "__Http-" also httpOnly; "__Host-Http-" all of these)
---@field secret? string|string[] first signs, all verify; default: random per process
---@field ttl? integer store lifetime in seconds (1 to 3153600000), default 86400
---@field rolling? boolean default false; true: every response refreshes the cookie and the store TTL
---@field resave? boolean default false; true: an unmodified session is written back every request
---@field saveUninitialized? boolean default false; true: a new session that holds nothing is stored too
---@field store? honeymoon_session.Store
---@field cookie? honeymoon_session.CookieOptions
---@field maxSize? integer the largest session in bytes of its stored form (1 to 2147483647), default 4194304 (4 MiB)
---@field index? string the session data field naming its owner (e.g. "userId"), for store:sessionsOf and store:destroyAll
---@field absoluteTimeout? integer seconds (1 to 3153600000) after its creation when a session ends, whatever rolling does
---@field staleGrace? integer seconds (0 to 3153600000) the id regenerate() replaced stays readable with its old data, default 10; 0 deletes it at once

---@class honeymoon_session.SessionCookie
---@field maxAge integer|false|nil this session's cookie (and store) lifetime in milliseconds; settable; false: a browser-session cookie (reads back as nil)
---@field originalMaxAge integer|nil the same, read-only
---@field path string
---@field domain string|nil
---@field httpOnly boolean
---@field secure boolean|"auto"
---@field sameSite string|false
---@field partitioned boolean|nil true when cookie.partitioned is (else nil)
---@field priority "Low"|"Medium"|"High"|nil set when cookie.priority is

---@class honeymoon_session.Session
---@field cookie honeymoon_session.SessionCookie this session's cookie, shaped like express-session's
---@field [string] any the session's data: req.session.userId reads and writes it (method names are reserved: use get and set for those)
local Session = {}
---@param key string
---@param default? any
---@return any
function Session:get(key, default) end
---@param key string
---@param value any nil, boolean, number, string or a table of them
function Session:set(key, value) end
---@param key string
---@return boolean
function Session:has(key) end
---@return table a deep copy of the data
function Session:all() end
---@param key string
function Session:forget(key) end
---@param key string
---@param value any readable in this request and the next
function Session:flash(key, value) end
---@param key string
---@return any value, removed
function Session:getFlash(key) end
function Session:clearFlash() end
---@return boolean stored false when the store no longer holds the session
function Session:save() end
function Session:destroy() end
---@param keepData? boolean
---@return string id the new id
function Session:regenerate(keepData) end
---@return string
function Session:getId() end
---Refreshes a stored session's lifetime (store TTL and cookie) at commit, as rolling does.
function Session:touch() end
---Replaces the data with what the store holds now, dropping unsaved changes.
---@return boolean found false when the store no longer holds the session (it is then empty)
function Session:reload() end

---@class honeymoon_session.Store
---@field get fun(self, id: string): table?
---@field set fun(self, id: string, data: table, ttl: integer)
---@field destroy fun(self, id: string)
---@field touch fun(self, id: string, ttl: integer, life?: table, assumed?: string): boolean?, honeymoon_session.Kept? false when gone; after true, the lifetime it refreshed for where it is not the one assumed (see _record_meta)
---@field exists fun(self, id: string): boolean
---@field all fun(self): string[]
---@field length fun(self): integer
---@field clear fun(self)
---@field merge? fun(self, id: string, changed: table, removed: string[], ttl: integer): boolean false when there is no such session (nil fails the request); for a table store, preceded by a get: a merged session past maxSize fails without calling it
---@field staleAware? boolean true when merge and touch refuse (return false for) a session whose __meta.stale is a number; otherwise the module asks get before each of them (before a table store's merge, it asks get either way)
---@field format? "record" a record store: its methods take and return the module's records (strings) instead of tables, and it needs merge (see docs/api.md)
---@field sessionsOf? fun(self, owner: string|integer): honeymoon_session.OwnedSession[] optional (native stores have it): the owner's live sessions, most recently seen first
---@field destroyAll? fun(self, owner: string|integer, exceptId?: string): integer optional (native stores have it): deletes the owner's sessions but exceptId; the number deleted

---One session of an owner, as store:sessionsOf lists it (times in seconds since the epoch).
---@class honeymoon_session.OwnedSession
---@field id string
---@field created? integer when it was first stored (nil: stored before `index` was set)
---@field lastSeen integer when the store last wrote or refreshed it

---@class honeymoon_session.Core
---@field name string the cookie name
local Core = {}
---@param cookieHeader string|string[]|nil the request's Cookie header, or a list of its lines (joined with "; ")
---@param secure? any the request came over HTTPS: any value but nil and false (a TLS object will do)
---@param req? table its sessionID field is kept current
---@return honeymoon_session.Session session, string id
function Core:load(cookieHeader, secure, req) end
---A new session without looking at any cookie (what load gives a request without one).
---@param secure? any as for load
---@param req? table as for load
---@return honeymoon_session.Session session, string id
function Core:fresh(secure, req) end
---@param session honeymoon_session.Session
---@return string[] setCookieLines 0 or 1 lines
function Core:commit(session) end

---@class honeymoon_session.RedisOptions
---@field url? string default "redis://127.0.0.1:6379"
---@field prefix? string default "sess:"
---@field indexPrefix? string the owner index's keys, default "owner:" .. prefix
---@field connectTimeout? integer ms, default 2000
---@field commandTimeout? integer ms, default 2000
---@field tls? { ca?: string, cert?: string, key?: string } PEM file paths, with a rediss:// url

---@class honeymoon_session
---@field version string
---@field json { encode: fun(value: any): string, decode: fun(text: string): any }
---@field array_mt table the metatable of tables that are JSON arrays (see array)
---@field _default_name string internal: the cookie name without a `name` option (the OpenResty adapter's default store keys by it)
---@field _colon_check fun(mt: table, kind: string): fun(self: any, name: string) internal: the adapters' check for a method called with a dot
---@field _redis table internal: what honeymoon_session.stores.redis needs from Rust (present with the redis feature)
local M = {}
---Marks `t` (or a new table) as a JSON array: stored, and read by Node, as `[...]` even empty.
---@generic T: table
---@param t T
---@return T
---@overload fun(): table
function M.array(t) end
---@param opts? honeymoon_session.Options|honeymoon_session.Core options, or a core to use as it is
---@return fun(req: table, res: table, next: fun())
function M.session(opts) end
---@param opts? honeymoon_session.Options|honeymoon_session.Core options, or a core (returned unchanged)
---@return honeymoon_session.Core
function M.core(opts) end
---@param opts? { shared?: string }
---@return honeymoon_session.Store
function M.MemoryStore(opts) end
---@param opts? honeymoon_session.RedisOptions
---@return honeymoon_session.Store
function M.RedisStore(opts) end
---@return fun(req: table, res: table, next: fun())
function M.flash() end
---Only in builds with the test-hooks feature (make both, the specs); nil in the rock.
---@param seconds number testing aid: moves the module's clock forward
function M._advance_clock(seconds) end
---@return number seconds on a monotonic clock (benchmark aid)
function M._monotonic() end
---@param err any an error the module raised
---@return string message the plain "honeymoon_session: ..." message
function M.error_message(err) end
---Only in builds with the test-hooks feature; nil in the rock.
---@param a table
---@param b table
---@return string recordA, string recordB, string patch the records of a and b, and the patch from a to b
function M._record_patch(a, b) end

-- For stores written in Lua in the record format (format = "record"; see docs/api.md).

---Applies the patch a commit handed to store:merge to the record the store holds. Raises when
---the merged record would be larger than the session's maxSize (the patch carries it): store nothing then.
---Where the merged session keeps another lifetime than the commit assumed (another request changed it
---since), notes it for that commit, which then refreshes the TTL with touch and sends the cookie for it;
---and returns it fourth: a merge that writes with kept.ttl and returns true, version, kept needs no touch.
---@param record string the stored record
---@param patch string
---@return string|false merged the merged record; false alone for a record regenerate retired (never written again)
---@return string|nil owner only when the session has or had an owner: the owner the merged record names
---@return boolean|nil changed only then: whether this merge changed the owner
---@return honeymoon_session.Kept|nil kept the lifetime the merged session keeps where it is not the one the commit assumed
function M._merge_patch(record, patch) end
---A record's bookkeeping; never raises (a record it cannot read, or a value that is no string, has none).
---@param record string|nil
---@param assumed? string what a touch's commit assumed (touch's fourth argument)
---@return string|nil owner, integer|nil created, integer|nil stale ms since the epoch; a stale that is not nil marks an id regenerate retired
---@return honeymoon_session.Kept|nil kept with `assumed`: the lifetime the record keeps where it is another (refresh for kept.ttl, return true, kept)
function M._record_meta(record, assumed) end
---@return integer ms the module's clock, ms since the epoch (what created uses; _advance_clock moves it)
function M._now_ms() end
---An owner as sessionsOf and destroyAll take it: a UTF-8 string as it is, an integer or a whole number below 2^53 in decimal.
---@param value any
---@param store string the store's name, for the error message
---@param method string the method's name, for the error message
---@return string owner
function M._owner(value, store, method) end
---A value as the module's messages show what they were given: a string quoted and escaped (control
---characters as \n or \u{1b}, bytes that are not UTF-8 as U+FFFD, cut when long), a number as its
---text, a boolean as true/false, anything else as its type. Never raises.
---@param value any
---@return string
function M._shown(value) end

return M

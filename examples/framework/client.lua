-- A minimal user agent for examples/framework/app.lua: sends requests in-process
-- and keeps a browser-like cookie jar (simplified RFC 6265) with its own
-- clock, so specs can expire cookies without sleeping.

local cjson = require("cjson")
local App = require("examples.framework.app")

local type, tostring, tonumber, pairs, ipairs, setmetatable =
  type, tostring, tonumber, pairs, ipairs, setmetatable
local str_lower, str_upper, str_find, str_sub, str_match, str_gmatch =
  string.lower, string.upper, string.find, string.sub, string.match, string.gmatch
local tbl_concat, tbl_sort, tbl_remove = table.concat, table.sort, table.remove
local floor = math.floor
local form_encode = App.util.form_encode

local MONTHS = { jan = 1, feb = 2, mar = 3, apr = 4, may = 5, jun = 6,
                 jul = 7, aug = 8, sep = 9, oct = 10, nov = 11, dec = 12 }

-- Days since 1970-01-01 for a proleptic Gregorian date (H. Hinnant's
-- days_from_civil). Pure arithmetic, so no dependence on the local timezone.
local function days_from_civil(y, m, d)
  if m <= 2 then y = y - 1 end
  local era = floor(y / 400)
  local yoe = y - era * 400
  local mp = (m + 9) % 12
  local doy = floor((153 * mp + 2) / 5) + d - 1
  local doe = yoe * 365 + floor(yoe / 4) - floor(yoe / 100) + doy
  return era * 146097 + doe - 719468
end

---Parse an HTTP date ("Wdy, DD Mon YYYY HH:MM:SS GMT"; "-" separators and
---two-digit years are tolerated) into a Unix time, or nil.
---@param s string
---@return integer|nil
local function parse_http_date(s)
  local d, mon, y, hh, mm, ss = str_match(s, "(%d%d?)[ %-](%a%a%a)%a*[ %-](%d+) (%d%d?):(%d%d):(%d%d)")
  if not d then return nil end
  local m = MONTHS[str_lower(mon)]
  if not m then return nil end
  y = tonumber(y)
  if y < 100 then y = y + (y < 70 and 2000 or 1900) end
  return days_from_civil(y, m, tonumber(d)) * 86400 + tonumber(hh) * 3600 + tonumber(mm) * 60 + tonumber(ss)
end

local function trim(s)
  return str_match(s, "^%s*(.-)%s*$")
end

-- RFC 6265 default-path: the request path up to (not including) its last "/".
local function default_path(req_path)
  if str_sub(req_path, 1, 1) ~= "/" then return "/" end
  local last = 1
  local pos = str_find(req_path, "/", 2, true)
  while pos do
    last = pos
    pos = str_find(req_path, "/", pos + 1, true)
  end
  return last == 1 and "/" or str_sub(req_path, 1, last - 1)
end

local function path_matches(cookie_path, req_path)
  if cookie_path == "/" or cookie_path == req_path then return true end
  local n = #cookie_path
  if str_sub(req_path, 1, n) ~= cookie_path then return false end
  return str_sub(cookie_path, n, n) == "/" or str_sub(req_path, n + 1, n + 1) == "/"
end

---@class TestClient
---@field app TestApp
---@field jar {clock:number, list:table[]}  list entries: {name, value, path, expires_at, attrs}
local Client = {}
Client.__index = Client
Client.parse_http_date = parse_http_date

---@param app TestApp
---@return TestClient
function Client.new(app)
  return setmetatable({ app = app, jar = { clock = os.time(), list = {} } }, Client)
end

---Move the jar clock forward (cookies with an expiry may lapse).
---@param seconds number
---@return number clock
function Client:advance(seconds)
  self.jar.clock = self.jar.clock + seconds
  return self.jar.clock
end

local function find_index(list, name, path)
  for i = 1, #list do
    local c = list[i]
    if c.name == name and c.path == path then return i end
  end
end

-- Drop expired entries; called before every read of the jar.
local function purge(jar)
  local list, now = jar.list, jar.clock
  for i = #list, 1, -1 do
    local e = list[i].expires_at
    if e and e <= now then tbl_remove(list, i) end
  end
end

---Apply one Set-Cookie line as a browser would.
---@param line string
---@param req_path? string  request path, for the default cookie path
function Client:store_set_cookie(line, req_path)
  local first = str_match(line, "^[^;]*")
  local eq = str_find(first, "=", 1, true)
  if not eq then return end -- simplified: nameless cookies are ignored
  local name, value = trim(str_sub(first, 1, eq - 1)), trim(str_sub(first, eq + 1))
  if name == "" then return end

  local attrs = {}
  for part in str_gmatch(str_sub(line, #first + 1), "[^;]+") do
    local k, v = str_match(part, "^%s*([^=]-)%s*=%s*(.-)%s*$")
    if k then
      k = str_lower(k)
    else
      k, v = str_lower(trim(part)), true -- flag attribute (HttpOnly, Secure)
    end
    if k ~= "" then attrs[k] = v end
  end
  if attrs["max-age"] ~= nil then attrs["max-age"] = tonumber(attrs["max-age"]) end
  if attrs.httponly ~= nil then attrs.httponly = true end
  if attrs.secure ~= nil then attrs.secure = true end
  local path = attrs.path
  if type(path) ~= "string" or str_sub(path, 1, 1) ~= "/" then
    path = default_path(req_path or "/")
  end
  attrs.path = path

  local jar, now = self.jar, self.jar.clock
  -- Max-Age wins over Expires; either can delete the cookie outright.
  local expires_at
  local max_age = attrs["max-age"]
  if max_age then
    if max_age <= 0 then expires_at = now else expires_at = now + max_age end
  elseif type(attrs.expires) == "string" then
    expires_at = parse_http_date(attrs.expires)
  end

  local list = jar.list
  local idx = find_index(list, name, path)
  if expires_at and expires_at <= now then
    if idx then tbl_remove(list, idx) end
    return
  end
  local entry = { name = name, value = value, path = path, expires_at = expires_at, attrs = attrs }
  if idx then list[idx] = entry else list[#list + 1] = entry end -- replacing keeps order
end

---The Cookie header the jar would send for `path`, or nil.
---@param path string
---@param secure? boolean
---@return string|nil
function Client:cookie_header(path, secure)
  local jar = self.jar
  purge(jar)
  local parts = {}
  for _, c in ipairs(jar.list) do
    if (secure or not c.attrs.secure) and path_matches(c.path, path) then
      parts[#parts + 1] = c.name .. "=" .. c.value
    end
  end
  if #parts == 0 then return nil end
  return tbl_concat(parts, "; ")
end

local function jar_entry(self, name)
  purge(self.jar)
  for _, c in ipairs(self.jar.list) do
    if c.name == name then return c end
  end
end

---The jar's raw (still URL-encoded) value for `name`, or nil.
---@param name string
---@return string|nil
function Client:cookie(name)
  local c = jar_entry(self, name)
  return c and c.value
end

---Parsed attributes of cookie `name`: {path=, domain=, ["max-age"]=number,
---expires=, httponly=true, secure=true, samesite=}, or nil.
---@param name string
---@return table|nil
function Client:cookie_attrs(name)
  local c = jar_entry(self, name)
  return c and c.attrs
end

---Put a cookie in the jar by hand (session cookie, Path=/ unless given).
---@param name string
---@param value string  stored and sent verbatim
---@param attrs? table  e.g. {path="/x", secure=true}
function Client:set_cookie(name, value, attrs)
  local a = {}
  if attrs then
    for k, v in pairs(attrs) do a[str_lower(k)] = v end
  end
  a.path = a.path or "/"
  local list = self.jar.list
  local entry = { name = name, value = tostring(value), path = a.path, attrs = a }
  local idx = find_index(list, name, a.path)
  if idx then list[idx] = entry else list[#list + 1] = entry end
end

function Client:clear_cookies()
  self.jar.list = {}
end

local function encode_form(form)
  local keys = {}
  for k in pairs(form) do keys[#keys + 1] = tostring(k) end
  tbl_sort(keys) -- deterministic bodies
  local parts = {}
  for i, k in ipairs(keys) do
    local v = form[k]
    if v == nil then v = form[tonumber(k)] end
    parts[i] = form_encode(k) .. "=" .. form_encode(tostring(v))
  end
  return tbl_concat(parts, "&")
end

---Send a request through the app, using and updating the cookie jar.
---opts: headers, body, form (table), json (value), secure (bool),
---cookie (raw Cookie header that overrides the jar).
---@param method string
---@param path string
---@param opts? table
---@return table response  app:handle's result plus cookies_sent
function Client:request(method, path, opts)
  opts = opts or {}
  local headers = {}
  if opts.headers then
    for k, v in pairs(opts.headers) do headers[str_lower(k)] = v end
  end
  local body = opts.body
  if opts.form ~= nil then
    body = encode_form(opts.form)
    headers["content-type"] = headers["content-type"] or "application/x-www-form-urlencoded"
  elseif opts.json ~= nil then
    body = cjson.encode(opts.json)
    headers["content-type"] = headers["content-type"] or "application/json"
  end

  local req_path = str_match(path, "^[^?#]*")
  if req_path == "" then req_path = "/" end
  local secure = opts.secure == true
  -- An explicit Cookie header (opts.cookie or headers.cookie) replaces the jar.
  local cookie = opts.cookie
  if cookie == nil then cookie = headers.cookie end
  if cookie == nil then cookie = self:cookie_header(req_path, secure) end
  headers.cookie = cookie

  local r = self.app:handle({ method = str_upper(method), path = path, headers = headers, body = body, secure = secure })
  local set = r.headers["set-cookie"]
  if set then
    if type(set) == "string" then set = { set } end
    for _, line in ipairs(set) do self:store_set_cookie(line, req_path) end
  end
  r.location = r.headers.location
  r.cookies_sent = cookie
  return r
end

for _, m in ipairs({ "get", "post", "put", "delete", "patch" }) do
  local upper = str_upper(m)
  Client[m] = function(self, path, opts)
    return self:request(upper, path, opts)
  end
end

---If `r` carries a location, GET it (absolute http(s) URLs are reduced to
---their path; https implies secure) and return the new response, else nil.
---@param r table
---@param opts? table
---@return table|nil
function Client:follow(r, opts)
  local loc = r and (r.location or (r.headers and r.headers.location))
  if not loc then return nil end
  local o = {}
  if opts then
    for k, v in pairs(opts) do o[k] = v end
  end
  local scheme, rest = str_match(loc, "^(https?)://[^/]*(.*)$")
  if scheme then
    loc = rest ~= "" and rest or "/"
    if scheme == "https" then o.secure = true end
  end
  return self:request("GET", loc, o)
end

return Client

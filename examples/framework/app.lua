-- A tiny in-process stand-in for the HoneyMoon framework: enough of its request/response
-- contract to drive session middleware from the examples and the specs without sockets. Runs
-- unchanged on Lua 5.4 and LuaJIT.

local cjson = require("cjson")

local type, tostring, pairs, ipairs, error = type, tostring, pairs, ipairs, error
local setmetatable, xpcall, pcall = setmetatable, xpcall, pcall
local str_lower, str_upper, str_format = string.lower, string.upper, string.format
local str_find, str_sub, str_gsub, str_gmatch, str_match, str_char, str_byte =
  string.find, string.sub, string.gsub, string.gmatch, string.match, string.char, string.byte
local traceback = debug.traceback
local floor = math.floor

---------------------------------------------------------------------------
-- URL encoding helpers (shared with client.lua via App.util)
---------------------------------------------------------------------------

-- Lookup tables let gsub replace without a closure call per match.
local HEX_DECODE, COMPONENT_ENCODE, FORM_ENCODE = {}, {}, {}
for b = 0, 255 do
  local c = str_char(b)
  local hu, hl = str_format("%02X", b), str_format("%02x", b)
  HEX_DECODE[hu], HEX_DECODE[hl] = c, c
  HEX_DECODE[str_sub(hu, 1, 1) .. str_sub(hl, 2, 2)] = c
  HEX_DECODE[str_sub(hl, 1, 1) .. str_sub(hu, 2, 2)] = c
  COMPONENT_ENCODE[c] = "%" .. hu
  FORM_ENCODE[c] = "%" .. hu
end
FORM_ENCODE[" "] = "+"

---Percent-decode `s`; with `plus` true, "+" means space (form encoding).
---Malformed escapes are left as they are.
---@param s string
---@param plus? boolean
---@return string
local function url_decode(s, plus)
  if plus and str_find(s, "+", 1, true) then s = str_gsub(s, "+", " ") end
  if not str_find(s, "%", 1, true) then return s end
  return (str_gsub(s, "%%(%x%x)", HEX_DECODE))
end

---encodeURIComponent: keeps A-Z a-z 0-9 - _ . ! ~ * ' ( ), escapes the rest.
---@param s string
---@return string
local function url_encode(s)
  return (str_gsub(s, "[^%w%-_%.!~%*'%(%)]", COMPONENT_ENCODE))
end

---application/x-www-form-urlencoded encoding of one key or value.
---@param s string
---@return string
local function form_encode(s)
  return (str_gsub(s, "[^%w%-_%.%*]", FORM_ENCODE))
end

---Parse "a=1&b=2" (form/query syntax). The first occurrence of a key wins.
---@param s string|nil
---@return table<string, string>
local function parse_urlencoded(s)
  local t = {}
  if not s or s == "" then return t end
  for pair in str_gmatch(s, "[^&]+") do
    local eq = str_find(pair, "=", 1, true)
    local k, v
    if eq then
      k, v = url_decode(str_sub(pair, 1, eq - 1), true), url_decode(str_sub(pair, eq + 1), true)
    else
      k, v = url_decode(pair, true), ""
    end
    if t[k] == nil then t[k] = v end
  end
  return t
end

---Parse a Cookie request header. First occurrence wins; values are
---URL-decoded (like Express' `cookie` package, "+" is not a space).
---@param header string|nil
---@return table<string, string>
local function parse_cookie_header(header)
  local t = {}
  if not header then return t end
  for part in str_gmatch(header, "[^;]+") do
    local k, v = str_match(part, "^%s*([^=]-)%s*=%s*(.-)%s*$")
    if k and k ~= "" and t[k] == nil then
      if str_byte(v, 1) == 34 and str_byte(v, -1) == 34 and #v >= 2 then -- "quoted"
        v = str_sub(v, 2, -2)
      end
      t[k] = url_decode(v, false)
    end
  end
  return t
end

local EPOCH_EXPIRES = "Thu, 01 Jan 1970 00:00:00 GMT"

---Serialize one Set-Cookie line. Attribute order follows the contract:
---Path, Domain, Max-Age, Expires, HttpOnly, Secure, SameSite.
---@param name string
---@param value any
---@param opts? table
---@return string
local function serialize_cookie(name, value, opts)
  opts = opts or {}
  local s = name .. "=" .. url_encode(tostring(value == nil and "" or value)) .. "; Path=" .. (opts.path or "/")
  if opts.domain then s = s .. "; Domain=" .. opts.domain end
  if opts.maxAge ~= nil then s = s .. "; Max-Age=" .. str_format("%d", floor(opts.maxAge)) end
  local exp = opts.expires
  if exp ~= nil then
    -- A number is taken as a Unix time, for convenience.
    if type(exp) == "number" then exp = os.date("!%a, %d %b %Y %H:%M:%S GMT", exp) end
    s = s .. "; Expires=" .. exp
  end
  if opts.httpOnly then s = s .. "; HttpOnly" end
  if opts.secure then s = s .. "; Secure" end
  local ss = opts.sameSite
  if ss then
    if ss == true then ss = "Strict" end
    ss = tostring(ss)
    s = s .. "; SameSite=" .. str_upper(str_sub(ss, 1, 1)) .. str_lower(str_sub(ss, 2))
  end
  return s
end

---------------------------------------------------------------------------
-- Request
---------------------------------------------------------------------------

---@class TestRequest
---@field method string
---@field path string
---@field url string          path including the query string, as given
---@field originalUrl string  same as url (Express compatibility)
---@field query table<string, string>
---@field headers table<string, string>
---@field body string|nil
---@field secure boolean
---@field protocol string     "https" or "http"
---@field app TestApp
local Request = {}
Request.__index = Request

---One request cookie's URL-decoded value (first occurrence), or nil.
---@param name string
---@return string|nil
function Request:cookie(name)
  return self:cookies()[name]
end

---All request cookies (parsed once per request, then cached).
---@return table<string, string>
function Request:cookies()
  local c = self._cookies
  if not c then
    c = parse_cookie_header(self.headers.cookie)
    self._cookies = c
  end
  return c
end

---A request header by case-insensitive name.
---@param name string
---@return string|nil
function Request:get(name)
  return self.headers[str_lower(name)]
end

---The body parsed as application/x-www-form-urlencoded.
---@return table<string, string>
function Request:form()
  return parse_urlencoded(self.body)
end

---The body decoded as JSON, or nil when the body is empty.
---@return any
function Request:json()
  local b = self.body
  if b == nil or b == "" then return nil end
  return cjson.decode(b)
end

---------------------------------------------------------------------------
-- Response
---------------------------------------------------------------------------

---@class TestResponse
---@field statusCode integer
---@field headers table<string, string|string[]>
---@field body string|nil
---@field locals table
local Response = {}
Response.__index = Response

---@param code integer
---@return TestResponse
function Response:status(code)
  self.statusCode = code
  return self
end

---Replace a header. "set-cookie" is always stored as a list.
---@param name string
---@param value any
---@return TestResponse
function Response:set(name, value)
  name = str_lower(name)
  if value == nil then
    self.headers[name] = nil
  elseif name == "set-cookie" then
    local list = {}
    if type(value) == "table" then
      for i = 1, #value do list[i] = tostring(value[i]) end
    else
      list[1] = tostring(value)
    end
    self.headers[name] = list
  else
    self.headers[name] = tostring(value)
  end
  return self
end

---@param name string
---@return string|string[]|nil
function Response:get(name)
  return self.headers[str_lower(name)]
end

---Add a header value: set-cookie grows its list, others join with ", ".
---@param name string
---@param value any
---@return TestResponse
function Response:append(name, value)
  name = str_lower(name)
  local headers = self.headers
  if name == "set-cookie" then
    local list = headers[name]
    if not list then
      list = {}
      headers[name] = list
    end
    if type(value) == "table" then
      for i = 1, #value do list[#list + 1] = tostring(value[i]) end
    else
      list[#list + 1] = tostring(value)
    end
  else
    local old = headers[name]
    headers[name] = old and (old .. ", " .. tostring(value)) or tostring(value)
  end
  return self
end

---Queue a cookie; it is written to set-cookie when the response is sent.
---@param name string
---@param value any
---@param opts? {path?:string, domain?:string, maxAge?:number, expires?:string|number, httpOnly?:boolean, secure?:boolean, sameSite?:string|boolean}
---@return TestResponse
function Response:cookie(name, value, opts)
  local q = self._cookie_queue
  if not q then
    q = {}
    self._cookie_queue = q
  end
  q[#q + 1] = serialize_cookie(name, value, opts)
  return self
end

---Queue a cookie deletion (empty value, Max-Age=0, Expires in 1970).
---@param name string
---@param opts? table  path/domain/httpOnly/secure/sameSite are honoured
---@return TestResponse
function Response:clearCookie(name, opts)
  local o = {}
  if opts then
    for k, v in pairs(opts) do o[k] = v end
  end
  o.maxAge, o.expires = 0, EPOCH_EXPIRES
  return self:cookie(name, "", o)
end

---Finish the response. Session middleware shadows this per instance, so
---every helper below ends with `self:send(...)`.
---@param body any
---@return TestResponse
function Response:send(body)
  if self._sent then error("response already sent", 0) end
  self._sent = true
  if body == nil then self.body = "" else self.body = tostring(body) end
  local q = self._cookie_queue
  if q then
    self._cookie_queue = nil
    self:append("set-cookie", q)
  end
  return self
end

---@return boolean
function Response:sent()
  return self._sent == true
end

---@param value any
---@return TestResponse
function Response:json(value)
  self.headers["content-type"] = "application/json"
  return self:send(cjson.encode(value))
end

---@param s any
---@return TestResponse
function Response:html(s)
  self.headers["content-type"] = "text/html"
  return self:send(s)
end

---@param s any
---@return TestResponse
function Response:text(s)
  self.headers["content-type"] = "text/plain"
  return self:send(s)
end

---Redirect (default 302). Also accepts Express' (status, url) order.
---@param url string
---@param status? integer
---@return TestResponse
function Response:redirect(url, status)
  if type(url) == "number" then url, status = status, url end
  self.statusCode = status or 302
  self.headers.location = url
  self.headers["content-type"] = "text/plain"
  return self:send("Redirecting to " .. url)
end

---Toy renderer: body is `view .. ":" .. json(locals merged with data)`.
---@param view string
---@param data? table
---@return TestResponse
function Response:render(view, data)
  local merged = {}
  for k, v in pairs(self.locals) do merged[k] = v end
  if data then
    for k, v in pairs(data) do merged[k] = v end
  end
  self.headers["content-type"] = "text/html"
  return self:send(view .. ":" .. cjson.encode(merged))
end

---------------------------------------------------------------------------
-- App
---------------------------------------------------------------------------

---@class TestApp
---@field stack function[]
---@field routes table<string, table<string, function[]>>
---@field error_handler fun(err:any, req:TestRequest, res:TestResponse)|nil
---@field last_error string|nil  traceback of the error caught by the last handle(), or nil
local App = {}
App.__index = App
App.Request, App.Response = Request, Response
App.util = {
  url_decode = url_decode,
  url_encode = url_encode,
  form_encode = form_encode,
  parse_urlencoded = parse_urlencoded,
  parse_cookie_header = parse_cookie_header,
  serialize_cookie = serialize_cookie,
}

---@return TestApp
function App.new()
  return setmetatable({ stack = {}, routes = {}, error_handler = nil, last_error = nil }, App)
end

---Add middleware `function(req, res, next)`.
---@param fn function
---@return TestApp
function App:use(fn)
  if fn == nil then error("app:use: middleware is nil", 2) end
  self.stack[#self.stack + 1] = fn
  return self
end

---Register a route; exact path match. Extra handlers before the last one
---act as route-level middleware (they receive `next`).
---@param method string
---@param path string
---@param ... function
---@return TestApp
function App:route(method, path, ...)
  method = str_upper(method)
  local by_path = self.routes[method]
  if not by_path then
    by_path = {}
    self.routes[method] = by_path
  end
  local handlers = { ... }
  if #handlers == 0 then error("app:route: no handler for " .. method .. " " .. path, 2) end
  by_path[path] = handlers
  return self
end

for _, m in ipairs({ "get", "post", "put", "delete", "patch" }) do
  local upper = str_upper(m)
  App[m] = function(self, path, ...)
    return self:route(upper, path, ...)
  end
end

---@param fn fun(err:any, req:TestRequest, res:TestResponse)
---@return TestApp
function App:set_error_handler(fn)
  self.error_handler = fn
  return self
end

local function default_error_handler(err, _, res)
  res.statusCode = 500
  res.headers["content-type"] = "text/plain"
  res:send("error: " .. tostring(err))
end

-- xpcall message handler. It stashes the raw error in a module upvalue so
-- no closure is needed per request; handle() reads it right after xpcall.
local raw_error
local function on_error(e)
  raw_error = e
  return traceback(tostring(e), 2)
end

local function new_request(app, spec)
  local url = spec.path or "/"
  local path, query = url, nil
  local qpos = str_find(url, "?", 1, true)
  if qpos then path, query = str_sub(url, 1, qpos - 1), str_sub(url, qpos + 1) end
  local headers = {}
  if spec.headers then
    for k, v in pairs(spec.headers) do headers[str_lower(k)] = v end
  end
  local secure = spec.secure == true
  return setmetatable({
    app = app,
    method = str_upper(spec.method or "GET"),
    path = path,
    url = url,
    originalUrl = url,
    query = parse_urlencoded(query),
    headers = headers,
    body = spec.body,
    secure = secure,
    protocol = secure and "https" or "http",
  }, Request)
end

---Run one request through the middleware chain and the matching route.
---@param spec {method?:string, path?:string, headers?:table<string,string>, body?:string, secure?:boolean}
---@return {status:integer, headers:table, body:string, location:string|nil}
function App:handle(spec)
  local req = new_request(self, spec)
  local res = setmetatable({ statusCode = 200, headers = {}, locals = {}, _sent = false }, Response)
  local stack, nstack = self.stack, #self.stack
  local by_path = self.routes[req.method]
  local route = by_path and by_path[req.path]
  self.last_error = nil

  -- One `next` per request: a position counter walks middleware, then the
  -- route's handlers. Calling next twice just runs off the end (a no-op).
  -- Express-style next(err) raises err so the error handler gets it.
  local i = 0
  local function nxt(err)
    if err ~= nil then error(err, 0) end
    i = i + 1
    local k = i
    if k <= nstack then return stack[k](req, res, nxt) end
    if route then
      local h = route[k - nstack]
      if h then return h(req, res, nxt) end
    elseif k == nstack + 1 then
      res.statusCode = 404
      res.headers["content-type"] = "text/plain"
      return res:send("Not Found")
    end
  end

  local ok, trace = xpcall(nxt, on_error)
  -- "Ensure sent" runs only after the whole chain has unwound, so
  -- middleware code after next() has already had its chance.
  if ok and not res._sent then
    ok, trace = xpcall(function() return res:send("") end, on_error)
  end
  if not ok then
    local err = raw_error
    raw_error = nil
    self.last_error = trace
    if not res._sent then
      local hok, herr = pcall(self.error_handler or default_error_handler, err, req, res)
      if not hok then
        self.last_error = trace .. "\nerror handler failed: " .. tostring(herr)
      end
      if not res._sent then
        -- Last resort; bypass instance overrides that may be what failed.
        res.statusCode = 500
        Response.send(res, "error: " .. tostring(err))
      end
    end
  end

  local headers = res.headers
  return { status = res.statusCode, headers = headers, body = res.body or "", location = headers.location }
end

return App

-- A small Express-style app for the benchmarks, independent of spec/support: routes compiled
-- to patterns with :params, a request object with a lowercased headers table, query and
-- lazily parsed cookies, a response object with a headers table, status, set/append/cookie,
-- send/text/json/redirect, and a middleware chain with next(). Each request allocates what a
-- real framework's does (request, response, headers, params, the chain's closure, the body
-- string), so the session's overhead is measured against realistic garbage. Runs unchanged on
-- Lua 5.4 and LuaJIT; needs nothing but the standard library.
local type, tostring, pairs, ipairs, pcall, error = type, tostring, pairs, ipairs, pcall, error
local setmetatable, concat = setmetatable, table.concat
local lower, upper, find, sub, gsub, gmatch, match, format, char, byte =
    string.lower, string.upper, string.find, string.sub, string.gsub, string.gmatch,
    string.match, string.format, string.char, string.byte

-- JSON, enough for responses: strings, numbers, booleans, arrays (1..n) and objects.
local escapes = { ['"'] = '\\"', ["\\"] = "\\\\", ["\n"] = "\\n", ["\r"] = "\\r", ["\t"] = "\\t" }
for b = 0, 31 do
    local c = char(b)
    if not escapes[c] then escapes[c] = format("\\u%04x", b) end
end
local function encode(v, out)
    local t = type(v)
    if t == "string" then
        out[#out + 1] = '"' .. gsub(v, '[%c"\\]', escapes) .. '"'
    elseif t == "number" then
        out[#out + 1] = (v == v and v ~= 1 / 0 and v ~= -1 / 0) and tostring(v) or "null"
    elseif t == "boolean" then
        out[#out + 1] = v and "true" or "false"
    elseif t == "table" then
        local n = #v
        if n > 0 or next(v) == nil then
            out[#out + 1] = "["
            for i = 1, n do
                if i > 1 then out[#out + 1] = "," end
                encode(v[i], out)
            end
            out[#out + 1] = "]"
        else
            out[#out + 1] = "{"
            local first = true
            for k, x in pairs(v) do
                if not first then out[#out + 1] = "," end
                first = false
                encode(tostring(k), out)
                out[#out + 1] = ":"
                encode(x, out)
            end
            out[#out + 1] = "}"
        end
    else
        out[#out + 1] = "null"
    end
end
local function json(v)
    local out = {}
    encode(v, out)
    return concat(out)
end

local function url_decode(s)
    if not find(s, "%", 1, true) then return s end
    return (gsub(s, "%%(%x%x)", function(h) return char(tonumber(h, 16)) end))
end

local function url_encode(s)
    return (gsub(s, "[^%w%-_%.~]", function(c) return format("%%%02X", byte(c)) end))
end

-- Request ------------------------------------------------------------------------------------

local Request = {}
Request.__index = Request

function Request:get(name) return self.headers[lower(name)] end

function Request:cookies()
    local c = self._cookies
    if c == nil then
        c = {}
        local header = self.headers.cookie
        if header then
            for part in gmatch(header, "[^;]+") do
                local k, v = match(part, "^%s*([^=]-)%s*=%s*(.-)%s*$")
                if k and c[k] == nil then c[k] = url_decode(v) end
            end
        end
        self._cookies = c
    end
    return c
end

function Request:cookie(name) return self:cookies()[name] end

local function parse_query(q)
    local t = {}
    if q then
        for pair in gmatch(q, "[^&]+") do
            local k, v = match(pair, "^([^=]*)=?(.*)$")
            t[url_decode(k)] = url_decode(v)
        end
    end
    return t
end

-- Response -----------------------------------------------------------------------------------

local Response = {}
Response.__index = Response

function Response:status(code)
    self.statusCode = code
    return self
end

function Response:set(name, value)
    self.headers[name] = value
    return self
end

function Response:get(name) return self.headers[name] end

function Response:append(name, value)
    local headers = self.headers
    local old = headers[name]
    if old == nil then
        headers[name] = value
    elseif type(old) == "table" then
        old[#old + 1] = value
    else
        headers[name] = { old, value }
    end
    return self
end

function Response:cookie(name, value, opts)
    opts = opts or {}
    local parts = { name .. "=" .. url_encode(tostring(value)), "Path=" .. (opts.path or "/") }
    if opts.maxAge then parts[#parts + 1] = "Max-Age=" .. opts.maxAge end
    if opts.httpOnly ~= false then parts[#parts + 1] = "HttpOnly" end
    if opts.sameSite then parts[#parts + 1] = "SameSite=" .. opts.sameSite end
    return self:append("Set-Cookie", concat(parts, "; "))
end

-- Every way of finishing a response ends here (session middleware wraps it on the instance).
function Response:send(body)
    if self.finished then return self end
    self.finished = true
    body = body == nil and "" or tostring(body)
    self.body = body
    self.headers["Content-Length"] = tostring(#body)
    return self
end

function Response:text(s)
    self.headers["Content-Type"] = "text/plain; charset=utf-8"
    return self:send(s)
end

function Response:json(v)
    self.headers["Content-Type"] = "application/json"
    return self:send(json(v))
end

function Response:redirect(url, code)
    self.statusCode = code or 302
    self.headers.Location = url
    return self:send("Found. Redirecting to " .. url)
end

-- App ----------------------------------------------------------------------------------------

local App = {}
App.__index = App
App.json = json

function App.new()
    return setmetatable({ middleware = {}, routes = {} }, App)
end

function App:use(fn)
    self.middleware[#self.middleware + 1] = fn
    return self
end

-- "/users/:id/posts" -> "^/users/([^/]+)/posts$" with names { "id" }
local function compile(path)
    local names = {}
    local pattern = gsub(path, "[%.%-%+%?%[%]%^%$%(%)%%]", "%%%0")
    pattern = gsub(pattern, ":([%w_]+)", function(name)
        names[#names + 1] = name
        return "([^/]+)"
    end)
    return "^" .. pattern .. "$", names
end

function App:route(method, path, handler)
    local pattern, names = compile(path)
    self.routes[#self.routes + 1] = { method = upper(method), pattern = pattern, names = names, handler = handler }
    return self
end
for _, m in ipairs({ "get", "post", "put", "delete" }) do
    App[m] = function(self, path, handler) return self:route(m, path, handler) end
end

local function match_route(routes, method, path)
    for i = 1, #routes do
        local r = routes[i]
        if r.method == method then
            local caps = { match(path, r.pattern) }
            if caps[1] ~= nil or (#r.names == 0 and find(path, r.pattern)) then
                local params = {}
                for j, name in ipairs(r.names) do params[name] = caps[j] end
                return r.handler, params
            end
        end
    end
end

---Runs one request. `raw` is what a server hands over: method, url (path and query) and a
---headers table with names in any case. Returns the response object.
function App:handle(raw)
    local url = raw.url
    local q = find(url, "?", 1, true)
    local path = q and sub(url, 1, q - 1) or url
    local headers = {}
    for k, v in pairs(raw.headers) do headers[lower(k)] = v end
    local req = setmetatable({
        method = raw.method, url = url, path = path, headers = headers,
        query = parse_query(q and sub(url, q + 1)), secure = raw.secure == true, app = self,
    }, Request)
    local res = setmetatable({ statusCode = 200, headers = {}, locals = {}, finished = false }, Response)

    local stack, routes, i = self.middleware, self.routes, 0
    local function nxt(err)
        if err ~= nil then error(err, 0) end
        i = i + 1
        local mw = stack[i]
        if mw then return mw(req, res, nxt) end
        local handler, params = match_route(routes, req.method, path)
        if handler then
            req.params = params
            return handler(req, res, nxt)
        end
        res.statusCode = 404
        return res:text("Not Found")
    end
    local ok, err = pcall(nxt)
    if not ok then
        if not res.finished then
            res.statusCode = 500
            res:text("Internal Server Error")
        end
        self.last_error = err
    elseif not res.finished then
        res:send("")
    end
    return res
end

return App

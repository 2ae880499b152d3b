-- A small SQLite handle over luasql.sqlite3 for SQL-store examples and specs.
-- luasql has no bound parameters, so `?` placeholders are replaced by safely
-- quoted literals here.

local driver = require("luasql.sqlite3")

local type, tostring, tonumber, select, error, setmetatable =
  type, tostring, tonumber, select, error, setmetatable
local str_find, str_sub, str_gsub, str_format, str_upper, str_match =
  string.find, string.sub, string.gsub, string.format, string.upper, string.match
local tbl_concat = table.concat
local math_type = math.type -- nil on LuaJIT
local tointeger = math.tointeger -- nil on LuaJIT
local huge = math.huge

---Render one Lua value as an SQL literal.
---@param v any
---@return string
local function literal(v)
  local t = type(v)
  if t == "string" then
    if str_find(v, "\0", 1, true) then error("db: string parameter contains a NUL byte", 3) end
    return "'" .. str_gsub(v, "'", "''") .. "'"
  elseif t == "number" then
    if v ~= v or v == huge or v == -huge then error("db: non-finite number parameter", 3) end
    if math_type and math_type(v) == "integer" then return str_format("%d", v) end
    return str_format("%.17g", v) -- integral doubles print without ".0"
  elseif t == "boolean" then
    return v and "1" or "0"
  elseif v == nil then
    return "NULL"
  end
  error("db: cannot bind a " .. t .. " parameter", 3)
end

---Replace each `?` outside quoted literals/identifiers and comments with the
---next argument as an SQL literal. Errors on a count mismatch.
---@param sql string
---@param ... any
---@return string
local function bind(sql, ...)
  local n = select("#", ...)
  if n == 0 and not str_find(sql, "?", 1, true) then return sql end
  local out, used, pos = {}, 0, 1
  while true do
    local s = str_find(sql, "[%?'\"`%[%-/]", pos)
    if not s then break end
    local c = str_sub(sql, s, s)
    local e -- last character consumed by this token
    if c == "?" then
      used = used + 1
      if used > n then error("db: more placeholders than arguments (" .. n .. " given)", 3) end
      out[#out + 1] = str_sub(sql, pos, s - 1)
      out[#out + 1] = literal((select(used, ...)))
      pos = s + 1
    else
      if c == "'" or c == '"' or c == "`" then
        -- A doubled quote simply closes and reopens, so no special case.
        e = str_find(sql, c, s + 1, true)
      elseif c == "[" then
        e = str_find(sql, "]", s + 1, true)
      elseif str_sub(sql, s, s + 1) == "--" then
        e = str_find(sql, "\n", s + 2, true)
      elseif str_sub(sql, s, s + 1) == "/*" then
        local _, ce = str_find(sql, "*/", s + 2, true)
        e = ce
      else
        e = s -- a lone "-" or "/"
      end
      e = e or #sql -- unterminated: leave the rest for SQLite to reject
      out[#out + 1] = str_sub(sql, pos, e)
      pos = e + 1
    end
  end
  if used ~= n then error("db: " .. n .. " arguments for " .. used .. " placeholders", 3) end
  out[#out + 1] = str_sub(sql, pos)
  return tbl_concat(out)
end

---@class TestDb
---@field conn any  the luasql connection
---@field env any   the luasql environment
local Db = {}
Db.__index = Db

local M = { bind = bind, literal = literal }

---Open (or create) a database; ":memory:" for an in-memory one.
---@param path string
---@return TestDb
function M.open(path)
  local env = driver.sqlite3()
  local conn, err = env:connect(path)
  if not conn then
    env:close()
    error("db: cannot open " .. tostring(path) .. ": " .. tostring(err), 2)
  end
  local self = setmetatable({ conn = conn, env = env }, Db)
  -- Older luasql returns every value as text; if so, integer-looking values
  -- of undeclared (expression) columns such as COUNT(*) need converting too.
  local cur = self:_run("SELECT 1 AS n", 1)
  self.stringly = type(cur:fetch({}, "a").n) == "string"
  cur:close()
  return self
end

function Db:_run(sql, level)
  local res, err = self.conn:execute(sql)
  if res == nil then error(tostring(err), level + 1) end
  return res
end

-- Is column type `ct` one whose text values should become numbers?
local function integer_column(self, ct)
  if ct == nil or ct == "" then return self.stringly end
  return str_find(str_upper(ct), "INT", 1, true) ~= nil
end

-- Fetch the next row as a fresh table keyed by column name, or nil.
local function fetch(self, cur, names, int_cols)
  local row = cur:fetch({}, "a")
  if not row then return nil end
  for i = 1, #names do
    local v = row[names[i]]
    if int_cols[i] and type(v) == "string" and str_match(v, "^%-?%d+$") then
      row[names[i]] = tonumber(v)
    end
  end
  return row
end

local function open_cursor(self, sql, ...)
  local cur = self:_run(bind(sql, ...), 4) -- report at query()'s caller
  if type(cur) ~= "userdata" then return nil end -- not a row-returning statement
  local names, types, int_cols = cur:getcolnames(), cur:getcoltypes(), {}
  for i = 1, #names do int_cols[i] = integer_column(self, types[i]) end
  return cur, names, int_cols
end

---Run a statement; returns the number of affected rows. Raises on failure.
---@param sql string
---@param ... any  values for the `?` placeholders
---@return integer
function Db:execute(sql, ...)
  local res = self:_run(bind(sql, ...), 2)
  if type(res) ~= "number" then
    res:close()
    return 0
  end
  return tointeger and tointeger(res) or res
end

---All rows as an array of tables keyed by column name.
---@param sql string
---@param ... any
---@return table[]
function Db:query(sql, ...)
  local cur, names, int_cols = open_cursor(self, sql, ...)
  local rows = {}
  if not cur then return rows end
  -- luasql closes the cursor itself once fetch() runs out of rows.
  local row = fetch(self, cur, names, int_cols)
  while row do
    rows[#rows + 1] = row
    row = fetch(self, cur, names, int_cols)
  end
  return rows
end

---The first row as a table keyed by column name, or nil.
---@param sql string
---@param ... any
---@return table|nil
function Db:query_row(sql, ...)
  local cur, names, int_cols = open_cursor(self, sql, ...)
  if not cur then return nil end
  local row = fetch(self, cur, names, int_cols)
  if row then cur:close() end
  return row
end

function Db:close()
  if self.conn then
    self.conn:close()
    self.env:close()
    self.conn, self.env = nil, nil
  end
end

return M

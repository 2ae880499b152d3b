-- The demo app: the Sessions page's Complete Example (login, flash, protected dashboard, theme
-- setting, logout) plus two load-test routes. Server-agnostic: app.lua serves it over lua-http,
-- openresty.lua under nginx. Both hand it the same tiny request and take the same response:
--
--   local handler, uses_session = routes.find(method, path)
--   local res = handler({ method = "POST", path = "/login", body = "...", content_type = "...",
--                         session = session_or_nil })
--   -- res = { status = 303, content_type = "text/html; charset=utf-8", location = "/dashboard",
--   --         body = "..." }
--
-- The server loads the session (through its honeymoon_session adapter) only when uses_session
-- is true, and commits it before writing the response. Nothing here touches cookies.
local hs = require("honeymoon_session")

local M = {}

-- One demo user. A real app keeps a password hash, not the password.
local USERS = {
    ["alice@example.com"] = { id = 1, name = "Alice", role = "admin", password = "wonderland" },
}
local THEMES = { light = true, dark = true }

-- The session options for both servers, without a store: each server picks the store that
-- fits it and sets M.store to it (GET /stats counts its sessions). app.lua (lua-http, one
-- process) uses a MemoryStore; openresty.lua the OpenResty adapter's default, a SharedDictStore
-- on `lua_shared_dict sessions` that every nginx worker shares.
M.options = {
    name = "app.sid",
    secret = os.getenv("SESSION_SECRET") or "dev-secret",
    ttl = 86400 * 7,
    rolling = true,
    cookie = { httpOnly = true, secure = "auto", sameSite = "Lax" },
}
M.store = nil

---------------------------------------------------------------------------
-- Small helpers
---------------------------------------------------------------------------

local ESCAPES = { ["&"] = "&amp;", ["<"] = "&lt;", [">"] = "&gt;", ['"'] = "&quot;", ["'"] = "&#39;" }
local function esc(s) return (tostring(s):gsub("[&<>\"']", ESCAPES)) end

local function url_decode(s)
    s = s:gsub("+", " ")
    return (s:gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end))
end

-- application/x-www-form-urlencoded; the first occurrence of a key wins.
local function parse_form(body)
    local t = {}
    for pair in (body or ""):gmatch("[^&]+") do
        local k, v = pair:match("^([^=]*)=?(.*)$")
        k = url_decode(k)
        if t[k] == nil then t[k] = url_decode(v) end
    end
    return t
end

local HTML = "text/html; charset=utf-8"

local function page(title, theme, content)
    return table.concat({
        '<!doctype html><html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        '<link rel="icon" href="data:,">',
        "<title>", esc(title), " · honeymoon_session demo</title><style>",
        "body{font-family:system-ui,sans-serif;max-width:32rem;margin:3rem auto;padding:0 1rem;",
        "background:#fff;color:#222}",
        "body.dark{background:#1d1f24;color:#e8e8e8}",
        ".flash{padding:.6rem .8rem;border-radius:.3rem;margin:1rem 0}",
        ".flash.error{background:#fde2e1;color:#8a1c14}.flash.success{background:#def7e0;color:#17622a}",
        "label{display:block;margin:.6rem 0}input{display:block;width:100%;padding:.4rem;box-sizing:border-box}",
        "button{padding:.4rem .9rem;margin-right:.4rem}",
        '</style></head><body class="', esc(theme or "light"), '">', content, "</body></html>",
    })
end

local function flash_box(kind, message)
    if message == nil then return "" end
    return ('<p class="flash %s" role="status" data-flash="%s">%s</p>'):format(kind, kind, esc(message))
end

local function html(status, body) return { status = status, content_type = HTML, body = body } end
local function text(status, body) return { status = status, content_type = "text/plain; charset=utf-8", body = body } end
local function json(status, value)
    return { status = status, content_type = "application/json", body = hs.json.encode(value) }
end
-- 303: after a POST the browser follows with a GET.
local function redirect(location)
    return { status = 303, content_type = "text/plain; charset=utf-8", location = location,
             body = "See " .. location .. "\n" }
end

---------------------------------------------------------------------------
-- Routes (session routes get req.session)
---------------------------------------------------------------------------

local function get_login(req)
    local session = req.session
    return html(200, page("Log in", session.theme, table.concat({
        "<h1>Log in</h1>",
        flash_box("error", session:getFlash("error")),
        '<form method="post" action="/login">',
        '<label>Email <input type="email" name="email" autocomplete="username" required></label>',
        '<label>Password <input type="password" name="password" autocomplete="current-password" required></label>',
        '<button type="submit">Log in</button></form>',
        "<p><small>Demo user: alice@example.com / wonderland</small></p>",
    })))
end

local function post_login(req)
    local session = req.session
    local data = parse_form(req.body)
    local user = USERS[data.email or ""]
    if user and user.password == data.password then
        session:regenerate(false) -- a new id after login: no session fixation
        session.userId = user.id
        session.username = user.name
        session.role = user.role
        session:flash("success", "Welcome back!")
        return redirect("/dashboard")
    end
    session:flash("error", "Invalid email or password")
    return redirect("/login")
end

local function get_dashboard(req)
    local session = req.session
    if not session:has("userId") then return redirect("/login") end
    local theme = session.theme or "light"
    return html(200, page("Dashboard", theme, table.concat({
        flash_box("success", session:getFlash("success")),
        flash_box("error", session:getFlash("error")),
        '<h1>Dashboard</h1><p>Signed in as <strong id="username">', esc(session.username),
        "</strong> (", esc(session.role), ').</p>',
        '<p>Theme: <span id="theme">', esc(theme), "</span> ",
        '<button type="button" data-theme="light">Light</button>',
        '<button type="button" data-theme="dark">Dark</button></p>',
        '<form method="post" action="/logout"><button type="submit" id="logout">Log out</button></form>',
        "<script>",
        "for (const b of document.querySelectorAll('button[data-theme]')) b.onclick = async () => {",
        "  const r = await fetch('/settings/theme', { method: 'POST',",
        "    headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ theme: b.dataset.theme }) });",
        "  const { theme } = await r.json();",
        "  document.body.className = theme; document.getElementById('theme').textContent = theme;",
        "};",
        "</script>",
    })))
end

local function post_theme(req)
    local session = req.session
    if not session:has("userId") then return json(401, { error = "not logged in" }) end
    local ok, data = pcall(hs.json.decode, req.body or "")
    if not ok or type(data) ~= "table" or not THEMES[data.theme] then
        return json(400, { error = 'theme must be "light" or "dark"' })
    end
    session:set("theme", data.theme)
    return json(200, { theme = data.theme })
end

local function post_logout(req)
    req.session:destroy()
    return redirect("/login")
end

-- Load-test route: reads and writes the session on every request.
local function get_counter(req)
    local session = req.session
    local hits = (session.hits or 0) + 1
    session.hits = hits
    return text(200, "hits " .. hits .. "\n")
end

-- The same work without sessions (served without loading one), for comparison.
local plain_hits = 0
local function get_counter_plain()
    plain_hits = plain_hits + 1
    return text(200, "hits " .. plain_hits .. "\n")
end

local function get_stats()
    return json(200, { sessions = M.store:length(), lua_kb = math.floor(collectgarbage("count")) })
end

local function root() return redirect("/dashboard") end
local function no_content() return { status = 204, body = "" } end
local function not_found() return text(404, "Not found\n") end
local function method_not_allowed() return text(405, "Method not allowed\n") end

-- path -> method -> { handler, uses_session }
local ROUTES = {
    ["/"] = { GET = { root, false } },
    ["/login"] = { GET = { get_login, true }, POST = { post_login, true } },
    ["/dashboard"] = { GET = { get_dashboard, true } },
    ["/settings/theme"] = { POST = { post_theme, true } },
    ["/logout"] = { POST = { post_logout, true } },
    ["/counter"] = { GET = { get_counter, true } },
    ["/counter-plain"] = { GET = { get_counter_plain, false } },
    ["/stats"] = { GET = { get_stats, false } },
    ["/favicon.ico"] = { GET = { no_content, false } },
}

---@param method string
---@param path string without the query string
---@return fun(req: table): table handler, boolean uses_session
function M.find(method, path)
    local methods = ROUTES[path]
    if methods == nil then return not_found, false end
    local route = methods[method] or (method == "HEAD" and methods.GET)
    if route == nil then return method_not_allowed, false end
    return route[1], route[2]
end

M.MAX_BODY = 64 * 1024

return M

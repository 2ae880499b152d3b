-- The demo app: the Sessions page's Complete Example (login, flash, protected dashboard, theme
-- setting, logout), with "Remember me" at login and a "Your sessions" page (the logged-in
-- user's live sessions, through the store's owner index, and "Log out other sessions"), plus
-- two load-test routes. Server-agnostic: app.lua serves it over lua-http,
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

-- The session options for both servers, without a store: each server makes the store that
-- fits it, passes it in its options and sets M.store to it (GET /stats counts its sessions, the
-- sessions page asks it for the user's sessions). app.lua (lua-http, one process) uses a
-- MemoryStore; openresty.lua a SharedDictStore on `lua_shared_dict sessions`, which every
-- nginx worker shares.
-- `index = "userId"`: the store indexes each session by the value of its userId field (the
-- logged-in user), so store:sessionsOf(userId) lists a user's sessions and
-- store:destroyAll(userId, exceptId) ends them.
M.options = {
    name = "app.sid",
    secret = os.getenv("SESSION_SECRET") or "dev-secret",
    ttl = 86400 * 7,
    rolling = true,
    index = "userId",
    cookie = { httpOnly = true, secure = "auto", sameSite = "Lax" },
}
M.store = nil

-- "Remember me": the session's cookie (and its stored session) lasts 30 days, in milliseconds as
-- express-session's req.session.cookie.maxAge takes it. Unchecked, the cookie is a
-- browser-session cookie and the store expires the session after `ttl`.
M.REMEMBER_MS = 30 * 24 * 3600 * 1000

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
        "label.check{display:flex;gap:.5rem;align-items:center}label.check input{width:auto;margin:0}",
        "button{padding:.4rem .9rem;margin-right:.4rem}",
        "ul.sessions{padding:0;list-style:none}ul.sessions li{padding:.5rem 0;border-bottom:1px solid #8884}",
        "code{font-size:.95em}.tag{font-size:.8em;padding:.1rem .4rem;border-radius:.3rem;background:#def7e0;color:#17622a}",
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
        '<label class="check"><input type="checkbox" name="remember" value="1"> Remember me for 30 days</label>',
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
        -- Remember me: a 30-day cookie; else one the browser drops when it closes (the store
        -- still expires the session after `ttl`). Set after regenerate, which starts afresh.
        if data.remember == "1" then
            session.cookie.maxAge = M.REMEMBER_MS
        else
            session.cookie.maxAge = false
        end
        session.userId = user.id -- the `index` field: the store lists this session under the user
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
        '<p><a href="/sessions" id="sessions-link">Your sessions</a></p>',
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

-- "Your sessions": every live session of the logged-in user (the store's owner index), with
-- when it was last used; the current one is marked. Session ids are bearer secrets: the page
-- shows only the first 6 characters of the others' and none of the current one's.
local function ago(seconds)
    if seconds < 60 then return "just now" end
    if seconds < 3600 then return ("%d min ago"):format(math.floor(seconds / 60)) end
    if seconds < 86400 then return ("%d h ago"):format(math.floor(seconds / 3600)) end
    return ("%d days ago"):format(math.floor(seconds / 86400))
end

local function utc(t) return os.date("!%Y-%m-%d %H:%M:%S UTC", t) end

local function get_sessions(req)
    local session = req.session
    if not session:has("userId") then return redirect("/login") end
    local current = session:getId()
    local now = os.time()
    local items = {}
    for _, s in ipairs(M.store:sessionsOf(session.userId)) do
        local mine = s.id == current
        local last = math.floor(s.lastSeen)
        items[#items + 1] = table.concat({
            '<li data-session', mine and ' data-current' or "", '>',
            mine and '<strong>This browser</strong> <span class="tag">current</span>'
                or ("Session <code data-id-prefix>%s</code>…"):format(esc(s.id:sub(1, 6))),
            '<br><small>Last seen <time datetime="', os.date("!%Y-%m-%dT%H:%M:%SZ", last), '">', utc(last), "</time> (",
            ago(math.max(0, now - last)), ")",
            -- created is nil for a session stored before `index` was set
            s.created and ", signed in " .. utc(math.floor(s.created)) or "", "</small></li>",
        })
    end
    local others = #items > 1
    return html(200, page("Your sessions", session.theme, table.concat({
        flash_box("success", session:getFlash("success")),
        "<h1>Your sessions</h1>",
        "<p>", tostring(#items), " active session", #items == 1 and "" or "s", " for <strong>",
        esc(session.username), "</strong>.</p>",
        '<ul class="sessions" id="sessions">', table.concat(items), "</ul>",
        others and ('<form method="post" action="/sessions/logout-others">'
            .. '<button type="submit" id="logout-others">Log out other sessions</button></form>')
            or "<p>No other sessions.</p>",
        '<p><a href="/dashboard">Back to the dashboard</a></p>',
    })))
end

-- Ends every other session of this user (other browsers are logged out at their next request);
-- this one stays. The demo has no CSRF token: its cookie is SameSite=Lax, so a cross-site form
-- POST arrives without it and ends nothing.
local function post_logout_others(req)
    local session = req.session
    if not session:has("userId") then return redirect("/login") end
    local n = M.store:destroyAll(session.userId, session:getId())
    session:flash("success", ("Logged out %d other session%s."):format(n, n == 1 and "" or "s"))
    return redirect("/sessions")
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
    ["/sessions"] = { GET = { get_sessions, true } },
    ["/sessions/logout-others"] = { POST = { post_logout_others, true } },
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

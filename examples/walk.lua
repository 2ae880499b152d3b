-- The Sessions page's Complete Example, walked through by a client with a cookie jar:
-- login (wrong, then right), dashboard with flash, settings, logout. Prints what crosses the
-- wire: each request's Cookie header and each response's Set-Cookie.
-- Run from the repository root: `make example` (builds the module first).
local flavour = rawget(_G, "jit") and "luajit" or "lua" .. _VERSION:sub(5):gsub("%.", "") -- build/lua51 .. lua54, luajit
package.cpath = "./build/" .. flavour .. "/?.so;" .. package.cpath
package.path = "./?.lua;" .. package.path

local hs = require("honeymoon_session")
local App = require("examples.framework.app")
local Client = require("examples.framework.client")

local users = { ["alice@example.com"] = { id = 1, name = "Alice", role = "admin", password = "wonderland" } }

local app = App.new()
app:use(hs.session({
    name = "app.sid",
    secret = os.getenv("SESSION_SECRET") or "dev-secret",
    ttl = 86400 * 7,
    rolling = true,
    cookie = { httpOnly = true, secure = false, sameSite = "Lax" },
}))
app:use(hs.flash())

app:post("/login", function(req, res)
    local data = req:form()
    local user = users[data.email]
    if user and user.password == data.password then
        req.session:regenerate(false)
        req.session.userId = user.id
        req.session.username = user.name
        req.session.role = user.role
        req.session:flash("success", "Welcome back!")
        res:redirect("/dashboard")
    else
        req.session:flash("error", "Invalid email or password")
        res:redirect("/login")
    end
end)

app:get("/login", function(req, res)
    res:render("login", { error = req.session:getFlash("error") })
end)

app:get("/dashboard", function(req, res)
    if not req.session:has("userId") then
        return res:redirect("/login")
    end
    res:render("dashboard", {
        username = req.session.username,
        flash = { success = req.session:getFlash("success"), error = req.session:getFlash("error") },
    })
end)

app:post("/settings/theme", function(req, res)
    local data = req:json()
    req.session:set("theme", data.theme)
    res:json({ theme = data.theme })
end)

app:post("/logout", function(req, res)
    req.session:destroy()
    res:redirect("/login")
end)

local client = Client.new(app)
local function step(method, path, opts)
    local r = client:request(method, path, opts)
    print(("%s %s -> %d %s"):format(method, path, r.status, r.location and ("Location: " .. r.location) or r.body))
    print("   Cookie:     " .. (r.cookies_sent or "(none)"))
    for _, line in ipairs(r.headers["set-cookie"] or {}) do
        print("   Set-Cookie: " .. line)
    end
    return r
end

print(("honeymoon_session %s on %s\n"):format(hs.version, rawget(_G, "jit") and jit.version or _VERSION))
step("POST", "/login", { form = { email = "alice@example.com", password = "wrong" } })
step("GET", "/login")
step("GET", "/login")
step("POST", "/login", { form = { email = "alice@example.com", password = "wonderland" } })
step("GET", "/dashboard")
step("GET", "/dashboard")
step("POST", "/settings/theme", { json = { theme = "dark" } })
step("POST", "/logout")
step("GET", "/dashboard")
